// What traffic did: `GET /v1/shadow/report` (each shadow version against its primary, and the comparison sink's
// counters) and `GET /v1/bandits/{model}` (each arm of a bandit route).

import SwitchyardCore

/// `GET /v1/shadow/report`.
@MemberwiseInit
public struct ShadowReport: Sendable, Hashable, Codable {
    /// Each primary/shadow pair compared so far, ordered by model and versions.
    public var pairs: [ShadowComparison]
    /// The comparison sink's counters; absent without a sink.
    public var sink: SinkCounters?
}

/// One shadow version against its primary.
@MemberwiseInit
public struct ShadowComparison: Sendable, Hashable, Codable {
    public var model: String
    public var primaryVersion: String
    public var shadowVersion: String
    /// Mirrored calls whose two answers came back.
    public var pairs: UInt64
    /// Pairs whose outputs were compared.
    public var compared: UInt64
    /// Compared pairs with a class (argmax) to agree on.
    public var classified: UInt64
    /// Classified pairs whose argmax agreed.
    public var agreed: UInt64
    /// `agreed / classified`; absent before the first classified pair.
    public var agreementRate: Double?
    /// Median of the largest absolute output difference per pair.
    public var divergenceP50: Double?
    /// 99th percentile of the same.
    public var divergenceP99: Double?
    /// The largest difference seen.
    public var divergenceMax: Double
    /// Mean of shadow latency minus primary latency, in milliseconds.
    public var meanLatencyDeltaMilliseconds: Double?
    public var primaryErrors: UInt64
    public var shadowErrors: UInt64

    enum CodingKeys: String, CodingKey {
        case model, pairs, compared, classified, agreed
        case primaryVersion = "primary_version"
        case shadowVersion = "shadow_version"
        case agreementRate = "agreement_rate"
        case divergenceP50 = "divergence_p50"
        case divergenceP99 = "divergence_p99"
        case divergenceMax = "divergence_max"
        case meanLatencyDeltaMilliseconds = "mean_latency_delta_ms"
        case primaryErrors = "primary_errors"
        case shadowErrors = "shadow_errors"
    }
}

/// The comparison sink's counters.
@MemberwiseInit
public struct SinkCounters: Sendable, Hashable, Codable {
    public var recorded: UInt64
    public var written: UInt64
    public var droppedQueueFull: UInt64
    public var droppedWriteFailed: UInt64
    public var queued: Int

    enum CodingKeys: String, CodingKey {
        case recorded, written, queued
        case droppedQueueFull = "dropped_queue_full"
        case droppedWriteFailed = "dropped_write_failed"
    }
}

/// `GET /v1/bandits/{model}`: a bandit route's arms.
@MemberwiseInit
public struct BanditState: Sendable, Hashable, Codable {
    /// One arm (version) of the bandit.
    @MemberwiseInit
    public struct Arm: Sendable, Hashable, Codable {
        public var version: String
        /// Times the arm was picked.
        public var pulls: UInt64
        /// Rewards received.
        public var rewards: UInt64
        /// Observations after discounting or windowing.
        public var observations: Double
        public var rewardSum: Double
        /// Absent before the first reward.
        public var meanReward: Double?
        public var posteriorAlpha: Double
        public var posteriorBeta: Double

        enum CodingKeys: String, CodingKey {
            case version, pulls, rewards, observations
            case rewardSum = "reward_sum"
            case meanReward = "mean_reward"
            case posteriorAlpha = "posterior_alpha"
            case posteriorBeta = "posterior_beta"
        }
    }

    public var model: String
    /// `epsilon_greedy`, `ucb1` or `thompson`.
    public var algorithm: String
    public var arms: [Arm]
}
