// HTTP/2 on the REST port: h2c with prior knowledge, or TLS with ALPN "h2". The connection is the same nghttp2
// session as gRPC's (the same frame budgets, flow control, timeouts and shutdown), but each stream carries one v2
// REST request: its head and body are gathered here and handed whole to the `HTTPService`, exactly as an HTTP/1.1
// request is, and the service's `HTTPResponse` goes back as HEADERS (with `content-length`) and DATA. Limits are
// the HTTP/1.1 ones: header bytes (`max_header_list_bytes`, 431), body bytes (`max_request_bytes`, 413), request
// bytes buffered process-wide (`max_buffered_request_bytes`, 429) and response bytes queued on the connection
// (`max_output_buffer_bytes`, 503). Loop-confined, except `HTTP2Exchange.state`.

internal import CNghttp2
import Logging
import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One REST request on an HTTP/2 stream, and the responder the service answers through.
final class HTTP2Exchange: HTTPResponder, @unchecked Sendable {
    let loop: EventLoop
    let streamID: Int32
    /// Cross-thread part: whether an answer is still wanted (`HTTP1Exchange`'s states).
    let state = Atomic<UInt8>(HTTP1Exchange.open)

    // MARK: Loop-confined
    /// The connection, until the stream closes.
    @exclusivity(unchecked) weak var connection: Connection?
    @exclusivity(unchecked) var method = ""
    @exclusivity(unchecked) var target = ""
    @exclusivity(unchecked) var headers: [(name: String, value: String)] = []
    @exclusivity(unchecked) var headerBytes = 0
    @exclusivity(unchecked) var body: [UInt8] = []
    /// Bytes held in `bufferedRequestBytes` for the body.
    @exclusivity(unchecked) var reservedBytes = 0
    /// The client's END_STREAM arrived.
    @exclusivity(unchecked) var requestEnded = false
    /// The request went to the service, which owes an answer.
    @exclusivity(unchecked) var dispatched = false
    /// A response was submitted (the service's, or the front end's refusal): the rest of the request is ignored.
    @exclusivity(unchecked) var responded = false
    @exclusivity(unchecked) var responseBody: [UInt8] = []
    @exclusivity(unchecked) var responseOffset = 0
    /// Body bytes received after a refusal and dropped; past `Connection.maxBytesAfterRefusal` the stream is reset.
    @exclusivity(unchecked) var discarded = 0

    init(loop: EventLoop, connection: Connection, streamID: Int32) {
        self.loop = loop
        self.connection = connection
        self.streamID = streamID
    }

    var isCancelled: Bool { state.load(ordering: .relaxed) == HTTP1Exchange.cancelled }

    func respond(_ response: HTTPResponse) {
        guard state.claimAnswer() else { return loop.countDropped() }
        loop.enqueue(.respondHTTP2(self, response))
    }
}

extension Connection {
    /// Header fields a REST request on HTTP/2 may carry, like HTTP/1.1's bound.
    static let maxRESTHeaderFields = 256
    /// Body bytes a client may go on sending after its request was refused (413, 429…) before the stream is reset
    /// with NO_ERROR (RFC 9113 section 8.1). Clients that keep writing the body they started (httpx, h2) treat an
    /// early reset as a protocol error rather than reading the answer already sent, so a bounded rest of the body is
    /// read and dropped first: one stream window.
    static let maxBytesAfterRefusal = 1 << 20

    func beginRESTRequest(streamID: Int32) {
        progress &+= 1
        restExchanges[streamID] = HTTP2Exchange(loop: loop, connection: self, streamID: streamID)
        loop.core.counters.streamsOpened.add(1, ordering: .relaxed)
    }

    /// Whether one header of a request's block was taken; false once the block is so far over the limit that the
    /// rest must not even be decoded (the stream is then reset with ENHANCE_YOUR_CALM).
    func restHeader(streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Bool {
        guard let exchange = restExchanges[streamID], !exchange.responded else { return true }
        exchange.headerBytes += name.count + value.count + 32
        let limit = loop.core.limits.maxHeaderListBytes
        if exchange.headerBytes > 4 * limit {
            exchange.responded = true
            exchange.state.store(HTTP1Exchange.cancelled, ordering: .relaxed)
            loop.core.counters.httpRejections.add(1, ordering: .relaxed)
            nghttp2_submit_rst_stream(
                session,
                UInt8(NGHTTP2_FLAG_NONE.rawValue),
                streamID,
                NGHTTP2_ENHANCE_YOUR_CALM.rawValue
            )
            return false
        }
        guard exchange.headerBytes <= limit, exchange.headers.count < Self.maxRESTHeaderFields, name.count > 0 else {
            return true  // refused when the block completes
        }
        if name[0] == UInt8(ascii: ":") {
            if name.equals(":method") {
                exchange.method = String(decoding: value, as: UTF8.self)
            } else if name.equals(":path") {
                exchange.target = String(decoding: value, as: UTF8.self)
            } else if name.equals(":authority") {
                exchange.headers.append(("host", String(decoding: value, as: UTF8.self)))
            }
            return true
        }
        // nghttp2 has checked the name is lower-case and free of connection-specific fields.
        exchange.headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return true
    }

    /// The request's header block is complete: check its limits, reserve room for a declared body, and answer
    /// a body-less request at once.
    func restHeadersComplete(streamID: Int32) {
        guard let exchange = restExchanges[streamID], !exchange.responded else { return }
        let limits = loop.core.limits
        if exchange.headerBytes > limits.maxHeaderListBytes {
            return refuseREST(
                exchange,
                431,
                "request headers of \(exchange.headerBytes) bytes exceed \(limits.maxHeaderListBytes) bytes "
                    + "(limits.max_header_list_bytes)"
            )
        }
        if exchange.headers.count >= Self.maxRESTHeaderFields {
            return refuseREST(exchange, 431, "more than \(Self.maxRESTHeaderFields - 1) header fields; expected fewer")
        }
        if queuedBytes >= limits.maxOutputBufferBytes {
            return refuseREST(
                exchange,
                503,
                "client is not reading responses: \(queuedBytes) bytes queued on this connection, limit "
                    + "\(limits.maxOutputBufferBytes) bytes (limits.max_output_buffer_bytes)"
            )
        }
        if let declared = exchange.headers.first(where: { $0.name == "content-length" }).flatMap({ Int($0.value) }) {
            if declared > limits.maxRequestBytes {
                return refuseREST(
                    exchange,
                    413,
                    "request body of \(declared) bytes exceeds the limit of \(limits.maxRequestBytes) bytes "
                        + "(limits.max_request_bytes)"
                )
            }
            guard reserveREST(exchange, declared) else { return }
            exchange.body.reserveCapacity(declared)
        }
        if exchange.headers.contains(where: { $0.name == "expect" && $0.value.lowercased() == "100-continue" }) {
            beginHeaders()
            addHeader(":status", "100")
            submitHeaders { nghttp2_submit_headers(session, 0, streamID, nil, $0, $1, nil) }
            markDirty()
        }
    }

    func restData(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        progress &+= 1
        guard let exchange = restExchanges[streamID], !exchange.requestEnded else { return }
        if exchange.responded {
            exchange.discarded += bytes.count
            if exchange.discarded > Self.maxBytesAfterRefusal
                && exchange.discarded - bytes.count <= Self.maxBytesAfterRefusal
            {
                nghttp2_submit_rst_stream(
                    session,
                    UInt8(NGHTTP2_FLAG_NONE.rawValue),
                    streamID,
                    NGHTTP2_NO_ERROR.rawValue
                )
                markDirty()
            }
            return
        }
        let limit = loop.core.limits.maxRequestBytes
        guard exchange.body.count + bytes.count <= limit else {
            return refuseREST(
                exchange,
                413,
                "request body exceeds the limit of \(limit) bytes (limits.max_request_bytes)"
            )
        }
        let needed = exchange.body.count + bytes.count - exchange.reservedBytes
        if needed > 0, !reserveREST(exchange, needed) { return }
        exchange.body.append(contentsOf: bytes)
    }

    /// The client ended its request (END_STREAM): hand it to the service.
    func restRequestEnded(streamID: Int32) {
        guard let exchange = restExchanges[streamID], !exchange.requestEnded else { return }
        exchange.requestEnded = true
        guard !exchange.responded, let service = rest else { return }
        let target = Substring(exchange.target)
        guard target.hasPrefix("/") else {
            return refuseREST(exchange, 400, "request target '\(target)': expected a path starting with '/'")
        }
        var path = target
        var query: String?
        if let mark = target.firstIndex(of: "?") {
            query = String(target[target.index(after: mark)...])
            path = target[..<mark]
        }
        let head = HTTPRequestHead(
            method: exchange.method,
            path: String(path),
            query: query,
            headers: exchange.headers,
            peerIsLoopback: peerIsLoopback,
            peerCertificate: peerCertificate
        )
        var body: [UInt8] = []
        swap(&body, &exchange.body)
        exchange.dispatched = true
        restAwaitingAnswers += 1
        body.withUnsafeBytes { service.handle(head: head, body: $0, responder: exchange) }
        releaseREST(exchange)
    }

    /// The service answered (on the loop).
    func restAnswered(_ exchange: HTTP2Exchange, _ response: HTTPResponse) {
        guard !isClosed, restExchanges[exchange.streamID] === exchange, !exchange.responded else {
            return loop.countDropped()
        }
        restAwaitingAnswers -= 1
        submitREST(exchange, response)
    }

    /// The stream closed (answered, reset by either side, or the connection ends): the exchange is done with.
    func restStreamClosed(streamID: Int32) {
        guard let exchange = restExchanges.removeValue(forKey: streamID) else { return }
        forget(exchange)
    }

    /// Every exchange of a closing connection ends; answers still owed are dropped when they come.
    func restTeardown() {
        for exchange in restExchanges.values { forget(exchange) }
        restExchanges.removeAll()
    }

    private func forget(_ exchange: HTTP2Exchange) {
        if exchange.dispatched && !exchange.responded { restAwaitingAnswers -= 1 }
        exchange.state.store(HTTP1Exchange.cancelled, ordering: .relaxed)
        exchange.connection = nil
        queuedBytes -= exchange.responseBody.count - exchange.responseOffset
        exchange.responseBody = []
        exchange.body = []
        releaseREST(exchange)
    }

    /// nghttp2 could not send a response's HEADERS (a header the service set cannot be encoded): reset the stream,
    /// so the client learns the request ended.
    func restHeadersNotSent(streamID: Int32) {
        guard restExchanges[streamID] != nil else { return }
        loop.core.logger.warning("a REST response header block could not be sent; resetting the stream")
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_INTERNAL_ERROR.rawValue)
        markDirty()
    }

    // MARK: Answers

    private func refuseREST(_ exchange: HTTP2Exchange, _ status: Int, _ message: String) {
        exchange.state.store(HTTP1Exchange.answered, ordering: .relaxed)
        exchange.body = []
        releaseREST(exchange)
        loop.core.counters.httpRejections.add(1, ordering: .relaxed)
        let response =
            rest?.refusal(status: status, message: message)
            ?? HTTPResponse(status: status, body: Array(message.utf8))
        submitREST(exchange, response)
    }

    /// HEADERS (status, the service's fields lower-cased, `content-length`), then the body as DATA.
    private func submitREST(_ exchange: HTTP2Exchange, _ response: HTTPResponse) {
        exchange.responded = true
        beginHeaders()
        addHeader(":status", String(response.status))
        for (name, value) in response.headers {
            let name = name.lowercased()
            switch name {
            case "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection":
                continue  // framing is HTTP/2's own (RFC 9113 section 8.2.2)
            default:
                guard HeaderField.isValidName(name), HeaderField.isValidValue(value) else { continue }
                addHeader(name, value)
            }
        }
        addHeader("content-length", String(response.body.count))
        let submitted: Bool
        if response.body.isEmpty || exchange.method == "HEAD" {
            submitted = submitHeaders { nghttp2_submit_response(session, exchange.streamID, $0, $1, nil) }
        } else {
            exchange.responseBody = response.body
            exchange.responseOffset = 0
            queuedBytes += response.body.count
            var provider = nghttp2_data_provider(
                source: nghttp2_data_source(ptr: Unmanaged.passUnretained(exchange).toOpaque()),
                read_callback: HTTP2Callbacks.readRESTBody
            )
            submitted = submitHeaders { nghttp2_submit_response(session, exchange.streamID, $0, $1, &provider) }
        }
        if !submitted { restHeadersNotSent(streamID: exchange.streamID) }
        markDirty()
    }

    /// Copies response body bytes into a DATA frame payload; the last one ends the stream.
    func readRESTBody(
        exchange: HTTP2Exchange,
        buffer: UnsafeMutablePointer<UInt8>,
        length: Int,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        let take = min(length, exchange.responseBody.count - exchange.responseOffset)
        exchange.responseBody.withUnsafeBufferPointer { body in
            buffer.update(from: body.baseAddress! + exchange.responseOffset, count: take)
        }
        exchange.responseOffset += take
        queuedBytes -= take
        if exchange.responseOffset == exchange.responseBody.count {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            exchange.responseBody = []
            exchange.responseOffset = 0
        }
        return take
    }

    // MARK: Request bytes

    /// Counts `count` more body bytes against `max_buffered_request_bytes`; refuses the request (429) when they
    /// do not fit.
    private func reserveREST(_ exchange: HTTP2Exchange, _ count: Int) -> Bool {
        guard count > 0 else { return true }
        let counters = loop.core.counters
        let total = counters.bufferedRequestBytes.add(count, ordering: .relaxed).newValue
        let limit = loop.core.limits.maxBufferedRequestBytes
        guard total <= limit else {
            counters.bufferedRequestBytes.subtract(count, ordering: .relaxed)
            refuseREST(
                exchange,
                429,
                "request body does not fit: \(total - count) bytes of requests are being received, limit \(limit) "
                    + "bytes (limits.max_buffered_request_bytes)"
            )
            return false
        }
        exchange.reservedBytes += count
        return true
    }

    private func releaseREST(_ exchange: HTTP2Exchange) {
        guard exchange.reservedBytes > 0 else { return }
        loop.core.counters.bufferedRequestBytes.subtract(exchange.reservedBytes, ordering: .relaxed)
        loop.bytesFreedSinceTrim += exchange.reservedBytes
        exchange.reservedBytes = 0
    }
}
