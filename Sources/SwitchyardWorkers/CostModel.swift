// Online estimates the batcher decides from: batch time as a linear function of rows (a·n + b, fitted
// by recursive least squares as batches finish), the arrival rate of rows, and how often finished jobs
// missed the latency target.

public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Batch compute time as `a·rows + b`, fitted online by recursive least squares with a forgetting
/// factor so that the fit follows the machine (other load, CPU frequency) as it changes.
public struct BatchCostModel: Sendable, Hashable {
    /// Marginal nanoseconds per row (`a`), never negative.
    public var nanosecondsPerRow: Double { max(0, theta0) * 1_000 }
    /// Fixed nanoseconds per batch (`b`), never negative.
    public var nanosecondsPerBatch: Double { max(0, theta1) * 1_000 }
    /// Batches observed.
    public private(set) var observations: UInt64 = 0
    /// Whether batches of at least two different sizes have been seen, so `a` and `b` are told apart.
    public var isIdentified: Bool { smallestRows < largestRows }

    // The fit works in microseconds so that the covariance stays well conditioned.
    private var theta0 = 0.0
    private var theta1 = 0.0
    private var p00 = 1e6
    private var p01 = 0.0
    private var p11 = 1e6
    private var smallestRows = Int.max
    private var largestRows = 0
    private let forgetting: Double

    /// Creates an empty model.
    /// - Parameter forgetting: weight kept by past observations per new one (0.9…1); lower follows
    ///   changes faster and is noisier. Default 0.98 (an effective memory of about 50 batches).
    public init(forgetting: Double = 0.98) {
        self.forgetting = min(1, max(0.9, forgetting))
    }

    /// Adds one finished batch.
    public mutating func observe(rows: Int, nanoseconds: UInt64) {
        guard rows > 0 else { return }
        let x0 = Double(rows)
        let y = Double(nanoseconds) / 1_000
        let px0 = p00 * x0 + p01
        let px1 = p01 * x0 + p11
        let denominator = forgetting + x0 * px0 + px1
        let k0 = px0 / denominator
        let k1 = px1 / denominator
        let error = y - (theta0 * x0 + theta1)
        theta0 += k0 * error
        theta1 += k1 * error
        // P ← (P − k·xᵀP) / λ, skipping the division when P is already large: without new information
        // (one batch size only) forgetting would otherwise inflate P without bound.
        let scale = (p00 + p11) > 1e7 ? 1 : 1 / forgetting
        let n00 = (p00 - k0 * px0) * scale
        let n01 = (p01 - k0 * px1) * scale
        let n11 = (p11 - k1 * px1) * scale
        p00 = n00
        p01 = n01
        p11 = n11
        observations += 1
        smallestRows = min(smallestRows, rows)
        largestRows = max(largestRows, rows)
    }

    /// Estimated nanoseconds for a batch of `rows`, or `nil` before the first observation.
    public func estimate(rows: Int) -> Double? {
        guard observations > 0 else { return nil }
        // Uses the clamped coefficients, so a noisy negative intercept or slope never predicts a batch
        // cheaper than its parts; never below a microsecond.
        return max(1_000, nanosecondsPerRow * Double(rows) + nanosecondsPerBatch)
    }
}

/// The recent arrival rate of rows, as an exponentially decaying count over a time constant.
public struct ArrivalRateEstimator: Sendable, Hashable {
    /// Decay time constant in nanoseconds.
    public let timeConstantNanoseconds: Double
    private var weight = 0.0
    private var last: MonotonicInstant?

    /// Creates an estimator that forgets arrivals older than about `timeConstantNanoseconds`.
    public init(timeConstantNanoseconds: Double = 50_000_000) {
        self.timeConstantNanoseconds = max(1_000, timeConstantNanoseconds)
    }

    /// Counts `rows` arriving at `now`.
    public mutating func record(rows: Int, at now: MonotonicInstant) {
        weight = decayed(to: now) + Double(rows)
        last = max(now, last ?? now)
    }

    /// Rows per nanosecond arriving around `now`.
    public func rowsPerNanosecond(at now: MonotonicInstant) -> Double {
        decayed(to: now) / timeConstantNanoseconds
    }

    private func decayed(to now: MonotonicInstant) -> Double {
        guard let last else { return 0 }
        let elapsed = Double(now.nanoseconds(since: last))
        return weight * exp(-elapsed / timeConstantNanoseconds)
    }
}

/// Additive-increase / multiplicative-decrease of how much of the latency target the batcher may spend
/// on waiting and on batch compute, driven by the share of finished jobs that missed the target.
public struct LatencyFeedback: Sendable, Hashable {
    /// Fraction of the latency budget in use, in `minimumScale…1`.
    public private(set) var scale = 1.0
    /// Lowest scale the feedback goes to.
    public let minimumScale = 0.1
    /// Jobs judged per adjustment.
    public let window: Int
    /// Share of jobs allowed over the target (the SLO is a p99: 1 %).
    public let allowedMissRate: Double
    private var judged = 0
    private var missed = 0

    /// Creates feedback judging every `window` jobs against an allowed miss rate.
    public init(window: Int = 200, allowedMissRate: Double = 0.01) {
        self.window = max(1, window)
        self.allowedMissRate = allowedMissRate
    }

    /// Adds one finished job's queue + compute latency against the target.
    public mutating func record(latencyNanoseconds: UInt64, targetNanoseconds: UInt64) {
        judged += 1
        if latencyNanoseconds > targetNanoseconds { missed += 1 }
        guard judged >= window else { return }
        if Double(missed) > allowedMissRate * Double(judged) {
            scale = max(minimumScale, scale * 0.7)
        } else {
            scale = min(1, scale + 0.05)
        }
        judged = 0
        missed = 0
    }
}
