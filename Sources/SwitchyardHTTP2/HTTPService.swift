// The contract between the HTTP/1.1 front end (the REST listener, on the same event loops as gRPC) and the
// service behind it. The front end owns sockets, parsing, keep-alive, pipelining order, limits and timeouts;
// an `HTTPService` sees whole requests (head and body) and answers each with one `HTTPResponse`.

public import SwitchyardCore

/// One HTTP/1.1 request's head, as parsed.
@MemberwiseInit
public struct HTTPRequestHead: Sendable {
    /// The method, e.g. `GET`.
    public var method: String
    /// The request target's path (before any `?`), percent-encoding left as sent.
    public var path: String
    /// The query string after `?`, or `nil`.
    public var query: String?
    /// Header fields in arrival order, names lower-cased.
    public var headers: [(name: String, value: String)] = []
    /// Whether the peer connected from this machine (a loopback address), for policies that trust local callers.
    public var peerIsLoopback: Bool = false
    /// The names of the client's verified certificate (mutual TLS); `nil` without one.
    public var peerCertificate: PeerCertificate?

    /// The first value of a header (`name` lower-case).
    public func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }
}

/// One response. The front end adds `Content-Length`, and `Connection: close` when it closes afterwards.
@MemberwiseInit
public struct HTTPResponse: Sendable {
    /// The status code, e.g. 200.
    public var status: Int
    /// Header fields besides `Content-Length` and `Connection`.
    public var headers: [(name: String, value: String)] = []
    /// The body.
    public var body: [UInt8] = []
}

/// A service the HTTP/1.1 front end dispatches to. `handle` runs on the connection's event-loop thread and
/// must not block.
public protocol HTTPService: Sendable {
    /// Handles one complete request.
    /// - Parameters:
    ///   - head: the request line and headers.
    ///   - body: the body (chunked bodies already de-chunked), valid only for the duration of the call.
    ///   - responder: answers the request, from any thread, exactly once.
    func handle(head: HTTPRequestHead, body: UnsafeRawBufferPointer, responder: any HTTPResponder)

    /// The response the front end sends when it refuses a request itself (malformed, over a limit, too slow),
    /// in the service's error format.
    /// - Parameters:
    ///   - status: the HTTP status (400, 408, 413, 431, 503).
    ///   - message: what was wrong and what was expected.
    func refusal(status: Int, message: String) -> HTTPResponse
}

/// Answers one HTTP request. Thread-safe: the response is handed to the connection's own event loop, which
/// writes it after every earlier request's response on the connection (pipelining order).
public protocol HTTPResponder: AnyObject, Sendable {
    /// Whether the connection closed before the answer: work for it can be skipped.
    var isCancelled: Bool { get }

    /// Sends the response; later calls are ignored.
    func respond(_ response: HTTPResponse)
}

/// Reason phrases for the status codes the gateway sends.
enum HTTPStatusText {
    static func phrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 499: "Client Closed Request"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}
