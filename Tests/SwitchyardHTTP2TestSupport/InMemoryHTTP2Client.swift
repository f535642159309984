// An nghttp2 client session in memory mode: it writes real HTTP/2 frames (preface, SETTINGS, HPACK-encoded
// HEADERS, DATA, RST_STREAM) for an `InMemoryHTTP2Connection` and reads its answers back into per-stream
// responses, so front-end tests exercise the server's whole input and output path without sockets or other
// processes.

internal import CNghttp2

/// A gRPC client over an in-memory HTTP/2 session. Confined to one thread.
public final class InMemoryHTTP2Client {
    /// What the server sent on one stream.
    public struct Response: Sendable {
        /// The response header block (`:status`, `content-type`, and in Trailers-Only `grpc-status`).
        public var headers: [(name: String, value: String)] = []
        /// The trailers, when the answer was not Trailers-Only.
        public var trailers: [(name: String, value: String)] = []
        /// Every DATA byte, gRPC prefixes included.
        public var data: [UInt8] = []
        /// The stream closed (END_STREAM both ways, or a reset).
        public var closed = false
        /// The error code the stream closed with (0: NO_ERROR).
        public var closeCode: UInt32 = 0
        /// The code of an RST_STREAM the server sent.
        public var resetCode: UInt32?

        /// The first value of a header in the response headers, or else in the trailers.
        public func value(_ name: String) -> String? {
            headers.first { $0.name == name }?.value ?? trailers.first { $0.name == name }?.value
        }

        /// `grpc-status`, from the trailers or a Trailers-Only response.
        public var grpcStatus: Int? { value("grpc-status").flatMap { Int($0) } }

        /// The response messages, unframed from their 5-byte prefixes.
        public var messages: [[UInt8]] {
            var messages: [[UInt8]] = []
            var offset = 0
            while offset + 5 <= data.count {
                let length =
                    Int(data[offset + 1]) << 24 | Int(data[offset + 2]) << 16 | Int(data[offset + 3]) << 8
                    | Int(data[offset + 4])
                guard offset + 5 + length <= data.count else { break }
                messages.append(Array(data[(offset + 5)..<(offset + 5 + length)]))
                offset += 5 + length
            }
            return messages
        }
    }

    /// A GOAWAY the server sent.
    public struct Goaway: Sendable, Hashable {
        public var lastStreamID: Int32
        public var errorCode: UInt32

        public init(lastStreamID: Int32, errorCode: UInt32) {
            self.lastStreamID = lastStreamID
            self.errorCode = errorCode
        }
    }

    private final class Outbound {
        var bytes: [UInt8] = []
        var offset = 0
        var endStream = false
        var deferred = false
    }

    private var session: OpaquePointer?
    private var outbound: [Int32: Outbound] = [:]
    /// Responses by stream id.
    public private(set) var responses: [Int32: Response] = [:]
    /// Every GOAWAY received, in order.
    public private(set) var goaways: [Goaway] = []

    /// HTTP/2 error codes, as RFC 9113 numbers them.
    public enum ErrorCode {
        public static let noError: UInt32 = 0
        public static let protocolError: UInt32 = 1
        public static let internalError: UInt32 = 2
        public static let cancel: UInt32 = 8
        public static let enhanceYourCalm: UInt32 = 11
    }

    /// A client session with its preface and SETTINGS ready to send.
    public init() {
        var session: OpaquePointer?
        nghttp2_session_client_new(
            &session,
            ClientCallbackTable.shared.callbacks,
            Unmanaged.passUnretained(self).toOpaque()
        )
        self.session = session
        let settings = [nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0)]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), settings, settings.count)
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    /// Starts a gRPC call: `:method` POST (unless `method` says otherwise), `content-type` application/grpc
    /// (unless `contentType` says otherwise), the path and metadata. Returns the stream id, or nil when the session
    /// refused it (after a GOAWAY, say).
    public func startCall(
        path: String,
        metadata: [(name: String, value: String)] = [],
        method: String = "POST",
        contentType: String = "application/grpc"
    ) -> Int32? {
        var headers = [
            (":method", method), (":scheme", "http"), (":path", path), (":authority", "in-memory"),
            ("content-type", contentType), ("te", "trailers"),
        ]
        headers += metadata.map { ($0.name, $0.value) }
        let box = Outbound()
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: ClientCallbackTable.readBody
        )
        let stream = withHeaderBlock(headers) { nvs, count in
            nghttp2_submit_request(session, nil, nvs, count, &provider, nil)
        }
        guard stream > 0 else { return nil }
        outbound[stream] = box
        responses[stream] = Response()
        return stream
    }

    /// Queues one request message (with its 5-byte prefix) on `stream`; `endStream` half-closes after it.
    public func send(_ message: [UInt8], on stream: Int32, compressed: Bool = false, endStream: Bool = false) {
        let count = UInt32(message.count)
        let prefix: [UInt8] = [
            compressed ? 1 : 0, UInt8(count >> 24), UInt8((count >> 16) & 0xFF), UInt8((count >> 8) & 0xFF),
            UInt8(count & 0xFF),
        ]
        sendRaw(prefix + message, on: stream, endStream: endStream)
    }

    /// Queues bytes as they are (a partial message, a bad prefix) on `stream`.
    public func sendRaw(_ bytes: [UInt8], on stream: Int32, endStream: Bool = false) {
        guard let box = outbound[stream] else { return }
        box.bytes += bytes
        box.endStream = box.endStream || endStream
        if box.deferred {
            box.deferred = false
            nghttp2_session_resume_data(session, stream)
        }
    }

    /// Half-closes `stream` (an empty DATA frame with END_STREAM once its queued bytes are sent).
    public func halfClose(_ stream: Int32) {
        sendRaw([], on: stream, endStream: true)
    }

    /// Resets `stream` (RST_STREAM with `code`, CANCEL by default).
    public func reset(_ stream: Int32, code: UInt32 = ErrorCode.cancel) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code)
    }

    /// Every byte the client has to send now.
    public func output() -> [UInt8] {
        var bytes: [UInt8] = []
        while true {
            var data: UnsafePointer<UInt8>? = nil
            let count = nghttp2_session_mem_send(session, &data)
            if count <= 0 { break }
            bytes.append(contentsOf: UnsafeBufferPointer(start: data, count: count))
        }
        return bytes
    }

    /// Feeds the server's bytes. Returns false when the session rejected them.
    @discardableResult
    public func receive(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        let consumed = bytes.withUnsafeBufferPointer { nghttp2_session_mem_recv(session, $0.baseAddress, $0.count) }
        return consumed == bytes.count
    }

    /// Exchanges bytes with `connection` until neither side has more to say (at most `rounds` times).
    public func exchange(with connection: InMemoryHTTP2Connection, rounds: Int = 16) {
        for _ in 0..<rounds {
            let request = output()
            if !request.isEmpty { connection.receive(request) }
            let answer = connection.flush()
            if !answer.isEmpty { receive(answer) }
            if request.isEmpty && answer.isEmpty { return }
        }
    }

    // MARK: Callbacks

    fileprivate func header(stream: Int32, category: nghttp2_headers_category, name: String, value: String) {
        if category == NGHTTP2_HCAT_HEADERS {
            responses[stream, default: Response()].trailers.append((name, value))
        } else {
            responses[stream, default: Response()].headers.append((name, value))
        }
    }

    fileprivate func data(stream: Int32, bytes: UnsafeRawBufferPointer) {
        responses[stream, default: Response()].data.append(contentsOf: bytes)
    }

    fileprivate func closed(stream: Int32, code: UInt32) {
        responses[stream, default: Response()].closed = true
        responses[stream, default: Response()].closeCode = code
        outbound[stream] = nil
    }

    fileprivate func reset(stream: Int32, code: UInt32) {
        responses[stream, default: Response()].resetCode = code
    }

    fileprivate func goaway(lastStreamID: Int32, errorCode: UInt32) {
        goaways.append(Goaway(lastStreamID: lastStreamID, errorCode: errorCode))
    }

    fileprivate func readBody(
        stream: Int32,
        buffer: UnsafeMutablePointer<UInt8>,
        length: Int,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let box = outbound[stream] else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let count = min(length, box.bytes.count - box.offset)
        if count > 0 {
            box.bytes.withUnsafeBufferPointer { (buffer).update(from: $0.baseAddress! + box.offset, count: count) }
            box.offset += count
        }
        if box.offset == box.bytes.count {
            box.bytes.removeAll()
            box.offset = 0
            if box.endStream {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                return count
            }
            if count == 0 {
                box.deferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return count
    }

    /// Lays the names and values out in one buffer and submits name/value entries pointing into it (nghttp2
    /// copies them).
    private func withHeaderBlock(
        _ headers: [(String, String)],
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32
    ) -> Int32 {
        var bytes: [UInt8] = []
        var spans: [(name: Int, nameLength: Int, value: Int, valueLength: Int)] = []
        for (name, value) in headers {
            let nameStart = bytes.count
            bytes += Array(name.utf8)
            let valueStart = bytes.count
            bytes += Array(value.utf8)
            spans.append((nameStart, valueStart - nameStart, valueStart, bytes.count - valueStart))
        }
        bytes.append(0)  // never empty, so the base address exists
        return bytes.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let nvs = spans.map {
                nghttp2_nv(
                    name: base + $0.name,
                    value: base + $0.value,
                    namelen: $0.nameLength,
                    valuelen: $0.valueLength,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                )
            }
            return nvs.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}

/// The client's nghttp2 callback table, built once.
private final class ClientCallbackTable: @unchecked Sendable {
    static let shared = ClientCallbackTable()
    let callbacks: OpaquePointer

    private init() {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        self.callbacks = callbacks!
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            _,
            user in
            guard let frame, let user, let name, let value, frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
            else { return 0 }
            Unmanaged<InMemoryHTTP2Client>.fromOpaque(user).takeUnretainedValue().header(
                stream: frame.pointee.hd.stream_id,
                category: frame.pointee.headers.cat,
                name: String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                value: String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
            )
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, stream, data, length, user in
            guard let user, let data else { return 0 }
            Unmanaged<InMemoryHTTP2Client>.fromOpaque(user).takeUnretainedValue()
                .data(stream: stream, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, stream, code, user in
            guard let user else { return 0 }
            Unmanaged<InMemoryHTTP2Client>.fromOpaque(user).takeUnretainedValue().closed(stream: stream, code: code)
            return 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            guard let frame, let user else { return 0 }
            let client = Unmanaged<InMemoryHTTP2Client>.fromOpaque(user).takeUnretainedValue()
            if frame.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
                client.goaway(
                    lastStreamID: frame.pointee.goaway.last_stream_id,
                    errorCode: frame.pointee.goaway.error_code
                )
            } else if frame.pointee.hd.type == UInt8(NGHTTP2_RST_STREAM.rawValue) {
                client.reset(stream: frame.pointee.hd.stream_id, code: frame.pointee.rst_stream.error_code)
            }
            return 0
        }
    }

    static let readBody: nghttp2_data_source_read_callback = { _, stream, buffer, length, flags, _, user in
        guard let buffer, let flags, let user else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
        return Unmanaged<InMemoryHTTP2Client>.fromOpaque(user).takeUnretainedValue()
            .readBody(stream: stream, buffer: buffer, length: length, flags: flags)
    }
}
