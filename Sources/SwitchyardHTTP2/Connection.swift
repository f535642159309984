// The one file that owns an nghttp2 server session: one HTTP/2 connection in memory mode. Socket bytes
// (decrypted when TLS) go in through `nghttp2_session_mem_recv`; frames come out of
// `nghttp2_session_mem_send` into one output buffer written once per loop iteration. The callbacks
// registered here turn HEADERS/DATA into gRPC calls and answers into HEADERS/DATA/trailers.

internal import CNghttp2
import Logging
import SwitchyardCore
import SwitchyardTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One accepted HTTP/2 connection. Loop-confined: its lifecycle (`lifecycle`) and its calls' phases are
/// asserted to be touched on the loop in debug builds.
package final class Connection {
    typealias Verdict = ConnectionVerdict

    let fd: Int32
    unowned(unsafe) let loop: EventLoop
    @exclusivity(unchecked) private(set) var session: OpaquePointer?
    let tls: TLSSession?
    /// Bytes for the socket not yet written (`out[outSent...]`).
    @exclusivity(unchecked) var out: [UInt8] = []
    @exclusivity(unchecked) var outSent = 0
    @exclusivity(unchecked) private var _lifecycle = ConnectionStateMachine()
    @exclusivity(unchecked) var isDirty = false
    @exclusivity(unchecked) var readingPaused = false
    @exclusivity(unchecked) var stalledSince: MonotonicInstant?
    /// Response bytes queued in calls but not yet framed.
    @exclusivity(unchecked) package var queuedBytes = 0
    /// Live calls (intrusive list head).
    @exclusivity(unchecked) var calls: GRPCCall?
    @exclusivity(unchecked) var registeredEvents: UInt32 = 0
    /// When the socket was accepted; the preface must arrive within `handshakeTimeoutSeconds` of it.
    let acceptedAt: MonotonicInstant
    /// Streams begun so far (and, on the REST port, body chunks received); the loop's sweep compares it between
    /// visits to see activity without a clock read per call.
    @exclusivity(unchecked) var progress = 0
    @exclusivity(unchecked) var progressAtLastSweep = 0
    /// Since when the sweep has seen no stream open and none begun.
    @exclusivity(unchecked) var idleSince: MonotonicInstant
    @exclusivity(unchecked) private var resetBudget: FrameBudget
    /// Since when a header block (HEADERS, then CONTINUATION frames) has been arriving without its end; it
    /// must complete within `limits.header_timeout_seconds`.
    @exclusivity(unchecked) var headerBlockSince: MonotonicInstant?
    /// WINDOW_UPDATE frames the client may send without spending the control-frame budget: two per DATA frame
    /// we sent (its stream's and the connection's acknowledgement) and one per stream it opened, at most
    /// `maxWindowUpdateCredit` banked.
    @exclusivity(unchecked) var windowUpdateCredit = 0
    static let maxWindowUpdateCredit = 4096
    /// Inflated bytes per second this connection's compressed messages may cost.
    let inflateBudget: InflateBudget
    /// The client address's slot in the per-address connection count, when that limit is on.
    @exclusivity(unchecked) var peerAddress: PeerAddress?
    /// Whether the client connected from a loopback address (127.0.0.0/8 or ::1), for `GRPCRequestHead`.
    @exclusivity(unchecked) var peerIsLoopback = false
    /// The client certificate's names (mutual TLS), read on the first call after the handshake.
    lazy var peerCertificate: PeerCertificate? = tls?.peerCertificate()
    @exclusivity(unchecked) private var controlBudget: FrameBudget
    /// The last `:path` and its resolution: most connections call one method over and over.
    @exclusivity(unchecked) private var cachedPathBytes: [UInt8] = []
    @exclusivity(unchecked) private var cachedPath = ""
    @exclusivity(unchecked) private var cachedMethod: GRPCMethod?
    /// Reused storage for outgoing header blocks.
    @exclusivity(unchecked) private var headerBytes: [UInt8] = []
    @exclusivity(unchecked) private var headerEntries: [(name: Int, nameLength: Int, value: Int, valueLength: Int)] = []
    @exclusivity(unchecked) private var nvs: [nghttp2_nv] = []
    /// The REST service when the connection came to the REST port (h2c, or TLS with ALPN "h2"): each stream is
    /// then a REST request (Connection+REST.swift). `nil` on the gRPC port.
    let rest: (any HTTPService)?
    /// `rest != nil`, read by every nghttp2 callback without copying the existential.
    let servesREST: Bool
    /// The REST requests of this connection's open streams.
    @exclusivity(unchecked) var restExchanges: [Int32: HTTP2Exchange] = [:]
    /// REST requests handed to the service and not answered yet: the connection is busy, not idle.
    @exclusivity(unchecked) var restAwaitingAnswers = 0

    var pendingOutput: Int { out.count - outSent }

    /// Where the connection stands (see `ConnectionStateMachine`); on the loop only.
    var lifecycle: ConnectionStateMachine {
        _read {
            loop.assertOnLoop()
            yield _lifecycle
        }
        _modify {
            loop.assertOnLoop()
            yield &_lifecycle
        }
    }

    package var isClosed: Bool { lifecycle.isClosed }
    /// The verdict that ended the connection, when our policy did; its reason was logged once.
    var verdict: Verdict? { lifecycle.verdict }

    /// Counts this connection's protocol failure once, however many ways it is noticed.
    func countProtocolError() {
        if lifecycle.protocolErrorSeen() {
            loop.core.counters.protocolErrors.add(1, ordering: .relaxed)
        }
    }

    init(fd: Int32, loop: EventLoop, tls: TLSSession?, rest: (any HTTPService)? = nil) {
        self.fd = fd
        self.loop = loop
        self.tls = tls
        self.rest = rest
        servesREST = rest != nil
        let now = MonotonicInstant.now()
        acceptedAt = now
        idleSince = now
        let limits = loop.core.limits
        resetBudget = FrameBudget(
            burst: limits.maxStreamResetBurst,
            perSecond: limits.maxStreamResetsPerSecond,
            now: now.nanoseconds
        )
        controlBudget = FrameBudget(
            burst: limits.maxControlFrameBurst,
            perSecond: limits.maxControlFramesPerSecond,
            now: now.nanoseconds
        )
        inflateBudget = InflateBudget(perSecond: limits.maxInflatedBytesPerSecondPerConnection, now: now.nanoseconds)
        var session: OpaquePointer?
        let options = loop.core.sessionOptions
        nghttp2_session_server_new2(
            &session,
            HTTP2Callbacks.shared.callbacks,
            Unmanaged.passUnretained(self).toOpaque(),
            options.pointer
        )
        self.session = session
        let settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: UInt32(clamping: limits.maxConcurrentStreams)
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(clamping: limits.maxHeaderListBytes)
            ),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: 1 << 20
            ),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), settings, settings.count)
        // A larger connection window lets big messages and many streams flow without WINDOW_UPDATE stalls.
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
    }

    // MARK: Input

    /// Feeds plaintext HTTP/2 bytes. Returns false when the connection must close (protocol error).
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let session, bytes.count > 0 else { return true }
        let consumed = nghttp2_session_mem_recv(
            session,
            bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
            bytes.count
        )
        if verdict != nil { return false }  // a callback ended it (and returned a failure to stop parsing)
        if consumed < 0 {
            let error = Int32(consumed)
            if error == NGHTTP2_ERR_FLOODED.rawValue {
                // Acknowledgements (PING/SETTINGS) piled up unread: the peer is not reading, so GOAWAY would
                // wait behind them. Close at once.
                end(.calm, reason: "too many PING/SETTINGS acknowledgements left unread")
                lifecycle.closeImmediately()
                return false
            }
            if error == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS.rawValue {
                end(.calm, reason: "too many CONTINUATION frames in one header block")
                return false
            }
            countProtocolError()
            loop.core.logger.debug(
                "HTTP/2 protocol error, closing connection",
                metadata: ["fd": "\(fd)", "error": "\(String(cString: nghttp2_strerror(error)))"]
            )
            // nghttp2 has queued GOAWAY for most errors; make sure one goes out, then close after the flush.
            nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR.rawValue)
            return false
        }
        return true
    }

    /// Ends the connection by policy: GOAWAY with ENHANCE_YOUR_CALM (abuse) or NO_ERROR (timeouts), naming
    /// the reason in its debug data, counted once. The loop closes it once the GOAWAY is written.
    func end(_ verdict: Verdict, reason: String) {
        guard case .sendGoaway = lifecycle.end(verdict) else { return }
        let counters = loop.core.counters
        switch verdict {
        case .calm: counters.connectionsThrottled.add(1, ordering: .relaxed)
        case .timeout: counters.connectionsTimedOut.add(1, ordering: .relaxed)
        }
        loop.core.logger.debug(
            "closing connection",
            metadata: [
                "fd": "\(fd)", "reason": "\(reason)",
                "goaway": "\(verdict == .calm ? "ENHANCE_YOUR_CALM" : "NO_ERROR")",
            ]
        )
        guard let session else { return }
        let code = verdict == .calm ? NGHTTP2_ENHANCE_YOUR_CALM.rawValue : NGHTTP2_NO_ERROR.rawValue
        var debug = Array(reason.utf8.prefix(256))
        debug.withUnsafeMutableBufferPointer { bytes in
            _ = nghttp2_submit_goaway(
                session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                nghttp2_session_get_last_proc_stream_id(session),
                code,
                bytes.baseAddress,
                bytes.count
            )
        }
        markDirty()
    }

    /// Takes one token from the reset budget; over budget, ends the connection. Returns false then.
    fileprivate func spendReset() -> Bool {
        spend(
            &resetBudget,
            what: "stream resets",
            keys: "limits.max_stream_reset_burst, limits.max_stream_resets_per_second"
        )
    }

    /// Takes one token from the control-frame budget; over budget, ends the connection. Returns false then.
    fileprivate func spendControl(_ kind: String) -> Bool {
        spend(
            &controlBudget,
            what: "\(kind) frames",
            keys: "limits.max_control_frame_burst, limits.max_control_frames_per_second"
        )
    }

    /// Takes one token from `budget`; over budget, ends the connection with ENHANCE_YOUR_CALM, naming `what` and
    /// the configuration keys that set the budget. Returns false then.
    private func spend(_ budget: inout FrameBudget, what: @autoclosure () -> String, keys: StaticString) -> Bool {
        if !lifecycle.acceptsFrames { return false }
        if budget.take(now: MonotonicInstant.now().nanoseconds) { return true }
        end(.calm, reason: "\(what()) over budget: burst \(budget.burst), \(budget.perSecond)/s (\(keys))")
        return false
    }

    // MARK: Output

    /// Moves frames from nghttp2 (through TLS when present) into `out`, stopping at the buffer limit.
    /// Returns false on a fatal session error.
    func produce() -> Bool {
        guard let session else { return true }
        if let tls, !tls.established {
            tls.drain(into: &out)  // handshake records only; frames wait for the handshake
            return true
        }
        let limit = loop.core.limits.maxOutputBufferBytes
        while pendingOutput < limit {
            var data: UnsafePointer<UInt8>? = nil
            let count = nghttp2_session_mem_send(session, &data)
            if count < 0 { return false }
            if count == 0 { break }
            let chunk = UnsafeRawBufferPointer(start: data, count: count)
            if let tls {
                if !tls.send(chunk) { return false }
            } else {
                out.append(contentsOf: chunk)
            }
        }
        tls?.drain(into: &out)
        return true
    }

    /// Whether nghttp2 still expects frames from the peer (false after a GOAWAY exchange or fatal error).
    var sessionWantsRead: Bool {
        guard let session else { return false }
        return nghttp2_session_want_read(session) != 0
    }

    /// Whether nghttp2 has frames to send (and may send them now).
    var sessionWantsWrite: Bool {
        guard let session, !isClosed else { return false }
        if let tls, !tls.established { return false }
        return nghttp2_session_want_write(session) != 0
    }

    /// Whether nghttp2 is done with this connection (GOAWAY exchanged or peer gone, nothing to send).
    var sessionFinished: Bool {
        guard let session else { return true }
        return nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0
    }

    // MARK: Shutdown

    /// Tells the client no new streams will be accepted soon (first half of a graceful GOAWAY).
    package func sendShutdownNotice() {
        guard let session, case .sendNotice = lifecycle.shutdownNoticeRequested() else { return }
        nghttp2_submit_shutdown_notice(session)
    }

    /// The final GOAWAY naming the last stream we will process.
    package func sendFinalGoaway() {
        guard let session, case .sendGoaway = lifecycle.finalGoawayRequested() else { return }
        nghttp2_submit_goaway(
            session,
            UInt8(NGHTTP2_FLAG_NONE.rawValue),
            nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue,
            nil,
            0
        )
    }

    /// Frees the session; every live call ends as cancelled.
    func teardown() {
        guard lifecycle.closed() else { return }
        if let session { nghttp2_session_del(session) }
        session = nil
        while let call = calls {
            unlink(call)
            if call.stream.streamClosed() == .cancel {
                call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
                loop.core.counters.countCall(.cancelled)
            }
            releaseReservation(call)
            loop.timers.remove(call)
            Unmanaged.passUnretained(call).release()
        }
        restTeardown()
    }

    // MARK: Without a socket

    /// A connection fed from memory on a loop that is not running (SwitchyardHTTP2TestSupport, Fuzz/).
    package convenience init(inMemoryOn loop: EventLoop) {
        self.init(fd: -1, loop: loop, tls: nil)
    }

    /// What the loop does with bytes read from the socket. Returns false when they ended the connection; it
    /// then closes after the next flush, or has closed already when the peer is not reading.
    package func receiveWithoutSocket(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !isClosed else { return false }
        let ok = receive(bytes)
        if !ok { lifecycle.closeAfterFlush() }
        if lifecycle.closesImmediately { closeWithoutSocket() }
        return ok
    }

    /// What the loop's flush does, with a socket that takes everything: appends the frames to `output`. Returns
    /// false when the connection closed.
    @discardableResult
    package func flushWithoutSocket(into output: inout [UInt8], rounds: Int) -> Bool {
        guard !isClosed else { return false }
        for _ in 0..<rounds {
            guard produce() else {
                countProtocolError()
                closeWithoutSocket()
                return false
            }
            output.append(contentsOf: out[outSent...])
            out.removeAll(keepingCapacity: true)
            outSent = 0
            if lifecycle.flushed(sessionFinished: sessionFinished) == .close {
                closeWithoutSocket()
                return false
            }
            if !sessionWantsWrite { break }
        }
        return true
    }

    /// What the loop does when the socket closes: every live call ends as cancelled.
    package func closeWithoutSocket() {
        if !isClosed { teardown() }
    }

    /// Whether calls are still live (their streams not closed).
    package var hasLiveCalls: Bool { calls != nil }

    // MARK: Calls

    func link(_ call: GRPCCall) {
        call.next = calls
        calls?.previous = call
        calls = call
    }

    func unlink(_ call: GRPCCall) {
        if let previous = call.previous { previous.next = call.next } else if calls === call { calls = call.next }
        call.next?.previous = call.previous
        call.previous = nil
        call.next = nil
    }

    fileprivate func call(for streamID: Int32) -> GRPCCall? {
        guard let session, let raw = nghttp2_session_get_stream_user_data(session, streamID) else { return nil }
        return Unmanaged<GRPCCall>.fromOpaque(raw).takeUnretainedValue()
    }

    fileprivate func beginRequest(streamID: Int32) {
        progress &+= 1
        let call = GRPCCall(loop: loop, connection: self, streamID: streamID, limit: loop.core.limits.maxRequestBytes)
        nghttp2_session_set_stream_user_data(session, streamID, Unmanaged.passRetained(call).toOpaque())
        link(call)
        loop.core.counters.streamsOpened.add(1, ordering: .relaxed)
    }

    /// Whether one header of a request's block was taken; false once the list is so far over the limit
    /// that the rest of the block must not even be looked at.
    fileprivate func header(
        call: GRPCCall,
        name: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer
    ) -> Bool {
        call.headerBytes += name.count + value.count + 32
        let limit = loop.core.limits.maxHeaderListBytes
        if call.headerBytes > 4 * limit {
            // An HPACK bomb (one table entry referenced thousands of times) decodes to megabytes from a few
            // bytes, and nghttp2 validates every decoded byte: stop the block here. The stream is reset with
            // ENHANCE_YOUR_CALM (RESOURCE_EXHAUSTED for gRPC clients); it counts against the reset budget.
            guard call.stream.headerListOverflowed() == .reset else { return false }
            call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
            loop.core.counters.countCall(.resourceExhausted)
            nghttp2_submit_rst_stream(
                session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                call.streamID,
                NGHTTP2_ENHANCE_YOUR_CALM.rawValue
            )
            return false
        }
        // Past the limit the call is refused anyway; keep nothing more of it.
        guard name.count > 0, call.headerBytes <= limit else { return true }
        if name[0] == UInt8(ascii: ":") {
            if name.equals(":path") {
                if value.count == cachedPathBytes.count
                    && (value.count == 0
                        || cachedPathBytes.withUnsafeBytes({
                            memcmp($0.baseAddress!, value.baseAddress!, value.count) == 0
                        }))
                {
                    call.path = cachedPath
                    call.method = cachedMethod
                } else {
                    cachedPathBytes = Array(value)
                    cachedPath = String(decoding: value, as: UTF8.self)
                    cachedMethod = loop.core.service.method(for: cachedPath)
                    call.path = cachedPath
                    call.method = cachedMethod
                }
            } else if name.equals(":method") {
                call.isPost = value.equals("POST")
            }
            return true
        }
        if name.equals("content-type") {
            let prefix: StaticString = "application/grpc"
            if value.hasPrefix(prefix) {
                let rest = value.dropFirst(prefix.utf8CodeUnitCount)
                call.contentTypeOK = rest.isEmpty || rest.first == UInt8(ascii: "+") || rest.first == UInt8(ascii: ";")
            }
            if !call.contentTypeOK { call.contentTypeSeen = String(decoding: value, as: UTF8.self) }
        } else if name.equals("grpc-timeout") {
            if let nanoseconds = GRPCTimeout.parse(value) {
                call.deadline = MonotonicInstant.now().advanced(byNanoseconds: nanoseconds)
            } else {
                call.badTimeout = String(decoding: value, as: UTF8.self)
            }
        } else if name.equals("grpc-encoding") {
            if let encoding = GRPCCompression(headerValue: value) {
                call.encoding = encoding
            } else {
                call.unsupportedEncoding = String(decoding: value, as: UTF8.self)
            }
        } else if name.equals("te") || name.equals("user-agent")
            || name.equals("grpc-accept-encoding")
        {
            return true
        } else {
            call.metadata.append(
                (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
            )
        }
        return true
    }

    /// The request's header block is complete: validate it, arm the deadline.
    fileprivate func requestHeadersComplete(call: GRPCCall) {
        // Ignored when reset while its headers were decoded (a header list far over the limit).
        guard call.stream.requestHeadersComplete() == .validate else { return }
        let limit = loop.core.limits.maxHeaderListBytes
        if call.headerBytes > limit {
            return reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "request header list of \(call.headerBytes) bytes exceeds the limit of \(limit) bytes"
                )
            )
        }
        if !call.isPost {
            loop.core.counters.httpRejections.add(1, ordering: .relaxed)
            respondHTTPError(call: call, status: "405", message: "expected :method POST for gRPC")
            return
        }
        if !call.contentTypeOK {
            loop.core.counters.httpRejections.add(1, ordering: .relaxed)
            let seen = call.contentTypeSeen.isEmpty ? "none" : "'\(call.contentTypeSeen)'"
            respondHTTPError(call: call, status: "415", message: "expected content-type application/grpc, got \(seen)")
            return
        }
        if let bad = call.badTimeout {
            return reject(
                call,
                GRPCStatus(
                    .invalidArgument,
                    "malformed grpc-timeout '\(bad)': expected 1-8 digits and a unit H, M, S, m, u or n"
                )
            )
        }
        if let encoding = call.unsupportedEncoding {
            return reject(
                call,
                GRPCStatus(
                    .unimplemented,
                    "grpc-encoding '\(encoding)' is not supported; supported: \(GRPCCompression.acceptEncoding)"
                )
            )
        }
        guard let method = call.method else {
            return reject(call, GRPCStatus(.unimplemented, "unknown method \(call.path)"))
        }
        if method.kind == .bidirectionalStreaming {
            // Before the service first sees the call: `send` reads only this to know a stream takes many answers.
            call.responder.store(GRPCCall.Responder.streamOpen, ordering: .relaxed)
        }
        call.head = GRPCRequestHead(
            path: call.path,
            metadata: call.metadata,
            deadline: call.deadline,
            peerIsLoopback: peerIsLoopback,
            peerCertificate: peerCertificate
        )
        if let deadline = call.deadline { loop.timers.insert(call, deadline: deadline) }
    }

    /// Gives back what a call's partly received message reserved (its buffer goes with the deframer, or
    /// with `discard()` once no `feed` is running).
    func releaseReservation(_ call: GRPCCall) {
        if call.reservedBytes != 0 {
            loop.bytesFreedSinceTrim += call.reservedBytes
            loop.core.counters.bufferedRequestBytes.subtract(call.reservedBytes, ordering: .relaxed)
            call.reservedBytes = 0
        }
    }

    /// The front end refuses the call: no more of its request is read, the responder is cancelled, and the client
    /// gets `status` (Trailers-Only, or trailers after what was already sent).
    private func reject(_ call: GRPCCall, _ status: GRPCStatus) {
        releaseReservation(call)
        call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
        conclude(call, call.stream.refuse(status), status: status, metadata: [])
    }

    fileprivate func data(call: GRPCCall, bytes: UnsafeRawBufferPointer) {
        guard call.stream.isReceiving else { return }
        do {
            try call.deframer.feed(bytes) { compressed, message in
                self.deliver(call: call, compressed: compressed, message: message)
            }
            let reserved = call.deframer.reservedBytes
            if reserved < call.reservedBytes { loop.bytesFreedSinceTrim += call.reservedBytes - reserved }
            if reserved != call.reservedBytes && call.stream.isReceiving {
                let total = loop.core.counters.bufferedRequestBytes.add(
                    reserved - call.reservedBytes,
                    ordering: .relaxed
                ).newValue
                call.reservedBytes = reserved
                let limit = loop.core.limits.maxBufferedRequestBytes
                if reserved > 0 && total > limit {
                    reject(
                        call,
                        GRPCStatus(
                            .resourceExhausted,
                            "request message of \(reserved) bytes does not fit: \(total - reserved) bytes of partly received messages are buffered, limit \(limit) bytes (max_buffered_request_bytes)"
                        )
                    )
                }
            }
            if !call.stream.isReceiving { call.deframer.discard() }
        } catch DeframeError.tooLarge(let declared, let limit) {
            reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "request message of \(declared) bytes exceeds the limit of \(limit) bytes (max_request_bytes)"
                )
            )
        } catch DeframeError.badFlag(let flag) {
            reject(call, GRPCStatus(.internal, "invalid gRPC message prefix: compressed flag \(flag), expected 0 or 1"))
        } catch {
            reject(call, GRPCStatus(.internal, "cannot read request: \(error)"))
        }
        if !call.stream.isReceiving { call.deframer.discard() }
    }

    private func deliver(call: GRPCCall, compressed: Bool, message: UnsafeRawBufferPointer) {
        guard call.stream.isReceiving, let method = call.method, let head = call.head else { return }
        if method.kind == .unary && call.messagesReceived > 0 {
            return reject(
                call,
                GRPCStatus(.internal, "unary method \(call.path) expects one request message, got more")
            )
        }
        call.messagesReceived += 1
        let outputLimit = loop.core.limits.maxOutputBufferBytes
        if queuedBytes >= outputLimit {
            // The client is not opening flow-control windows for what it already asked: refuse more work.
            return reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "client is not reading responses: \(queuedBytes) bytes queued on this connection, limit \(outputLimit) bytes (max_output_buffer_bytes)"
                )
            )
        }
        if compressed && call.encoding == .identity {
            return reject(
                call,
                GRPCStatus(
                    .unimplemented,
                    "request message is compressed but no grpc-encoding was given; supported: \(GRPCCompression.acceptEncoding)"
                )
            )
        }
        if call.inflating {
            // An earlier message of this stream is being inflated: keep the order.
            call.waiting.append((compressed, Array(message)))
            return
        }
        dispatch(call: call, method: method, head: head, compressed: compressed, message: message)
    }

    /// Hands a message to the service, or a compressed one to the inflater (its answer comes back through
    /// `inflated`). A loop never inflates: a few kilobytes of gzip can take it hundreds of milliseconds.
    private func dispatch(
        call: GRPCCall,
        method: GRPCMethod,
        head: GRPCRequestHead,
        compressed: Bool,
        message: UnsafeRawBufferPointer
    ) {
        guard compressed else {
            return loop.core.service.handle(message: message, method: method, head: head, responder: call)
        }
        let limits = loop.core.limits
        if !inflateBudget.admits(now: MonotonicInstant.now().nanoseconds) {
            return reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "decompression over budget: \(inflateBudget.perSecond) inflated bytes per second for this connection (limits.max_inflated_bytes_per_second_per_connection)"
                )
            )
        }
        // The compressed copy waits in memory like a partly received message, under the same budget.
        let total = loop.core.counters.bufferedRequestBytes.add(message.count, ordering: .relaxed).newValue
        call.inflateReservation = message.count
        if total > limits.maxBufferedRequestBytes {
            loop.core.counters.bufferedRequestBytes.subtract(message.count, ordering: .relaxed)
            call.inflateReservation = 0
            return reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "compressed request message of \(message.count) bytes does not fit: \(total - message.count) bytes of request messages are buffered, limit \(limits.maxBufferedRequestBytes) bytes (max_buffered_request_bytes)"
                )
            )
        }
        call.inflating = true
        let job = InflateJob(call: call, encoding: call.encoding, compressed: Array(message), budget: inflateBudget)
        if !loop.core.inflater.submit(job) {
            call.inflating = false
            loop.core.counters.bufferedRequestBytes.subtract(message.count, ordering: .relaxed)
            call.inflateReservation = 0
            return reject(
                call,
                GRPCStatus(
                    .resourceExhausted,
                    "decompression queue full: \(Inflater.maxQueued) compressed messages are waiting to be inflated"
                )
            )
        }
    }

    /// The inflater's answer for a call's compressed message (already charged to the budgets): hand the message
    /// to the service (or end the call), then release the messages that waited behind it.
    func inflated(_ call: GRPCCall, outcome: InflateOutcome) {
        guard call.stream.isReceiving, let method = call.method, let head = call.head else {
            call.waiting.removeAll()
            return
        }
        switch outcome {
        case .failed(let status):
            call.waiting.removeAll()
            return reject(call, status)
        case .message(let inflated):
            inflated.withUnsafeBytes {
                loop.core.service.handle(message: $0, method: method, head: head, responder: call)
            }
        }
        while !call.inflating, !call.waiting.isEmpty, call.stream.isReceiving {
            let (compressed, message) = call.waiting.removeFirst()
            message.withUnsafeBytes {
                dispatch(call: call, method: method, head: head, compressed: compressed, message: $0)
            }
        }
    }

    fileprivate func halfClosed(call: GRPCCall) {
        guard call.stream.requestEnded() == .check else { return }
        if call.deframer.hasPartialMessage {
            return reject(call, GRPCStatus(.internal, "request stream ended inside a message"))
        }
        guard let method = call.method else { return }
        switch method.kind {
        case .unary:
            if call.messagesReceived == 0 {
                reject(call, GRPCStatus(.internal, "unary method \(call.path) expects one request message, got none"))
            }
        case .bidirectionalStreaming:
            if call.messagesAnswered == call.messagesReceived && !call.stream.hasFinalStatus {
                call.responder.store(GRPCCall.Responder.answered, ordering: .relaxed)
                finish(call, status: .ok, metadata: [])
            }
        }
    }

    fileprivate func streamClosed(call: GRPCCall, errorCode: UInt32) {
        switch call.stream.streamClosed() {
        case .cancel:
            // RST_STREAM from the client (or a stream error) before we finished: the call is cancelled.
            call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
            loop.core.counters.countCall(.cancelled)
        case .release:
            break
        case .ignore:
            assertionFailure("stream \(call.streamID) closed twice")
            return
        }
        releaseReservation(call)
        loop.timers.remove(call)
        unlink(call)
        nghttp2_session_set_stream_user_data(session, call.streamID, nil)
        Unmanaged.passUnretained(call).release()
    }

    // MARK: Answers (on the loop)

    /// A service's `send` reached the loop.
    func deliverSend(_ call: GRPCCall, message: [UInt8], metadata: [(name: String, value: String)]) {
        guard !isClosed else { return loop.countDropped() }
        let final: Bool
        if call.method?.kind == .bidirectionalStreaming {
            final = call.stream.requestHalfClosed && call.messagesAnswered + 1 >= call.messagesReceived
        } else {
            final = true
        }
        let action = call.stream.messageQueued(final: final)
        if action == .drop { return loop.countDropped() }
        call.outQueue.append(message)
        call.queuedBytes += message.count + 5
        queuedBytes += message.count + 5
        call.messagesAnswered += 1
        if final {
            if call.method?.kind == .bidirectionalStreaming {
                call.responder.store(GRPCCall.Responder.answered, ordering: .relaxed)
            } else {
                call.finalMetadata = metadata
            }
            loop.timers.remove(call)
        }
        perform(action, call: call, status: .ok, metadata: metadata)
    }

    /// A service's `fail`, a deadline, or a front-end error ends the call with `status`.
    func finish(_ call: GRPCCall, status: GRPCStatus, metadata: [(name: String, value: String)]) {
        guard !isClosed else { return loop.countDropped() }
        conclude(call, call.stream.finish(status), status: status, metadata: metadata)
    }

    /// A final status was offered: unless the call already had one, its deadline is off and the answer goes out.
    private func conclude(
        _ call: GRPCCall,
        _ action: GRPCStreamStateMachine.AnswerAction,
        status: GRPCStatus,
        metadata: [(name: String, value: String)]
    ) {
        if action == .drop { return loop.countDropped() }
        loop.timers.remove(call)
        call.finalMetadata = metadata
        perform(action, call: call, status: status, metadata: metadata)
    }

    /// Carries out what the call's state machine decided for an answer.
    private func perform(
        _ action: GRPCStreamStateMachine.AnswerAction,
        call: GRPCCall,
        status: GRPCStatus,
        metadata: [(name: String, value: String)]
    ) {
        switch action {
        case .drop:
            return loop.countDropped()
        case .submitTrailersOnly:
            // One HEADERS frame with END_STREAM.
            loop.timers.remove(call)
            loop.core.counters.countCall(status.code)
            beginHeaders()
            addHeader(":status", "200")
            addHeader("content-type", "application/grpc")
            addHeader("grpc-accept-encoding", GRPCCompression.acceptEncoding)
            addStatus(status, metadata: metadata)
            if !submitHeaders({ nghttp2_submit_response(session, call.streamID, $0, $1, nil) }) {
                resetUnanswerable(call)
            }
            call.outQueue.removeAll()
        case .submitResponseHeaders:
            beginHeaders()
            addHeader(":status", "200")
            addHeader("content-type", "application/grpc")
            addHeader("grpc-accept-encoding", GRPCCompression.acceptEncoding)
            var provider = nghttp2_data_provider(
                source: nghttp2_data_source(ptr: Unmanaged.passUnretained(call).toOpaque()),
                read_callback: HTTP2Callbacks.readData
            )
            if !submitHeaders({ nghttp2_submit_response(session, call.streamID, $0, $1, &provider) }) {
                resetUnanswerable(call)
            }
        case .resumeData:
            nghttp2_session_resume_data(session, call.streamID)
        case .flush:
            break
        }
        markDirty()
    }

    /// Copies queued response messages (with their 5-byte prefixes) into a DATA frame payload.
    fileprivate func readData(
        call: GRPCCall,
        buffer: UnsafeMutablePointer<UInt8>,
        length: Int,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        var written = 0
        while written < length, !call.outQueue.isEmpty {
            let message = call.outQueue.front
            if call.outOffset < 5 {
                let count = UInt32(message.count)
                let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (
                    0, UInt8(count >> 24), UInt8((count >> 16) & 0xFF), UInt8((count >> 8) & 0xFF), UInt8(count & 0xFF)
                )
                withUnsafeBytes(of: prefix) { p in
                    while call.outOffset < 5 && written < length {
                        buffer[written] = p[call.outOffset]
                        written += 1
                        call.outOffset += 1
                    }
                }
                continue
            }
            let start = call.outOffset - 5
            let take = min(message.count - start, length - written)
            if take > 0 {
                message.withUnsafeBytes { raw in
                    (buffer + written).update(
                        from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + start,
                        count: take
                    )
                }
            }
            written += take
            call.outOffset += take
            if call.outOffset - 5 == message.count {
                call.outQueue.removeFirst()
                call.outOffset = 0
                call.queuedBytes -= message.count + 5
                queuedBytes -= message.count + 5
            }
        }
        switch call.stream.dataProvided(written: written, queueEmpty: call.outQueue.isEmpty) {
        case .sendTrailers(let status):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            // Counted here, once the status is on its way: a call cut off before this counts as cancelled.
            loop.core.counters.countCall(status.code)
            beginHeaders()
            addStatus(status, metadata: call.finalMetadata)
            if !submitHeaders({ nghttp2_submit_trailer(session, call.streamID, $0, $1) }) {
                resetUnanswerable(call)
            }
            return written
        case .deferData:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .send:
            return written
        }
    }

    /// After our END_STREAM, reset a stream the client is still sending on so it stops (as gRPC servers do).
    fileprivate func sentEndStream(streamID: Int32) {
        guard let call = call(for: streamID), call.stream.endStreamSent() == .resetNoError else { return }
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_NO_ERROR.rawValue)
    }

    package func markDirty() {
        if !isDirty && !isClosed {
            isDirty = true
            loop.dirty.append(self)
        }
    }

    // MARK: Header blocks

    func beginHeaders() {
        headerBytes.removeAll(keepingCapacity: true)
        headerEntries.removeAll(keepingCapacity: true)
    }

    func addHeader(_ name: String, _ value: String) {
        var name = name
        var value = value
        let nameStart = headerBytes.count
        name.withUTF8 { headerBytes.append(contentsOf: $0) }
        let valueStart = headerBytes.count
        value.withUTF8 { headerBytes.append(contentsOf: $0) }
        headerEntries.append((nameStart, valueStart - nameStart, valueStart, headerBytes.count - valueStart))
    }

    /// `grpc-status`, a bounded `grpc-message` and the metadata that can be sent as it is: an entry with bytes a
    /// header cannot carry, or past `maxStatusMetadataBytes` in all, is left out (and logged), so the block
    /// always encodes.
    private func addStatus(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        addHeader("grpc-status", status.code.description)
        if !status.message.isEmpty {
            addHeader("grpc-message", GRPCPercentEncoding.encode(GRPCPercentEncoding.bounded(status.message)))
        }
        var budget = Self.maxStatusMetadataBytes
        for (name, value) in metadata {
            let name = name.lowercased()
            budget -= name.utf8.count + value.utf8.count + 32
            guard budget >= 0, HeaderField.isValidName(name), HeaderField.isValidValue(value) else {
                loop.core.logger.debug(
                    "response metadata left out: it cannot be sent as a header",
                    metadata: ["name": "\(GRPCPercentEncoding.bounded(name, limit: 64))"]
                )
                continue
            }
            addHeader(name, value)
        }
    }

    /// Bytes (as HPACK counts them) of service metadata sent with a status.
    static let maxStatusMetadataBytes = 8192

    /// Builds the nghttp2 name/value array over `headerBytes` (nghttp2 copies it) and submits it; false when
    /// nghttp2 refused it.
    @discardableResult
    func submitHeaders(_ submit: (UnsafePointer<nghttp2_nv>, Int) -> Int32) -> Bool {
        headerBytes.append(0)  // never empty, so the base address exists
        let rv: Int32 = headerBytes.withUnsafeMutableBufferPointer { bytes in
            let base = bytes.baseAddress!
            nvs.removeAll(keepingCapacity: true)
            for entry in headerEntries {
                nvs.append(
                    nghttp2_nv(
                        name: base + entry.name,
                        value: base + entry.value,
                        namelen: entry.nameLength,
                        valuelen: entry.valueLength,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                    )
                )
            }
            return nvs.withUnsafeBufferPointer { submit($0.baseAddress!, $0.count) }
        }
        if rv != 0 {
            loop.core.logger.warning(
                "nghttp2 refused a header block",
                metadata: ["error": "\(String(cString: nghttp2_strerror(rv)))"]
            )
            return false
        }
        return true
    }

    /// A stream's final answer could not go out as it was: reset the stream, so that the client learns the call
    /// ended and the stream (and the call's memory) is released.
    private func resetUnanswerable(_ call: GRPCCall) {
        call.stream.reset()
        call.outQueue.removeAll()
        nghttp2_submit_rst_stream(
            session,
            UInt8(NGHTTP2_FLAG_NONE.rawValue),
            call.streamID,
            NGHTTP2_INTERNAL_ERROR.rawValue
        )
        markDirty()
    }

    /// nghttp2 could not send a HEADERS frame of ours (larger than it will encode, or invalid): answer with a
    /// short status that always encodes, or, when that failed too, reset the stream.
    fileprivate func headersNotSent(streamID: Int32, category: nghttp2_headers_category, error: Int32) {
        guard let call = call(for: streamID) else { return }
        let code: GRPCStatusCode
        switch call.stream.headersNotSent() {
        case .ignore: return
        case .reset: return resetUnanswerable(call)
        case .sendFallback(let fallback): code = fallback
        }
        loop.core.logger.warning(
            "a response header block could not be sent; answering with a short status",
            metadata: ["stream": "\(streamID)", "error": "\(String(cString: nghttp2_strerror(error)))"]
        )
        call.outQueue.removeAll()
        let status = GRPCStatus(code, "the response's status or metadata could not be encoded")
        beginHeaders()
        let submitted: Bool
        if category == NGHTTP2_HCAT_RESPONSE {
            // Nothing of the response went out: Trailers-Only.
            addHeader(":status", "200")
            addHeader("content-type", "application/grpc")
            addHeader("grpc-status", status.code.description)
            addHeader("grpc-message", GRPCPercentEncoding.encode(status.message))
            submitted = submitHeaders { nghttp2_submit_response(session, call.streamID, $0, $1, nil) }
        } else {
            addHeader("grpc-status", status.code.description)
            addHeader("grpc-message", GRPCPercentEncoding.encode(status.message))
            submitted = submitHeaders { nghttp2_submit_trailer(session, call.streamID, $0, $1) }
        }
        if !submitted { return resetUnanswerable(call) }
        markDirty()
    }

    private func respondHTTPError(call: GRPCCall, status: String, message: String) {
        guard call.stream.refuseWithHTTPError() else { return loop.countDropped() }
        call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
        loop.timers.remove(call)
        beginHeaders()
        addHeader(":status", status)
        addHeader("content-type", "application/grpc")
        addHeader("grpc-status", GRPCStatusCode.internal.description)
        addHeader("grpc-message", GRPCPercentEncoding.encode(GRPCPercentEncoding.bounded(message)))
        if !submitHeaders({ nghttp2_submit_response(session, call.streamID, $0, $1, nil) }) {
            resetUnanswerable(call)
        }
        markDirty()
    }
}

/// The nghttp2 callback table, built once and shared by every session (nghttp2 copies it per session).
final class HTTP2Callbacks: @unchecked Sendable {
    static let shared = HTTP2Callbacks()
    let callbacks: OpaquePointer

    private init() {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        self.callbacks = callbacks!
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, user in
            guard let frame, let user else { return 0 }
            if frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
                && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
            {
                let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
                if connection.servesREST {
                    connection.beginRESTRequest(streamID: frame.pointee.hd.stream_id)
                } else {
                    connection.beginRequest(streamID: frame.pointee.hd.stream_id)
                }
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            user in
            guard let frame, let user, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
            else { return 0 }
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            if connection.servesREST {
                let taken = connection.restHeader(
                    streamID: frame.pointee.hd.stream_id,
                    name: UnsafeRawBufferPointer(start: name, count: nameLength),
                    value: UnsafeRawBufferPointer(start: value, count: valueLength)
                )
                return taken ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
            }
            guard let call = connection.call(for: frame.pointee.hd.stream_id), call.stream.acceptsHeaders else {
                return 0
            }
            let taken = connection.header(
                call: call,
                name: UnsafeRawBufferPointer(start: name, count: nameLength),
                value: UnsafeRawBufferPointer(start: value, count: valueLength)
            )
            // nghttp2 then skips the rest of the block without validating it (and keeps HPACK state in sync).
            return taken ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks) { _, header, user in
            guard let header, let user else { return 0 }
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            let type = header.pointee.type
            if type == UInt8(NGHTTP2_HEADERS.rawValue) {
                // The block must be complete (END_HEADERS and every byte of it) within the header timeout.
                if connection.headerBlockSince == nil { connection.headerBlockSince = .now() }
            } else if type != UInt8(NGHTTP2_CONTINUATION.rawValue) {
                connection.headerBlockSince = nil
            }
            if type > UInt8(NGHTTP2_CONTINUATION.rawValue) {
                // Extension and unknown frame types are registered as user extensions only so that they reach
                // this callback: each costs a frame's work and carries nothing the server uses.
                let kind = "extension (type 0x\(String(type, radix: 16)))"
                return connection.spendControl(kind) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_extension_chunk_recv_callback(callbacks) { _, _, _, _, _ in 0 }
        nghttp2_session_callbacks_set_unpack_extension_callback(callbacks) { _, _, _, _ in
            NGHTTP2_ERR_CANCEL.rawValue  // ignored, as RFC 9113 §5.5 asks
        }
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks) { _, frame, error, user in
            guard let frame, let user, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) else { return 0 }
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            if connection.servesREST {
                connection.restHeadersNotSent(streamID: frame.pointee.hd.stream_id)
            } else {
                connection.headersNotSent(
                    streamID: frame.pointee.hd.stream_id,
                    category: frame.pointee.headers.cat,
                    error: error
                )
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            guard let frame, let user else { return 0 }
            let type = frame.pointee.hd.type
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            let isAck = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0
            if type != UInt8(NGHTTP2_CONTINUATION.rawValue) { connection.headerBlockSince = nil }
            switch Int(type) {
            case Int(NGHTTP2_HEADERS.rawValue):
                // A client may widen the window of each stream it opens, once (grpcio does, on every call): a
                // stream costs the stream budgets already, so that WINDOW_UPDATE is free too. Calls refused with a
                // trailers-only answer send no DATA to earn it, and a burst of them got a real client's connection
                // ended for WINDOW_UPDATEs over budget.
                if frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                    connection.windowUpdateCredit = min(
                        connection.windowUpdateCredit + 1,
                        Connection.maxWindowUpdateCredit
                    )
                }
            case Int(NGHTTP2_WINDOW_UPDATE.rawValue):
                // A client acknowledges the DATA we send with WINDOW_UPDATEs (one for the stream, one for the
                // connection): those are free. Any beyond that moves nothing forward (a peer can send billions of
                // 1-byte increments before a window overflows) and is charged.
                if connection.windowUpdateCredit > 0 {
                    connection.windowUpdateCredit -= 1
                    return 0
                }
                return connection.spendControl("WINDOW_UPDATE") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            case Int(NGHTTP2_GOAWAY.rawValue):
                return connection.spendControl("GOAWAY") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            case Int(NGHTTP2_DATA.rawValue):
                // Empty DATA frames that do not end the stream carry nothing but cost a frame's work.
                if frame.pointee.hd.length == 0 && frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) == 0
                {
                    if !connection.spendControl("empty DATA") { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
                }
            case Int(NGHTTP2_RST_STREAM.rawValue):
                return connection.spendReset() ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            case Int(NGHTTP2_SETTINGS.rawValue):
                if isAck { return 0 }
                // The first SETTINGS follows the magic: the handshake is done, and it is free.
                if connection.lifecycle.settingsReceived() { return 0 }
                return connection.spendControl("SETTINGS") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            case Int(NGHTTP2_PING.rawValue):
                // The server never sends PING, so every PING ACK is unsolicited: it costs like a PING.
                return connection.spendControl(isAck ? "PING ACK" : "PING") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            case Int(NGHTTP2_PRIORITY.rawValue):
                return connection.spendControl("PRIORITY") ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            default:
                return 0
            }
            let requestHeaders =
                type == UInt8(NGHTTP2_HEADERS.rawValue) && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST
            let endStream = frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            if connection.servesREST {
                if requestHeaders { connection.restHeadersComplete(streamID: frame.pointee.hd.stream_id) }
                if endStream { connection.restRequestEnded(streamID: frame.pointee.hd.stream_id) }
                return 0
            }
            guard let call = connection.call(for: frame.pointee.hd.stream_id) else { return 0 }
            if requestHeaders {
                connection.requestHeadersComplete(call: call)
            }
            if endStream {
                connection.halfClosed(call: call)
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, user in
            guard let user else { return 0 }
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            if connection.servesREST {
                connection.restData(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
                return 0
            }
            guard let call = connection.call(for: streamID) else { return 0 }
            connection.data(call: call, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, user in
            guard let user else { return 0 }
            let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
            if connection.isClosed { return 0 }
            if connection.servesREST {
                connection.restStreamClosed(streamID: streamID)
                return 0
            }
            guard let call = connection.call(for: streamID) else { return 0 }
            connection.streamClosed(call: call, errorCode: errorCode)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, user in
            guard let frame, let user else { return 0 }
            let type = frame.pointee.hd.type
            if type == UInt8(NGHTTP2_GOAWAY.rawValue) && frame.pointee.goaway.error_code != NGHTTP2_NO_ERROR.rawValue {
                // nghttp2 itself answers most protocol violations with GOAWAY; this is where we see them.
                Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue().countProtocolError()
                return 0
            }
            if type == UInt8(NGHTTP2_RST_STREAM.rawValue) {
                let code = frame.pointee.rst_stream.error_code
                let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
                if code != NGHTTP2_NO_ERROR.rawValue && !connection.spendReset() {
                    // Requests that make us reset their stream (malformed on purpose) count against the
                    // same budget as the client's own resets.
                    return 0
                }
                if code == NGHTTP2_FLOW_CONTROL_ERROR.rawValue || code == NGHTTP2_STREAM_CLOSED.rawValue {
                    // nghttp2 reset a stream whose peer ignored flow control (or kept sending after a reset)
                    // and would go on discarding its frames at full speed: such a peer loses the connection.
                    connection.countProtocolError()
                    nghttp2_session_terminate_session(connection.session, code)
                } else if code == NGHTTP2_PROTOCOL_ERROR.rawValue || code == NGHTTP2_FRAME_SIZE_ERROR.rawValue {
                    // A malformed request (e.g. missing :path) is a stream error: that stream only.
                    connection.loop.core.counters.protocolErrors.add(1, ordering: .relaxed)
                }
                return 0
            }
            if type == UInt8(NGHTTP2_DATA.rawValue) {
                let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
                connection.windowUpdateCredit = min(connection.windowUpdateCredit + 2, Connection.maxWindowUpdateCredit)
            }
            if (type == UInt8(NGHTTP2_HEADERS.rawValue) || type == UInt8(NGHTTP2_DATA.rawValue))
                && frame.pointee.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            {
                // A REST stream refused early is reset only if its client goes on sending (Connection+REST.swift).
                let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
                if !connection.servesREST { connection.sentEndStream(streamID: frame.pointee.hd.stream_id) }
            }
            return 0
        }
    }

    /// The data provider's read callback: `source.ptr` is the call.
    static let readData: nghttp2_data_source_read_callback = { _, _, buffer, length, flags, source, user in
        guard let buffer, let flags, let source, let raw = source.pointee.ptr, let user else {
            return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
        let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
        let call = Unmanaged<GRPCCall>.fromOpaque(raw).takeUnretainedValue()
        return connection.readData(call: call, buffer: buffer, length: length, flags: flags)
    }

    /// The data provider of a REST response on HTTP/2: `source.ptr` is the exchange.
    static let readRESTBody: nghttp2_data_source_read_callback = { _, _, buffer, length, flags, source, user in
        guard let buffer, let flags, let source, let raw = source.pointee.ptr, let user else {
            return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
        let connection = Unmanaged<Connection>.fromOpaque(user).takeUnretainedValue()
        let exchange = Unmanaged<HTTP2Exchange>.fromOpaque(raw).takeUnretainedValue()
        return connection.readRESTBody(exchange: exchange, buffer: buffer, length: length, flags: flags)
    }
}

/// nghttp2 session options shared by all sessions of a server.
final class HTTP2SessionOptions: @unchecked Sendable {
    let pointer: OpaquePointer

    init(limits: ServerConfiguration.Limits) {
        var option: OpaquePointer?
        nghttp2_option_new(&option)
        pointer = option!
        // Bound what a peer can make us queue: PING/SETTINGS acks it never reads, and header blocks we send.
        // Above the control-frame budget, so that a flood read in one batch meets our budget (GOAWAY
        // ENHANCE_YOUR_CALM naming the limit) before nghttp2's flood check (which closes without a word).
        nghttp2_option_set_max_outbound_ack(pointer, max(1000, limits.maxControlFrameBurst * 2 + 16))
        nghttp2_option_set_max_settings(pointer, 32)
        // Every frame type past the nine of RFC 9113 (ALTSVC, ORIGIN, PRIORITY_UPDATE and unknown ones) goes to
        // the extension callbacks, where it is charged to the control-frame budget and ignored; otherwise
        // nghttp2 would skip them silently, uncounted.
        for type in 10...255 { nghttp2_option_set_user_recv_extension_type(pointer, UInt8(type)) }
        nghttp2_option_set_max_send_header_block_length(pointer, 64 << 10)
        // CONTINUATION frames per header block: enough for a header list of `maxHeaderListBytes` in 16 KiB
        // frames (the most a peer may send before our SETTINGS raise it, which they never do), at least 8.
        nghttp2_option_set_max_continuations(pointer, max(8, limits.maxHeaderListBytes / 16_384 + 2))
        // nghttp2's own rapid-reset limiter (GOAWAY INTERNAL_ERROR) stays as a backstop behind ours, which
        // answers ENHANCE_YOUR_CALM and names the limit.
        nghttp2_option_set_stream_reset_rate_limit(
            pointer,
            UInt64(limits.maxStreamResetBurst) * 2,
            UInt64(limits.maxStreamResetsPerSecond) * 2
        )
    }

    deinit { nghttp2_option_del(pointer) }
}

extension UnsafeRawBufferPointer {
    /// Byte equality with an ASCII literal (header names are compared per header, so this stays cheap).
    @inline(__always)
    func equals(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && (count == 0 || memcmp(baseAddress!, literal.utf8Start, count) == 0)
    }

    /// Whether the bytes start with an ASCII literal.
    @inline(__always)
    func hasPrefix(_ literal: StaticString) -> Bool {
        count >= literal.utf8CodeUnitCount
            && (literal.utf8CodeUnitCount == 0
                || memcmp(baseAddress!, literal.utf8Start, literal.utf8CodeUnitCount) == 0)
    }
}
