// The admin API's one client. The `switchyard` CLI and the load generator's scenario actions send their calls
// through it: the base URL checked once, the bearer token from SWITCHYARD_ADMIN_TOKEN, the audit reason header, and
// one URLSession exchange, awaited (the CLI) or waited for on the calling thread (the load generator's action
// thread). Typed calls (AdminClient+Endpoints.swift) send and answer SwitchyardAdminAPI's bodies; `send` is the raw
// exchange beneath them.

public import Foundation
import SwitchyardAdminAPI
public import SwitchyardCore
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Sends calls to a running gateway's admin API.
public struct AdminClient: Sendable {
    /// The API's base URL, without a trailing slash.
    public let baseURL: String
    /// Sent as `Authorization: Bearer …` when set.
    public let token: String?

    /// What the API answered: the HTTP status and the body.
    public struct Answer: Sendable {
        public var status: Int
        public var body: Data

        /// The body as text (for messages and logs).
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The `error` field of a JSON error body, or the body itself.
        public var errorMessage: String {
            (try? AdminJSON.decoder().decode(AdminErrorBody.self, from: body))?.error ?? text
        }
    }

    /// The token in SWITCHYARD_ADMIN_TOKEN, if it is set and not empty.
    public static var tokenFromEnvironment: String? {
        ProcessInfo.processInfo.environment["SWITCHYARD_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// - Parameters:
    ///   - baseURL: e.g. `http://127.0.0.1:8002`.
    ///   - token: the admin token; by default SWITCHYARD_ADMIN_TOKEN's.
    /// - Throws: `invalidArgument` when `baseURL` is not an http(s) URL.
    public init(baseURL: String, token: String? = AdminClient.tokenFromEnvironment) throws(SwitchyardError) {
        let trimmed = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        guard let url = URL(string: trimmed), let scheme = url.scheme, ["http", "https"].contains(scheme),
            url.host != nil
        else {
            throw .invalidArgument("admin API: expected a URL like http://127.0.0.1:8002, got '\(baseURL)'")
        }
        self.baseURL = trimmed
        self.token = token
    }

    /// Sends one call and waits for its answer, whatever its status, blocking the calling thread (the load
    /// generator's action thread); async callers use the `async` overload.
    /// - Parameters:
    ///   - body: a JSON body, sent with `Content-Type: application/json`.
    ///   - reason: the audit log's reason (`X-Switchyard-Reason`).
    ///   - headers: more request headers (e.g. `If-Match`).
    /// - Throws: `invalidArgument` for a path that makes no URL; `unavailable` when no answer came (refused
    ///   connection, timeout), naming the call.
    public func send(
        _ method: String,
        _ path: String,
        body: Data? = nil,
        reason: String? = nil,
        headers: [(name: String, value: String)] = [],
        timeoutSeconds: Double = 30
    ) throws(SwitchyardError) -> Answer {
        let request = try makeRequest(method, path, body, reason, headers, timeoutSeconds)
        let exchange = Exchange()
        URLSession.shared.dataTask(with: request) { data, response, error in
            exchange.finish(Self.outcome(request, data, response, error))
        }.resume()
        return try exchange.wait().get()
    }

    /// Sends one call and suspends until its answer, whatever its status.
    /// - Parameters:
    ///   - body: a JSON body, sent with `Content-Type: application/json`.
    ///   - reason: the audit log's reason (`X-Switchyard-Reason`).
    ///   - headers: more request headers (e.g. `If-Match`).
    /// - Throws: `invalidArgument` for a path that makes no URL; `unavailable` when no answer came (refused
    ///   connection, timeout), naming the call.
    public func send(
        _ method: String,
        _ path: String,
        body: Data? = nil,
        reason: String? = nil,
        headers: [(name: String, value: String)] = [],
        timeoutSeconds: Double = 30
    ) async throws(SwitchyardError) -> Answer {
        let request = try makeRequest(method, path, body, reason, headers, timeoutSeconds)
        let outcome = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Answer, SwitchyardError>, Never>) in
            URLSession.shared.dataTask(with: request) { data, response, error in
                continuation.resume(returning: Self.outcome(request, data, response, error))
            }.resume()
        }
        return try outcome.get()
    }

    private func makeRequest(
        _ method: String,
        _ path: String,
        _ body: Data?,
        _ reason: String?,
        _ headers: [(name: String, value: String)],
        _ timeoutSeconds: Double
    ) throws(SwitchyardError) -> URLRequest {
        guard let url = URL(string: baseURL + path) else {
            throw .invalidArgument("admin API: '\(baseURL + path)' is not a URL")
        }
        var request = URLRequest(url: url, timeoutInterval: timeoutSeconds)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let reason { request.setValue(reason, forHTTPHeaderField: "X-Switchyard-Reason") }
        for header in headers { request.setValue(header.value, forHTTPHeaderField: header.name) }
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return request
    }

    /// What one URLSession exchange came to: the answer, or `unavailable` naming the call.
    private static func outcome(
        _ request: URLRequest,
        _ data: Data?,
        _ response: URLResponse?,
        _ error: (any Error)?
    ) -> Result<Answer, SwitchyardError> {
        if let error {
            let call = "\(request.httpMethod ?? "GET") \(request.url?.absoluteString ?? "")"
            return .failure(SwitchyardError(.unavailable, "\(call): \(error.localizedDescription)"))
        }
        return .success(Answer(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data ?? Data()))
    }
}

/// One URLSession exchange's outcome, handed from its callback thread to the caller waiting for it.
private final class Exchange: Sendable {
    private let outcome = ConditionLock<Result<AdminClient.Answer, SwitchyardError>?>(nil)
    private let finished = MonotonicCondition()

    func finish(_ result: Result<AdminClient.Answer, SwitchyardError>) {
        outcome.withLock { outcome in
            outcome = result
            finished.signal()
        }
    }

    func wait() -> Result<AdminClient.Answer, SwitchyardError> {
        outcome.withLock(waitingOn: finished, while: { $0 == nil }) { $0! }
    }
}
