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
    /// Finished calls by how the version was chosen and gRPC status code (`CallRoute.allCases.count` × 17).
    private let calls: InlineArray<85, Atomic<UInt64>>

    /// Creates zeroed counters.
    public init() { calls = InlineArray { _ in Atomic(0) } }

    /// Counts one finished call: chosen by `route`, answered with gRPC status `code` (0…16; others count as 2,
    /// UNKNOWN).
    @inline(__always)
    public func recordCall(route: CallRoute, code: Int) {
        let code = (0...16).contains(code) ? code : 2
        calls[route.rawValue * 17 + code].add(1, ordering: .relaxed)
    }

    /// Finished calls chosen by `route` and answered with `code`.
    public func calls(route: CallRoute, code: Int) -> UInt64 {
        guard (0...16).contains(code) else { return 0 }
        return calls[route.rawValue * 17 + code].load(ordering: .relaxed)
    }
}

/// How the version of a call was chosen: the `route` label of the request metrics.
public enum CallRoute: Int, Sendable, CaseIterable {
    /// The model has no route; its default version served.
    case `default`
    /// The call named its version.
    case explicit
    /// A fixed route.
    case fixed
    /// A canary route's weighted split.
    case canary
    /// A bandit route's choice.
    case bandit

    /// The label value.
    public var label: String {
        switch self {
        case .default: "default"
        case .explicit: "explicit"
        case .fixed: "fixed"
        case .canary: "canary"
        case .bandit: "bandit"
        }
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

/// Every loaded model, behind one lock-protected immutable snapshot.
public final class ModelRegistry: Sendable {
    private let snapshot: Mutex<[String: ModelEntry]>
    private let poolSnapshot: Mutex<[WorkerPool]>
    private let logger: Logger

    /// Creates a registry holding `entries`.
    public init(entries: [ModelEntry], logger: Logger) {
        self.snapshot = Mutex(Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) }))
        self.poolSnapshot = Mutex(entries.flatMap { $0.versions.map(\.pool) })
        self.logger = logger
    }

    /// Every loaded version's pool, read without sorting or copying entries (an event loop reads it once per
    /// batch of socket events).
    public var pools: [WorkerPool] { poolSnapshot.withLock { $0 } }

    /// Loads every model of a repository, each version's file through `engineLoader` (path → engine). A version that fails to load is recorded with its reason (and
    /// logged); the rest still serve.
    /// - Throws: when the repository itself cannot be read or a `config.yaml` is invalid.
    public static func load(
        repository: ModelRepository,
        engineLoader: (String) throws -> any InferenceEngine,
        logger: Logger
    ) throws -> ModelRegistry {
        var entries: [ModelEntry] = []
        for model in try repository.scan() {
            var entry = ModelEntry(name: model.name, configuration: model.configuration, versions: [], failures: [:])
            for version in model.versions {
                do {
                    let engine = try engineLoader(version.path)
                    let pool = WorkerPool(
                        name: "\(model.name):\(version.version)",
                        engine: engine,
                        configuration: model.configuration,
                        logger: logger
                    )
                    pool.start()
                    entry.versions.append(
                        ModelVersion(
                            model: model.name,
                            version: version.version,
                            configuration: model.configuration,
                            pool: pool
                        )
                    )
                    logger.info(
                        "loaded model version",
                        metadata: [
                            "model": "\(model.name)", "version": "\(version.version)",
                            "engine": "\(engine)",
                        ]
                    )
                } catch {
                    let reason = (error as? SwitchyardError)?.message ?? "\(error)"
                    entry.failures[version.version] = reason
                    logger.error(
                        "model version failed to load",
                        metadata: ["model": "\(model.name)", "version": "\(version.version)", "reason": "\(reason)"]
                    )
                }
            }
            entries.append(entry)
        }
        return ModelRegistry(entries: entries, logger: logger)
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
            throw .notFound("unknown model '\(name)'; available models: \(known.isEmpty ? "none" : known)")
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
        throw .notFound("model '\(name)' has no version '\(version)'; available versions: \(known)")
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
