// `switchyard serve`: load the configuration and model repository, serve gRPC until SIGINT/SIGTERM,
// then drain: readiness off, GOAWAY, finish in-flight calls, stop the pools, exit 0.

public import ArgumentParser
import Foundation
import Logging
import SwitchyardAdmin
import SwitchyardAdminAPI
import SwitchyardCluster
import SwitchyardCore
import SwitchyardEngine
import SwitchyardHTTP2
import SwitchyardInference
import SwitchyardModels
import SwitchyardMonitor
import SwitchyardRouting
import SwitchyardSink
import SwitchyardTracing
import Synchronization
import Yams

#if canImport(Glibc)
    import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the models of a repository over gRPC (KServe v2 / Open Inference Protocol)."
    )

    @Option(name: .long, help: "YAML configuration file (switchyard.yaml).")
    var config: String?

    @Option(name: .long, help: "Model repository directory (default: models).")
    var modelRepository: String?

    @Option(name: .long, help: "gRPC listen address HOST:PORT (default: 127.0.0.1:8001).")
    var listen: String?

    @Option(name: .long, help: "v2 REST listen address HOST:PORT (default: 127.0.0.1:8000); \"\" turns it off.")
    var restListen: String?

    @Option(name: .long, help: "Admin API listen address HOST:PORT (default: 127.0.0.1:8002).")
    var adminListen: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Fleet mode: the admin address HOST:PORT peers reach this replica at (overrides "
                + "cluster.advertise_admin; in Kubernetes $(POD_IP):8002)."
        )
    )
    var advertiseAdmin: String?

    @Option(name: .long, help: "Front-end event-loop threads (default: 1).")
    var threads: Int?

    @Option(
        name: .customLong("io-cpus"),
        help: "CPUs the event loops run on, as for taskset -c (e.g. 0 or 0-1; default: any)."
    )
    var ioCPUs: String?

    @Option(name: .long, help: "TLS certificate chain (PEM); serves TLS with ALPN h2 when set with --tls-key.")
    var tlsCert: String?

    @Option(name: .long, help: "TLS private key (PEM).")
    var tlsKey: String?

    @Option(name: .long, help: "CA bundle (PEM) that client certificates must chain to; requires client certificates.")
    var tlsClientCa: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(
        name: .long,
        help: "Engine for every model: automatic (fused when the graph is a chain of dense layers) or reference."
    )
    var engine: EngineSelection = .automatic

    func run() throws {
        let settings = try resolvedConfiguration()
        let adminSettings = try resolvedAdminConfiguration()
        // One level for every logger, which Triton's LogSettings RPC can change while the gateway serves.
        let level = LogLevelSwitch(logLevel)
        LoggingSystem.bootstrap { label in level.handler(StreamLogHandler.standardError(label: label)) }
        let logger = Logger(label: "switchyard")

        // Block the shutdown signals before any thread starts so that every thread inherits the mask and
        // only the main thread's sigwait sees them.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        let registry = try ModelRegistry.load(
            repository: ModelRepository(root: settings.modelRepository),
            engineLoader: engine.loader,
            logger: logger
        )
        let routing: RoutingTable
        do {
            routing = try RoutingTable(routes: settings.routes, catalog: catalog(of: registry))
        } catch {
            registry.shutdown()
            throw ValidationError("invalid configuration: \(error.message)")
        }
        let control: AdminControl
        let fleet: FleetRoutes?
        do {
            fleet = try settings.cluster.map { (cluster) throws(SwitchyardError) in
                try makeFleet(cluster, routing: routing, logger: logger)
            }
            control = try makeAdminControl(
                adminSettings,
                routing: routing,
                registry: registry,
                fleet: fleet,
                logger: logger
            )
        } catch {
            registry.shutdown()
            throw ValidationError("\(error.message)")
        }
        // Fleet mode: read the fleet's routes before serving (the file's routes seed an empty fleet only), then
        // follow them. An etcd that does not answer in time leaves the file's routes in force until it does.
        let fleetTask = fleet.map { fleet in Task { await fleet.run(seed: settings.routes) } }
        control.noteConfigurationRoutes(settings.routes)
        if let fleet, let cluster = settings.cluster {
            let deadline = ContinuousClock.now + .milliseconds(max(2000, 2 * cluster.etcd.dialTimeoutMilliseconds))
            while fleet.current == nil && ContinuousClock.now < deadline { usleep(5000) }
            if let current = fleet.current {
                logger.notice(
                    "fleet mode: routes from etcd",
                    metadata: [
                        "prefix": "\(cluster.etcd.prefix)", "replica": "\(cluster.replicaID)",
                        "generation": "\(current.revision)", "routes": "\(current.routes.keys.sorted())",
                    ]
                )
                let differing = AdminControl.differences(current.configurations, settings.routes)
                if !differing.isEmpty {
                    logger.notice(
                        Logger.Message(
                            stringLiteral: "fleet mode: the fleet's routes are in force, not the file's; the file's "
                                + "routes: seed an empty fleet only, and a reload (file change, SIGHUP, "
                                + "POST /v1/config/reload) writes to the fleet only the routes the file changes"
                        ),
                        metadata: ["differing": "\(differing)"]
                    )
                }
            } else {
                logger.warning(
                    "fleet mode: etcd did not answer at start; serving the file's routes until it does",
                    metadata: ["reason": "\(fleet.connection.reason ?? "unknown")"]
                )
            }
        }
        let sink: ComparisonSink
        do {
            sink = try ComparisonSink(configuration: settings.sink, logger: logger)
        } catch {
            registry.shutdown()
            throw ValidationError("invalid configuration: \(error.message)")
        }
        let monitor: ModelMonitor?
        do {
            monitor = try makeMonitor(registry: registry, repository: settings.modelRepository, logger: logger)
        } catch {
            registry.shutdown()
            sink.close()
            throw ValidationError("invalid configuration: \(error.message)")
        }
        let tenants = settings.tenants.map { TenantAdmission($0) }
        // Tracing off (no `tracing:` or no endpoint): no tracer, and calls pay one nil check per step.
        let tracer: OTelCallTracer?
        do {
            tracer = try settings.tracing.flatMap { (tracing) throws(SwitchyardError) in
                tracing.isEnabled ? try OTelCallTracer(configuration: tracing, logger: logger) : nil
            }
        } catch {
            registry.shutdown()
            sink.close()
            monitor?.close()
            throw ValidationError("invalid configuration: \(error.message)")
        }
        tracer?.run()
        let service = InferenceService(
            registry: registry,
            routing: routing,
            sink: sink,
            monitor: monitor,
            tenants: tenants,
            logLevel: level,
            tracer: tracer
        )
        let server = try GRPCServer(
            configuration: GRPCServer.Configuration(
                listen: try HostAndPort(parsing: settings.listen),
                eventLoops: settings.threads,
                tls: settings.tls,
                limits: settings.limits,
                loopCPUs: settings.ioCPUs.flatMap(SystemInfo.parseCPUList) ?? [],
                restListen: settings.restListen.isEmpty ? nil : try HostAndPort(parsing: settings.restListen)
            ),
            service: service,
            httpService: RESTService(service: service),
            logger: logger
        )
        let port = try server.start()
        if let fleet {
            let token = adminSettings.token
            service.attach { requestID, reward in
                switch await fleet.forwardFeedback(requestID: requestID, reward: reward, token: token) {
                case "applied": .applied
                case "late": .late
                default: nil
                }
            }
            let started = AdminControl.now()
            let address = "\(HostAndPort(host: try HostAndPort(parsing: settings.listen).host, port: port))"
            let adminAddress = try advertisedAdmin(settings.cluster, listen: adminSettings.listen, logger: logger)
            fleet.describeReplica {
                FleetReplica(
                    replica: fleet.replicaID,
                    address: address,
                    admin: adminAddress,
                    build: InferenceService.serverVersion,
                    startedAt: started,
                    ready: service.isReady,
                    routeGeneration: routing.generation,
                    models: Dictionary(
                        uniqueKeysWithValues: registry.models.map { ($0.name, $0.versions.map(\.version)) }
                    )
                )
            }
        }
        var reload: (@Sendable () throws -> [RouteConfiguration])?
        if let path = config { reload = { try Serve.routes(inConfigurationFile: path) } }
        let admin = AdminServer(
            configuration: adminSettings,
            control: control,
            registry: registry,
            sink: sink,
            isReady: { service.isReady },
            frontEnd: {
                let statistics = server.statistics
                var counters = FrontEndCounters()
                counters.callsByCode = Dictionary(
                    uniqueKeysWithValues: statistics.callsByStatus.map { ($0.key.rawValue, $0.value) }
                )
                counters.connectionsOpen = statistics.connectionsOpen
                counters.connectionsAccepted = statistics.connectionsAccepted
                counters.connectionsRejected = statistics.connectionsRejected
                counters.protocolErrors = statistics.protocolErrors
                counters.responsesDropped = statistics.responsesDropped
                counters.connectionsThrottled = statistics.connectionsThrottled
                counters.connectionsTimedOut = statistics.connectionsTimedOut
                counters.acceptPauses = statistics.acceptPauses
                counters.bufferedRequestBytes = statistics.bufferedRequestBytes
                return counters
            },
            version: InferenceService.serverVersion,
            reload: reload,
            logger: logger,
            monitor: monitor,
            tenants: tenants,
            tracing: tracer.map { tracer in { @Sendable in tracer.counters } }
        )
        // RepositoryModelLoad/Unload go through the admin plane's audited path and token policy.
        service.attach(modelControl: admin)
        // Left running through the drain, so that /readyz answers 503 until the process exits. A listener that
        // fails (it could not bind) ends the process: a gateway its operators cannot reach should not look healthy.
        let adminService = try admin.start()
        Task.detached {
            do {
                try await adminService.value
            } catch {
                logger.critical("admin API stopped", metadata: ["reason": "\(error)"])
                Foundation.exit(1)
            }
        }
        var watcher: ConfigWatcher?
        if adminSettings.watchConfig, let path = config {
            watcher = ConfigWatcher(path: path, intervalSeconds: 1, logger: logger) {
                do {
                    let routes = try Serve.routes(inConfigurationFile: path)
                    Self.reload(
                        control,
                        routes: routes,
                        actor: "config_watch",
                        reason: "configuration file changed",
                        logger: logger
                    )
                } catch {
                    logger.error("routes not reloaded; keeping the running ones", metadata: ["reason": "\(error)"])
                }
            }
            try watcher?.start()
        }
        let listenAddress = try HostAndPort(parsing: settings.listen)
        var restAddress = "off"
        if let restPort = server.restPort, let rest = try? HostAndPort(parsing: settings.restListen) {
            restAddress = "\(HostAndPort(host: rest.host, port: restPort))"
        }
        logger.notice(
            "serving",
            metadata: [
                "address": "\(HostAndPort(host: listenAddress.host, port: port))",
                "rest": "\(restAddress)",
                "tls": "\(settings.tls != nil)",
                "models": "\(registry.models.map { "\($0.name)@\($0.versions.map(\.version))" })",
                "routes": "\(routing.routes.map { "\($0.model):\($0.policy)" })",
                "sink": "\(sink.directory ?? "aggregates only")",
                "tracing": "\(tracer == nil ? "off" : settings.tracing?.otlpEndpoint ?? "off")",
            ]
        )

        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                reloadRoutes(control, logger: logger)
                continue
            }
            logger.notice(
                "draining",
                metadata: [
                    "signal": "\(received == SIGINT ? "SIGINT" : "SIGTERM")", "grace_s": "\(settings.drainSeconds)",
                ]
            )
            watcher?.stop()
            fleetTask?.cancel()
            service.beginDraining()
            server.shutdown(gracePeriodSeconds: settings.drainSeconds)
            registry.shutdown()
            // The pools have completed every shadow job, so every pair has reached the sink.
            sink.close()
            logComparisons(sink, logger: logger)
            // Every call has completed, so every sampled call is queued: write them and the partial .npy batches.
            monitor?.close()
            // Every call has completed, so every traced call is queued: its spans get one last export attempt,
            // bounded by the export timeout.
            if let tracer, let tracing = settings.tracing {
                Self.wait(
                    for: Task { await tracer.shutdown() },
                    seconds: Double(tracing.exportTimeoutMilliseconds) / 1000 + 1
                )
            }
            if let fleetTask { Self.wait(for: fleetTask, seconds: 2) }
            logger.notice("stopped")
            return
        }
    }

    /// Waits up to `seconds` for a cancelled task to finish its cleanup (fleet mode: revoking this replica's lease,
    /// so that it leaves the fleet's view at once rather than when the lease expires).
    private static func wait(for task: Task<Void, Never>, seconds: Double) {
        let finished = ConditionLock(false)
        let done = MonotonicCondition()
        Task {
            await task.value
            finished.withLock { finished in
                finished = true
                done.signal()
            }
        }
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: UInt64(seconds * 1e9))
        finished.withLock(waitingOn: done, while: { !$0 }, until: deadline) { _ in }
    }

    /// The drift and capture monitor when a model's config.yaml asks for either, with every loaded version's
    /// reference and capture directory checked now; `nil` when no model does.
    private func makeMonitor(registry: ModelRegistry, repository: String, logger: Logger) throws(SwitchyardError)
        -> ModelMonitor?
    {
        let versions = registry.models.flatMap(\.versions)
        guard versions.contains(where: { $0.configuration.drift != nil || $0.configuration.capture != nil }) else {
            return nil
        }
        let monitor = try ModelMonitor(repository: repository, logger: logger)
        do throws(SwitchyardError) {
            for version in versions where version.configuration.drift != nil || version.configuration.capture != nil {
                do throws(SwitchyardError) {
                    try monitor.prepare(version)
                } catch {
                    throw SwitchyardError(
                        error.code,
                        "model '\(version.model)' version \(version.version): \(error.message)"
                    )
                }
            }
        } catch {
            monitor.close()
            throw error
        }
        return monitor
    }

    /// What the router needs to know of the loaded models.
    private func catalog(of registry: ModelRegistry) -> @Sendable (String) -> ModelCatalogEntry? {
        { [registry] name in
            guard let entry = registry.model(named: name) else { return nil }
            return ModelCatalogEntry(
                versions: entry.versions.map(\.version),
                latencyTargetMilliseconds: entry.configuration.sloMilliseconds
            )
        }
    }

    /// The admin address this replica publishes to its peers: `--advertise-admin`, else `cluster.advertise_admin`,
    /// else `admin.listen`, with a warning when peers cannot reach that (a wildcard host).
    private func advertisedAdmin(_ cluster: ClusterConfiguration?, listen: String, logger: Logger) throws -> String {
        if let advertiseAdmin {
            if let problem = ClusterConfiguration.advertiseProblem(advertiseAdmin, key: "--advertise-admin") {
                throw ValidationError(problem)
            }
            return advertiseAdmin
        }
        if let advertised = cluster?.advertiseAdmin { return advertised }
        if ClusterConfiguration.advertiseProblem(listen, key: "admin.listen") != nil {
            logger.warning(
                Logger.Message(
                    stringLiteral: "fleet mode: the admin address is a wildcard, which peers cannot reach, so "
                        + "Feedback/Reports for calls this replica routed cannot be forwarded to it; set "
                        + "cluster.advertise_admin or --advertise-admin"
                ),
                metadata: ["admin_listen": "\(listen)"]
            )
        }
        return listen
    }

    /// SIGHUP: re-reads `routes:` from the configuration file and swaps the routing table; an invalid file
    /// keeps the running routes.
    private func reloadRoutes(_ control: AdminControl, logger: Logger) {
        guard config != nil else {
            logger.notice("SIGHUP received without --config; nothing to reload")
            return
        }
        do {
            let settings = try resolvedConfiguration()
            Self.reload(
                control,
                routes: settings.routes,
                actor: "sighup",
                reason: "configuration file reloaded on SIGHUP",
                logger: logger
            )
        } catch {
            logger.error("routes not reloaded; keeping the running ones", metadata: ["reason": "\(error)"])
        }
    }

    /// A reload of the file's `routes:` (`AdminControl.reload`: standalone the file's routes replace the table; in
    /// fleet mode what the file changed goes to etcd in one transaction), waited for here and logged.
    private static func reload(
        _ control: AdminControl,
        routes: [RouteConfiguration],
        actor: String,
        reason: String,
        logger: Logger
    ) {
        let outcome = ReloadResult()
        let task = Task {
            do throws(SwitchyardError) {
                let done = try await control.reload(routes: routes, actor: actor, reason: reason)
                outcome.value.withLock { $0 = .success(done) }
            } catch {
                outcome.value.withLock { $0 = .failure(error) }
            }
        }
        // The fleet's transaction waits at most its own bounds (dial timeout, 2 s to see the change applied).
        Self.wait(for: task, seconds: 30)
        switch outcome.value.withLock({ $0 }) {
        case .success(let done):
            logger.notice(
                "routes reloaded",
                metadata: [
                    "generation": "\(done.generation)", "changed": "\(done.changed)", "detail": "\(done.summary)",
                ]
            )
        case .failure(let error):
            logger.error("routes not reloaded; keeping the running ones", metadata: ["reason": "\(error.message)"])
        case nil:
            logger.error("routes not reloaded in 30 s; keeping the running ones")
        }
    }

    /// One log line per (model, primary, shadow) with the comparison aggregates, and the sink's counters.
    private func logComparisons(_ sink: ComparisonSink, logger: Logger) {
        for (key, aggregate) in sink.aggregates.sorted(by: { $0.key.description < $1.key.description }) {
            logger.notice(
                "shadow comparisons",
                metadata: [
                    "pair": "\(key)", "pairs": "\(aggregate.pairs)", "compared": "\(aggregate.compared)",
                    "agreement": "\(aggregate.agreementRate.map { "\($0)" } ?? "n/a")",
                    "max_abs_delta_p50": "\(aggregate.divergence.quantile(0.5).map { "\($0)" } ?? "n/a")",
                    "max_abs_delta_p99": "\(aggregate.divergence.quantile(0.99).map { "\($0)" } ?? "n/a")",
                    "latency_delta_ms": "\(aggregate.meanLatencyDeltaMilliseconds.map { "\($0)" } ?? "n/a")",
                    "primary_errors": "\(aggregate.primaryErrors)", "shadow_errors": "\(aggregate.shadowErrors)",
                ]
            )
        }
        let statistics = sink.statistics
        logger.notice(
            "comparison sink stopped",
            metadata: [
                "recorded": "\(statistics.recorded)", "written": "\(statistics.written)",
                "dropped_queue_full": "\(statistics.droppedQueueFull)",
                "dropped_write_failed": "\(statistics.droppedWriteFailed)", "write_errors": "\(statistics.writeErrors)",
            ]
        )
    }

    /// The `admin:` section with `--admin-listen` and `SWITCHYARD_ADMIN_TOKEN` applied, validated: an admin
    /// port beyond loopback without a token is refused.
    private func resolvedAdminConfiguration() throws -> AdminConfiguration {
        var admin = AdminConfiguration()
        if let config, let data = FileManager.default.contents(atPath: config) {
            do {
                admin = try YAMLDecoder().decode(AdminSection.self, from: String(decoding: data, as: UTF8.self)).admin
            } catch {
                throw ValidationError("--config \(config): \(error)")
            }
        }
        if let adminListen { admin.listen = adminListen }
        if let token = ProcessInfo.processInfo.environment["SWITCHYARD_ADMIN_TOKEN"], !token.isEmpty {
            admin.token = token
        }
        let problems = admin.validate()
        guard problems.isEmpty else {
            throw ValidationError("invalid configuration:\n  " + problems.joined(separator: "\n  "))
        }
        return admin
    }

    /// The admin plane's control over `routing`: opens the audit log and, when the state file holds routes
    /// that are valid for the loaded models, puts them in force instead of the configuration file's.
    /// Fleet mode: the etcd client and the fleet's route store, whose every new state becomes this replica's
    /// routing table, at the etcd revision as its generation.
    private func makeFleet(
        _ cluster: ClusterConfiguration,
        routing: RoutingTable,
        logger: Logger
    ) throws(SwitchyardError) -> FleetRoutes {
        let client = try EtcdClient(settings: cluster.etcd, logger: logger)
        return FleetRoutes(client: client, configuration: cluster, logger: logger) { state in
            do {
                let generation = try routing.replaceAll(
                    routes: state.configurations,
                    generation: UInt64(max(0, state.revision))
                )
                logger.info("fleet routes in force", metadata: ["generation": "\(generation)"])
            } catch {
                logger.error(
                    "fleet routes do not fit this replica's models; the last routes stay in force",
                    metadata: ["revision": "\(state.revision)", "reason": "\(error)"]
                )
            }
        }
    }

    private func makeAdminControl(
        _ admin: AdminConfiguration,
        routing: RoutingTable,
        registry: ModelRegistry,
        fleet: FleetRoutes?,
        logger: Logger
    ) throws(SwitchyardError) -> AdminControl {
        let audit = try admin.auditLog.map { path throws(SwitchyardError) in try AuditLog(path: path) }
        var state = admin.stateFile.map(RouteStateFile.init(path:))
        if fleet != nil, let ignored = state {
            logger.notice(
                "fleet mode: the routes live in etcd; admin.state_file is not read or written",
                metadata: ["state_file": "\(ignored.path)"]
            )
            state = nil
        }
        if let state {
            if let persisted = try state.load() {
                do {
                    let generation = try routing.replaceAll(routes: persisted.routes)
                    logger.notice(
                        "routes from the state file override the configuration file's",
                        metadata: [
                            "state_file": "\(state.path)", "saved_at": "\(persisted.savedAt)",
                            "routes": "\(persisted.routes.map(\.model))", "generation": "\(generation)",
                        ]
                    )
                } catch {
                    logger.error(
                        "state file routes are invalid for the loaded models; the configuration file's routes stay",
                        metadata: ["state_file": "\(state.path)", "reason": "\(error.message)"]
                    )
                }
            } else {
                logger.notice(
                    "no state file yet; the configuration file's routes are in force",
                    metadata: ["state_file": "\(state.path)"]
                )
            }
        }
        if admin.token == nil {
            logger.warning(
                "admin API has no token: anyone on this machine can change routes",
                metadata: ["address": "\(admin.listen)"]
            )
        }
        return AdminControl(
            routing: routing,
            catalog: catalog(of: registry),
            modelNames: { registry.models.map(\.name) },
            audit: audit,
            state: state,
            fleet: fleet
        )
    }

    /// The `routes:` of a configuration file, for a reload; the whole file must be valid.
    static func routes(inConfigurationFile path: String) throws -> [RouteConfiguration] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--config \(path): file not found or unreadable")
        }
        let settings: ServerConfiguration
        do {
            settings = try YAMLDecoder().decode(ServerConfiguration.self, from: String(decoding: data, as: UTF8.self))
        } catch {
            throw ValidationError("--config \(path): \(error)")
        }
        let problems = settings.validate()
        guard problems.isEmpty else {
            throw ValidationError("invalid configuration: " + problems.joined(separator: "; "))
        }
        return settings.routes
    }

    /// The configuration file (or defaults) with the command-line overrides applied, validated.
    private func resolvedConfiguration() throws -> ServerConfiguration {
        var settings = ServerConfiguration()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw ValidationError("--config \(config): file not found or unreadable")
            }
            do {
                settings = try YAMLDecoder().decode(
                    ServerConfiguration.self,
                    from: String(decoding: data, as: UTF8.self)
                )
            } catch {
                throw ValidationError("--config \(config): \(error)")
            }
        }
        if let modelRepository { settings.modelRepository = modelRepository }
        if let listen { settings.listen = listen }
        if let restListen { settings.restListen = restListen }
        if let threads { settings.threads = threads }
        if let ioCPUs { settings.ioCPUs = ioCPUs }
        if tlsCert != nil || tlsKey != nil {
            guard let tlsCert, let tlsKey else { throw ValidationError("--tls-cert and --tls-key go together") }
            settings.tls = ServerConfiguration.TLSSettings(certificate: tlsCert, key: tlsKey, clientCA: tlsClientCa)
        } else if let tlsClientCa {
            guard settings.tls != nil else { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
            settings.tls?.clientCA = tlsClientCa
        }
        let problems = settings.validate()
        guard problems.isEmpty else {
            throw ValidationError("invalid configuration:\n  " + problems.joined(separator: "\n  "))
        }
        return settings
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension EngineSelection: ExpressibleByArgument {}

extension EngineSelection {
    /// Loads an ONNX file into the selected engine.
    var loader: ModelRegistry.EngineLoader {
        { path in try makeEngine(for: try ONNXModel(contentsOf: path), selection: self) }
    }
}

/// The outcome of a reload run on a task, read by the thread that waits for it.
private final class ReloadResult: Sendable {
    let value = Mutex<Result<ReloadOutcome, SwitchyardError>?>(nil)
}
