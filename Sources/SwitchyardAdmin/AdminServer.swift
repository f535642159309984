// The admin HTTP API (Hummingbird, HTTP/1.1 on its own port): the server's state, the shared plumbing of its
// endpoints (typed bodies in and out, errors as JSON that name the offending field), the router that puts the
// auth middleware in front of every resource's endpoints, model control, and running. Each resource's endpoints
// live in a file of their own (`*Endpoints.swift`); the bodies are SwitchyardAdminAPI's types.

import Foundation
import HTTPTypes
public import Hummingbird
import HummingbirdCore
public import Logging
import SwitchyardAdminAPI
public import SwitchyardCore
public import SwitchyardModels
public import SwitchyardMonitor
public import SwitchyardRouting
public import SwitchyardSink

/// An admin API error: an HTTP status and a message, answered as `{"error": message}`.
struct AdminHTTPError: HTTPResponseError, CustomStringConvertible {
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

    var description: String { "\(status.code) \(message)" }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = AdminServer.json(AdminErrorBody(error: message), status: status)
        if status == .unauthorized { response.headers[.wwwAuthenticate] = "Bearer realm=\"switchyard-admin\"" }
        return response
    }
}

/// The admin API's listener stopped (it could not bind, or failed later): the gateway's operators cannot reach it.
public struct AdminServerError: Error, Sendable, CustomStringConvertible {
    /// The listen address.
    public var listen: String
    /// Why it stopped.
    public var reason: String

    public var description: String { "admin API on \(listen) stopped: \(reason)" }
}

/// The admin API server.
public struct AdminServer: ModelControl {
    /// The settings (listen address, body limit).
    public let configuration: AdminConfiguration
    /// The route changes.
    public let control: AdminControl
    /// Progressive rollouts.
    public let rollouts: RolloutController
    private let token: [UInt8]?
    /// The token rules the auth middleware applies.
    let auth: AdminAuth
    let registry: ModelRegistry
    let sink: ComparisonSink?
    /// Drift detection and payload capture, for `/v1/drift` and metrics.
    let monitor: ModelMonitor?
    /// Admission per tenant, for its counters on /metrics.
    let tenants: TenantAdmission?
    /// The tracer's counters, for /metrics; `nil` while tracing is off.
    let tracing: (@Sendable () -> TraceCounters)?
    let isReady: @Sendable () -> Bool
    let frontEnd: @Sendable () -> FrontEndCounters?
    let metrics: MetricsRenderer
    let reload: (@Sendable () throws -> [RouteConfiguration])?
    private let logger: Logger

    static let reasonHeader = HTTPField.Name(AdminJSON.reasonHeader)!

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
    ///   - tracing: the tracer's counters, for metrics; `nil` while tracing is off.
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
        tenants: TenantAdmission? = nil,
        tracing: (@Sendable () -> TraceCounters)? = nil
    ) {
        self.configuration = configuration
        self.control = control
        self.token = configuration.token.map { Array($0.utf8) }
        self.auth = AdminAuth(
            token: configuration.token,
            tokenName: configuration.tokenName,
            isLoopback: configuration.isLoopback
        )
        self.registry = registry
        self.sink = sink
        self.isReady = isReady
        self.frontEnd = frontEnd
        self.metrics = MetricsRenderer(version: version)
        self.reload = reload
        self.logger = logger
        self.monitor = monitor
        self.tenants = tenants
        self.tracing = tracing
        self.rollouts = RolloutController(
            control: control,
            registry: registry,
            sink: sink,
            monitor: monitor,
            logger: logger
        )
    }

    /// Compares in time that depends only on the lengths, so the comparison leaks no prefix of the token.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool { AdminAuth.constantTimeEquals(a, b) }

    // MARK: Bodies

    /// `value` as the JSON answer (keys sorted, slashes unescaped, a final newline).
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data =
            (try? AdminJSON.encoder().encode(value)) ?? Data("{\"error\":\"response could not be encoded\"}".utf8)
        var body = ByteBuffer()
        body.writeBytes(data)
        body.writeString("\n")
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: body)
        )
    }

    /// The request body as `T`, within the size limit; a problem is a 400 naming the field, its path under `path`
    /// (`route`, `rollout`, …) unless the type names it whole.
    func decode<T: Decodable>(_ type: T.Type, from request: Request, path: String) async throws -> T {
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
        let decoder = AdminJSON.decoder()
        decoder.userInfo[AdminJSON.reasonInHeader] = Self.reason(request) != nil
        do {
            return try decoder.decode(T.self, from: data)
        } catch let error as AdminRequestError {
            throw AdminHTTPError(.badRequest, error.message)
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.isEmpty {
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            throw AdminHTTPError(.badRequest, "body: malformed JSON: \(underlying ?? context.debugDescription)")
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw AdminHTTPError(.badRequest, "body: expected a JSON object")
        } catch DecodingError.valueNotFound(_, let context) where context.codingPath.isEmpty {
            throw AdminHTTPError(.badRequest, "body: expected a JSON object")
        } catch {
            let detail = describe(error)
            throw AdminHTTPError(
                .badRequest,
                detail.hasPrefix("body") ? path + detail.dropFirst(4) : "\(path).\(detail)"
            )
        }
    }

    /// The reason of a change: the `X-Switchyard-Reason` header, else the body's `reason` field.
    static func reason(_ request: Request, body: String? = nil) -> String? {
        if let header = request.headers[reasonHeader], !header.isEmpty { return header }
        return body
    }

    /// Runs a change, mapping its errors to HTTP statuses.
    func perform<T>(_ body: () throws(SwitchyardError) -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw AdminHTTPError(error)
        }
    }

    /// Logs a change (never the token).
    func logChange(_ action: String, model: String, actor: String, generation: UInt64) {
        logger.notice(
            "admin change",
            metadata: ["action": "\(action)", "model": "\(model)", "actor": "\(actor)", "generation": "\(generation)"]
        )
    }

    // MARK: Router

    /// The routes of the admin API, every one behind the auth middleware.
    public func makeRouter() -> Router<AdminRequestContext> {
        let router = Router(context: AdminRequestContext.self)
        router.group()
            .add(middleware: AdminAuthMiddleware(auth: auth))
            .add(middleware: AuditTraceMiddleware<AdminRequestContext>())
            .addRoutes(probeEndpoints())
            .addRoutes(routeEndpoints())
            .addRoutes(modelEndpoints())
            .addRoutes(trafficEndpoints())
            .addRoutes(rolloutEndpoints())
            .addRoutes(driftEndpoints())
            .addRoutes(tenantEndpoints())
            .addRoutes(experimentEndpoints())
            .addRoutes(fleetEndpoints())
        return router
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
    /// once its pool has shut down, or, with `stillDraining`, once draining has outlasted the registry's bound.
    @discardableResult
    public func unloadVersion(
        model: String,
        version: String,
        actor: String,
        reason: String?
    ) async throws(SwitchyardError) -> RetirementOutcome {
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
        return try await registry.waitUntilRetired(unloaded)
    }

    // MARK: Running

    /// Starts serving on `configuration.listen` in a task of its own.
    /// - Returns: the serving task; it ends only by failing, with an `AdminServerError` (it could not bind, or it
    ///   stopped), which the caller should treat as fatal: a gateway its operators cannot reach should not look
    ///   healthy.
    /// - Throws: `invalidArgument` for a bad listen address.
    @discardableResult
    public func start() throws(SwitchyardError) -> Task<Void, any Error> {
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
                throw AdminServerError(listen: listen, reason: "\(error)")
            }
        }
    }
}
