// One HTTP/2 client connection (h2c, prior knowledge) over a non-blocking socket, driving an nghttp2 client
// session in memory mode. It belongs to one generator thread. Requests live in the thread's `SlotTable`;
// a stream's user data is its slot number, so a request costs no allocation: headers point at buffers
// made once per run, the body is copied out of the run's prepared bodies by the data provider, and only the
// first bytes of each response are kept (enough to read `model_version`).

internal import CNghttp2
public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// The state of one request slot. Loop-confined.
struct RequestSlot {
    var intended: UInt64 = 0
    var sent: UInt64 = 0
    var body = 0
    var bodyOffset = 0
    var httpStatus: Int32 = 0
    var grpcStatus: Int32 = -1
    var message: String? = nil
    var headCount = 0
    var inUse = false
    var connection = -1
}

/// The requests of one generator thread, with the buffers their streams read from and write into.
final class SlotTable {
    static let headCapacity = 192
    var slots: [RequestSlot]
    private var free: [Int]
    /// The first `headCapacity` response bytes of every slot, back to back.
    let heads: UnsafeMutablePointer<UInt8>
    /// The framed request bodies.
    let bodies: [UnsafeRawBufferPointer]

    init(capacity: Int, bodies: [[UInt8]]) {
        slots = Array(repeating: RequestSlot(), count: capacity)
        free = Array((0..<capacity).reversed())
        heads = .allocate(capacity: capacity * Self.headCapacity)
        self.bodies = bodies.map { body in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(body.count, 1), alignment: 16)
            body.withUnsafeBytes { copy.copyMemory(from: $0) }
            return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(copy)[0..<body.count])
        }
    }

    deinit {
        heads.deallocate()
        for body in bodies { UnsafeMutableRawPointer(mutating: body.baseAddress)?.deallocate() }
    }

    var available: Int { free.count }

    func take() -> Int? { free.popLast() }

    func release(_ slot: Int) {
        slots[slot].inUse = false
        slots[slot].message = nil
        free.append(slot)
    }

    func head(_ slot: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: heads + slot * Self.headCapacity, count: slots[slot].headCount)
    }
}

/// Receives the end of each request.
protocol ClientConnectionDelegate: AnyObject {
    /// The stream of `slot` closed; `errorCode` is the HTTP/2 error code (0 for a clean close).
    func streamClosed(slot: Int, errorCode: UInt32, connection: ClientConnection)
}

/// Request headers shared by every request of a run, kept in C strings for the whole run.
final class RequestHeaders: @unchecked Sendable {
    let nvs: UnsafeMutablePointer<nghttp2_nv>
    let count: Int
    private var strings: [UnsafeMutablePointer<CChar>] = []

    init(_ headers: [(String, String)]) {
        count = headers.count
        nvs = .allocate(capacity: headers.count)
        for (i, (name, value)) in headers.enumerated() {
            let n = strdup(name)!
            let v = strdup(value)!
            strings += [n, v]
            nvs[i] = nghttp2_nv(
                name: UnsafeMutableRawPointer(n).assumingMemoryBound(to: UInt8.self),
                value: UnsafeMutableRawPointer(v).assumingMemoryBound(to: UInt8.self),
                namelen: strlen(n),
                valuelen: strlen(v),
                flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)
            )
        }
    }

    deinit {
        for s in strings { free(s) }
        nvs.deallocate()
    }
}

/// A resolved IPv4/IPv6 address to connect to.
public struct SocketAddress: Sendable {
    let storage: [UInt8]
    /// The host:port it was resolved from.
    public let description: String
    /// The host part (no brackets).
    public let host: String

    /// Resolves `host:port` (numeric or a name; IPv6 as `[::1]:port`).
    public static func resolve(_ target: String) throws(SwitchyardError) -> SocketAddress {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw .invalidArgument("target '\(target)': expected HOST:PORT, e.g. 127.0.0.1:8001") }
        var host = String(target[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw .invalidArgument(
                "target '\(target)': cannot resolve host '\(host)' (\(String(cString: gai_strerror(rc))))"
            )
        }
        defer { freeaddrinfo(result) }
        let bytes = UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen))
        return SocketAddress(storage: Array(bytes), description: target, host: host)
    }

    /// Opens a blocking TCP connection, then makes it non-blocking with TCP_NODELAY.
    func connect() throws(SwitchyardError) -> Int32 {
        let family = storage.withUnsafeBytes { $0.load(as: sa_family_t.self) }
        let fd = socket(Int32(family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unavailableError("socket(): \(String(cString: strerror(errno)))") }
        let rc = storage.withUnsafeBytes {
            Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unavailableError("cannot connect to \(description): \(reason)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }
}

extension SwitchyardError {
    static func unavailableError(_ message: String) -> SwitchyardError { SwitchyardError(.unavailable, message) }
}

/// One HTTP/2 client connection. Loop-confined.
final class ClientConnection {
    let fd: Int32
    let index: Int
    private(set) var session: OpaquePointer?
    private let table: SlotTable
    private unowned let delegate: any ClientConnectionDelegate
    private var out: [UInt8] = []
    private var outSent = 0
    /// Streams this connection may have open at once (the generator's setting).
    let maxStreams: Int
    /// Streams open now.
    private(set) var inFlight = 0
    /// Set when the connection failed or the server sent GOAWAY: no new streams.
    private(set) var closed = false
    /// Receives every response DATA byte when set (cold-path unary calls).
    var responseSink: ((UnsafeRawBufferPointer) -> Void)?
    /// Whether the socket has output waiting for writability.
    private(set) var wantsWrite = false

    /// The TLS session, when the run uses TLS.
    let tls: ClientTLSSession?
    private let plaintext: UnsafeMutableRawBufferPointer?

    init(
        fd: Int32,
        index: Int,
        maxStreams: Int,
        table: SlotTable,
        delegate: any ClientConnectionDelegate,
        tls: ClientTLSSession? = nil
    ) {
        self.tls = tls
        self.plaintext = tls == nil ? nil : .allocate(byteCount: 64 << 10, alignment: 16)
        self.fd = fd
        self.index = index
        self.maxStreams = maxStreams
        self.table = table
        self.delegate = delegate
        var session: OpaquePointer?
        nghttp2_session_client_new(
            &session,
            ClientCallbacks.shared.callbacks,
            Unmanaged.passUnretained(self).toOpaque()
        )
        self.session = session
        let settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 24),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), settings, settings.count)
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 1 << 28)
        out.reserveCapacity(64 << 10)
    }

    deinit {
        if let session { nghttp2_session_del(session) }
        plaintext?.deallocate()
        close(fd)
    }

    /// Whether the connection can carry HTTP/2 frames (TLS handshake done, or no TLS).
    var isEstablished: Bool { tls?.established ?? true }

    /// Whether a new stream may start now.
    var hasCapacity: Bool {
        guard !closed, let session else { return false }
        let remote = Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
        return inFlight < min(maxStreams, remote)
    }

    /// Starts a request for `slot`. Returns false when the session refuses new streams.
    func submit(slot: Int, headers: RequestHeaders) -> Bool {
        guard let session, !closed else { return false }
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: UnsafeMutableRawPointer(bitPattern: slot + 1)),
            read_callback: ClientCallbacks.readBody
        )
        let stream = nghttp2_submit_request(
            session,
            nil,
            headers.nvs,
            headers.count,
            &provider,
            UnsafeMutableRawPointer(bitPattern: slot + 1)
        )
        if stream < 0 {
            closed = true
            return false
        }
        inFlight += 1
        return true
    }

    /// Reads what the socket has and feeds it to nghttp2. Returns false when the connection ended.
    func readAvailable(buffer: UnsafeMutableRawBufferPointer) -> Bool {
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n > 0 {
                guard let session else { return false }
                if let tls, let plaintext {
                    let ok = tls.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), scratch: plaintext) { bytes in
                        nghttp2_session_mem_recv(
                            session,
                            bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                            bytes.count
                        ) >= 0
                    }
                    if !ok { return false }
                } else {
                    let consumed = nghttp2_session_mem_recv(
                        session,
                        buffer.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        n
                    )
                    if consumed < 0 { return false }
                }
                if n < buffer.count { return true }
                continue
            }
            if n == 0 { return false }
            if errno == EAGAIN || errno == EWOULDBLOCK { return true }
            if errno == EINTR { continue }
            return false
        }
    }

    /// Moves nghttp2's pending frames to the socket. Returns false when the connection failed.
    func flush() -> Bool {
        guard let session else { return false }
        while true {
            if outSent == out.count {
                out.removeAll(keepingCapacity: true)
                outSent = 0
                if let tls, !tls.established {
                    // Handshake records only; frames wait until ALPN settled on h2.
                    guard tls.handshake() else { return false }
                    tls.drain(into: &out)
                } else {
                    while out.count < 256 << 10 {
                        var data: UnsafePointer<UInt8>? = nil
                        let count = nghttp2_session_mem_send(session, &data)
                        if count < 0 { return false }
                        if count == 0 { break }
                        let chunk = UnsafeRawBufferPointer(start: data, count: count)
                        if let tls {
                            guard tls.send(chunk) else { return false }
                            tls.drain(into: &out)
                        } else {
                            out.append(contentsOf: chunk)
                        }
                    }
                }
                if out.isEmpty {
                    wantsWrite = false
                    return true
                }
            }
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + outSent, $0.count - outSent) }
            if n > 0 {
                outSent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                wantsWrite = true
                return true
            }
            return false
        }
    }

    /// Whether the session has nothing more to say or hear (after GOAWAY, once its streams are done).
    var isDone: Bool {
        guard let session else { return true }
        return outSent == out.count && nghttp2_session_want_read(session) == 0
            && nghttp2_session_want_write(session) == 0
    }

    /// Runs the TLS handshakes of fresh connections to completion (blocking), so no handshake lands inside
    /// a measurement.
    /// - Throws: `SwitchyardError.unavailable` with OpenSSL's reason, or on timeout.
    static func establish(_ connections: [ClientConnection], target: String, timeout: Double = 10)
        throws(SwitchyardError)
    {
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: UInt64(timeout * 1e9))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        while let pending = connections.first(where: { !$0.isEstablished }) {
            let failed = { (c: ClientConnection) -> SwitchyardError in
                SwitchyardError(
                    .unavailable,
                    "\(target): \(c.tls?.failure ?? "connection closed during the TLS handshake")"
                )
            }
            guard pending.flush() else { throw failed(pending) }
            let now = MonotonicInstant.now()
            guard now < deadline else {
                throw SwitchyardError(.unavailable, "\(target): TLS handshake did not finish within \(timeout) s")
            }
            var p = pollfd(fd: pending.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            if p.revents != 0 && !pending.readAvailable(buffer: buffer) { throw failed(pending) }
            if pending.isEstablished { _ = pending.flush() }
        }
    }

    /// Marks the connection dead; the caller fails the slots still open on it.
    func fail() { closed = true }

    fileprivate func header(slot: Int, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if name.count == 7 && name.elementsEqual(":status".utf8) {
            table.slots[slot].httpStatus = Int32(parseInt(value))
        } else if name.count == 11 && name.elementsEqual("grpc-status".utf8) {
            table.slots[slot].grpcStatus = Int32(parseInt(value))
        } else if name.count == 12 && name.elementsEqual("grpc-message".utf8) {
            table.slots[slot].message = percentDecoded(value)
        }
    }

    fileprivate func data(slot: Int, bytes: UnsafeRawBufferPointer) {
        responseSink?(bytes)
        let have = table.slots[slot].headCount
        let take = min(SlotTable.headCapacity - have, bytes.count)
        guard take > 0 else { return }
        (table.heads + slot * SlotTable.headCapacity + have).update(
            from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
            count: take
        )
        table.slots[slot].headCount = have + take
    }

    fileprivate func streamClosed(slot: Int, errorCode: UInt32) {
        inFlight -= 1
        delegate.streamClosed(slot: slot, errorCode: errorCode, connection: self)
    }

    fileprivate func goaway() { closed = true }

    fileprivate func readBody(
        slot: Int,
        buffer: UnsafeMutablePointer<UInt8>,
        length: Int,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        let body = table.bodies[table.slots[slot].body]
        let offset = table.slots[slot].bodyOffset
        let n = min(length, body.count - offset)
        if n > 0 { buffer.update(from: (body.baseAddress! + offset).assumingMemoryBound(to: UInt8.self), count: n) }
        table.slots[slot].bodyOffset = offset + n
        if offset + n == body.count { flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue }
        return n
    }

    private func parseInt(_ bytes: UnsafeRawBufferPointer) -> Int {
        var v = 0
        for b in bytes where b >= 48 && b <= 57 { v = v * 10 + Int(b - 48) }
        return v
    }

    private func percentDecoded(_ bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == 37, i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }
}

/// The nghttp2 client callback table, built once.
final class ClientCallbacks: @unchecked Sendable {
    static let shared = ClientCallbacks()
    let callbacks: OpaquePointer

    static func slot(_ pointer: UnsafeMutableRawPointer?) -> Int? {
        guard let pointer else { return nil }
        return Int(bitPattern: pointer) - 1
    }

    private init() {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        self.callbacks = callbacks!
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            session,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            user in
            guard let frame, let user, let session, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
                let slot = ClientCallbacks.slot(
                    nghttp2_session_get_stream_user_data(session, frame.pointee.hd.stream_id)
                )
            else { return 0 }
            Unmanaged<ClientConnection>.fromOpaque(user).takeUnretainedValue().header(
                slot: slot,
                name: UnsafeRawBufferPointer(start: name, count: nameLength),
                value: UnsafeRawBufferPointer(start: value, count: valueLength)
            )
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            session,
            _,
            streamID,
            data,
            length,
            user in
            guard let user, let session, let data,
                let slot = ClientCallbacks.slot(nghttp2_session_get_stream_user_data(session, streamID))
            else { return 0 }
            Unmanaged<ClientConnection>.fromOpaque(user).takeUnretainedValue().data(
                slot: slot,
                bytes: UnsafeRawBufferPointer(start: data, count: length)
            )
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { session, streamID, errorCode, user in
            guard let user, let session,
                let slot = ClientCallbacks.slot(nghttp2_session_get_stream_user_data(session, streamID))
            else { return 0 }
            Unmanaged<ClientConnection>.fromOpaque(user).takeUnretainedValue().streamClosed(
                slot: slot,
                errorCode: errorCode
            )
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            guard let frame, let user else { return 0 }
            if frame.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
                Unmanaged<ClientConnection>.fromOpaque(user).takeUnretainedValue().goaway()
            }
            return 0
        }
    }

    /// The data provider's read callback: `source.ptr` is the slot number + 1.
    static let readBody: nghttp2_data_source_read_callback = { _, _, buffer, length, flags, source, user in
        guard let buffer, let flags, let source, let slot = ClientCallbacks.slot(source.pointee.ptr), let user else {
            return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)
        }
        return Unmanaged<ClientConnection>.fromOpaque(user).takeUnretainedValue().readBody(
            slot: slot,
            buffer: buffer,
            length: length,
            flags: flags
        )
    }
}
