// A single blocking unary gRPC call over a fresh HTTP/2 connection, for the cold path before a run
// (ModelMetadata, readiness checks). It reuses the generator's client connection with a poll loop.

public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// The answer to a unary call.
public struct UnaryResponse: Sendable {
    /// The gRPC status code (-1 when the response carried none).
    public var status: Int
    /// The `grpc-message`, if any.
    public var message: String
    /// The response message, unframed (empty when there was none).
    public var body: [UInt8]
}

/// Makes one-off unary calls.
public enum UnaryCall {
    /// Calls `path` on `target` with `request` (an unframed message) and waits up to `timeout` seconds.
    /// - Throws: `SwitchyardError` when the server cannot be reached or does not answer in time.
    public static func call(
        target: String,
        path: String,
        request: [UInt8],
        timeout: Double = 10,
        tls: ClientTLSOptions? = nil
    ) throws(SwitchyardError) -> UnaryResponse {
        let address = try SocketAddress.resolve(target)
        let context = try tls.map { options throws(SwitchyardError) in
            try ClientTLSContext(options: options, host: address.host)
        }
        let session = try context.map { c throws(SwitchyardError) in try ClientTLSSession(context: c) }
        let fd = try address.connect()
        let table = SlotTable(capacity: 1, bodies: [RequestBodies.frame(request)])
        let sink = UnarySink()
        let connection = ClientConnection(fd: fd, index: 0, maxStreams: 1, table: table, delegate: sink, tls: session)
        if session != nil { try ClientConnection.establish([connection], target: target, timeout: timeout) }
        connection.responseSink = { bytes in sink.body.append(contentsOf: bytes) }
        let headers = RequestHeaders([
            (":method", "POST"), (":scheme", tls == nil ? "http" : "https"), (":path", path), (":authority", target),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "switchyard-load"),
        ])
        _ = table.take()
        table.slots[0] = RequestSlot(inUse: true, connection: 0)
        guard connection.submit(slot: 0, headers: headers) else {
            throw SwitchyardError(.unavailable, "\(target): the server refused a new stream for \(path)")
        }
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: UInt64(timeout * 1e9))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        while !sink.done {
            guard connection.flush() else {
                throw SwitchyardError(.unavailable, "\(target): connection failed while calling \(path)")
            }
            let now = MonotonicInstant.now()
            guard now < deadline else {
                throw SwitchyardError(.deadlineExceeded, "\(target): no answer to \(path) within \(timeout) s")
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32(max(1, deadline.nanoseconds(since: now) / 1_000_000)))
            if p.revents != 0 && !connection.readAvailable(buffer: buffer) && !sink.done {
                throw SwitchyardError(
                    .unavailable,
                    "\(target): connection closed while calling \(path)"
                        + (tls == nil ? " (if the server uses TLS, add --tls or --tls-ca)" : "")
                )
            }
        }
        let slot = table.slots[0]
        var body: [UInt8] = []
        if sink.body.count >= 5 {
            let length = Int(sink.body[1]) << 24 | Int(sink.body[2]) << 16 | Int(sink.body[3]) << 8 | Int(sink.body[4])
            body = Array(sink.body[5..<min(sink.body.count, 5 + length)])
        }
        if slot.grpcStatus < 0 && slot.httpStatus != 200 {
            throw SwitchyardError(
                .unavailable,
                "\(target): \(path) answered HTTP \(slot.httpStatus) without a gRPC status; is it a gRPC server?"
            )
        }
        return UnaryResponse(status: Int(slot.grpcStatus), message: slot.message ?? "", body: body)
    }

    /// Fetches a model's metadata.
    /// - Throws: `SwitchyardError` naming the model and the server's answer when it is not OK.
    public static func modelMetadata(
        target: String,
        model: String,
        version: String = "",
        tls: ClientTLSOptions? = nil
    ) throws(SwitchyardError) -> ModelDescription {
        let response = try call(
            target: target,
            path: "/inference.GRPCInferenceService/ModelMetadata",
            request: InferenceMessages.modelMetadataRequest(model: model, version: version),
            tls: tls
        )
        guard response.status == 0 else {
            throw SwitchyardError(
                .notFound,
                "ModelMetadata for '\(model)' failed: \(ClientOutcome.name(ofStatus: response.status)) \(response.message)"
            )
        }
        return try InferenceMessages.decodeModelMetadata(response.body)
    }
}

private final class UnarySink: ClientConnectionDelegate {
    var done = false
    var body: [UInt8] = []
    func streamClosed(slot: Int, errorCode: UInt32, connection: ClientConnection) { done = true }
}
