// A version's reference profile: for every input feature and output value, the fixed bins the detector
// counts into (edges at the reference sample's quantiles, or the reference's categories when it has few
// distinct values) and the reference's counts in them. Built from an operator's .npy/.json sample or from
// the first calls a version serves.

import SwitchyardCore

/// How one feature is binned.
public enum FeatureBinning: Sendable, Hashable {
    /// Ordered bins: below `edges[0]`, then `[edges[i], edges[i+1])`, then at or above the last edge. The first
    /// edge is the reference minimum and the last is just above the reference maximum, so the outer bins hold
    /// only values the reference never saw. A constant feature has two edges and three bins.
    case continuous(edges: [Float])
    /// One bin per reference value, then one for anything else (NaN included).
    case categorical(values: [Float])

    /// Bins this binning counts into.
    public var binCount: Int {
        switch self {
        case .continuous(let edges): edges.count + 1
        case .categorical(let values): values.count + 1
        }
    }

    /// The bin of `value`. NaN goes to the last bin.
    @inlinable
    public func bin(of value: Float) -> Int {
        switch self {
        case .continuous(let edges):
            guard !value.isNaN else { return edges.count }
            // Number of edges ≤ value.
            var low = 0
            var high = edges.count
            while low < high {
                let mid = (low + high) >> 1
                if edges[mid] <= value { low = mid + 1 } else { high = mid }
            }
            return low
        case .categorical(let values):
            var low = 0
            var high = values.count
            while low < high {
                let mid = (low + high) >> 1
                if values[mid] < value { low = mid + 1 } else { high = mid }
            }
            return low < values.count && values[low] == value ? low : values.count
        }
    }

    /// The test this binning is scored with: KS for ordered bins, chi-squared for categories.
    public var test: DriftTest {
        switch self {
        case .continuous: .ks
        case .categorical: .chiSquared
        }
    }
}

/// The statistical test behind a feature's p-value.
public enum DriftTest: String, Sendable, Hashable, Codable {
    /// Two-sample Kolmogorov–Smirnov over ordered bins.
    case ks
    /// Chi-squared goodness of fit against the reference's category mix.
    case chiSquared = "chi2"
}

/// One profiled feature: an input element or an output value.
public struct FeatureProfile: Sendable, Hashable {
    /// The feature's name: `input[i]` for element i of an input, or the input's name when it has one element;
    /// `output:argmax` for the predicted class of a multi-valued output.
    public var name: String
    /// Whether the feature is an output (prediction drift) rather than an input.
    public var isOutput: Bool
    /// Its bins.
    public var binning: FeatureBinning
    /// The reference's count in each bin.
    public var referenceCounts: [Double]
    /// For an output's `argmax` feature: where that output's values lie in a flattened output row.
    public var argmaxRange: Range<Int>? = nil
}

/// Settings for building a profile.
@MemberwiseInit
public struct ProfileOptions: Sendable, Hashable {
    /// Quantile bins of a continuous feature (before outer bins and duplicate edges are accounted for).
    /// Default 20.
    public var bins: Int = 20
    /// A feature with at most this many distinct reference values is categorical. Default 10.
    public var categoricalMaxValues: Int = 10
}

/// The reference bins and counts of a version's inputs and outputs.
public struct ReferenceProfile: Sendable, Hashable {
    /// Input features, in the order of the flattened row.
    public var inputs: [FeatureProfile]
    /// Output features: one per output value, then one `argmax` feature per multi-valued output.
    public var outputs: [FeatureProfile]
    /// Rows the reference held.
    public var rows: Int

    /// Feature names of a row flattened from tensors with these names and per-row widths.
    public static func featureNames(_ tensors: [(name: String, width: Int)]) -> [String] {
        tensors.flatMap { tensor in
            tensor.width == 1 ? [tensor.name] : (0..<tensor.width).map { "\(tensor.name)[\($0)]" }
        }
    }

    /// Builds a profile from row-major samples.
    /// - Parameters:
    ///   - inputs: `rows × inputNames.count` input values, row-major.
    ///   - inputNames: the input features' names.
    ///   - outputs: `rows × outputLayout widths` output values, row-major, or empty for no output profile.
    ///   - outputLayout: the outputs' names and per-row widths.
    ///   - options: binning settings.
    public static func build(
        inputs: [Float],
        inputNames: [String],
        outputs: [Float] = [],
        outputLayout: [(name: String, width: Int)] = [],
        options: ProfileOptions = ProfileOptions()
    ) -> ReferenceProfile {
        let width = inputNames.count
        let rows = width == 0 ? 0 : inputs.count / width
        var inputProfiles: [FeatureProfile] = []
        inputProfiles.reserveCapacity(width)
        var column = [Float](repeating: 0, count: rows)
        for feature in 0..<width {
            for row in 0..<rows { column[row] = inputs[row * width + feature] }
            inputProfiles.append(profile(column, name: inputNames[feature], isOutput: false, options: options))
        }
        var outputProfiles: [FeatureProfile] = []
        let outputWidth = outputLayout.reduce(0) { $0 + $1.width }
        if outputWidth > 0, outputs.count == rows * outputWidth {
            let names = featureNames(outputLayout)
            for feature in 0..<outputWidth {
                for row in 0..<rows { column[row] = outputs[row * outputWidth + feature] }
                outputProfiles.append(profile(column, name: names[feature], isOutput: true, options: options))
            }
            var offset = 0
            for output in outputLayout {
                defer { offset += output.width }
                guard output.width > 1 else { continue }
                for row in 0..<rows {
                    column[row] = Float(argmax(outputs, from: row * outputWidth + offset, count: output.width))
                }
                let classes = (0..<output.width).map(Float.init)
                var counts = [Double](repeating: 0, count: classes.count + 1)
                let binning = FeatureBinning.categorical(values: classes)
                for value in column { counts[binning.bin(of: value)] += 1 }
                outputProfiles.append(
                    FeatureProfile(
                        name: "\(output.name):argmax",
                        isOutput: true,
                        binning: binning,
                        referenceCounts: counts,
                        argmaxRange: offset..<(offset + output.width)
                    )
                )
            }
        }
        return ReferenceProfile(inputs: inputProfiles, outputs: outputProfiles, rows: rows)
    }

    /// The index of the largest of `count` values starting at `start` (the first on ties).
    static func argmax(_ values: [Float], from start: Int, count: Int) -> Int {
        var best = 0
        for i in 1..<count where values[start + i] > values[start + best] { best = i }
        return best
    }

    /// The binning and reference counts of one feature's reference column.
    static func profile(_ column: [Float], name: String, isOutput: Bool, options: ProfileOptions) -> FeatureProfile {
        let sorted = column.filter { !$0.isNaN }.sorted()
        var distinct: [Float] = []
        for value in sorted where distinct.last != value {
            distinct.append(value)
            if distinct.count > options.categoricalMaxValues { break }
        }
        let binning: FeatureBinning
        if distinct.count <= options.categoricalMaxValues {
            binning = .categorical(values: distinct)
        } else {
            var edges: [Float] = []
            let bins = max(options.bins, 1)
            for i in 0..<bins {
                let edge = sorted[min(sorted.count - 1, i * sorted.count / bins)]
                if edges.last != edge { edges.append(edge) }
            }
            let top = sorted[sorted.count - 1].nextUp
            if edges.last != top { edges.append(top) }
            binning = .continuous(edges: edges)
        }
        var counts = [Double](repeating: 0, count: binning.binCount)
        for value in column { counts[binning.bin(of: value)] += 1 }
        return FeatureProfile(name: name, isOutput: isOutput, binning: binning, referenceCounts: counts)
    }
}
