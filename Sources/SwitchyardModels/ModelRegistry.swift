// The registry of loaded model versions: an immutable snapshot read once per request, swapped whole
// when models are loaded or unloaded.

import Foundation
public import Logging
public import SwitchyardCore
public import SwitchyardEngine
public import SwitchyardWorkers
public import Synchronization

/// Per-version request counters for ModelStatistics and metrics. Updated from loop and worker threads.
public final class VersionStatistics: Sendable {
    /// Successful calls.
    public let successCount = Atomic<UInt64>(0)
    /// Total nanoseconds of successful calls, from decode to response.
    public let successNanoseconds = Atomic<UInt64>(0)
    /// Failed calls (validation errors after the version was resolved, engine errors, rejections).
    public let failureCount = Atomic<UInt64>(0)
    /// Total nanoseconds of failed calls.
    public let failureNanoseconds = Atomic<UInt64>(0)
    /// Total nanoseconds successful calls waited in the pool's queue.
    public let queueNanoseconds = Atomic<UInt64>(0)
    /// Total compute nanoseconds attributed to successful calls: each batch's time shared by its rows.
    public let computeNanoseconds = Atomic<UInt64>(0)
    /// Rows inferred.
    public let inferenceCount = Atomic<UInt64>(0)
    /// Wall-clock milliseconds since 1970 of the last successful inference.
    public let lastInferenceMilliseconds = Atomic<UInt64>(0)
    /// Durations of every call (successful or failed), for the `/metrics` latency histogram.
    public let latency = LatencyHistogram()
    /// Time successful calls waited in the pool's queue.
    public let queueWait = LatencyHistogram()
    /// Finished calls by how the version was chosen and gRPC status code (`RouteReason.allCases.count` × 17).
    private let calls: InlineArray<85, Atomic<UInt64>>

    /// Creates zeroed counters.
    public init() { calls = InlineArray { _ in Atomic(0) } }

    /// Counts one finished call: chosen by `route`, answered with gRPC status `code` (0…16; others count as 2,
    /// UNKNOWN).
    @inline(__always)
    public func recordCall(route: RouteReason, code: Int) {
        let code = (0...16).contains(code) ? code : 2
        calls[route.index * 17 + code].add(1, ordering: .relaxed)
    }

    /// Finished calls chosen by `route` and answered with `code`.
    public func calls(route: RouteReason, code: Int) -> UInt64 {
        guard (0...16).contains(code) else { return 0 }
        return calls[route.index * 17 + code].load(ordering: .relaxed)
    }
}

/// A loaded, servable model version: its signature, settings and worker pool.
public final class ModelVersion: Sendable {
    /// Model name.
    public let model: String
    /// Version name.
    public let version: String
    /// Inputs and outputs.
    public let signature: ModelSignature
    /// The model's settings.
    public let configuration: ModelConfiguration
    /// The pool that runs this version.
    public let pool: WorkerPool
    /// Request counters.
    public let statistics = VersionStatistics()

    /// Creates a loaded version around a started pool.
    public init(model: String, version: String, configuration: ModelConfiguration, pool: WorkerPool) {
        self.model = model
        self.version = version
        self.signature = pool.signature
        self.configuration = configuration
        self.pool = pool
    }
}

/// A model as the registry holds it: its loaded versions and the versions that failed to load.
public struct ModelEntry: Sendable {
    /// Model name.
    public var name: String
    /// Settings from `config.yaml`.
    public var configuration: ModelConfiguration
    /// Loaded versions in ascending numeric order.
    public var versions: [ModelVersion]
    /// Versions that failed to load, with the reason.
    public var failures: [String: String]

    /// The version served when a request names none: `default_version` from the config, else the highest.
    public var defaultVersion: ModelVersion? {
        if let chosen = configuration.defaultVersion { return versions.first { $0.version == chosen } }
        return versions.last
    }

    /// Whether every version on disk loaded.
    public var isReady: Bool { failures.isEmpty && !versions.isEmpty }
}

/// One line of the repository index: a model version and its state.
public struct RepositoryIndexEntry: Sendable, Hashable {
    /// A version's state, as Triton names it.
    public enum State: String, Sendable, Hashable {
        /// Loaded and serving.
        case ready = "READY"
        /// On disk but not serving: never loaded, unloaded, or failed to load (the reason says which).
        case unavailable = "UNAVAILABLE"
        /// Being loaded right now.
        case loading = "LOADING"
    }

    /// Model name.
    public var model: String
    /// Version name.
    public var version: String
    /// The version's state.
    public var state: State
    /// Why it is not ready ("unloaded", or the loader's error); empty when ready or loading.
    public var reason: String

    /// Creates an entry.
    public init(model: String, version: String, state: State, reason: String) {
        self.model = model
        self.version = version
        self.state = state
        self.reason = reason
    }
}

/// Every loaded model, behind one lock-protected immutable snapshot.
public final class ModelRegistry: Sendable {
    /// Loads one ONNX file into an engine.
    public typealias EngineLoader = @Sendable (String) throws -> any InferenceEngine

    private let snapshot: Mutex<[String: ModelEntry]>
    private let poolSnapshot: Mutex<[WorkerPool]>
    private let repository: ModelRepository?
    private let engineLoader: EngineLoader?
    /// Orders runtime loads and unloads, so two operators cannot load the same version twice.
    private let changes = Mutex<Void>(())
    /// Versions being loaded right now, by model, for the repository index's LOADING state.
    private let loading = Mutex<[String: Set<String>]>([:])
    private let logger: Logger

    /// Creates a registry holding `entries`; with a repository and a loader it can also load and unload versions
    /// while it serves.
    public init(
        entries: [ModelEntry],
        repository: ModelRepository? = nil,
        engineLoader: EngineLoader? = nil,
        logger: Logger
    ) {
        self.snapshot = Mutex(Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) }))
        self.poolSnapshot = Mutex(entries.flatMap { $0.versions.map(\.pool) })
        self.repository = repository
        self.engineLoader = engineLoader
        self.logger = logger
    }

    /// Every loaded version's pool, read without sorting or copying entries (an event loop reads it once per
    /// batch of socket events).
    public var pools: [WorkerPool] { poolSnapshot.withLock { $0 } }

    /// Loads every model of a repository, each version's file through `engineLoader` (path → engine). A version
    /// that fails to load is recorded with its reason (and logged); the rest still serve.
    /// - Throws: when the repository itself cannot be read or a `config.yaml` is invalid.
    public static func load(
        repository: ModelRepository,
        engineLoader: @escaping EngineLoader,
        logger: Logger
    ) throws -> ModelRegistry {
        var entries: [ModelEntry] = []
        for model in try repository.scan() {
            var entry = ModelEntry(name: model.name, configuration: model.configuration, versions: [], failures: [:])
            for version in model.versions {
                do {
                    entry.versions.append(
                        try startVersion(
                            model: model.name,
                            version: version,
                            configuration: model.configuration,
                            engineLoader: engineLoader,
                            logger: logger
                        )
                    )
                } catch {
                    let reason = (error as? SwitchyardError)?.message ?? "\(error)"
                    // Clients and probes read this reason (UNAVAILABLE, /readyz): no filesystem paths in it.
                    entry.failures[version.version] = SwitchyardError.redactingPaths(reason)
                    logger.error(
                        "model version failed to load",
                        metadata: ["model": "\(model.name)", "version": "\(version.version)", "reason": "\(reason)"]
                    )
                }
            }
            entries.append(entry)
        }
        return ModelRegistry(entries: entries, repository: repository, engineLoader: engineLoader, logger: logger)
    }

    private static func startVersion(
        model: String,
        version: RepositoryVersion,
        configuration: ModelConfiguration,
        engineLoader: EngineLoader,
        logger: Logger
    ) throws -> ModelVersion {
        let engine = try applyingPrecision(configuration, modelPath: version.path, to: engineLoader(version.path))
        let pool = WorkerPool(
            name: "\(model):\(version.version)",
            engine: engine,
            configuration: configuration,
            logger: logger
        )
        do {
            try pool.start()
        } catch {
            pool.shutdown()
            throw error
        }
        logger.info(
            "loaded model version",
            metadata: ["model": "\(model)", "version": "\(version.version)", "engine": "\(engine)"]
        )
        return ModelVersion(model: model, version: version.version, configuration: configuration, pool: pool)
    }

    // MARK: Runtime changes

    /// Loads `version` of `model` from the repository while the registry serves: the model's `config.yaml` is
    /// read afresh for a model not yet loaded, else the loaded model's settings apply. The version serves
    /// (routes may name it) once this returns. A version that had failed to load at start is retried; a failed
    /// runtime load changes nothing and leaves readiness as it was.
    /// - Throws: `failedPrecondition` without a repository, or when the version is already loaded; `notFound`
    ///   when the repository has no such model directory or version file; `invalidArgument`/`internal` with the
    ///   import error for a file that does not load.
    @discardableResult
    public func loadVersion(model name: String, version: String) throws(SwitchyardError) -> ModelVersion {
        guard let repository, let engineLoader else {
            throw SwitchyardError(.failedPrecondition, "this registry was not loaded from a repository")
        }
        return try changes.withLock { _ throws(SwitchyardError) -> ModelVersion in
            let existing = model(named: name)
            if existing?.versions.contains(where: { $0.version == version }) == true {
                throw SwitchyardError(
                    .failedPrecondition,
                    "model '\(name)' version \(version) is already loaded; unload it first to load it afresh"
                )
            }
            guard let number = Int(version), number > 0, String(number) == version else {
                throw .invalidArgument("version: expected a positive integer (a directory name), got '\(version)'")
            }
            let modelDirectory = (repository.root as NSString).appendingPathComponent(name)
            let path = ((modelDirectory as NSString).appendingPathComponent(version) as NSString)
                .appendingPathComponent("model.onnx")
            guard !name.contains("/"), !name.hasPrefix("."), FileManager.default.fileExists(atPath: path) else {
                // Answers never show where the repository lives on disk.
                throw .notFound(
                    "no model file \(SwitchyardError.echo(name))/\(version)/model.onnx in the model repository"
                )
            }
            let configuration: ModelConfiguration
            if let existing {
                configuration = existing.configuration
            } else {
                do {
                    configuration = try ModelRepository.loadConfiguration(
                        at: (modelDirectory as NSString).appendingPathComponent("config.yaml")
                    )
                } catch {
                    throw .invalidArgument(
                        SwitchyardError.redactingPaths((error as? SwitchyardError)?.message ?? "\(error)")
                    )
                }
            }
            let loaded: ModelVersion
            loading.withLock { _ = $0[name, default: []].insert(version) }
            defer { loading.withLock { _ = $0[name]?.remove(version) } }
            do {
                loaded = try Self.startVersion(
                    model: name,
                    version: RepositoryVersion(version: version, path: path),
                    configuration: configuration,
                    engineLoader: engineLoader,
                    logger: logger
                )
            } catch {
                let reason = (error as? SwitchyardError)?.message ?? "\(error)"
                logger.error(
                    "model version failed to load",
                    metadata: ["model": "\(name)", "version": "\(version)", "reason": "\(reason)"]
                )
                let shown = SwitchyardError.redactingPaths(reason)
                if existing?.failures[version] != nil {
                    update(name) { $0?.failures[version] = shown }
                }
                throw .invalidArgument("model '\(name)' version \(version) did not load: \(shown)")
            }
            update(name) { entry in
                var model =
                    entry ?? ModelEntry(name: name, configuration: configuration, versions: [], failures: [:])
                model.failures[version] = nil
                model.versions.append(loaded)
                model.versions.sort { Int($0.version) ?? 0 < Int($1.version) ?? 0 }
                entry = model
            }
            return loaded
        }
    }

    /// Takes `version` of `model` out of service and returns it; the caller shuts its pool down once calls that
    /// resolved it just before have reached the pool (their queued work still completes). A model whose last
    /// version goes leaves the registry.
    /// - Parameter inUse: why the version must stay (a route names it), or `nil`.
    /// - Throws: `notFound` for an unknown model or version; `failedPrecondition` when `inUse` says why not.
    public func unloadVersion(
        model name: String,
        version: String,
        inUse: (String, String) -> String?
    ) throws(SwitchyardError) -> ModelVersion {
        try changes.withLock { _ throws(SwitchyardError) -> ModelVersion in
            guard let entry = model(named: name) else {
                let known = models.map(\.name).joined(separator: ", ")
                throw .notFound(
                    "unknown model '\(SwitchyardError.echo(name))'; available models: \(known.isEmpty ? "none" : known)"
                )
            }
            guard let unloaded = entry.versions.first(where: { $0.version == version }) else {
                let known = entry.versions.map(\.version).joined(separator: ", ")
                throw .notFound(
                    "model '\(SwitchyardError.echo(name))' has no loaded version '\(SwitchyardError.echo(version))'; loaded versions: \(known)"
                )
            }
            if let reason = inUse(name, version) {
                throw SwitchyardError(.failedPrecondition, "model '\(name)' version \(version) is in use: \(reason)")
            }
            update(name) { entry in
                entry?.versions.removeAll { $0.version == version }
                if entry?.versions.isEmpty == true && entry?.failures.isEmpty == true { entry = nil }
            }
            logger.notice("unloaded model version", metadata: ["model": "\(name)", "version": "\(version)"])
            return unloaded
        }
    }

    // MARK: Repository index

    /// Every model version in the repository on disk and every loaded one, with its state: what Triton's
    /// RepositoryIndex lists. Sorted by model name, then numerically by version.
    /// - Throws: `failedPrecondition` when the repository cannot be read or a `config.yaml` in it is invalid.
    public func repositoryIndex() throws(SwitchyardError) -> [RepositoryIndexEntry] {
        var onDisk: [String: [String]] = [:]
        if let repository {
            do {
                for model in try repository.scan() { onDisk[model.name] = model.versions.map(\.version) }
            } catch {
                let message = (error as? SwitchyardError)?.message ?? "\(error)"
                throw SwitchyardError(
                    .failedPrecondition,
                    "the model repository cannot be listed: \(SwitchyardError.redactingPaths(message))"
                )
            }
        }
        let entries = snapshot.withLock { $0 }
        let inProgress = loading.withLock { $0 }
        var index: [RepositoryIndexEntry] = []
        for name in Set(onDisk.keys).union(entries.keys).sorted() {
            let entry = entries[name]
            let loaded = Set(entry?.versions.map(\.version) ?? [])
            let versions = Set(onDisk[name] ?? []).union(loaded).sorted { (Int($0) ?? 0, $0) < (Int($1) ?? 0, $1) }
            for version in versions {
                if loaded.contains(version) {
                    index.append(RepositoryIndexEntry(model: name, version: version, state: .ready, reason: ""))
                } else if inProgress[name]?.contains(version) == true {
                    index.append(RepositoryIndexEntry(model: name, version: version, state: .loading, reason: ""))
                } else if let failure = entry?.failures[version] {
                    index.append(
                        RepositoryIndexEntry(model: name, version: version, state: .unavailable, reason: failure)
                    )
                } else {
                    index.append(
                        RepositoryIndexEntry(model: name, version: version, state: .unavailable, reason: "unloaded")
                    )
                }
            }
        }
        return index
    }

    /// The versions of `model` in the repository on disk, in ascending numeric order.
    /// - Throws: `failedPrecondition` without a repository or when it cannot be read; `notFound` when it has no
    ///   such model.
    public func repositoryVersions(of model: String) throws(SwitchyardError) -> [String] {
        guard let repository else {
            throw SwitchyardError(.failedPrecondition, "this registry was not loaded from a repository")
        }
        let models: [RepositoryModel]
        do { models = try repository.scan() } catch {
            let message = (error as? SwitchyardError)?.message ?? "\(error)"
            throw SwitchyardError(
                .failedPrecondition,
                "the model repository cannot be listed: \(SwitchyardError.redactingPaths(message))"
            )
        }
        guard let found = models.first(where: { $0.name == model }) else {
            let known = models.map(\.name).joined(separator: ", ")
            throw .notFound(
                "no model '\(SwitchyardError.echo(model))' in the model repository; it holds: \(known.isEmpty ? "none" : known)"
            )
        }
        return found.versions.map(\.version)
    }

    /// Replaces one model's entry and republishes the pool list.
    private func update(_ name: String, _ change: (inout ModelEntry?) -> Void) {
        let pools = snapshot.withLock { entries in
            change(&entries[name])
            return entries.values.flatMap { $0.versions.map(\.pool) }
        }
        poolSnapshot.withLock { $0 = pools }
    }

    /// All models, sorted by name.
    public var models: [ModelEntry] { snapshot.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// The model named `name`, if any.
    public func model(named name: String) -> ModelEntry? { snapshot.withLock { $0[name] } }

    /// Resolves a model and version ("" = the default version) to a loaded version.
    /// - Throws: `SwitchyardError.notFound` naming what exists, or `.unavailable` when the version failed to load.
    public func resolve(model name: String, version: String) throws(SwitchyardError) -> ModelVersion {
        guard let entry = model(named: name) else {
            let known = models.map(\.name).joined(separator: ", ")
            throw .notFound(
                "unknown model '\(SwitchyardError.echo(name))'; available models: \(known.isEmpty ? "none" : known)"
            )
        }
        if version.isEmpty {
            guard let chosen = entry.defaultVersion else {
                throw SwitchyardError(.unavailable, "model '\(name)' has no loaded version")
            }
            return chosen
        }
        if let found = entry.versions.first(where: { $0.version == version }) { return found }
        if let reason = entry.failures[version] {
            throw SwitchyardError(.unavailable, "model '\(name)' version \(version) failed to load: \(reason)")
        }
        let known = entry.versions.map(\.version).joined(separator: ", ")
        throw .notFound(
            "model '\(SwitchyardError.echo(name))' has no version '\(SwitchyardError.echo(version))'; available versions: \(known)"
        )
    }

    /// Whether every model in the repository loaded.
    public var allReady: Bool { models.allSatisfy(\.isReady) }

    /// Drains and stops every pool.
    public func shutdown() {
        for entry in models {
            for version in entry.versions { version.pool.shutdown() }
        }
    }
}
