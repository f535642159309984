// Experiments: `GET /v1/experiments/{model}[?confidence=C&max_increase=D&max_slower_probability=P]`, each version of
// a canary or bandit route against the route's baseline (its first version), with the always-valid intervals the
// rollout gates use.

import SwitchyardCore

/// `GET /v1/experiments/{model}`.
@MemberwiseInit
public struct ExperimentReport: Sendable, Hashable, Codable {
    public var model: String
    /// The route's policy (`canary`, `bandit`, `fixed`).
    public var policy: String
    /// The version the others are compared with: the route's first.
    public var baseline: String
    /// The intervals' confidence, in (0.5, 1).
    public var confidence: Double
    /// The mixture's scale for error-rate differences (the increase that matters).
    public var maxIncrease: Double
    /// The mixture's scale for latency: the probability of a slower call that matters.
    public var maxSlowerProbability: Double
    /// Every version of the route, the baseline first.
    public var versions: [ExperimentArm]

    enum CodingKeys: String, CodingKey {
        case model, policy, baseline, confidence, versions
        case maxIncrease = "max_increase"
        case maxSlowerProbability = "max_slower_probability"
    }
}

/// One version of an experiment: its calls and, against the baseline, its effects with their intervals.
@MemberwiseInit
public struct ExperimentArm: Sendable, Hashable, Codable {
    public var version: String
    /// Calls the version finished (answered or failed) since it was loaded.
    public var calls: UInt64
    public var failures: UInt64
    /// `failures / calls`; `nil` before the first call.
    public var errorRate: Double?
    /// This version's error rate minus the baseline's, with its always-valid interval; `nil` for the baseline and
    /// until both have calls.
    public var errorRateDifference: ExperimentEffect?
    /// The probability that a call of this version is slower than a baseline call (½: no difference), with its
    /// always-valid interval; `nil` for the baseline and until both have answered calls.
    public var slowerProbability: ExperimentEffect?
    /// What the intervals say: `baseline`, `worse`, `better`, `no difference beyond the tolerance`, or
    /// `not yet conclusive`.
    public var verdict: String

    enum CodingKeys: String, CodingKey {
        case version, calls, failures, verdict
        case errorRate = "error_rate"
        case errorRateDifference = "error_rate_difference"
        case slowerProbability = "slower_probability"
    }
}

/// An effect with its always-valid interval.
@MemberwiseInit
public struct ExperimentEffect: Sendable, Hashable, Codable {
    public var estimate: Double
    public var lower: Double
    public var upper: Double
}
