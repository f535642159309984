// The registry of loaded model versions: an immutable snapshot read once per request, swapped whole
// when models are loaded or unloaded.

import Foundation
public import Logging
public import SwitchyardCore
public import SwitchyardEngine
package import SwitchyardWorkers
import Synchronization

/// The versions whose pools the event loops wake after each batch of socket events: the loaded ones, and the
/// retired ones until their pools have stopped. A call that held a version just before it was retired may have
/// submitted with its wake-up deferred to the end of its loop's batch; that wake-up must still reach the pool, or
/// the call would sleep in the queue and the version would never drain.
struct WakeList: Sendable {
    var loaded: [ModelVersion]
    var retiring: [ModelVersion] = []
    /// `loaded` and `retiring`, as the event loops read it.
    private(set) var all: [ModelVersion]

    init(loaded: [ModelVersion]) {
        self.loaded = loaded
        self.all = loaded
    }

    /// Drops retired versions whose pools have stopped and republishes `all`.
    mutating func publish() {
        retiring.removeAll { $0.poolStopped.load(ordering: .acquiring) }
        all = retiring.isEmpty ? loaded : loaded + retiring
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
@MemberwiseInit
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
}

/// Every loaded model, behind one lock-protected immutable snapshot, and the owner of each version's lifecycle:
/// versions are loaded into it, served while it holds them, and retired by it (drained, then their pools stopped
/// on its retirement thread).
public final class ModelRegistry: Sendable {
    /// Loads one ONNX file into an engine.
    public typealias EngineLoader = @Sendable (String) throws -> any InferenceEngine

    private let snapshot: Mutex<[String: ModelEntry]>
    /// The versions whose pools the event loops wake once per batch of socket events.
    private let wakeList: Mutex<WakeList>
    private let repository: ModelRepository?
    private let engineLoader: EngineLoader?
    /// Orders runtime loads and unloads, so two operators cannot load the same version twice.
    private let changes = Mutex<Void>(())
    /// Versions being loaded right now, by model, for the repository index's LOADING state.
    private let loading = Mutex<[String: Set<String>]>([:])
    /// Drains retired versions and stops their pools.
    private let retirer: VersionRetirer
    private let logger: Logger

    /// Creates a registry holding `entries`; with a repository and a loader it can also load and unload versions
    /// while it serves.
    /// - Parameter drainBound: how long an unloaded version may take to drain (the calls holding it to finish)
    ///   before `waitUntilRetired` answers that it is still draining. Default 30 s.
    public init(
        entries: [ModelEntry],
        repository: ModelRepository? = nil,
        engineLoader: EngineLoader? = nil,
        drainBound: Duration = .seconds(30),
        logger: Logger
    ) {
        self.snapshot = Mutex(Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) }))
        self.wakeList = Mutex(WakeList(loaded: entries.flatMap { $0.versions }))
        self.repository = repository
        self.engineLoader = engineLoader
        self.retirer = VersionRetirer(drainBound: drainBound, logger: logger)
        self.logger = logger
    }

    /// Every loaded version's pool.
    package var pools: [WorkerPool] { wakeList.withLock { $0.loaded.map(\.pool) } }

    /// Wakes every pool that submissions deferred waking (`ModelVersion.submit(deferWakeUp: true)`): an event loop
    /// calls it once per batch of socket events. Reads the loaded versions without sorting or copying entries.
    public func releaseDeferredWakeUps() {
        for version in wakeList.withLock({ $0.all }) { version.releaseDeferredWakeUp() }
    }

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

    /// Takes `version` of `model` out of service and retires it: new calls no longer find it, calls that hold it
    /// finish, and its pool is stopped on the registry's retirement thread once they have (`waitUntilRetired`
    /// awaits that). A model whose last version goes leaves the registry. Loading the same version again (a
    /// reload) may start at once; the new load has a pool of its own.
    /// - Parameter inUse: why the version must stay (a route names it), or `nil`.
    /// - Returns: the retired version.
    /// - Throws: `notFound` for an unknown model or version; `failedPrecondition` when `inUse` says why not;
    ///   `internal` when the retirement thread cannot start, `unavailable` once the registry has shut down (nothing
    ///   changes then).
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
            // Only now is there something to retire; a refused unload starts no thread.
            try retirer.ensureStarted()
            update(name, retiring: unloaded) { entry in
                entry?.versions.removeAll { $0.version == version }
                if entry?.versions.isEmpty == true && entry?.failures.isEmpty == true { entry = nil }
            }
            // Calls that resolved it from the old snapshot either hold it already (the retirement waits for them) or
            // are refused by name when they try.
            retirer.retire(unloaded)
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

    /// Waits until `version`, taken out of service by `unloadVersion`, has drained and its pool has been stopped
    /// and joined, or until the registry's drain bound has passed. Resumes as soon as either happens; never blocks
    /// a thread.
    /// - Returns: `stopped`; or `stillDraining`, with a note naming the version and the calls still holding it, when
    ///   draining takes longer than the drain bound (the version is out of service all the same; this is logged
    ///   too, and the pool stops once those calls finish).
    /// - Throws: `failedPrecondition` for a version that was never unloaded.
    @discardableResult
    public func waitUntilRetired(_ version: ModelVersion) async throws(SwitchyardError) -> RetirementOutcome {
        let outcome = try await retirer.waitUntilStopped(version)
        wakeList.withLock { $0.publish() }
        return outcome
    }

    /// Whether the registry's retirement thread (`sy-retire`) is running.
    var retirementThreadStarted: Bool { retirer.isStarted }

    /// Replaces one model's entry and republishes the wake list; `retiring` moves from the loaded versions to the
    /// retiring ones in the same step.
    private func update(_ name: String, retiring: ModelVersion? = nil, _ change: (inout ModelEntry?) -> Void) {
        let versions = snapshot.withLock { entries in
            change(&entries[name])
            return entries.values.flatMap { $0.versions }
        }
        wakeList.withLock { list in
            list.loaded = versions
            if let retiring { list.retiring.append(retiring) }
            list.publish()
        }
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

    /// Resolves a model and version as `resolve` does and takes a hold on the version for one call: the version
    /// is not retired before the call releases it (`ModelVersion.release()`, or the job `submit` queues). A version
    /// retired between the snapshot read and the hold is looked up once more in the newer snapshot.
    /// - Throws: what `resolve` throws; `unavailable`, naming the model and version, when the version is being
    ///   unloaded.
    @inline(__always)
    public func hold(model name: String, version: String) throws(SwitchyardError) -> ModelVersion {
        let found = try resolve(model: name, version: version)
        if found.hold() { return found }
        let again = try resolve(model: name, version: version)
        if again !== found, again.hold() { return again }
        throw found.retiredError
    }

    /// Whether every model in the repository loaded.
    public var allReady: Bool { models.allSatisfy(\.isReady) }

    /// Stops every pool: retiring versions' at once (whether drained or not; queued work still completes), then
    /// the loaded versions'. Joins the retirement thread.
    public func shutdown() {
        retirer.stop()
        wakeList.withLock { $0.publish() }
        for entry in models {
            for version in entry.versions { version.pool.shutdown() }
        }
    }
}
