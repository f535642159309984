// Who may call the admin API: the bearer-token rules in one place, applied by one middleware to every endpoint,
// and the request context that carries the caller (the audit log's actor) to the handlers.

import HTTPTypes
public import Hummingbird

/// A request's context on the admin API: Hummingbird's core storage and the caller the auth middleware found.
public struct AdminRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The audit log's actor: the token's name (`admin.token_name`) with the right token, else `anonymous`.
    public internal(set) var actor = "anonymous"
    /// Whether the caller may see details a probe keeps to itself (readiness reasons): on loopback or with the
    /// token; always when no token is configured.
    public internal(set) var seesDetails = true

    /// Creates the context of a request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }
}

/// The token rules, as a pure decision on one request's `Authorization` header.
public struct AdminAuth: Sendable {
    /// What a request does, which decides what it needs.
    public enum Access: Sendable, Hashable {
        /// `/healthz`, `/readyz`: answered without a token; details only on loopback or with the token.
        case probe
        /// A read (`GET`): needs the token beyond loopback.
        case read
        /// A change (every other method): needs the token everywhere.
        case change
    }

    /// What a request may do.
    public struct Caller: Sendable, Hashable {
        /// The audit log's actor.
        public var actor: String
        /// Whether it may see a probe's details.
        public var seesDetails: Bool
    }

    /// The token's bytes; `nil`: no token configured, everything is allowed to everyone.
    let token: [UInt8]?
    /// The actor a caller with the right token is recorded as.
    let tokenName: String
    /// Whether the API listens on loopback only.
    let isLoopback: Bool

    /// The rules for `token` (`nil`: none configured) on a listener that is, or is not, loopback only.
    public init(token: String?, tokenName: String, isLoopback: Bool) {
        self.token = token.map { Array($0.utf8) }
        self.tokenName = tokenName
        self.isLoopback = isLoopback
    }

    /// What `request` does: a probe by its path, a read by its method (`GET`, `HEAD`), otherwise a change.
    public static func access(method: HTTPRequest.Method, path: String) -> Access {
        if path == "/healthz" || path == "/readyz" { return .probe }
        return method == .get || method == .head ? .read : .change
    }

    /// The caller of a request doing `access` with `authorization` (the header's value, if sent).
    /// - Throws: a 401 `AdminHTTPError` when the token is needed and missing ("missing bearer token: …"), or sent
    ///   and wrong ("invalid bearer token") — a wrong token is refused everywhere, probes included.
    public func caller(authorization: String?, access: Access) throws -> Caller {
        guard token != nil else { return Caller(actor: "anonymous", seesDetails: true) }
        guard let authorization else {
            switch access {
            case .probe: return Caller(actor: "anonymous", seesDetails: isLoopback)
            case .read where isLoopback: return Caller(actor: "anonymous", seesDetails: true)
            case .read, .change:
                throw AdminHTTPError(.unauthorized, "missing bearer token: send 'Authorization: Bearer <token>'")
            }
        }
        guard matches(authorization) else { throw AdminHTTPError(.unauthorized, "invalid bearer token") }
        return Caller(actor: tokenName, seesDetails: true)
    }

    /// Whether `authorization` is `Bearer <the token>`; `false` without a token.
    func matches(_ authorization: String) -> Bool {
        let prefix = "Bearer "
        guard let token, authorization.hasPrefix(prefix) else { return false }
        return Self.constantTimeEquals(Array(authorization.utf8.dropFirst(prefix.utf8.count)), token)
    }

    /// Compares in time that depends only on the lengths, so the comparison leaks no prefix of the token.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        if a.count != b.count { difference |= 1 }
        let count = max(a.count, b.count)
        for index in 0..<count {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0
    }
}

/// Applies `AdminAuth` to every admin endpoint before its handler runs, and hands the caller on in the context.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = AdminRequestContext

    let auth: AdminAuth

    func handle(
        _ request: Request,
        context: AdminRequestContext,
        next: (Request, AdminRequestContext) async throws -> Response
    ) async throws -> Response {
        let caller = try auth.caller(
            authorization: request.headers[.authorization],
            access: AdminAuth.access(method: request.method, path: request.uri.path)
        )
        var context = context
        context.actor = caller.actor
        context.seesDetails = caller.seesDetails
        return try await next(request, context)
    }
}
