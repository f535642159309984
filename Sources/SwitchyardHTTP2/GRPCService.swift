// The contract between the HTTP/2 front end and the services it serves. The front end owns sockets,
// TLS, nghttp2 sessions, gRPC framing, compression, deadlines and cancellation; a `GRPCService` sees
// whole request messages and answers through a `GRPCResponder`.

public import SwitchyardCore

/// A gRPC status code (grpc `doc/statuscodes.md`).
@MemberwiseInit
public struct GRPCStatusCode: Sendable, Hashable, CustomStringConvertible {
    /// The numeric code sent in `grpc-status`.
    public let rawValue: Int

    public static let ok = GRPCStatusCode(rawValue: 0)
    public static let cancelled = GRPCStatusCode(rawValue: 1)
    public static let unknown = GRPCStatusCode(rawValue: 2)
    public static let invalidArgument = GRPCStatusCode(rawValue: 3)
    public static let deadlineExceeded = GRPCStatusCode(rawValue: 4)
    public static let notFound = GRPCStatusCode(rawValue: 5)
    public static let alreadyExists = GRPCStatusCode(rawValue: 6)
    public static let permissionDenied = GRPCStatusCode(rawValue: 7)
    public static let resourceExhausted = GRPCStatusCode(rawValue: 8)
    public static let failedPrecondition = GRPCStatusCode(rawValue: 9)
    public static let aborted = GRPCStatusCode(rawValue: 10)
    public static let outOfRange = GRPCStatusCode(rawValue: 11)
    public static let unimplemented = GRPCStatusCode(rawValue: 12)
    public static let `internal` = GRPCStatusCode(rawValue: 13)
    public static let unavailable = GRPCStatusCode(rawValue: 14)
    public static let dataLoss = GRPCStatusCode(rawValue: 15)
    public static let unauthenticated = GRPCStatusCode(rawValue: 16)

    public var description: String { String(rawValue) }
}

/// A status to end a call with.
public struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// The status code.
    public var code: GRPCStatusCode
    /// A human-readable message, sent percent-encoded in `grpc-message`.
    public var message: String

    /// Creates a status.
    public init(_ code: GRPCStatusCode, _ message: String = "") {
        self.code = code
        self.message = message
    }

    /// The OK status.
    public static let ok = GRPCStatus(.ok)

    public var description: String { "grpc-status \(code.rawValue): \(message)" }
}

/// How a method exchanges messages.
public enum GRPCMethodKind: Sendable, Hashable {
    /// One request message, one response message.
    case unary
    /// A stream of request messages, each answered by exactly one response message
    /// (`GRPCResponder.send(message:)`); the front end ends the call with OK once the client has
    /// half-closed and every request has been answered, or earlier when the service calls `fail`.
    case bidirectionalStreaming
}

/// A method a service serves, resolved once per stream from its `:path`.
@MemberwiseInit
public struct GRPCMethod: Sendable, Hashable {
    /// A service-defined identifier, handed back with each message.
    public var id: Int
    /// How the method exchanges messages.
    public var kind: GRPCMethodKind
}

/// What the front end knows of a call when a request message is delivered.
@MemberwiseInit
public struct GRPCRequestHead: Sendable {
    /// The `:path`, e.g. `/inference.GRPCInferenceService/ModelInfer`.
    public var path: String
    /// Custom metadata: every request header that is not a pseudo-header nor one the front end consumes
    /// (`content-type`, `te`, `grpc-timeout`, `grpc-encoding`, `grpc-accept-encoding`, `user-agent`), with
    /// lower-case names, in arrival order.
    public var metadata: [(name: String, value: String)] = []
    /// When the call must be finished, from `grpc-timeout`; `nil` for no deadline.
    public var deadline: MonotonicInstant?
    /// Whether the client connected from a loopback address (127.0.0.0/8 or ::1): a client on this machine.
    public var peerIsLoopback: Bool = false
    /// The names of the client's verified certificate (mutual TLS); `nil` without one.
    public var peerCertificate: PeerCertificate?

    /// The first value of a metadata entry (names are matched lower-case).
    public func metadata(_ name: String) -> String? { metadata.first { $0.name == name }?.value }
}

/// A service the gRPC front end dispatches to. Both methods are called on the connection's event-loop
/// thread and must not block: decode, validate and hand work to another thread, then return.
public protocol GRPCService: Sendable {
    /// Resolves a `:path` to a method, or `nil` for UNIMPLEMENTED.
    func method(for path: String) -> GRPCMethod?

    /// Handles one complete, decompressed request message.
    /// - Parameters:
    ///   - message: the message bytes, valid only for the duration of the call.
    ///   - method: the method resolved by `method(for:)`.
    ///   - head: the call's path, metadata and deadline.
    ///   - responder: answers the call, from any thread.
    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    )

    /// Called on an event-loop thread after it has handled one batch of socket events — every request message in
    /// it has been passed to `handle` — before the loop writes responses and sleeps. Work deferred while handling
    /// the batch, such as waking worker threads, is released here: once per batch instead of once per call.
    func eventLoopDidProcessBatch()
}

extension GRPCService {
    /// Does nothing.
    public func eventLoopDidProcessBatch() {}
}

/// Answers one gRPC call. Thread-safe: any thread may respond; the bytes are handed to the connection's
/// own event loop. Answers after the call ended (cancelled, deadline passed, connection closed) are
/// dropped and counted by the front end.
public protocol GRPCResponder: AnyObject, Sendable {
    /// Whether the call has ended from the client's side or by deadline: work for it can be skipped.
    var isCancelled: Bool { get }

    /// Unary: sends the response message and trailers with OK status. Streaming: sends one response
    /// message (the call stays open).
    /// - Parameters:
    ///   - message: the serialized (unframed) response message.
    ///   - metadata: extra trailers (unary) sent with `grpc-status`; ignored for streaming messages.
    func send(message: [UInt8], metadata: [(name: String, value: String)])

    /// Ends the call with a non-OK status (Trailers-Only when nothing was sent yet).
    /// - Parameter metadata: extra trailers sent with `grpc-status`.
    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)])
}

extension GRPCResponder {
    /// Sends a message with no extra trailers.
    public func send(message: [UInt8]) { send(message: message, metadata: []) }

    /// Ends the call with a non-OK status and no extra trailers.
    public func fail(_ status: GRPCStatus) { fail(status, metadata: []) }
}
