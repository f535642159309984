// The admin API's endpoints as typed calls: each sends a SwitchyardAdminAPI request body (if any) and decodes the
// answer into its SwitchyardAdminAPI type, keeping the answer's bytes for callers that print them as they came.

public import Foundation
public import SwitchyardAdminAPI
public import SwitchyardCore

/// A call the API did not answer with what was asked for.
public struct AdminCallError: Error, Sendable, CustomStringConvertible {
    /// How the call failed.
    public enum Kind: Sendable, Hashable {
        /// No answer: a bad URL, a refused connection, a timeout.
        case noAnswer
        /// The API answered with an error status; the message is its `error` field ("no answer" for an empty body).
        case refused(status: Int)
        /// A 2xx answer that is not the expected JSON.
        case undecodable
    }

    /// How the call failed.
    public var kind: Kind
    /// What went wrong, for a person.
    public var message: String

    public var description: String { message }
}

/// A typed answer and the bytes it came as.
public struct AdminReply<Value: Sendable>: Sendable {
    /// The decoded answer.
    public var value: Value
    /// The answer's body as it came (for `--json` output that shows every field, known here or not).
    public var body: Data
}

extension AdminClient {
    // MARK: Routes

    /// `GET /v1/routes`.
    public func routes() async throws(AdminCallError) -> AdminReply<RoutesResponse> {
        try await call("GET", "/v1/routes")
    }

    /// `GET /v1/routes/{model}`.
    public func route(model: String) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call("GET", "/v1/routes/\(Self.segment(model))")
    }

    /// `PUT /v1/routes/{model}`: adds or replaces the route.
    /// - Parameter ifGeneration: applies only if the route has not changed since this generation (`If-Match`).
    public func putRoute(
        model: String,
        _ request: RouteRequest,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call(
            "PUT",
            "/v1/routes/\(Self.segment(model))",
            body: request,
            reason: reason,
            ifGeneration: ifGeneration
        )
    }

    /// `PUT /v1/routes/{model}` with a body as the caller has it (a route file), sent unchanged.
    public func putRoute(
        model: String,
        json: Data,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call(
            "PUT",
            "/v1/routes/\(Self.segment(model))",
            data: json,
            reason: reason,
            ifGeneration: ifGeneration
        )
    }

    /// `DELETE /v1/routes/{model}`.
    public func deleteRoute(
        model: String,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call("DELETE", "/v1/routes/\(Self.segment(model))", reason: reason, ifGeneration: ifGeneration)
    }

    /// `PATCH /v1/routes/{model}/weights`.
    public func setWeights(
        model: String,
        _ weights: [String: Double],
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call(
            "PATCH",
            "/v1/routes/\(Self.segment(model))/weights",
            body: WeightsRequest(weights: weights),
            reason: reason,
            ifGeneration: ifGeneration
        )
    }

    /// `PUT /v1/routes/{model}/shadow`; `nil` (or fraction 0) stops mirroring.
    public func setShadow(
        model: String,
        _ shadow: RouteConfiguration.ShadowSettings?,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call(
            "PUT",
            "/v1/routes/\(Self.segment(model))/shadow",
            body: ShadowRequest(shadow),
            reason: reason,
            ifGeneration: ifGeneration
        )
    }

    /// `PUT /v1/routes/{model}/bandit`.
    public func setBandit(
        model: String,
        _ bandit: RouteConfiguration.BanditSettings,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<RouteResponse> {
        try await call(
            "PUT",
            "/v1/routes/\(Self.segment(model))/bandit",
            body: BanditRequest(bandit),
            reason: reason,
            ifGeneration: ifGeneration
        )
    }

    /// `POST /v1/config/reload`: the routes of the gateway's configuration file replace the running ones.
    public func reloadConfiguration(reason: String? = nil) async throws(AdminCallError) -> AdminReply<RoutesResponse> {
        try await call("POST", "/v1/config/reload", reason: reason)
    }

    // MARK: Models

    /// `GET /v1/models`.
    public func models() async throws(AdminCallError) -> AdminReply<ModelsResponse> {
        try await call("GET", "/v1/models")
    }

    /// `GET /v1/models/{model}`.
    public func model(_ model: String) async throws(AdminCallError) -> AdminReply<ModelStatus> {
        try await call("GET", "/v1/models/\(Self.segment(model))")
    }

    /// `POST /v1/models/{model}/versions/{version}/load`: the model as it stands after the load.
    public func loadVersion(
        model: String,
        version: String,
        reason: String? = nil
    ) async throws(AdminCallError) -> AdminReply<ModelStatus> {
        try await call(
            "POST",
            "/v1/models/\(Self.segment(model))/versions/\(Self.segment(version))/load",
            reason: reason
        )
    }

    /// `POST /v1/models/{model}/versions/{version}/unload`: answers once the version's pool has shut down.
    public func unloadVersion(
        model: String,
        version: String,
        reason: String? = nil
    ) async throws(AdminCallError) -> AdminReply<UnloadResponse> {
        try await call(
            "POST",
            "/v1/models/\(Self.segment(model))/versions/\(Self.segment(version))/unload",
            reason: reason
        )
    }

    // MARK: Traffic, drift, fleet

    /// `GET /v1/shadow/report`.
    public func shadowReport() async throws(AdminCallError) -> AdminReply<ShadowReport> {
        try await call("GET", "/v1/shadow/report")
    }

    /// `GET /v1/bandits/{model}`.
    public func bandit(model: String) async throws(AdminCallError) -> AdminReply<BanditState> {
        try await call("GET", "/v1/bandits/\(Self.segment(model))")
    }

    /// `GET /v1/drift/{model}?top=N`.
    public func drift(model: String, top: Int? = nil) async throws(AdminCallError) -> AdminReply<DriftReport> {
        try await call("GET", "/v1/drift/\(Self.segment(model))" + (top.map { "?top=\(max($0, 0))" } ?? ""))
    }

    /// `GET /v1/tenants`: each tenant's admission counters and usage.
    public func tenants() async throws(AdminCallError) -> AdminReply<TenantsReport> {
        try await call("GET", "/v1/tenants")
    }

    /// `GET /v1/experiments/{model}`: every version of the model's route against its baseline.
    public func experiment(
        model: String,
        confidence: Double? = nil,
        maxIncrease: Double? = nil
    ) async throws(AdminCallError) -> AdminReply<ExperimentReport> {
        let query = [confidence.map { "confidence=\($0)" }, maxIncrease.map { "max_increase=\($0)" }].compactMap { $0 }
        return try await call(
            "GET",
            "/v1/experiments/\(Self.segment(model))" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        )
    }

    /// `GET /v1/fleet` (fleet mode only).
    public func fleet() async throws(AdminCallError) -> AdminReply<FleetStatus> {
        try await call("GET", "/v1/fleet")
    }

    // MARK: Rollouts

    /// `POST /v1/rollouts/{model}`: starts a rollout.
    public func startRollout(
        model: String,
        _ request: RolloutRequest,
        reason: String? = nil
    ) async throws(AdminCallError) -> AdminReply<RolloutStatus> {
        try await call("POST", "/v1/rollouts/\(Self.segment(model))", body: request, reason: reason)
    }

    /// `GET /v1/rollouts`.
    public func rollouts() async throws(AdminCallError) -> AdminReply<RolloutsResponse> {
        try await call("GET", "/v1/rollouts")
    }

    /// `GET /v1/rollouts/{model}`.
    public func rollout(model: String) async throws(AdminCallError) -> AdminReply<RolloutStatus> {
        try await call("GET", "/v1/rollouts/\(Self.segment(model))")
    }

    /// What an operator may do to a running rollout.
    public enum RolloutAction: String, Sendable, CaseIterable {
        /// Hold the weights (a failing gate still rolls back).
        case pause
        /// Continue; the step restarts.
        case resume
        /// Give the baseline all traffic back.
        case abort
    }

    /// `POST /v1/rollouts/{model}/pause|resume|abort`.
    public func rollout(
        model: String,
        _ action: RolloutAction,
        reason: String? = nil
    ) async throws(AdminCallError) -> AdminReply<RolloutStatus> {
        try await call("POST", "/v1/rollouts/\(Self.segment(model))/\(action.rawValue)", reason: reason)
    }

    // MARK: Plumbing

    /// `text` as one path segment.
    static func segment(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    private func call<Value: Decodable & Sendable>(
        _ method: String,
        _ path: String,
        body: some Encodable,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<Value> {
        let data: Data
        do { data = try AdminJSON.encoder().encode(body) } catch {
            throw AdminCallError(kind: .undecodable, message: "\(method) \(path): the request body: \(error)")
        }
        return try await call(method, path, data: data, reason: reason, ifGeneration: ifGeneration)
    }

    private func call<Value: Decodable & Sendable>(
        _ method: String,
        _ path: String,
        reason: String? = nil,
        ifGeneration: UInt64? = nil
    ) async throws(AdminCallError) -> AdminReply<Value> {
        try await call(method, path, data: nil, reason: reason, ifGeneration: ifGeneration)
    }

    private func call<Value: Decodable & Sendable>(
        _ method: String,
        _ path: String,
        data: Data?,
        reason: String?,
        ifGeneration: UInt64?
    ) async throws(AdminCallError) -> AdminReply<Value> {
        let answer: Answer
        do {
            let headers = ifGeneration.map { [(name: "If-Match", value: "\"\($0)\"")] } ?? []
            answer = try await send(method, path, body: data, reason: reason, headers: headers)
        } catch {
            throw AdminCallError(kind: .noAnswer, message: error.message)
        }
        guard (200..<300).contains(answer.status) else {
            throw AdminCallError(
                kind: .refused(status: answer.status),
                message: answer.body.isEmpty ? "no answer" : answer.errorMessage
            )
        }
        do {
            return AdminReply(value: try AdminJSON.decoder().decode(Value.self, from: answer.body), body: answer.body)
        } catch {
            throw AdminCallError(kind: .undecodable, message: "\(method) \(baseURL)\(path): the answer is not JSON")
        }
    }
}
