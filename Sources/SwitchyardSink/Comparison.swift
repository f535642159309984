// One shadow/primary pair compared: per output, argmax agreement, max |Δ| and mean |Δ|, plus both
// latencies and errors. Pure functions and value types; the sink aggregates and stores them.

import SwitchyardCore

/// One side of a pair (the primary call or its shadow).
@MemberwiseInit
public struct ComparisonSide: Sendable {
    /// The version that ran.
    public var version: String
    /// Nanoseconds from the call's arrival to this side's result.
    public var latencyNanoseconds: UInt64
    /// The output tensors in signature order (`rows × elementsPerRow` values each), or the error message.
    public var result: Result<[[Float]], ComparisonError>
}

/// Why one side produced no outputs.
public struct ComparisonError: Error, Sendable, Hashable {
    /// The error, e.g. `unavailable: model 'digits:2' shadow queue is full …`.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
}

/// One output compared.
@MemberwiseInit
public struct OutputComparison: Sendable, Hashable {
    /// The output's name.
    public var name: String
    /// Share of rows whose argmax agrees; `nil` when the output has one value per row (not a classification).
    public var argmaxAgreement: Double?
    /// Largest |primary − shadow| over the output's values.
    public var maxAbsDelta: Double
    /// Mean |primary − shadow| over the output's values.
    public var meanAbsDelta: Double
}

/// The comparison of one shadow result with its primary result: what the sink aggregates and writes.
@MemberwiseInit
public struct ComparisonRecord: Sendable, Hashable {
    /// Wall-clock milliseconds since 1970 when the pair completed.
    public var timestampMilliseconds: UInt64
    /// The call's `id` (may be empty).
    public var requestID: String
    /// The model.
    public var model: String
    /// The version that answered the caller.
    public var primaryVersion: String
    /// The mirrored version.
    public var shadowVersion: String
    /// Nanoseconds from arrival to the primary result.
    public var primaryLatencyNanoseconds: UInt64
    /// Nanoseconds from arrival to the shadow result.
    public var shadowLatencyNanoseconds: UInt64
    /// The primary's error, if it failed.
    public var primaryError: String?
    /// The shadow's error, if it failed (including being shed).
    public var shadowError: String?
    /// Per output; empty unless both sides succeeded with comparable outputs.
    public var outputs: [OutputComparison]

    /// Whether both sides produced comparable outputs.
    public var compared: Bool { primaryError == nil && shadowError == nil && !outputs.isEmpty }

    /// Whether every classification output's argmax agrees on every row; `nil` when nothing was compared
    /// or no output is a classification.
    public var agreed: Bool? {
        guard compared else { return nil }
        var classified = false
        for output in outputs {
            guard let agreement = output.argmaxAgreement else { continue }
            if agreement != 1 { return false }
            classified = true
        }
        return classified ? true : nil
    }

    /// The largest |Δ| over all outputs; `nil` when nothing was compared.
    public var maxAbsDelta: Double? {
        guard compared else { return nil }
        var largest = -Double.infinity
        for output in outputs where output.maxAbsDelta > largest || output.maxAbsDelta.isNaN {
            largest = output.maxAbsDelta.isNaN ? .infinity : output.maxAbsDelta
        }
        return largest
    }
}

/// The layout of a model's outputs, to compare them.
@MemberwiseInit
public struct OutputLayout: Sendable, Hashable {
    /// Output names in signature order.
    public var names: [String]
    /// Values per row of each output.
    public var elementsPerRow: [Int]
}

/// Compares two sets of outputs.
public enum OutputComparator {
    /// Compares `shadow` with `primary`, output by output.
    /// - Returns: the comparisons, or an error naming the first output whose sizes differ.
    public static func compare(
        primary: [[Float]],
        shadow: [[Float]],
        layout: OutputLayout
    ) -> Result<[OutputComparison], ComparisonError> {
        guard primary.count == shadow.count, primary.count == layout.names.count else {
            return .failure(
                ComparisonError(
                    "shadow produced \(shadow.count) outputs, primary \(primary.count); expected \(layout.names.count)"
                )
            )
        }
        var comparisons: [OutputComparison] = []
        comparisons.reserveCapacity(primary.count)
        for index in primary.indices {
            let a = primary[index]
            let b = shadow[index]
            guard a.count == b.count else {
                return .failure(
                    ComparisonError("output '\(layout.names[index])': shadow has \(b.count) values, primary \(a.count)")
                )
            }
            var maxDelta = 0.0
            var sumDelta = 0.0
            for element in a.indices {
                let delta = Double(abs(a[element] - b[element]))
                if delta > maxDelta || delta.isNaN { maxDelta = delta.isNaN ? .infinity : delta }
                sumDelta += delta
            }
            let width = max(1, layout.elementsPerRow[index])
            var agreement: Double?
            if width > 1 && !a.isEmpty {
                let rows = a.count / width
                var agreeing = 0
                for row in 0..<rows where argmax(a, row * width, width) == argmax(b, row * width, width) {
                    agreeing += 1
                }
                agreement = rows > 0 ? Double(agreeing) / Double(rows) : nil
            }
            comparisons.append(
                OutputComparison(
                    name: layout.names[index],
                    argmaxAgreement: agreement,
                    maxAbsDelta: maxDelta,
                    meanAbsDelta: a.isEmpty ? 0 : sumDelta / Double(a.count)
                )
            )
        }
        return .success(comparisons)
    }

    @inline(__always)
    private static func argmax(_ values: [Float], _ start: Int, _ count: Int) -> Int {
        var best = 0
        var bestValue = values[start]
        for offset in 1..<count where values[start + offset] > bestValue {
            best = offset
            bestValue = values[start + offset]
        }
        return best
    }
}
