// The admin HTTP API (Hummingbird, HTTP/1.1 on its own port): routes, models, shadow report, bandit state,
// health, readiness and metrics, with bearer-token auth and JSON errors that name the offending field.

import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
public import SwitchyardCore
public import SwitchyardModels
public import SwitchyardMonitor
public import SwitchyardRouting
public import SwitchyardSink

/// An admin API error: an HTTP status and a message, answered as `{"error": message}`.
struct AdminHTTPError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    init(_ error: SwitchyardError) {
        switch error.code {
        case .invalidArgument: status = .badRequest
        case .notFound: status = .notFound
        case .failedPrecondition: status = .conflict
        // Fleet mode: etcd unreachable. (Nothing else in the admin plane throws `unavailable`.)
        case .unavailable: status = .serviceUnavailable
        default: status = .internalServerError
        }
        message = error.message
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = AdminServer.json(ErrorBody(error: message), status: status)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"switchyard-admin\"" }
        return response
    }
}

struct ErrorBody: Encodable { var error: String }

/// The admin API server.
public struct AdminServer: ModelControl {
    /// The settings (listen address, body limit).
    public let configuration: AdminConfiguration
    /// The route changes.
    public let control: AdminControl
    /// Progressive rollouts.
    public let rollouts: RolloutController
    private let token: [UInt8]?
    private let registry: ModelRegistry
    private let sink: ComparisonSink?
    /// Drift detection and payload capture, for `/v1/drift` and metrics.
    let monitor: ModelMonitor?
    /// Admission per tenant, for its counters on /metrics.
    let tenants: TenantAdmission?
    private let isReady: @Sendable () -> Bool
    private let frontEnd: @Sendable () -> FrontEndCounters?
    private let metrics: MetricsRenderer
    private let reload: (@Sendable () throws -> [RouteConfiguration])?
    private let logger: Logger

    static let reasonHeader = HTTPField.Name("X-Switchyard-Reason")!

    /// Creates the server.
    /// - Parameters:
    ///   - configuration: settings; `configuration.token` (already merged with the environment) enables auth.
    ///   - control: applies route changes.
    ///   - registry: the loaded models.
    ///   - sink: the comparison sink, for the shadow report and metrics.
    ///   - isReady: whether the gateway serves (models loaded, not draining).
    ///   - frontEnd: the front end's counters, for metrics.
    ///   - version: the build version for `switchyard_build_info`.
    ///   - reload: reads the routes of the configuration file (`POST /v1/config/reload`); `nil` when there is none.
    ///   - logger: where requests that change routes are logged (never the token).
    ///   - monitor: drift detection and payload capture, for `/v1/drift` and metrics.
    public init(
        configuration: AdminConfiguration,
        control: AdminControl,
        registry: ModelRegistry,
        sink: ComparisonSink?,
        isReady: @escaping @Sendable () -> Bool,
        frontEnd: @escaping @Sendable () -> FrontEndCounters?,
        version: String,
        reload: (@Sendable () throws -> [RouteConfiguration])? = nil,
        logger: Logger,
        monitor: ModelMonitor? = nil,
        tenants: TenantAdmission? = nil
    ) {
        self.configuration = configuration
        self.control = control
        self.token = configuration.token.map { Array($0.utf8) }
        self.registry = registry
        self.sink = sink
        self.isReady = isReady
        self.frontEnd = frontEnd
        self.metrics = MetricsRenderer(version: version)
        self.reload = reload
        self.logger = logger
        self.monitor = monitor
        self.tenants = tenants
        self.rollouts = RolloutController(
            control: control,
            registry: registry,
            sink: sink,
            monitor: monitor,
            logger: logger
        )
    }

    // MARK: Auth

    /// The actor of a request, or a 401: with a token configured, mutations (and, beyond loopback,
    /// everything) need `Authorization: Bearer <token>`; a wrong token is refused everywhere.
    func authorize(_ request: Request, mutating: Bool) throws -> String {
        guard let token else { return "anonymous" }
        guard let header = request.headers[.authorization] else {
            if mutating || !configuration.isLoopback {
                throw AdminHTTPError(.unauthorized, "missing bearer token: send 'Authorization: Bearer <token>'")
            }
            return "anonymous"
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), Self.constantTimeEquals(Array(header.utf8.dropFirst(prefix.utf8.count)), token)
        else { throw AdminHTTPError(.unauthorized, "invalid bearer token") }
        return configuration.tokenName
    }

    /// Whether a probe (`/healthz`, `/readyz`) may see details: on loopback or with the right token. Without a
    /// token it is still answered; a wrong token is a 401 as everywhere.
    func authorizeProbe(_ request: Request) throws -> Bool {
        guard token != nil else { return true }
        if request.headers[.authorization] == nil { return configuration.isLoopback }
        _ = try authorize(request, mutating: false)
        return true
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

    // MARK: Bodies

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{\"error\":\"response could not be encoded\"}".utf8)
        var body = ByteBuffer()
        body.writeBytes(data)
        body.writeString("\n")
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: body)
        )
    }

    /// The request body as a JSON object, within the size limit.
    func object(_ request: Request) async throws -> [String: Any] {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw AdminHTTPError(
                .contentTooLarge,
                "request body exceeds admin.max_body_bytes (\(configuration.maxBodyBytes) bytes)"
            )
        }
        let data = Data(buffer.readableBytesView)
        guard !data.isEmpty else { throw AdminHTTPError(.badRequest, "body: expected a JSON object, got nothing") }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw AdminHTTPError(.badRequest, "body: malformed JSON: \(detail)")
        }
        guard let object = parsed as? [String: Any] else {
            throw AdminHTTPError(.badRequest, "body: expected a JSON object")
        }
        return object
    }

    /// Decodes `object` as `T`, reporting the failing key path.
    static func decode<T: Decodable>(_ type: T.Type, from object: Any, path: String) throws -> T {
        do {
            let data = try JSONSerialization.data(withJSONObject: object, options: [.fragmentsAllowed])
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            let detail = describe(error)
            throw AdminHTTPError(
                .badRequest,
                detail.hasPrefix("body") ? path + detail.dropFirst(4) : "\(path).\(detail)"
            )
        }
    }

    /// Refuses keys that are not in `allowed`, which would otherwise be ignored silently (a typo of `weight`).
    static func rejectUnknownKeys(_ object: [String: Any], allowed: Set<String>, path: String) throws {
        for key in object.keys.sorted() where !allowed.contains(key) {
            throw AdminHTTPError(
                .badRequest,
                "\(path).\(key): unknown field; expected one of \(allowed.sorted().joined(separator: ", "))"
            )
        }
    }

    /// The reason of a change: the `X-Switchyard-Reason` header, else the body's `reason` field.
    static func reason(_ request: Request, _ object: [String: Any]?) throws -> String? {
        if let header = request.headers[reasonHeader], !header.isEmpty { return header }
        guard let value = object?["reason"] else { return nil }
        guard let text = value as? String else { throw AdminHTTPError(.badRequest, "reason: expected a string") }
        return text
    }

    /// Runs a change, mapping its errors to HTTP statuses.
    func perform<T>(_ body: () throws(SwitchyardError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw AdminHTTPError(error)
        }
    }

    // MARK: Router

    /// The routes of the admin API.
    public func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        let server = self
        // Liveness and readiness need no token, so that an HTTP probe needs no secret; without one, beyond
        // loopback, they say only the status (a wrong token is still refused).
        router.get("/healthz") { request, _ -> Response in
            _ = try server.authorizeProbe(request)
            return Self.json(["status": "ok"])
        }
        router.get("/readyz") { request, _ -> Response in
            let detailed = try server.authorizeProbe(request)
            if server.isReady() { return Self.json(ReadinessBody(status: "ready", reasons: [])) }
            if !detailed {
                return Self.json(ReadinessBody(status: "not ready", reasons: []), status: .serviceUnavailable)
            }
            // Say why: the versions that failed to load (with the loader's reason), models left without a
            // version; otherwise the gateway is draining.
            var reasons: [String] = []
            for entry in server.registry.models {
                for (version, reason) in entry.failures.sorted(by: { $0.key < $1.key }) {
                    reasons.append("model '\(entry.name)' version \(version) failed to load: \(reason)")
                }
                if entry.versions.isEmpty { reasons.append("model '\(entry.name)' has no loaded version") }
            }
            if reasons.isEmpty { reasons.append("draining: the gateway is shutting down") }
            return Self.json(ReadinessBody(status: "not ready", reasons: reasons), status: .serviceUnavailable)
        }
        router.get("/metrics") { request, _ -> Response in
            _ = try server.authorize(request, mutating: false)
            var text = server.metrics.render(
                registry: server.registry,
                routing: server.control.routing,
                sink: server.sink,
                frontEnd: server.frontEnd(),
                ready: server.isReady(),
                cluster: server.control.fleet?.connection
            )
            text += server.metrics.renderMonitor(server.monitor)
            text += server.metrics.renderTenants(server.tenants)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
        router.get("/v1/routes") { request, _ -> Response in
            _ = try server.authorize(request, mutating: false)
            let routing = server.control.routing
            return Self.json(RoutesBody(generation: routing.generation, routes: routing.routes))
        }
        router.get("/v1/routes/:model") { request, context -> Response in
            _ = try server.authorize(request, mutating: false)
            let model = try context.parameters.require("model")
            let route = try server.perform { () throws(SwitchyardError) in try server.control.route(model: model) }
            return Self.json(ChangeBody(generation: server.control.routing.generation, route: route))
        }
        router.put("/v1/routes/:model") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            var object = try await server.object(request)
            let reason = try Self.reason(request, object)
            object["reason"] = nil
            try Self.rejectUnknownKeys(
                object,
                allowed: ["model", "policy", "versions", "sticky", "bandit", "shadow"],
                path: "route"
            )
            if let named = object["model"] {
                guard let named = named as? String, named == model else {
                    throw AdminHTTPError(
                        .badRequest,
                        "route.model: the body names '\(object["model"] ?? "")' but the path names '\(model)'"
                    )
                }
            }
            object["model"] = model
            if let versions = object["versions"] as? [Any] {
                for (index, entry) in versions.enumerated() {
                    guard let entry = entry as? [String: Any] else { continue }
                    try Self.rejectUnknownKeys(entry, allowed: ["version", "weight"], path: "route.versions[\(index)]")
                }
            }
            let route = try Self.decode(RouteConfiguration.self, from: object, path: "route")
            let generation = try await server.submit(.put(route), actor: actor, reason: reason, request: request)
            server.logChange("route.put", model: model, actor: actor, generation: generation)
            return Self.json(ChangeBody(generation: generation, route: server.control.routing.route(for: model)))
        }
        router.delete("/v1/routes/:model") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            let reason = try Self.reason(request, nil)
            let generation = try await server.submit(
                .delete(model: model),
                actor: actor,
                reason: reason,
                request: request
            )
            server.logChange("route.delete", model: model, actor: actor, generation: generation)
            return Self.json(ChangeBody(generation: generation, route: nil))
        }
        router.patch("/v1/routes/:model/weights") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            let object = try await server.object(request)
            let reason = try Self.reason(request, object)
            try Self.rejectUnknownKeys(object, allowed: ["weights", "reason"], path: "body")
            guard let raw = object["weights"] else {
                throw AdminHTTPError(.badRequest, "weights: required field missing; expected {\"version\": weight, …}")
            }
            guard let table = raw as? [String: Any] else {
                throw AdminHTTPError(.badRequest, "weights: expected an object {\"version\": weight, …}")
            }
            var weights: [String: Double] = [:]
            for (version, value) in table {
                // Through the decoder: `NSNumber` cannot tell `true` from 1 on every platform.
                guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]),
                    let number = try? JSONDecoder().decode(Double.self, from: data)
                else {
                    throw AdminHTTPError(.badRequest, "weights.\(version): expected a number, got \(value)")
                }
                weights[version] = number
            }
            let generation = try await server.submit(
                .weights(model: model, weights),
                actor: actor,
                reason: reason,
                request: request
            )
            server.logChange("route.weights", model: model, actor: actor, generation: generation)
            return Self.json(ChangeBody(generation: generation, route: server.control.routing.route(for: model)))
        }
        router.put("/v1/routes/:model/shadow") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            var object = try await server.object(request)
            let reason = try Self.reason(request, object)
            object["reason"] = nil
            try Self.rejectUnknownKeys(object, allowed: ["version", "fraction", "explicit"], path: "shadow")
            // An empty object, or fraction 0, turns mirroring off.
            let shadow: RouteConfiguration.ShadowSettings? =
                object.isEmpty
                ? nil : try Self.decode(RouteConfiguration.ShadowSettings.self, from: object, path: "shadow")
            let generation = try await server.submit(
                .shadow(model: model, shadow?.fraction == 0 ? nil : shadow),
                actor: actor,
                reason: reason,
                request: request
            )
            server.logChange("route.shadow", model: model, actor: actor, generation: generation)
            return Self.json(ChangeBody(generation: generation, route: server.control.routing.route(for: model)))
        }
        router.put("/v1/routes/:model/bandit") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            var object = try await server.object(request)
            let reason = try Self.reason(request, object)
            object["reason"] = nil
            try Self.rejectUnknownKeys(
                object,
                allowed: [
                    "algorithm", "epsilon", "exploration", "discount", "window", "reward", "latency_target_ms",
                    "feedback_ttl_s",
                ],
                path: "bandit"
            )
            let bandit = try Self.decode(RouteConfiguration.BanditSettings.self, from: object, path: "route.bandit")
            let generation = try await server.submit(
                .bandit(model: model, bandit),
                actor: actor,
                reason: reason,
                request: request
            )
            server.logChange("route.bandit", model: model, actor: actor, generation: generation)
            return Self.json(ChangeBody(generation: generation, route: server.control.routing.route(for: model)))
        }
        router.post("/v1/config/reload") { request, _ -> Response in
            let actor = try server.authorize(request, mutating: true)
            let reason = try Self.reason(request, nil)
            guard let reload = server.reload else {
                throw AdminHTTPError(
                    .conflict,
                    "no configuration file to reload: the gateway was started without --config"
                )
            }
            let routes: [RouteConfiguration]
            do {
                routes = try reload()
            } catch {
                throw AdminHTTPError(.badRequest, "configuration not reloaded; the running routes stay: \(error)")
            }
            let generation = try server.perform { () throws(SwitchyardError) in
                try server.control.replaceAll(routes: routes, actor: actor, reason: reason ?? "configuration reloaded")
            }
            server.logChange("routes.reload", model: "*", actor: actor, generation: generation)
            return Self.json(RoutesBody(generation: generation, routes: server.control.routing.routes))
        }
        router.get("/v1/models") { request, _ -> Response in
            _ = try server.authorize(request, mutating: false)
            return Self.json(ModelsBody(models: server.registry.models.map(ModelBody.init)))
        }
        server.addDriftRoutes(to: router, registry: server.registry)
        server.addFleetRoutes(to: router)
        router.get("/v1/shadow/report") { request, _ -> Response in
            _ = try server.authorize(request, mutating: false)
            let aggregates = server.sink?.aggregates ?? [:]
            let pairs = aggregates.sorted { $0.key.description < $1.key.description }.map(ShadowPairBody.init)
            return Self.json(ShadowReportBody(pairs: pairs, sink: server.sink.map { SinkBody($0.statistics) }))
        }
        router.get("/v1/bandits/:model") { request, context -> Response in
            _ = try server.authorize(request, mutating: false)
            let model = try context.parameters.require("model")
            try server.perform { () throws(SwitchyardError) in
                try server.control.requireModel(model)
            }
            guard let report = server.control.routing.banditState(model: model) else {
                throw AdminHTTPError(.notFound, "model '\(model)' has no bandit route")
            }
            return Self.json(BanditBody(model: model, report: report))
        }
        router.get("/v1/models/:model") { request, context -> Response in
            _ = try server.authorize(request, mutating: false)
            let model = try context.parameters.require("model")
            try server.perform { () throws(SwitchyardError) in
                try server.control.requireModel(model)
            }
            guard let entry = server.registry.model(named: model) else {
                throw AdminHTTPError(.notFound, "unknown model '\(model)'")
            }
            return Self.json(ModelBody(entry))
        }
        router.post("/v1/models/:model/versions/:version/load") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            let version = try context.parameters.require("version")
            let reason = try Self.reason(request, nil)
            let entry = try server.perform { () throws(SwitchyardError) in
                try server.auditedLoad(model: model, version: version, actor: actor, reason: reason)
            }
            guard let entry else { throw AdminHTTPError(.conflict, "model '\(model)' was unloaded meanwhile") }
            return Self.json(ModelBody(entry), status: .created)
        }
        router.post("/v1/models/:model/versions/:version/unload") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            let version = try context.parameters.require("version")
            let reason = try Self.reason(request, nil)
            do throws(SwitchyardError) {
                try await server.unloadVersion(model: model, version: version, actor: actor, reason: reason)
            } catch {
                throw AdminHTTPError(error)
            }
            return Self.json(UnloadBody(model: model, version: version, unloaded: true))
        }
        router.get("/v1/rollouts") { request, _ -> Response in
            _ = try server.authorize(request, mutating: false)
            return Self.json(RolloutsBody(rollouts: server.rollouts.all))
        }
        router.get("/v1/rollouts/:model") { request, context -> Response in
            _ = try server.authorize(request, mutating: false)
            let model = try context.parameters.require("model")
            guard let status = server.rollouts.status(model: model) else {
                throw AdminHTTPError(.notFound, "model '\(model)' has no rollout")
            }
            return Self.json(status)
        }
        router.post("/v1/rollouts/:model") { request, context -> Response in
            let actor = try server.authorize(request, mutating: true)
            let model = try context.parameters.require("model")
            var object = try await server.object(request)
            let reason = try Self.reason(request, object)
            object["reason"] = nil
            try Self.rejectUnknownKeys(
                object,
                allowed: ["baseline", "canary", "steps", "step_seconds", "gates", "shadow_fraction"],
                path: "rollout"
            )
            if let gates = object["gates"] as? [String: Any] {
                try Self.rejectUnknownKeys(
                    gates,
                    allowed: [
                        "max_error_rate", "max_p99_ms", "min_shadow_agreement", "max_input_drift",
                        "max_output_drift", "error_rate_vs_baseline", "latency_vs_baseline", "min_requests",
                    ],
                    path: "rollout.gates"
                )
            }
            let plan = try Self.decode(RolloutPlan.self, from: object, path: "rollout")
            let status = try server.perform { () throws(SwitchyardError) in
                try server.rollouts.start(model: model, plan: plan, actor: actor, reason: reason)
            }
            server.logChange("rollout.start", model: model, actor: actor, generation: server.control.routing.generation)
            return Self.json(status, status: .created)
        }
        for action in ["pause", "resume", "abort"] {
            router.post("/v1/rollouts/:model/\(action)") { request, context -> Response in
                let actor = try server.authorize(request, mutating: true)
                let model = try context.parameters.require("model")
                let reason = try Self.reason(request, nil)
                let status = try server.perform { () throws(SwitchyardError) in
                    switch action {
                    case "pause": try server.rollouts.pause(model: model, actor: actor, reason: reason)
                    case "resume": try server.rollouts.resume(model: model, actor: actor, reason: reason)
                    default: try server.rollouts.abort(model: model, actor: actor, reason: reason)
                    }
                }
                server.logChange(
                    "rollout.\(action)",
                    model: model,
                    actor: actor,
                    generation: server.control.routing.generation
                )
                return Self.json(status)
            }
        }
        return router
    }

    private func logChange(_ action: String, model: String, actor: String, generation: UInt64) {
        logger.notice(
            "admin change",
            metadata: ["action": "\(action)", "model": "\(model)", "actor": "\(actor)", "generation": "\(generation)"]
        )
    }

    // MARK: Model control (the admin API's and the gRPC repository RPCs' one path)

    /// Loads `version` of `model`, audited and logged as `model.load`.
    /// - Returns: the model as it stood right after the load (`nil` if a concurrent unload removed it since).
    func auditedLoad(model: String, version: String, actor: String, reason: String?) throws(SwitchyardError)
        -> ModelEntry?
    {
        let entry = try control.audit(
            action: "model.load",
            model: model,
            version: version,
            actor: actor,
            reason: reason
        ) { () throws(SwitchyardError) in
            try registry.loadVersion(model: model, version: version)
            return registry.model(named: model)
        }
        logChange("model.load", model: "\(model):\(version)", actor: actor, generation: control.routing.generation)
        return entry
    }

    /// Whether a caller of the inference port may load or unload models: callers on this machine may (as the
    /// admin port on loopback lets them); beyond loopback only with the admin token, and not at all when none is
    /// configured. A wrong token is refused everywhere, as on the admin port.
    public func authorizeChange(authorization: String?, peerIsLoopback: Bool) -> ChangeAuthorization {
        if let authorization, let token {
            let prefix = "Bearer "
            guard authorization.hasPrefix(prefix),
                Self.constantTimeEquals(Array(authorization.utf8.dropFirst(prefix.utf8.count)), token)
            else { return .unauthenticated("invalid bearer token in 'authorization' metadata") }
            return .allowed(actor: configuration.tokenName)
        }
        if peerIsLoopback { return .allowed(actor: "anonymous") }
        guard token != nil else {
            return .permissionDenied(
                "model control from beyond loopback needs the admin token, and none is configured "
                    + "(admin.token or SWITCHYARD_ADMIN_TOKEN); call from this machine or configure one"
            )
        }
        return .unauthenticated("missing admin token: send metadata 'authorization: Bearer <token>'")
    }

    /// Loads `version` of `model` through the admin API's audited path.
    public func loadVersion(model: String, version: String, actor: String, reason: String?) throws(SwitchyardError) {
        _ = try auditedLoad(model: model, version: version, actor: actor, reason: reason)
    }

    /// Unloads `version` of `model` through the admin API's audited path, refused while a route uses it; returns
    /// once its pool has shut down.
    public func unloadVersion(
        model: String,
        version: String,
        actor: String,
        reason: String?
    ) async throws(SwitchyardError) {
        let unloaded = try control.audit(
            action: "model.unload",
            model: model,
            version: version,
            actor: actor,
            reason: reason
        ) { () throws(SwitchyardError) in
            try registry.unloadVersion(model: model, version: version) { control.use(model: $0, version: $1) }
        }
        logChange("model.unload", model: "\(model):\(version)", actor: actor, generation: control.routing.generation)
        // The registry drains the version (calls holding it finish) and stops its pool on its own thread.
        try await registry.waitUntilRetired(unloaded)
    }

    // MARK: Running

    /// Starts serving on `configuration.listen` in a task of its own; a failure to bind is logged and ends the
    /// process, since a gateway whose operators cannot reach it should not look healthy.
    /// - Throws: `invalidArgument` for a bad listen address.
    @discardableResult
    public func start() throws(SwitchyardError) -> Task<Void, Never> {
        let address: HostAndPort
        do { address = try HostAndPort(parsing: configuration.listen) } catch {
            throw .invalidArgument("admin.listen: \(error)")
        }
        // Hummingbird's idle timeout counts from the last complete request part: a request head that never
        // completes (slowloris on the admin port) closes the connection after it.
        let idle = HTTP1Channel.Configuration(
            idleTimeout: .milliseconds(Int64(configuration.idleTimeoutSeconds * 1000))
        )
        let app = Application(
            router: makeRouter(),
            server: .http1(configuration: idle),
            configuration: ApplicationConfiguration(
                address: .hostname(address.host, port: address.port),
                serverName: "switchyard-admin"
            ),
            logger: logger
        )
        rollouts.start()
        let logger = self.logger
        let listen = configuration.listen
        let authenticated = configuration.token != nil
        return Task.detached {
            do {
                logger.notice("admin API listening", metadata: ["address": "\(listen)", "auth": "\(authenticated)"])
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                logger.critical("admin API stopped", metadata: ["address": "\(listen)", "reason": "\(error)"])
                exit(1)
            }
        }
    }
}

// MARK: Response bodies

struct RoutesBody: Encodable {
    var generation: UInt64
    var routes: [RouteConfiguration]
}

struct ChangeBody: Encodable {
    var generation: UInt64
    var route: RouteConfiguration?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(generation, forKey: .generation)
        try c.encode(route, forKey: .route)
    }

    enum CodingKeys: String, CodingKey { case generation, route }
}

struct ModelsBody: Encodable { var models: [ModelBody] }

struct ReadinessBody: Encodable {
    var status: String
    var reasons: [String]
}

struct UnloadBody: Encodable {
    var model: String
    var version: String
    var unloaded: Bool
}

struct RolloutsBody: Encodable { var rollouts: [RolloutStatus] }

struct ModelBody: Encodable {
    struct Version: Encodable {
        var version: String
        var requests_succeeded: UInt64
        var requests_failed: UInt64
        var queue_depth: Int
        var batches: UInt64
    }
    var name: String
    var ready: Bool
    var default_version: String?
    var versions: [Version]
    var failures: [String: String]
    var slo_ms: Double
    var max_batch_size: Int

    init(_ entry: ModelEntry) {
        name = entry.name
        ready = entry.isReady
        default_version = entry.defaultVersion?.version
        versions = entry.versions.map { version in
            let pool = version.pool.statistics
            return Version(
                version: version.version,
                requests_succeeded: version.statistics.successCount.load(ordering: .relaxed),
                requests_failed: version.statistics.failureCount.load(ordering: .relaxed),
                queue_depth: pool.queued,
                batches: pool.batches
            )
        }
        failures = entry.failures
        slo_ms = entry.configuration.sloMilliseconds
        max_batch_size = entry.configuration.maxBatchSize
    }
}

struct ShadowPairBody: Encodable {
    var model: String
    var primary_version: String
    var shadow_version: String
    var pairs: UInt64
    var compared: UInt64
    var classified: UInt64
    var agreed: UInt64
    var agreement_rate: Double?
    var divergence_p50: Double?
    var divergence_p99: Double?
    var divergence_max: Double
    var mean_latency_delta_ms: Double?
    var primary_errors: UInt64
    var shadow_errors: UInt64

    init(_ item: (key: ComparisonKey, value: ComparisonAggregate)) {
        let a = item.value
        model = item.key.model
        primary_version = item.key.primaryVersion
        shadow_version = item.key.shadowVersion
        pairs = a.pairs
        compared = a.compared
        classified = a.classified
        agreed = a.agreed
        agreement_rate = a.agreementRate
        divergence_p50 = a.divergence.quantile(0.5)
        divergence_p99 = a.divergence.quantile(0.99)
        divergence_max = a.divergence.max
        mean_latency_delta_ms = a.meanLatencyDeltaMilliseconds
        primary_errors = a.primaryErrors
        shadow_errors = a.shadowErrors
    }
}

struct SinkBody: Encodable {
    var recorded: UInt64
    var written: UInt64
    var dropped_queue_full: UInt64
    var dropped_write_failed: UInt64
    var queued: Int

    init(_ s: SinkStatistics) {
        recorded = s.recorded
        written = s.written
        dropped_queue_full = s.droppedQueueFull
        dropped_write_failed = s.droppedWriteFailed
        queued = s.queued
    }
}

struct ShadowReportBody: Encodable {
    var pairs: [ShadowPairBody]
    var sink: SinkBody?
}

struct BanditBody: Encodable {
    struct Arm: Encodable {
        var version: String
        var pulls: UInt64
        var rewards: UInt64
        var observations: Double
        var reward_sum: Double
        var mean_reward: Double?
        var posterior_alpha: Double
        var posterior_beta: Double
    }
    var model: String
    var algorithm: String
    var arms: [Arm]

    init(model: String, report: BanditReport) {
        self.model = model
        algorithm = report.algorithm.rawValue
        arms = zip(report.versions, report.arms).map { version, arm in
            Arm(
                version: version,
                pulls: arm.pulls,
                rewards: arm.rewards,
                observations: arm.observations,
                reward_sum: arm.rewardSum,
                mean_reward: arm.meanReward,
                posterior_alpha: arm.posteriorAlpha,
                posterior_beta: arm.posteriorBeta
            )
        }
    }
}
