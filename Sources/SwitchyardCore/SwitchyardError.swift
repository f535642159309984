// The one error type of the request path. Every layer throws `SwitchyardError`; the RPC edge maps its
// code to a gRPC status exactly once.

/// An error on the request path, with a stable code and a message that says what was wrong and what was
/// expected.
public struct SwitchyardError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, transport-independent error category.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Wrapped: Sendable, Hashable {
            case invalidArgument, notFound, resourceExhausted, unavailable, deadlineExceeded, cancelled
            case unimplemented, failedPrecondition, permissionDenied, `internal`
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
        /// The caller may not do this (a tenant calling a model it is not allowed).
        public static let permissionDenied = Code(.permissionDenied)
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
            case .permissionDenied: "permission denied"
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

    /// Most UTF-8 bytes of a client-supplied value (a model name, a version, an input name) quoted in a message.
    public static let maxEchoedBytes = 256

    /// `text` cut to at most `limit` UTF-8 bytes at a scalar boundary, saying how much was cut: what a message
    /// may quote of a value the client chose, so that an answer never grows with it.
    public static func echo(_ text: String, limit: Int = maxEchoedBytes) -> String {
        let total = text.utf8.count
        guard total > limit else { return text }
        var kept = 0
        var end = text.unicodeScalars.startIndex
        for index in text.unicodeScalars.indices {
            let size = UTF8.width(text.unicodeScalars[index])
            if kept + size > limit { break }
            kept += size
            end = text.unicodeScalars.index(after: index)
        }
        return String(text.unicodeScalars[..<end]) + "… (\(total - kept) more bytes)"
    }

    /// `text` with every absolute filesystem path (a word that starts with `/` and holds another `/`) cut to
    /// its last component: what a message sent to a client may say of a file (the server's layout stays
    /// private; the log keeps the full text).
    public static func redactingPaths(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var word = ""
        func flush() {
            if word.hasPrefix("/"), word.dropFirst().contains("/") {
                let trimmed = word.drop(while: { $0 == "/" })
                let parts = trimmed.split(separator: "/", omittingEmptySubsequences: true)
                out += "…/" + (parts.last.map(String.init) ?? "")
            } else {
                out += word
            }
            word = ""
        }
        for character in text {
            if character == " " || character == "'" || character == "\"" || character == "(" || character == ")"
                || character == "," || character == ":" || character == "\n"
            {
                flush()
                out.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return out
    }

    /// The same error with its message cut to `limit` UTF-8 bytes (see `echo`).
    public func bounded(limit: Int = 1024) -> SwitchyardError {
        SwitchyardError(code, Self.echo(message, limit: limit))
    }

    /// Shorthand for an `invalidArgument` error.
    public static func invalidArgument(_ message: String) -> SwitchyardError { .init(.invalidArgument, message) }
    /// Shorthand for a `notFound` error.
    public static func notFound(_ message: String) -> SwitchyardError { .init(.notFound, message) }
    /// Shorthand for an `internal` error.
    public static func `internal`(_ message: String) -> SwitchyardError { .init(.internal, message) }
}
