// A fixed-bucket latency histogram updated with one relaxed atomic add per call, so that /metrics can show
// latency distributions (Prometheus histogram) without a lock on the request path.

import Synchronization

/// Call durations counted in fixed buckets from 250 µs to 10 s (plus +∞).
public final class LatencyHistogram: Sendable {
    /// Upper bounds of the buckets in nanoseconds, ascending; a last, unbounded bucket follows.
    public static let upperBoundsNanoseconds: [UInt64] = [
        250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000, 100_000_000,
        250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000, 10_000_000_000,
    ]

    private let counts: InlineArray<15, Atomic<UInt64>>

    /// An empty histogram.
    public init() { counts = InlineArray { _ in Atomic(0) } }

    /// Counts one call of `nanoseconds`.
    @inline(__always)
    public func record(_ nanoseconds: UInt64) {
        var index = 0
        let bounds = Self.upperBoundsNanoseconds
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        counts[index].add(1, ordering: .relaxed)
    }

    /// Per-bucket (not cumulative) counts: one per upper bound, then the unbounded bucket.
    public var bucketCounts: [UInt64] { (0..<15).map { counts[$0].load(ordering: .relaxed) } }
}
