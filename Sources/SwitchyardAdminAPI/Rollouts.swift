// Rollouts: `POST /v1/rollouts/{model}` (start), `GET /v1/rollouts[/{model}]`,
// `POST /v1/rollouts/{model}/pause|resume|abort`.

import SwitchyardCore

/// The gates of a rollout: thresholds on the canary's calls during the current step; any one failing rolls back.
@MemberwiseInit
public struct RolloutGates: Sendable, Hashable, Codable {
    /// Highest share of failed canary calls (0…1).
    public var maxErrorRate: Double?
    /// Highest canary p99 latency in milliseconds (decode to response).
    public var maxP99Milliseconds: Double?
    /// Lowest argmax agreement of the canary, mirrored as a shadow of the baseline, with the baseline (0…1);
    /// judged on steps below 100%, where the baseline still serves calls to mirror.
    public var minShadowAgreement: Double?
    /// Highest population stability index of any canary input feature against the canary's drift reference
    /// (its `drift:` configuration), over the detector's latest full window.
    public var maxInputDrift: Double?
    /// The same for the canary's outputs: prediction drift (class mix, score distribution).
    public var maxOutputDrift: Double?
    /// The canary's error rate against the baseline's on the same window, with always-valid intervals.
    public var errorRateVsBaseline: ErrorRateVsBaseline?
    /// The canary's latencies against the baseline's on the same window (Mann–Whitney), with always-valid intervals.
    public var latencyVsBaseline: LatencyVsBaseline?
    /// Canary calls (and, with the agreement gate, compared pairs) a step needs before a gate is judged or
    /// the step may advance. Default 20.
    public var minRequests: Int = 20

    /// Whether a drift gate is set.
    public var judgesDrift: Bool { maxInputDrift != nil || maxOutputDrift != nil }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case maxErrorRate = "max_error_rate"
        case maxP99Milliseconds = "max_p99_ms"
        case minShadowAgreement = "min_shadow_agreement"
        case maxInputDrift = "max_input_drift"
        case maxOutputDrift = "max_output_drift"
        case errorRateVsBaseline = "error_rate_vs_baseline"
        case latencyVsBaseline = "latency_vs_baseline"
        case minRequests = "min_requests"
    }

    /// Decodes gates; absent thresholds are off, `min_requests` defaults to 20.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxErrorRate = try c.decodeIfPresent(Double.self, forKey: .maxErrorRate)
        maxP99Milliseconds = try c.decodeIfPresent(Double.self, forKey: .maxP99Milliseconds)
        minShadowAgreement = try c.decodeIfPresent(Double.self, forKey: .minShadowAgreement)
        maxInputDrift = try c.decodeIfPresent(Double.self, forKey: .maxInputDrift)
        maxOutputDrift = try c.decodeIfPresent(Double.self, forKey: .maxOutputDrift)
        errorRateVsBaseline = try c.decodeIfPresent(ErrorRateVsBaseline.self, forKey: .errorRateVsBaseline)
        latencyVsBaseline = try c.decodeIfPresent(LatencyVsBaseline.self, forKey: .latencyVsBaseline)
        minRequests = try c.decodeIfPresent(Int.self, forKey: .minRequests) ?? 20
    }
}

/// `POST /v1/rollouts/{model}`: move traffic from `baseline` to `canary` in weight steps while the gates hold.
@MemberwiseInit
public struct RolloutRequest: Sendable, Hashable, Codable {
    /// The version serving now.
    public var baseline: String
    /// The version rolled out.
    public var canary: String
    /// Canary weights in percent, ascending; absent: 10, 25, 50, 100.
    public var steps: [Double]?
    /// Seconds per step; absent: 60.
    public var stepSeconds: Double?
    /// The gates; absent: none (which the server refuses: a rollout without gates is a timed weight change).
    public var gates: RolloutGates?
    /// Share of calls mirrored for the agreement gate.
    public var shadowFraction: Double?
    /// Why: the audit log's reason.
    public var reason: String?

    /// The fields a rollout body may carry (besides `reason`).
    public static let fields = ["baseline", "canary", "steps", "step_seconds", "gates", "shadow_fraction"]

    enum CodingKeys: String, CodingKey {
        case baseline, canary, steps, gates, reason
        case stepSeconds = "step_seconds"
        case shadowFraction = "shadow_fraction"
    }

    /// Decodes the body, refusing unknown fields (at the top and in `gates`).
    /// - Throws: `AdminRequestError` for an unknown field; `DecodingError` for a missing or mistyped one.
    public init(from decoder: any Decoder) throws {
        reason = try decodeReason(decoder)
        try rejectUnknownFields(decoder, expected: Self.fields, alsoAccepted: ["reason"], path: "rollout")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if c.contains(.gates) {
            try rejectUnknownFields(
                try c.superDecoder(forKey: .gates),
                expected: RolloutGates.CodingKeys.allCases.map(\.rawValue),
                path: "rollout.gates"
            )
        }
        baseline = try c.decode(String.self, forKey: .baseline)
        canary = try c.decode(String.self, forKey: .canary)
        steps = try c.decodeIfPresent([Double].self, forKey: .steps)
        stepSeconds = try c.decodeIfPresent(Double.self, forKey: .stepSeconds)
        gates = try c.decodeIfPresent(RolloutGates.self, forKey: .gates)
        shadowFraction = try c.decodeIfPresent(Double.self, forKey: .shadowFraction)
    }
}

/// Where a rollout is.
public enum RolloutPhase: String, Sendable, Hashable, Codable {
    /// Advancing through its steps.
    case running
    /// Holding its current weights; a failing gate still rolls it back.
    case paused
    /// The canary took all traffic.
    case completed
    /// A gate failed and the baseline took all traffic back.
    case rolledBack = "rolled_back"
    /// An operator stopped it and the baseline took all traffic back.
    case aborted

    /// Whether the rollout still holds its model's route.
    public var isActive: Bool { self == .running || self == .paused }
}

/// `GET /v1/rollouts`: every rollout, running or finished.
@MemberwiseInit
public struct RolloutsResponse: Sendable, Hashable, Codable {
    public var rollouts: [RolloutStatus]
}

/// A rollout as the admin API shows it (`GET /v1/rollouts/{model}`, and the answer of every rollout call).
@MemberwiseInit
public struct RolloutStatus: Sendable, Hashable, Codable {
    /// One thing that happened.
    @MemberwiseInit
    public struct Event: Sendable, Hashable, Codable {
        /// ISO 8601 UTC time.
        public var time: String
        /// `start`, `advance`, `complete`, `rollback`, `pause`, `resume`, `abort`.
        public var event: String
        /// The canary's weight in percent afterwards.
        public var canaryWeight: Double
        /// Why.
        public var detail: String

        enum CodingKeys: String, CodingKey {
            case time, event, detail
            case canaryWeight = "canary_weight"
        }
    }

    /// What the current step has seen of the canary.
    @MemberwiseInit
    public struct Window: Sendable, Hashable, Codable {
        public var calls: UInt64
        public var failures: UInt64
        public var errorRate: Double?
        public var p99Milliseconds: Double?
        /// Compared shadow pairs (agreement gate).
        public var compared: UInt64
        public var agreement: Double?
        /// The canary's largest input PSI against its reference (drift gates only).
        public var inputDrift: Double?
        /// The canary's largest output PSI against its reference (drift gates only).
        public var outputDrift: Double?
        /// Seconds since the step started (0 once the rollout has ended).
        public var elapsedSeconds: Double

        enum CodingKeys: String, CodingKey {
            case calls, failures, compared, agreement
            case errorRate = "error_rate"
            case p99Milliseconds = "p99_ms"
            case inputDrift = "input_drift"
            case outputDrift = "output_drift"
            case elapsedSeconds = "elapsed_s"
        }
    }

    public var model: String
    public var baseline: String
    public var canary: String
    public var phase: RolloutPhase
    /// 1-based step number.
    public var step: Int
    public var steps: [Double]
    public var canaryWeight: Double
    public var stepSeconds: Double
    public var gates: RolloutGates
    public var window: Window
    /// The last decision: time left, what it waits for, or why it rolled back.
    public var detail: String
    public var startedAt: String
    /// Who started it.
    public var actor: String
    public var events: [Event]
    /// In fleet mode: which replica drives the rollout and each replica's part of the step's window; `nil` on a
    /// replica on its own.
    public var fleet: Fleet?

    /// A fleet rollout's leader and the window per replica (the status's `window` is their sum).
    @MemberwiseInit
    public struct Fleet: Sendable, Hashable, Codable {
        /// One replica's part of the step's window.
        @MemberwiseInit
        public struct Replica: Sendable, Hashable, Codable {
            /// The replica's name.
            public var replica: String
            /// Canary calls it served in this step.
            public var calls: UInt64
            /// Of those, failed.
            public var failures: UInt64
            /// Baseline calls it served in this step.
            public var baselineCalls: UInt64

            enum CodingKeys: String, CodingKey {
                case replica, calls, failures
                case baselineCalls = "baseline_calls"
            }
        }

        /// The replica elected to drive rollouts now (`nil`: none, such as while the store is away).
        public var leader: String?
        /// The replicas publishing statistics now, by name.
        public var replicas: [Replica]
    }

    enum CodingKeys: String, CodingKey {
        case model, baseline, canary, phase, step, steps, gates, window, detail, actor, events, fleet
        case canaryWeight = "canary_weight"
        case stepSeconds = "step_seconds"
        case startedAt = "started_at"
    }
}

extension RolloutGates {
    /// `error_rate_vs_baseline`: the canary's error rate against the baseline's on the same window.
    @MemberwiseInit
    public struct ErrorRateVsBaseline: Sendable, Hashable, Codable {
        /// Confidence of the whole rollout's verdict, in (0.5, 1); split evenly over its steps.
        public var confidence: Double = 0.95
        /// How much higher than the baseline's (a share: 0.02 = 2 percentage points) the canary's error rate may be
        /// before it is rolled back; it advances only once the interval shows it is below that.
        public var maxIncrease: Double = 0.02

        enum CodingKeys: String, CodingKey {
            case confidence
            case maxIncrease = "max_increase"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            confidence = try c.decodeIfPresent(Double.self, forKey: .confidence) ?? 0.95
            maxIncrease = try c.decodeIfPresent(Double.self, forKey: .maxIncrease) ?? 0.02
        }
    }

    /// `latency_vs_baseline`: how often a canary call is slower than a baseline call (Mann–Whitney).
    @MemberwiseInit
    public struct LatencyVsBaseline: Sendable, Hashable, Codable {
        /// Confidence of the whole rollout's verdict, in (0.5, 1); split evenly over its steps.
        public var confidence: Double = 0.95
        /// The highest probability that a canary call is slower than a baseline call the canary may show (½ is no
        /// difference); it advances only once the interval shows it is below that.
        public var maxSlowerProbability: Double = 0.6

        enum CodingKeys: String, CodingKey {
            case confidence
            case maxSlowerProbability = "max_slower_probability"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            confidence = try c.decodeIfPresent(Double.self, forKey: .confidence) ?? 0.95
            maxSlowerProbability = try c.decodeIfPresent(Double.self, forKey: .maxSlowerProbability) ?? 0.6
        }
    }
}
