// The online drift detector of one model version: counts every observed row into the reference's bins over
// a sliding window kept as a ring of blocks (memory: features × bins × blocks, whatever the window), and
// scores the window against the reference each time a block completes. A row is binned by the vector kernel
// of CSwitchyardDrift (every feature against all of its edges at once, no per-feature branches or reference
// counting); the window's totals are summed from the blocks only when scored or reported. Single-threaded by
// design: the monitor's thread owns it, and the offline benchmark drives the same type directly.

import CSwitchyardDrift
import SwitchyardCore

/// Detector settings: the window, the thresholds and how a reference taken from traffic is built.
@MemberwiseInit
public struct DriftDetectorOptions: Sendable, Hashable {
    /// Rows in the sliding window scored against the reference. Default 10 000.
    public var window: Int = 10_000
    /// Blocks the window slides by (scores refresh once per block). Default 10.
    public var blocks: Int = 10
    /// A feature is flagged when its test's p-value, multiplied by the number of features tested (Bonferroni),
    /// falls below this. Default 1e-6.
    public var significance: Double = 1e-6
    /// A feature is also flagged when its PSI exceeds this. Default 0.25.
    public var maxInputDrift: Double = 0.25
    /// Prediction drift's PSI threshold on outputs. Default 0.25.
    public var maxOutputDrift: Double = 0.25
    /// Binning of a profile built from traffic.
    public var profile: ProfileOptions = ProfileOptions()
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
    /// The binning kernel (`SY_BIN_*`); `nil`: the fastest this CPU runs.
    private let kernelPath: Int32?

    // Reference collection from traffic.
    private var sampleInputs: [Float] = []
    private var sampleOutputs: [Float] = []

    // The window: block b's counts of every feature's bins are `blockCounts[b * binCount ..< (b + 1) * binCount]`,
    // laid out by `offsets`.
    private var offsets: [Int] = []
    private var binCount = 0
    private var blockCounts: [UInt32] = []
    private var blockRows: [Int] = []
    private var inputTable: BinTable?
    private var outputTable: BinTable?
    /// One row's output features (values, then each multi-valued output's argmax), for the output table.
    private var outputRow: [Float] = []
    /// Where each output feature's value comes from in a row of output values: its index (`outputCounts` 0), or
    /// the start of the range whose argmax it is (`outputCounts` the range's length).
    private var outputStarts: [Int] = []
    private var outputCounts: [Int] = []
    /// Input features per row, once there is a profile.
    private var inputWidth = 0
    private var current = 0
    private var rowsPerBlock = 1
    private var filledBlocks = 0
    private var observed: UInt64 = 0
    private var latest: [FeatureDrift] = []

    /// A detector scoring against `profile`.
    /// - Parameter kernel: the binning kernel, `portable` or `avx2` (for tests and benchmarks); `nil`: the
    ///   fastest this CPU runs.
    public init(profile: ReferenceProfile, options: DriftDetectorOptions, kernel: BinningKernel? = nil) {
        self.options = options
        kernelPath = kernel?.path
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
        options: DriftDetectorOptions,
        kernel: BinningKernel? = nil
    ) {
        self.options = options
        kernelPath = kernel?.path
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
        binCount = offset
        let blocks = max(1, options.blocks)
        rowsPerBlock = max(1, options.window / blocks)
        blockCounts = [UInt32](repeating: 0, count: offset * blocks)
        blockRows = [Int](repeating: 0, count: blocks)
        inputTable = BinTable(profile.inputs, firstOffset: 0, path: kernelPath)
        outputTable =
            profile.outputs.isEmpty
            ? nil : BinTable(profile.outputs, firstOffset: offsets[profile.inputs.count], path: kernelPath)
        outputRow = [Float](repeating: .nan, count: profile.outputs.count)
        outputStarts = []
        outputCounts = []
        var valueIndex = 0
        for output in profile.outputs {
            if let range = output.argmaxRange {
                outputStarts.append(range.lowerBound)
                outputCounts.append(range.count)
            } else {
                outputStarts.append(valueIndex)
                outputCounts.append(0)
                valueIndex += 1
            }
        }
        inputWidth = profile.inputs.count
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
        // The table exists once there is a profile; reading it (not the profile, a struct of arrays) keeps the
        // per-row path free of reference counting beyond one retain.
        guard let inputTable else {
            collectReference(inputs: inputs, outputs: outputs)
            return false
        }
        let inputWidth = self.inputWidth
        let outputWidth = outputs.count / rows
        guard inputs.count >= rows * inputWidth else { return false }
        var completed = false
        var row = 0
        while row < rows {
            // The oldest block leaves the window when the next row arrives, so that between rows the window
            // (and what reports show of it) is exactly what was last scored.
            if blockRows[current] >= rowsPerBlock { advance() }
            // The rows that fit in the current block are binned in one pass.
            let chunk = min(rows - row, rowsPerBlock - blockRows[current])
            let base = current * binCount
            if inputWidth > 0, let start = inputs.baseAddress {
                blockCounts.withUnsafeMutableBufferPointer { counts in
                    inputTable.count(
                        rows: start + row * inputWidth,
                        count: chunk,
                        stride: inputWidth,
                        into: counts.baseAddress! + base
                    )
                }
            }
            if outputWidth > 0, let start = outputs.baseAddress {
                for outputRow in row..<(row + chunk) {
                    countOutputs(
                        UnsafeBufferPointer(start: start + outputRow * outputWidth, count: outputWidth),
                        base: base
                    )
                }
            }
            blockRows[current] += chunk
            row += chunk
            if blockRows[current] >= rowsPerBlock {
                filledBlocks = min(filledBlocks + 1, blockRows.count)
                if filledBlocks == blockRows.count { score() }
                completed = true
            }
        }
        return completed
    }

    /// Keeps rows until there are `referenceRows`, then builds the profile from them.
    private mutating func collectReference(inputs: UnsafeBufferPointer<Float>, outputs: UnsafeBufferPointer<Float>) {
        sampleInputs.append(contentsOf: inputs)
        sampleOutputs.append(contentsOf: outputs)
        guard sampleInputs.count >= referenceRows * max(inputNames.count, 1) else { return }
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

    private mutating func countOutputs(_ row: UnsafeBufferPointer<Float>, base: Int) {
        guard let outputTable else { return }
        for index in outputStarts.indices {
            let start = outputStarts[index]
            let count = outputCounts[index]
            if count > 0 {
                outputRow[index] = start + count <= row.count ? Float(argmax(row, start: start, count: count)) : .nan
            } else {
                outputRow[index] = start < row.count ? row[start] : .nan
            }
        }
        outputRow.withUnsafeBufferPointer { values in
            blockCounts.withUnsafeMutableBufferPointer { counts in
                outputTable.count(row: values.baseAddress!, into: counts.baseAddress! + base)
            }
        }
    }

    private func argmax(_ row: UnsafeBufferPointer<Float>, start: Int, count: Int) -> Int {
        var best = 0
        for i in 1..<count where row[start + i] > row[start + best] { best = i }
        return best
    }

    private mutating func advance() {
        current = (current + 1) % blockRows.count
        guard blockRows[current] > 0 else { return }
        let base = current * binCount
        for i in base..<(base + binCount) { blockCounts[i] = 0 }
        blockRows[current] = 0
    }

    /// Every bin's count over the window: the blocks' counts summed.
    private func windowCounts() -> [Double] {
        var window = [Double](repeating: 0, count: binCount)
        for block in 0..<blockRows.count where blockRows[block] > 0 {
            let base = block * binCount
            for i in 0..<binCount { window[i] += Double(blockCounts[base + i]) }
        }
        return window
    }

    private mutating func score() {
        guard let profile else { return }
        let features = profile.inputs + profile.outputs
        let tested = Double(max(features.count, 1))
        let windowRows = Double(blockRows.reduce(0, +))
        let windowCounts = windowCounts()
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

    /// The window's counts of every feature, inputs first, in the order of `profile`'s features.
    public func currentCounts() -> [[Double]] {
        let window = windowCounts()
        return (0..<(offsets.count - 1)).map { Array(window[offsets[$0]..<offsets[$0 + 1]]) }
    }

    /// Whether the detector is still taking its reference from the rows it observes.
    public var isCollectingReference: Bool { inputTable == nil }

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

/// The binning kernels a detector can run.
public enum BinningKernel: String, Sendable, CaseIterable {
    /// Plain C, any CPU.
    case portable
    /// AVX2, 8 features per step.
    case avx2

    var path: Int32 {
        switch self {
        case .portable: Int32(SY_BIN_PORTABLE)
        case .avx2: Int32(SY_BIN_AVX2)
        }
    }

    /// Whether this CPU runs the kernel.
    public var isAvailable: Bool { BinTable.available(path) }

    /// The kernel detectors use by default: the fastest this CPU runs.
    public static var best: BinningKernel { BinTable.pathName == "avx2" ? .avx2 : .portable }
}
