// The online drift detector of one model version: counts every observed row into the reference's bins over
// a sliding window kept as a ring of blocks (memory: features × bins × blocks, whatever the window), and
// scores the window against the reference each time a block completes. Single-threaded by design: the
// monitor's thread owns it, and the offline benchmark drives the same type directly.

/// Detector settings: the window, the thresholds and how a reference taken from traffic is built.
public struct DriftDetectorOptions: Sendable, Hashable {
    /// Rows in the sliding window scored against the reference. Default 10 000.
    public var window: Int
    /// Blocks the window slides by (scores refresh once per block). Default 10.
    public var blocks: Int
    /// A feature is flagged when its test's p-value, multiplied by the number of features tested (Bonferroni),
    /// falls below this. Default 1e-6.
    public var significance: Double
    /// A feature is also flagged when its PSI exceeds this. Default 0.25.
    public var maxInputDrift: Double
    /// Prediction drift's PSI threshold on outputs. Default 0.25.
    public var maxOutputDrift: Double
    /// Binning of a profile built from traffic.
    public var profile: ProfileOptions

    /// The defaults.
    public init(
        window: Int = 10_000,
        blocks: Int = 10,
        significance: Double = 1e-6,
        maxInputDrift: Double = 0.25,
        maxOutputDrift: Double = 0.25,
        profile: ProfileOptions = ProfileOptions()
    ) {
        self.window = window
        self.blocks = blocks
        self.significance = significance
        self.maxInputDrift = maxInputDrift
        self.maxOutputDrift = maxOutputDrift
        self.profile = profile
    }
}

/// One feature's scores over the current window.
public struct FeatureDrift: Sendable, Hashable {
    /// The feature's name.
    public var name: String
    /// Whether it is an output.
    public var isOutput: Bool
    /// The test behind `statistic` and `pValue`.
    public var test: DriftTest
    /// Population stability index.
    public var psi: Double
    /// The KS statistic or the chi-squared statistic.
    public var statistic: Double
    /// The test's p-value (before the Bonferroni factor).
    public var pValue: Double
    /// Whether the feature is drifting.
    public var flagged: Bool
}

/// The state of a version's drift.
public enum DriftStatus: String, Sendable, Hashable {
    /// Building the reference from the first calls.
    case collectingReference = "collecting_reference"
    /// Waiting for a full window.
    case warmingUp = "warming_up"
    /// No feature flagged.
    case ok
    /// At least one input or output feature flagged.
    case drifting
}

/// Scores of one version at the end of its latest block.
public struct DriftScores: Sendable, Hashable {
    /// The status.
    public var status: DriftStatus
    /// Rows observed since the detector started.
    public var rowsObserved: UInt64
    /// Rows in the scored window.
    public var windowRows: Int
    /// Rows in the reference.
    public var referenceRows: Int
    /// Every feature's scores, inputs first (empty until the first window completes).
    public var features: [FeatureDrift]
    /// The largest input PSI.
    public var maxInputPSI: Double
    /// The largest output PSI.
    public var maxOutputPSI: Double
    /// Input features flagged.
    public var inputsFlagged: Int
    /// Output features flagged.
    public var outputsFlagged: Int
}

/// Sliding-window drift detection of one version against its reference.
public struct DriftDetector: Sendable {
    /// The reference, once there is one.
    public private(set) var profile: ReferenceProfile?
    /// The settings.
    public let options: DriftDetectorOptions
    private let inputNames: [String]
    private let outputLayout: [(name: String, width: Int)]
    private let referenceRows: Int

    // Reference collection from traffic.
    private var sampleInputs: [Float] = []
    private var sampleOutputs: [Float] = []

    // The window: `blockCounts[b]` holds block b's counts of every feature's bins, laid out by `offsets`.
    private var offsets: [Int] = []
    private var blockCounts: [[UInt32]] = []
    private var windowCounts: [Double] = []
    private var blockRows: [Int] = []
    private var current = 0
    private var rowsPerBlock = 1
    private var filledBlocks = 0
    private var observed: UInt64 = 0
    private var latest: [FeatureDrift] = []

    /// A detector scoring against `profile`.
    public init(profile: ReferenceProfile, options: DriftDetectorOptions) {
        self.options = options
        inputNames = profile.inputs.map(\.name)
        outputLayout = []
        referenceRows = profile.rows
        adopt(profile)
    }

    /// A detector that takes the first `referenceRows` rows it observes as its reference.
    /// - Parameters:
    ///   - inputNames: the flattened input features' names.
    ///   - outputLayout: the outputs' names and per-row widths (empty: no prediction drift).
    public init(
        referenceRows: Int,
        inputNames: [String],
        outputLayout: [(name: String, width: Int)],
        options: DriftDetectorOptions
    ) {
        self.options = options
        self.inputNames = inputNames
        self.outputLayout = outputLayout
        self.referenceRows = max(1, referenceRows)
    }

    private mutating func adopt(_ profile: ReferenceProfile) {
        self.profile = profile
        var offset = 0
        offsets = (profile.inputs + profile.outputs).map { feature in
            defer { offset += feature.binning.binCount }
            return offset
        }
        offsets.append(offset)
        let blocks = max(1, options.blocks)
        rowsPerBlock = max(1, options.window / blocks)
        blockCounts = [[UInt32]](repeating: [UInt32](repeating: 0, count: offset), count: blocks)
        blockRows = [Int](repeating: 0, count: blocks)
        windowCounts = [Double](repeating: 0, count: offset)
        current = 0
        filledBlocks = 0
    }

    /// Observes `rows` rows: `inputs` row-major over the input features, `outputs` row-major over the output
    /// values (or empty). Returns whether a block completed (and the scores were refreshed).
    @discardableResult
    public mutating func observe(inputs: UnsafeBufferPointer<Float>, outputs: UnsafeBufferPointer<Float>, rows: Int)
        -> Bool
    {
        guard rows > 0 else { return false }
        observed += UInt64(rows)
        guard let profile else {
            sampleInputs.append(contentsOf: inputs)
            sampleOutputs.append(contentsOf: outputs)
            if sampleInputs.count >= referenceRows * max(inputNames.count, 1) {
                let built = ReferenceProfile.build(
                    inputs: sampleInputs,
                    inputNames: inputNames,
                    outputs: sampleOutputs,
                    outputLayout: outputLayout,
                    options: options.profile
                )
                sampleInputs = []
                sampleOutputs = []
                adopt(built)
            }
            return false
        }
        let inputWidth = profile.inputs.count
        let outputWidth = outputs.count / rows
        var completed = false
        for row in 0..<rows {
            // The oldest block leaves the window when the next row arrives, so that between rows the window
            // (and what reports show of it) is exactly what was last scored.
            if blockRows[current] >= rowsPerBlock { advance() }
            var counts = blockCounts[current]
            blockCounts[current] = []
            for (feature, featureProfile) in profile.inputs.enumerated() {
                let bin = featureProfile.binning.bin(of: inputs[row * inputWidth + feature])
                counts[offsets[feature] + bin] += 1
                windowCounts[offsets[feature] + bin] += 1
            }
            if outputWidth > 0 {
                countOutputs(
                    UnsafeBufferPointer(rebasing: outputs[(row * outputWidth)..<((row + 1) * outputWidth)]),
                    into: &counts
                )
            }
            blockCounts[current] = counts
            blockRows[current] += 1
            if blockRows[current] >= rowsPerBlock {
                filledBlocks = min(filledBlocks + 1, blockCounts.count)
                if filledBlocks == blockCounts.count { score() }
                completed = true
            }
        }
        return completed
    }

    private mutating func countOutputs(_ row: UnsafeBufferPointer<Float>, into counts: inout [UInt32]) {
        guard let profile else { return }
        var feature = profile.inputs.count
        var valueIndex = 0
        for output in profile.outputs {
            let value: Float
            if let range = output.argmaxRange {
                value =
                    range.upperBound <= row.count
                    ? Float(argmax(row, start: range.lowerBound, count: range.count)) : .nan
            } else {
                value = valueIndex < row.count ? row[valueIndex] : .nan
                valueIndex += 1
            }
            let bin = output.binning.bin(of: value)
            counts[offsets[feature] + bin] += 1
            windowCounts[offsets[feature] + bin] += 1
            feature += 1
        }
    }

    private func argmax(_ row: UnsafeBufferPointer<Float>, start: Int, count: Int) -> Int {
        var best = 0
        for i in 1..<count where row[start + i] > row[start + best] { best = i }
        return best
    }

    private mutating func advance() {
        current = (current + 1) % blockCounts.count
        guard blockRows[current] > 0 else { return }
        let counts = blockCounts[current]
        for i in counts.indices { windowCounts[i] -= Double(counts[i]) }
        blockCounts[current] = [UInt32](repeating: 0, count: counts.count)
        blockRows[current] = 0
    }

    private mutating func score() {
        guard let profile else { return }
        let features = profile.inputs + profile.outputs
        let tested = Double(max(features.count, 1))
        let windowRows = Double(blockRows.reduce(0, +))
        latest = features.enumerated().map { index, feature in
            let current = Array(windowCounts[offsets[index]..<offsets[index + 1]])
            let psi = DriftStatistics.psi(reference: feature.referenceCounts, current: current)
            let statistic: Double
            let pValue: Double
            switch feature.binning.test {
            case .ks:
                statistic = DriftStatistics.ksStatistic(reference: feature.referenceCounts, current: current)
                pValue = DriftStatistics.ksPValue(statistic: statistic, n: Double(profile.rows), m: windowRows)
            case .chiSquared:
                let chi = DriftStatistics.chiSquared(reference: feature.referenceCounts, current: current)
                statistic = chi.statistic
                pValue = DriftStatistics.chiSquaredPValue(
                    statistic: chi.statistic,
                    degreesOfFreedom: chi.degreesOfFreedom
                )
            }
            let limit = feature.isOutput ? options.maxOutputDrift : options.maxInputDrift
            return FeatureDrift(
                name: feature.name,
                isOutput: feature.isOutput,
                test: feature.binning.test,
                psi: psi,
                statistic: statistic,
                pValue: pValue,
                flagged: pValue * tested < options.significance || psi > limit
            )
        }
    }

    /// The window's counts of feature `index` (inputs first, then outputs), for reports.
    public func currentCounts(ofFeature index: Int) -> [Double] {
        guard index + 1 < offsets.count else { return [] }
        return Array(windowCounts[offsets[index]..<offsets[index + 1]])
    }

    /// The scores at the end of the latest complete window.
    public var scores: DriftScores {
        let status: DriftStatus
        if profile == nil {
            status = .collectingReference
        } else if latest.isEmpty {
            status = .warmingUp
        } else {
            status = latest.contains(where: \.flagged) ? .drifting : .ok
        }
        return DriftScores(
            status: status,
            rowsObserved: observed,
            windowRows: blockRows.reduce(0, +),
            referenceRows: profile?.rows ?? 0,
            features: latest,
            maxInputPSI: latest.lazy.filter { !$0.isOutput }.map(\.psi).max() ?? 0,
            maxOutputPSI: latest.lazy.filter(\.isOutput).map(\.psi).max() ?? 0,
            inputsFlagged: latest.count(where: { !$0.isOutput && $0.flagged }),
            outputsFlagged: latest.count(where: { $0.isOutput && $0.flagged })
        )
    }
}
