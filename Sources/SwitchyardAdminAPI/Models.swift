// Models: `GET /v1/models[/{model}]`, `POST /v1/models/{model}/versions/{version}/load|unload`.

import SwitchyardCore

/// `GET /v1/models`: every model of the repository.
@MemberwiseInit
public struct ModelsResponse: Sendable, Hashable, Codable {
    /// The models, in the registry's order.
    public var models: [ModelStatus]
}

/// One model as the admin API shows it (`GET /v1/models/{model}`, and the answer of a load).
@MemberwiseInit
public struct ModelStatus: Sendable, Hashable, Codable {
    /// One loaded version and its counters.
    @MemberwiseInit
    public struct Version: Sendable, Hashable, Codable {
        /// The version name.
        public var version: String
        /// Calls answered successfully.
        public var requestsSucceeded: UInt64
        /// Calls that failed.
        public var requestsFailed: UInt64
        /// Calls waiting in the version's queue.
        public var queueDepth: Int
        /// Batches run.
        public var batches: UInt64

        enum CodingKeys: String, CodingKey {
            case version, batches
            case requestsSucceeded = "requests_succeeded"
            case requestsFailed = "requests_failed"
            case queueDepth = "queue_depth"
        }
    }

    /// The model's name.
    public var name: String
    /// Whether it serves (a version loaded).
    public var ready: Bool
    /// The version that serves calls naming none, if any.
    public var defaultVersion: String?
    /// The loaded versions.
    public var versions: [Version]
    /// Versions that failed to load, with the loader's reason.
    public var failures: [String: String]
    /// The model's latency objective in milliseconds.
    public var sloMilliseconds: Double
    /// The largest batch its pools form.
    public var maxBatchSize: Int

    enum CodingKeys: String, CodingKey {
        case name, ready, versions, failures
        case defaultVersion = "default_version"
        case sloMilliseconds = "slo_ms"
        case maxBatchSize = "max_batch_size"
    }
}

/// `POST /v1/models/{model}/versions/{version}/unload`: the version is out of service and, unless `note` says
/// otherwise, its pool has shut down.
@MemberwiseInit
public struct UnloadResponse: Sendable, Hashable, Codable {
    /// The model.
    public var model: String
    /// The version unloaded.
    public var version: String
    /// Always `true`: a refused unload is an error answer.
    public var unloaded: Bool = true
    /// Set when calls still held the version after the registry's drain bound: the version takes no new calls, and
    /// its pool stops once those calls finish. Absent when the pool has shut down.
    public var note: String?
}
