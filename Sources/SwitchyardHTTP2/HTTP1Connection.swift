// One HTTP/1.1 connection of the REST listener, a sibling of the HTTP/2 `Connection` on the same event loops.
// nodejs http-parser (a well-kept C parser) does the parsing; this file owns its callbacks, the current request,
// the queue of pipelined exchanges (answered in any order, written in request order) and the output buffer.
// Limits mirror the HTTP/2 side: header bytes (`max_header_list_bytes`), body bytes (`max_request_bytes`),
// requests in flight per connection (`max_concurrent_streams`), output buffer (`max_output_buffer_bytes`).
// Under TLS (the REST port shares the gRPC port's `tls:` settings) the socket carries ciphertext: the loop decrypts
// before `receive`, and everything written goes through `emit`, which encrypts into `out`.
// Everything here is confined to the owning loop; only `HTTP1Exchange.state` is touched from other threads.

internal import CHTTPParser
import SwitchyardCore
import SwitchyardTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One request/response pair on an HTTP/1.1 connection, and the responder the service answers through.
final class HTTP1Exchange: HTTPResponder, @unchecked Sendable {
    static let open: UInt8 = 0
    static let answered: UInt8 = 1
    static let cancelled: UInt8 = 2

    let loop: EventLoop
    /// Cross-thread part: whether an answer is still wanted.
    let state = Atomic<UInt8>(HTTP1Exchange.open)

    // MARK: Loop-confined
    unowned(unsafe) var connection: HTTP1Connection
    /// The connection closed: `connection` must not be touched.
    @exclusivity(unchecked) var connectionGone = false
    @exclusivity(unchecked) var response: HTTPResponse?
    /// The connection closes after this response (client asked, HTTP/1.0 without keep-alive, or a refusal).
    @exclusivity(unchecked) var closeAfter = false
    @exclusivity(unchecked) var isHead = false
    @exclusivity(unchecked) var http10 = false

    init(loop: EventLoop, connection: HTTP1Connection) {
        self.loop = loop
        self.connection = connection
    }

    var isCancelled: Bool { state.load(ordering: .relaxed) == HTTP1Exchange.cancelled }

    func respond(_ response: HTTPResponse) {
        guard state.claimAnswer() else { return loop.countDropped() }
        loop.enqueue(.respondHTTP1(self, response))
    }
}

extension Atomic where Value == UInt8 {
    /// Takes an exchange's one answer (open → answered); false when it was answered or cancelled already.
    func claimAnswer() -> Bool {
        compareExchange(expected: HTTP1Exchange.open, desired: HTTP1Exchange.answered, ordering: .relaxed).exchanged
    }
}

/// The parser callbacks, registered once.
final class HTTP1Callbacks: @unchecked Sendable {
    static let shared = HTTP1Callbacks()
    let settings: UnsafeMutablePointer<http_parser_settings>

    private init() {
        settings = .allocate(capacity: 1)
        http_parser_settings_init(settings)
        settings.pointee.on_message_begin = { parser in HTTP1Connection.from(parser).messageBegin() }
        settings.pointee.on_url = { parser, at, length in HTTP1Connection.from(parser).url(at, length) }
        settings.pointee.on_header_field = { parser, at, length in
            HTTP1Connection.from(parser).headerField(at, length)
        }
        settings.pointee.on_header_value = { parser, at, length in
            HTTP1Connection.from(parser).headerValue(at, length)
        }
        settings.pointee.on_headers_complete = { parser in HTTP1Connection.from(parser).headersComplete() }
        settings.pointee.on_body = { parser, at, length in HTTP1Connection.from(parser).bodyBytes(at, length) }
        settings.pointee.on_message_complete = { parser in HTTP1Connection.from(parser).messageComplete() }
    }
}

/// An HTTP/1.1 connection: keep-alive, pipelining, limits and timeouts.
final class HTTP1Connection {
    let fd: Int32
    unowned(unsafe) let loop: EventLoop
    /// The TLS session when the REST port serves TLS; `out` then holds ciphertext.
    let tls: TLSSession?
    private let parser: UnsafeMutablePointer<http_parser>
    let acceptedAt: MonotonicInstant

    // MARK: Request being parsed
    /// When the current request's first byte arrived; `nil` between requests and once its headers are complete.
    var headBegunAt: MonotonicInstant?
    /// A request's body is being received.
    var inBody = false
    private var target: [UInt8] = []
    private var field: [UInt8] = []
    private var value: [UInt8] = []
    private var inValue = false
    private var headers: [(name: String, value: String)] = []
    private var headerBytes = 0
    private var body: [UInt8] = []
    /// Bytes this connection holds in `AtomicFrontEndStatistics.bufferedRequestBytes` for the body being received.
    private var reservedBytes = 0
    /// Set by a callback that refuses the request (status, message); parsing stops.
    private var refusal: (status: Int, message: String)?
    /// Bytes received while the parser was paused (too many requests in flight).
    private var unparsed: [UInt8] = []
    private var parserPaused = false
    /// The parser waits for answers (too many requests in flight): the socket is not read meanwhile, so a pipelining
    /// flood stays in the kernel's buffers, not ours.
    var parserHeld: Bool { parserPaused }
    /// No more requests are read: the connection closes once the queued responses are written.
    var stopReading = false

    // MARK: Exchanges, in request order
    private var exchanges: [HTTP1Exchange] = []
    private var exchangesHead = 0
    var inFlight: Int { exchanges.count - exchangesHead }

    // MARK: Output and I/O state
    var out: [UInt8] = []
    var outSent = 0
    var pendingOutput: Int { out.count - outSent }
    var closeAfterFlush = false
    var isClosed = false
    var isDirty = false
    var readingPaused = false
    var stalledSince: MonotonicInstant?
    var registeredEvents: UInt32 = 0
    var peerAddress: PeerAddress?
    /// Whether the peer connected over loopback, passed on in every request head.
    var peerIsLoopback = false
    /// The client certificate's names (mutual TLS), read on the first request after the handshake.
    private lazy var peerCertificate: PeerCertificate? = tls?.peerCertificate()
    /// Last time bytes moved either way, for the idle timeout.
    var lastActivity: MonotonicInstant
    /// The loop is draining: close once every queued request is answered.
    var closeWhenIdle = false
    /// The connection's first bytes while they are a prefix of the HTTP/2 preface; `nil` once ruled out.
    private var prefaceProbe: [UInt8]? = []
    /// The client spoke HTTP/2 (h2c with prior knowledge, or ALPN "h2"): every byte received so far, which the loop
    /// hands with the socket to an HTTP/2 `Connection`.
    private(set) var http2Start: [UInt8]?

    /// The HTTP/2 connection preface (RFC 9113 section 3.4).
    static let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    init(fd: Int32, loop: EventLoop, tls: TLSSession? = nil) {
        self.fd = fd
        self.loop = loop
        self.tls = tls
        let now = MonotonicInstant.now()
        acceptedAt = now
        lastActivity = now
        parser = .allocate(capacity: 1)
        http_parser_init(parser, HTTP_REQUEST)
        parser.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit { parser.deallocate() }

    static func from(_ parser: UnsafeMutablePointer<http_parser>?) -> HTTP1Connection {
        Unmanaged<HTTP1Connection>.fromOpaque(parser!.pointee.data).takeUnretainedValue()
    }

    private var limits: ServerConfiguration.Limits { loop.core.limits }

    // MARK: Input

    /// Feeds bytes from the socket.
    func receive(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = .now()
        guard !stopReading, bytes.count > 0 else { return }
        if prefaceProbe != nil { return probe(bytes) }
        if parserPaused {
            unparsed.append(contentsOf: bytes)
            return
        }
        feed(bytes)
    }

    /// Holds the first bytes while they may be the HTTP/2 preface: the whole preface makes this an HTTP/2 connection
    /// (`http2Start`), the first byte that differs makes it HTTP/1.1 and parses what was held.
    private func probe(_ bytes: UnsafeRawBufferPointer) {
        var seen = prefaceProbe ?? []
        if headBegunAt == nil { headBegunAt = .now() }  // a stalled preface is a stalled request line
        let preface = Self.http2Preface
        let compared = min(bytes.count, preface.count - seen.count)
        seen.append(contentsOf: bytes)
        if seen[seen.count - bytes.count..<seen.count - bytes.count + compared].elementsEqual(
            preface[seen.count - bytes.count..<seen.count - bytes.count + compared]
        ) {
            if seen.count >= preface.count {
                prefaceProbe = nil
                http2Start = seen
                stopReading = true
            } else {
                prefaceProbe = seen
            }
            return
        }
        prefaceProbe = nil
        headBegunAt = nil
        seen.withUnsafeBytes { feed($0) }
    }

    private func feed(_ bytes: UnsafeRawBufferPointer) {
        let consumed = http_parser_execute(
            parser,
            HTTP1Callbacks.shared.settings,
            bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
            bytes.count
        )
        let error = http_errno(rawValue: cswitchyard_http_errno(parser))
        if error == HPE_PAUSED {
            parserPaused = true
            if consumed < bytes.count {
                unparsed.insert(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[consumed...]), at: 0)
            }
            return
        }
        if error == HPE_HEADER_OVERFLOW && refusal == nil {
            // http-parser's own bound (80 KiB, counted before a long head reaches the callbacks that count ours).
            let limit = min(limits.maxHeaderListBytes, 80 << 10)
            refusal = (431, "request line and headers exceed \(limit) bytes (limits.max_header_list_bytes)")
        }
        if error != HPE_OK {
            refuse(refusal ?? Self.describe(error))
            return
        }
        if parser.pointee.upgrade != 0 && !stopReading {
            // Upgrades (h2c, WebSocket) are not served on this port: answer what was asked, then close.
            stopReading = true
            if let last = exchanges.last, exchanges.count > exchangesHead { last.closeAfter = true }
        }
    }

    /// Resumes a paused parser once requests in flight drop below the limit.
    private func resumeIfPossible() {
        guard parserPaused, !stopReading, inFlight < limits.maxConcurrentStreams else { return }
        parserPaused = false
        cswitchyard_http_pause(parser, 0)
        var pending: [UInt8] = []
        swap(&pending, &unparsed)
        pending.withUnsafeBytes { feed($0) }
        if !parserPaused && readingPaused && pendingOutput < limits.maxOutputBufferBytes / 2 { markDirty() }
    }

    /// A parser error as the response's status and message.
    private static func describe(_ error: http_errno) -> (status: Int, message: String) {
        switch error {
        case HPE_UNEXPECTED_CONTENT_LENGTH:
            return (
                400,
                "request has both Content-Length and Transfer-Encoding, or more than one Content-Length; "
                    + "expected exactly one way to frame the body"
            )
        case HPE_INVALID_TRANSFER_ENCODING:
            return (400, "request has an invalid Transfer-Encoding; expected 'chunked' as the last coding")
        case HPE_INVALID_VERSION:
            return (505, "invalid HTTP version; expected HTTP/1.0 or HTTP/1.1")
        default:
            let name = String(cString: http_errno_name(error))
            let description = String(cString: http_errno_description(error))
            return (400, "malformed HTTP/1.1 request: \(description) (\(name))")
        }
    }

    /// Stops reading and queues a refusal after the responses already owed.
    func refuse(_ refusal: (status: Int, message: String)) {
        guard !stopReading else { return }
        stopReading = true
        body = []
        releaseReservation()
        loop.core.counters.httpRejections.add(1, ordering: .relaxed)
        let exchange = HTTP1Exchange(loop: loop, connection: self)
        exchange.state.store(HTTP1Exchange.answered, ordering: .relaxed)
        exchange.closeAfter = true
        exchange.response =
            loop.core.http?.refusal(status: refusal.status, message: refusal.message)
            ?? HTTPResponse(status: refusal.status, body: Array(refusal.message.utf8))
        exchanges.append(exchange)
        writeReady()
    }

    // MARK: Parser callbacks

    fileprivate func messageBegin() -> Int32 {
        headBegunAt = .now()
        inBody = false
        target.removeAll(keepingCapacity: true)
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        inValue = false
        headers.removeAll(keepingCapacity: true)
        headerBytes = 0
        body = []
        return 0
    }

    private func countHeaderBytes(_ length: Int) -> Int32 {
        headerBytes += length
        guard headerBytes <= limits.maxHeaderListBytes else {
            refusal = (
                431,
                "request line and headers exceed \(limits.maxHeaderListBytes) bytes (limits.max_header_list_bytes)"
            )
            return 1
        }
        return 0
    }

    fileprivate func url(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard countHeaderBytes(length) == 0, let at else { return 1 }
        target.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    private func commitHeader() {
        guard inValue else { return }
        // Lower-cased as bytes (field names are ASCII tokens): String.lowercased() would allocate a second string.
        for index in field.indices where field[index] &- UInt8(ascii: "A") < 26 { field[index] |= 0x20 }
        headers.append((String(decoding: field, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        field.removeAll(keepingCapacity: true)
        value.removeAll(keepingCapacity: true)
        inValue = false
    }

    fileprivate func headerField(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard countHeaderBytes(length + 4) == 0, let at else { return 1 }  // ": " and CRLF count too
        commitHeader()
        guard headers.count < 256 else {
            refusal = (431, "more than 256 header fields; expected fewer")
            return 1
        }
        let name = UnsafeRawBufferPointer(start: at, count: length)
        // The system's http-parser is built lenient and takes "Content-Length : 5" as a length; a proxy in front
        // may not, and the two would then disagree on where the request ends (RFC 9112 §5.1: reject with 400).
        guard !name.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) else {
            refusal = (400, "a header field name has whitespace before its colon; expected none (RFC 9112 section 5.1)")
            return 1
        }
        field.append(contentsOf: name)
        return 0
    }

    fileprivate func headerValue(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard countHeaderBytes(length) == 0, let at else { return 1 }
        inValue = true
        value.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    fileprivate func headersComplete() -> Int32 {
        commitHeader()
        headBegunAt = nil
        inBody = true
        let limit = limits.maxRequestBytes
        if cswitchyard_http_flags(parser) & UInt32(F_CONTENTLENGTH.rawValue) != 0 {
            let length = parser.pointee.content_length
            if length > UInt64(limit) {
                refusal = (
                    413,
                    "request body of \(length) bytes exceeds the limit of \(limit) bytes (limits.max_request_bytes)"
                )
                return -1
            }
            guard reserve(Int(length)) else { return -1 }
            body.reserveCapacity(Int(length))
        }
        // A client that waits for 100 Continue before sending its body gets it at once, unless answers to earlier
        // pipelined requests are still owed (they come first; the client then sends after its own timeout).
        if inFlight == 0, headers.contains(where: { $0.name == "expect" && $0.value.lowercased() == "100-continue" }) {
            emit("HTTP/1.1 100 Continue\r\n\r\n".utf8)
            markDirty()
        }
        return 0
    }

    /// Counts `count` more body bytes against the process-wide `max_buffered_request_bytes`, as HTTP/2 messages
    /// being received are; false (with a refusal) when they do not fit.
    private func reserve(_ count: Int) -> Bool {
        guard count > 0 else { return true }
        let counters = loop.core.counters
        let total = counters.bufferedRequestBytes.add(count, ordering: .relaxed).newValue
        let limit = limits.maxBufferedRequestBytes
        guard total <= limit else {
            counters.bufferedRequestBytes.subtract(count, ordering: .relaxed)
            refusal = (
                429,
                "request body does not fit: \(total - count) bytes of requests are being received, limit \(limit) "
                    + "bytes (limits.max_buffered_request_bytes)"
            )
            return false
        }
        reservedBytes += count
        return true
    }

    private func releaseReservation() {
        guard reservedBytes > 0 else { return }
        loop.core.counters.bufferedRequestBytes.subtract(reservedBytes, ordering: .relaxed)
        loop.bytesFreedSinceTrim += reservedBytes
        reservedBytes = 0
    }

    fileprivate func bodyBytes(_ at: UnsafePointer<CChar>?, _ length: Int) -> Int32 {
        guard let at else { return 1 }
        let limit = limits.maxRequestBytes
        guard body.count + length <= limit else {
            refusal = (413, "request body exceeds the limit of \(limit) bytes (limits.max_request_bytes)")
            return 1
        }
        // Chunked bodies (no Content-Length) reserve as they arrive.
        if body.count + length > reservedBytes, !reserve(body.count + length - reservedBytes) { return 1 }
        body.append(contentsOf: UnsafeRawBufferPointer(start: at, count: length))
        return 0
    }

    fileprivate func messageComplete() -> Int32 {
        inBody = false
        headBegunAt = nil
        let exchange = HTTP1Exchange(loop: loop, connection: self)
        exchange.closeAfter = http_should_keep_alive(parser) == 0
        exchange.http10 = parser.pointee.http_major == 1 && parser.pointee.http_minor == 0
        let method = String(cString: http_method_str(http_method(rawValue: cswitchyard_http_method(parser))))
        exchange.isHead = method == "HEAD"
        exchanges.append(exchange)
        let targetText = String(decoding: target, as: UTF8.self)
        var path = Substring(targetText)
        var query: String?
        if let mark = path.firstIndex(of: "?") {
            query = String(path[path.index(after: mark)...])
            path = path[..<mark]
        }
        let head = HTTPRequestHead(
            method: method,
            path: String(path),
            query: query,
            headers: headers,
            peerIsLoopback: peerIsLoopback,
            peerCertificate: peerCertificate
        )
        var requestBody: [UInt8] = []
        swap(&requestBody, &body)
        if exchange.closeAfter { stopReading = true }
        if !path.hasPrefix("/") {
            exchange.state.store(HTTP1Exchange.answered, ordering: .relaxed)
            let message = "request target '\(targetText)': expected a path starting with '/'"
            exchange.response =
                loop.core.http?.refusal(status: 400, message: message)
                ?? HTTPResponse(status: 400, body: Array(message.utf8))
            // Nothing else answers this exchange: send it now, or it would hold the connection forever.
            writeReady()
        } else if let service = loop.core.http {
            requestBody.withUnsafeBytes { service.handle(head: head, body: $0, responder: exchange) }
        }
        requestBody = []
        releaseReservation()
        if stopReading || inFlight >= limits.maxConcurrentStreams {
            cswitchyard_http_pause(parser, 1)
        }
        return 0
    }

    // MARK: Output

    /// A service answered `exchange` (on the loop).
    func answered(_ exchange: HTTP1Exchange, _ response: HTTPResponse) {
        exchange.response = response
        writeReady()
        resumeIfPossible()
    }

    /// Serializes the answered exchanges at the head of the queue, in request order.
    private func writeReady() {
        while exchangesHead < exchanges.count, let response = exchanges[exchangesHead].response {
            let exchange = exchanges[exchangesHead]
            exchangesHead += 1
            let last = exchangesHead == exchanges.count
            let close = exchange.closeAfter || (closeWhenIdle && last && !inBodyOrHead)
            serialize(response, exchange: exchange, close: close)
            if close {
                closeAfterFlush = true
                stopReading = true
                for rest in exchanges[exchangesHead...] {
                    rest.state.store(HTTP1Exchange.cancelled, ordering: .relaxed)
                    rest.connectionGone = true
                }
                exchanges.removeAll()
                exchangesHead = 0
                break
            }
        }
        if exchangesHead == exchanges.count {
            exchanges.removeAll(keepingCapacity: true)
            exchangesHead = 0
        } else if exchangesHead > 64 && exchangesHead * 2 > exchanges.count {
            exchanges.removeFirst(exchangesHead)
            exchangesHead = 0
        }
        markDirty()
    }

    private var inBodyOrHead: Bool { inBody || headBegunAt != nil }

    /// The response head is written as bytes into a buffer the connection keeps: no string is built per response.
    private var headBuffer: [UInt8] = []

    private func serialize(_ response: HTTPResponse, exchange: HTTP1Exchange, close: Bool) {
        headBuffer.removeAll(keepingCapacity: true)
        func append(_ text: String) {
            var text = text
            text.withUTF8 { headBuffer.append(contentsOf: $0) }
        }
        func append(decimal: Int) {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            )
            withUnsafeMutableBytes(of: &digits) { buffer in
                var value = UInt(max(decimal, 0))
                var start = buffer.count
                repeat {
                    start -= 1
                    buffer[start] = UInt8(ascii: "0") + UInt8(value % 10)
                    value /= 10
                } while value > 0 && start > 0
                headBuffer.append(contentsOf: buffer[start...])
            }
        }
        append("HTTP/1.1 ")
        append(decimal: response.status)
        headBuffer.append(UInt8(ascii: " "))
        append(HTTPStatusText.phrase(response.status))
        append("\r\n")
        for (name, value) in response.headers {
            append(name)
            append(": ")
            append(value)
            append("\r\n")
        }
        append("content-length: ")
        append(decimal: response.body.count)
        append("\r\n")
        if close {
            append("connection: close\r\n")
        } else if exchange.http10 {
            append("connection: keep-alive\r\n")
        }
        append("\r\n")
        emit(headBuffer)
        if !exchange.isHead { emit(response.body) }
    }

    /// Appends bytes for the peer to `out`, encrypted when the connection is TLS.
    private func emit(_ bytes: some Collection<UInt8>) {
        guard let tls else { return out.append(contentsOf: bytes) }
        let sent =
            bytes.withContiguousStorageIfAvailable { tls.send(UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { tls.send($0) }
        tls.drain(into: &out)
        if !sent {
            // OpenSSL refused to encrypt (a fatal alert was already sent or received): nothing more can be said.
            stopReading = true
            closeAfterFlush = true
        }
    }

    /// The loop is draining: stop reading, answer what was asked, then close.
    func beginDrain() {
        closeWhenIdle = true
        if inFlight == 0 {
            stopReading = true
            closeAfterFlush = true
            markDirty()
        }
    }

    func markDirty() {
        if !isDirty && !isClosed {
            isDirty = true
            loop.dirtyHTTP1.append(self)
        }
    }

    /// The socket went on as an HTTP/2 connection: nothing of this one is left to do.
    func handOver() {
        isClosed = true
        http2Start = nil
        out = []
    }

    /// The socket closed: answers still owed are dropped.
    func teardown() {
        isClosed = true
        for exchange in exchanges[exchangesHead...] {
            exchange.state.store(HTTP1Exchange.cancelled, ordering: .relaxed)
            exchange.connectionGone = true
        }
        exchanges.removeAll()
        exchangesHead = 0
        out = []
        unparsed = []
        body = []
        releaseReservation()
    }
}
