// A fixed-bucket latency histogram updated with one relaxed atomic add per call, so that /metrics can show
// latency distributions (Prometheus histogram) without a lock on the request path, and a rollout can read a
// quantile over a window from the difference of two snapshots.

import Synchronization

/// Durations counted in fixed buckets from 50 µs to 10 s (plus +∞).
public final class LatencyHistogram: Sendable {
    /// Upper bounds of the buckets in nanoseconds, ascending; a last, unbounded bucket follows.
    public static let upperBoundsNanoseconds: [UInt64] = [
        50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
        100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 10_000_000_000,
    ]

    private let counts: InlineArray<17, Atomic<UInt64>>

    /// An empty histogram.
    public init() { counts = InlineArray { _ in Atomic(0) } }

    /// Counts one duration of `nanoseconds`.
    @inline(__always)
    public func record(_ nanoseconds: UInt64) {
        var index = 0
        let bounds = Self.upperBoundsNanoseconds
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        counts[index].add(1, ordering: .relaxed)
    }

    /// Per-bucket (not cumulative) counts: one per upper bound, then the unbounded bucket.
    public var bucketCounts: [UInt64] { (0..<17).map { counts[$0].load(ordering: .relaxed) } }

    /// The `q` quantile (0…1) in nanoseconds of per-bucket `counts` (as `bucketCounts` returns, or the difference
    /// of two of them), interpolated linearly inside its bucket the way Prometheus' `histogram_quantile` does;
    /// `nil` without observations. A quantile in the unbounded bucket is reported as the last finite bound.
    public static func quantile(_ q: Double, of counts: [UInt64]) -> Double? {
        let total = counts.reduce(0, +)
        guard total > 0 else { return nil }
        let rank = q * Double(total)
        var cumulative: UInt64 = 0
        for (index, count) in counts.enumerated() {
            let below = Double(cumulative)
            cumulative += count
            guard Double(cumulative) >= rank, count > 0 else { continue }
            guard index < upperBoundsNanoseconds.count else { return Double(upperBoundsNanoseconds.last!) }
            let lower = index == 0 ? 0 : Double(upperBoundsNanoseconds[index - 1])
            let upper = Double(upperBoundsNanoseconds[index])
            return lower + (upper - lower) * (rank - below) / Double(count)
        }
        return Double(upperBoundsNanoseconds.last!)
    }
}
