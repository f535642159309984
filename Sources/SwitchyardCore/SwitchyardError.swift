// The one error type of the request path. Every layer throws `SwitchyardError`; the RPC edge maps its
// code to a gRPC status exactly once.

/// An error on the request path, with a stable code and a message that says what was wrong and what was
/// expected.
public struct SwitchyardError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, transport-independent error category.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: Sendable, Hashable {
            case invalidArgument, notFound, resourceExhausted, unavailable, deadlineExceeded, cancelled
            case unimplemented, failedPrecondition, `internal`
        }
        private let wrapped: Wrapped
        private init(_ wrapped: Wrapped) { self.wrapped = wrapped }

        /// The request is malformed: bad shape, datatype, size or encoding.
        public static let invalidArgument = Code(.invalidArgument)
        /// The named model or version does not exist.
        public static let notFound = Code(.notFound)
        /// A limit was reached: message too large, queue full.
        public static let resourceExhausted = Code(.resourceExhausted)
        /// The server cannot take the work now: not ready, shutting down, overloaded.
        public static let unavailable = Code(.unavailable)
        /// The call's deadline passed before it completed.
        public static let deadlineExceeded = Code(.deadlineExceeded)
        /// The caller cancelled the call.
        public static let cancelled = Code(.cancelled)
        /// The operation is not supported.
        public static let unimplemented = Code(.unimplemented)
        /// The system is not in a state that allows the operation.
        public static let failedPrecondition = Code(.failedPrecondition)
        /// A bug or an unexpected failure inside the server.
        public static let `internal` = Code(.internal)

        public var description: String {
            switch wrapped {
            case .invalidArgument: "invalid argument"
            case .notFound: "not found"
            case .resourceExhausted: "resource exhausted"
            case .unavailable: "unavailable"
            case .deadlineExceeded: "deadline exceeded"
            case .cancelled: "cancelled"
            case .unimplemented: "unimplemented"
            case .failedPrecondition: "failed precondition"
            case .internal: "internal"
            }
        }
    }

    /// The error's category.
    public var code: Code
    /// A human-readable message naming what was wrong and what was expected.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// Shorthand for an `invalidArgument` error.
    public static func invalidArgument(_ message: String) -> SwitchyardError { .init(.invalidArgument, message) }
    /// Shorthand for a `notFound` error.
    public static func notFound(_ message: String) -> SwitchyardError { .init(.notFound, message) }
    /// Shorthand for an `internal` error.
    public static func `internal`(_ message: String) -> SwitchyardError { .init(.internal, message) }
}
