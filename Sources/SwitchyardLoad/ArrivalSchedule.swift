// When requests are meant to be sent. An open-loop run is a list of stages, each with a request rate that
// is constant or changes linearly (ramps; steps are consecutive constant stages). Send times come from
// inverting the cumulative intensity Λ(t) = ∫ rate: the next arrival is where Λ has grown by 1 (constant
// spacing) or by an Exp(1) draw (Poisson). That is exact for ramps, including ramps that start from zero.
// Pure and deterministic given its random source, so it is tested directly.

public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// One stage of a load profile: `duration` seconds during which the rate moves linearly from `startRate`
/// to `endRate` requests per second (equal for a steady stage).
@MemberwiseInit
public struct LoadStage: Sendable, Hashable, Codable {
    /// Length of the stage in seconds (> 0).
    public var duration: Double
    /// Requests per second at the start of the stage (≥ 0).
    public var startRate: Double
    /// Requests per second at the end of the stage (≥ 0).
    public var endRate: Double

    /// A stage at one constant rate.
    public static func steady(_ rate: Double, for duration: Double) -> LoadStage {
        LoadStage(duration: duration, startRate: rate, endRate: rate)
    }

    /// The requests this stage is meant to send (the area under its rate).
    public var expectedRequests: Double { duration * (startRate + endRate) / 2 }

    /// Checks the stage, naming what is wrong.
    public func validate(index: Int) throws(SwitchyardError) {
        guard duration > 0, duration.isFinite else {
            throw SwitchyardError.invalidArgument(
                "stage \(index): duration must be a positive number of seconds, got \(duration)"
            )
        }
        guard startRate >= 0, endRate >= 0, startRate.isFinite, endRate.isFinite else {
            throw SwitchyardError.invalidArgument(
                "stage \(index): rates must be non-negative requests per second, got \(startRate) → \(endRate)"
            )
        }
    }
}

/// How arrivals are spaced.
public enum ArrivalProcess: String, Sendable, Codable, CaseIterable {
    /// Evenly spaced at the current rate.
    case constant
    /// A (possibly inhomogeneous) Poisson process: exponential gaps at the current rate.
    case poisson
}

extension SplitMix64 {
    /// A uniform double in (0, 1] (never 0, so its logarithm is finite).
    mutating func unitInterval() -> Double {
        Double((next() >> 11) + 1) * (1.0 / 9_007_199_254_740_992.0)
    }
}

/// Produces the intended send times of an open-loop run, in nanoseconds from the start of the run.
public struct ArrivalSchedule: Sendable {
    /// The stages, in order.
    public let stages: [LoadStage]
    /// How arrivals are spaced.
    public let process: ArrivalProcess
    /// Most arrivals to produce (nil: until the stages end).
    public let limit: Int?
    private var rng: SplitMix64
    private var stageIndex = 0
    /// Seconds into the current stage of the last arrival.
    private var position: Double
    /// Λ accumulated in the current stage up to the last arrival (kept as a sum, not recomputed from
    /// `position`, so constant-rate counts come out exact).
    private var done = 0.0
    /// Seconds from the run's start to the current stage's start.
    private var stageOffset = 0.0
    private var produced = 0

    /// Creates a schedule.
    /// - Parameters:
    ///   - stages: the load profile.
    ///   - process: constant or Poisson spacing.
    ///   - limit: stop after this many arrivals.
    ///   - seed: the random seed (Poisson gaps).
    ///   - phase: for constant spacing, where in its first gap the first arrival falls (0 ≤ phase < 1), so
    ///     several schedules splitting one rate interleave instead of firing together.
    public init(stages: [LoadStage], process: ArrivalProcess, limit: Int? = nil, seed: UInt64 = 1, phase: Double = 0) {
        self.stages = stages
        self.process = process
        self.limit = limit
        self.rng = SplitMix64(seed: seed)
        // The first arrival of a constant schedule is due at Λ = phase (at t = 0 for phase 0).
        self.position = 0
        self.pendingFirst = process == .constant ? phase : nil
    }

    private var pendingFirst: Double?

    /// Total planned duration in seconds.
    public var duration: Double { stages.reduce(0) { $0 + $1.duration } }

    /// The next intended send time in nanoseconds since the run's start, or nil when the schedule is over.
    public mutating func next() -> UInt64? {
        if let limit, produced >= limit { return nil }
        var need: Double
        if let first = pendingFirst {
            pendingFirst = nil
            need = first
        } else {
            need = process == .constant ? 1 : -log(rng.unitInterval())
        }
        while stageIndex < stages.count {
            let stage = stages[stageIndex]
            let a = stage.startRate
            let b = (stage.endRate - stage.startRate) / stage.duration
            let total = a * stage.duration + b * stage.duration * stage.duration / 2
            // An arrival exactly at a stage's end belongs to the next stage (a run of N × 1/rate seconds
            // sends N requests, not N + 1).
            if done + need < total - 1e-9 {
                let target = done + need
                let t: Double
                if abs(b) < 1e-12 {
                    t = a > 0 ? target / a : stage.duration
                } else {
                    let discriminant = max(0, a * a + 2 * b * target)
                    t = (-a + discriminant.squareRoot()) / b
                }
                position = min(max(t, position), stage.duration)
                done = target
                produced += 1
                return UInt64(((stageOffset + position) * 1e9).rounded())
            }
            need -= total - done
            stageOffset += stage.duration
            stageIndex += 1
            position = 0
            done = 0
        }
        return nil
    }
}
