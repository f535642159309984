// Online aggregates of comparisons per (model, primary, shadow): agreement rate, divergence quantiles,
// latency deltas and error counts. Quantiles come from a log-scale histogram (≤ 9% relative error).

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The identity of an aggregate.
@MemberwiseInit
public struct ComparisonKey: Sendable, Hashable, CustomStringConvertible {
    /// The model.
    public var model: String
    /// The version answering callers.
    public var primaryVersion: String
    /// The mirrored version.
    public var shadowVersion: String

    public var description: String { "\(model) \(primaryVersion)→\(shadowVersion)" }
}

/// A histogram of non-negative values in log-spaced buckets: 8 per power of two from 2⁻⁴⁰ to 2⁴⁰, plus
/// one bucket for values below (including 0) and one above. A quantile is reported as its bucket's upper
/// bound, within 2^(1/8) − 1 ≈ 9% of the true value.
public struct LogHistogram: Sendable, Hashable {
    static let perOctave = 8
    static let minExponent = -40
    static let maxExponent = 40
    static let bucketCount = (maxExponent - minExponent) * perOctave + 2

    /// Counts per bucket.
    public private(set) var buckets = [UInt64](repeating: 0, count: LogHistogram.bucketCount)
    /// Values recorded.
    public private(set) var count: UInt64 = 0
    /// Sum of values recorded.
    public private(set) var sum: Double = 0
    /// Largest value recorded.
    public private(set) var max: Double = 0

    /// An empty histogram.
    public init() {}

    /// The bucket of `value`.
    static func bucket(of value: Double) -> Int {
        guard value > 0x1.0p-40 else { return 0 }
        guard value < 0x1.0p40 else { return bucketCount - 1 }
        let position = (log2(value) - Double(minExponent)) * Double(perOctave)
        return Swift.min(bucketCount - 2, Swift.max(1, Int(position.rounded(.up))))
    }

    /// The upper bound of bucket `index`.
    static func upperBound(of index: Int) -> Double {
        if index == 0 { return 0x1.0p-40 }
        if index == bucketCount - 1 { return .infinity }
        return exp2(Double(index) / Double(perOctave) + Double(minExponent))
    }

    /// Records a value (negative values count as 0, NaN as +∞).
    public mutating func record(_ value: Double) {
        let value = value.isNaN ? .infinity : Swift.max(0, value)
        buckets[LogHistogram.bucket(of: value)] += 1
        count += 1
        sum += value
        if value > max { max = value }
    }

    /// The `q`-quantile (0…1), or `nil` when empty.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = Swift.max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (index, bucketCount) in buckets.enumerated() {
            seen += bucketCount
            if seen >= rank { return Swift.min(LogHistogram.upperBound(of: index), max) }
        }
        return max
    }

    /// The mean, or `nil` when empty.
    public var mean: Double? { count > 0 ? sum / Double(count) : nil }
}

/// Aggregates of one (model, primary, shadow) triple.
public struct ComparisonAggregate: Sendable, Hashable {
    /// Pairs seen.
    public private(set) var pairs: UInt64 = 0
    /// Pairs where both sides produced comparable outputs.
    public private(set) var compared: UInt64 = 0
    /// Compared pairs with at least one classification output.
    public private(set) var classified: UInt64 = 0
    /// Classified pairs whose argmax agreed on every row of every classification output.
    public private(set) var agreed: UInt64 = 0
    /// Pairs whose primary failed.
    public private(set) var primaryErrors: UInt64 = 0
    /// Pairs whose shadow failed (including shadow work shed under load).
    public private(set) var shadowErrors: UInt64 = 0
    /// Max |Δ| per compared pair.
    public private(set) var divergence = LogHistogram()
    /// Primary latencies, milliseconds.
    public private(set) var primaryLatency = LogHistogram()
    /// Shadow latencies of pairs whose shadow succeeded, milliseconds.
    public private(set) var shadowLatency = LogHistogram()
    /// Sum of (shadow − primary) latency over pairs where both succeeded, milliseconds.
    public private(set) var latencyDeltaSum: Double = 0
    /// Pairs counted in `latencyDeltaSum`.
    public private(set) var latencyDeltaCount: UInt64 = 0

    /// Empty aggregates.
    public init() {}

    /// Adds one record.
    public mutating func add(_ record: ComparisonRecord) {
        pairs += 1
        let primaryMs = Double(record.primaryLatencyNanoseconds) / 1e6
        let shadowMs = Double(record.shadowLatencyNanoseconds) / 1e6
        if record.primaryError != nil { primaryErrors += 1 } else { primaryLatency.record(primaryMs) }
        if record.shadowError != nil { shadowErrors += 1 } else { shadowLatency.record(shadowMs) }
        if record.primaryError == nil && record.shadowError == nil {
            latencyDeltaSum += shadowMs - primaryMs
            latencyDeltaCount += 1
        }
        guard record.compared else { return }
        compared += 1
        if let agreed = record.agreed {
            classified += 1
            if agreed { self.agreed += 1 }
        }
        if let delta = record.maxAbsDelta { divergence.record(delta) }
    }

    /// Share of classified pairs that agreed, or `nil` before the first.
    public var agreementRate: Double? { classified > 0 ? Double(agreed) / Double(classified) : nil }
    /// Mean (shadow − primary) latency in milliseconds, or `nil` before the first pair where both succeeded.
    public var meanLatencyDeltaMilliseconds: Double? {
        latencyDeltaCount > 0 ? latencyDeltaSum / Double(latencyDeltaCount) : nil
    }
}
