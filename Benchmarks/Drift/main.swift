// The drift goals, offline, through the same DriftDetector the monitor thread runs: how many calls after a
// drift starts until it is flagged (a shift injected into one of 64 features at 5 % of calls), and how many
// alarms a long run from the reference distribution raises. Seeded, so every run reproduces its figures.

import SwitchyardCore
import SwitchyardMonitor

#if canImport(Glibc)
    import Glibc
#endif

/// SplitMix64 with Box–Muller normals.
struct Generator {
    var random: SplitMix64
    var spare: Double?

    init(state: UInt64) { random = SplitMix64(seed: state) }

    mutating func uniform() -> Double { random.unitDouble() }

    mutating func normal() -> Double {
        if let spare {
            self.spare = nil
            return spare
        }
        let u = max(uniform(), 1e-300)
        let v = uniform()
        let r = (-2 * log(u)).squareRoot()
        spare = r * sin(2 * Double.pi * v)
        return r * cos(2 * Double.pi * v)
    }
}

func argument(_ name: String, _ fallback: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let value = Int(arguments[index + 1])
    else { return fallback }
    return value
}

let features = 64
let drifted = 17
let referenceRows = argument("--reference-rows", 50_000)
let window = argument("--window", 8_000)
let blocks = argument("--blocks", 8)
let seeds = argument("--seeds", 10)
let nullCalls = argument("--null-calls", 1_000_000)
let shift = Double(argument("--shift", 4))
let options = DriftDetectorOptions(window: window, blocks: blocks)

/// A reference-distribution row: feature i ~ N(0, 1) for even i, a 5-valued categorical for i % 8 == 7, and
/// exponential otherwise, so continuous, skewed and categorical features all run.
func row(_ g: inout Generator, into values: inout [Float]) {
    for i in 0..<features {
        if i % 8 == 7 {
            values[i] = Float(Int(g.uniform() * 5))
        } else if i % 2 == 0 {
            values[i] = Float(g.normal())
        } else {
            values[i] = Float(-log(max(g.uniform(), 1e-300)))
        }
    }
}

func reference(seed: UInt64) -> ReferenceProfile {
    var g = Generator(state: seed)
    var sample = [Float](repeating: 0, count: referenceRows * features)
    var values = [Float](repeating: 0, count: features)
    for r in 0..<referenceRows {
        row(&g, into: &values)
        sample.replaceSubrange((r * features)..<((r + 1) * features), with: values)
    }
    return ReferenceProfile.build(
        inputs: sample,
        inputNames: (0..<features).map { "x[\($0)]" },
        options: options.profile
    )
}

func observe(_ detector: inout DriftDetector, _ values: [Float]) -> Bool {
    values.withUnsafeBufferPointer { inputs in
        detector.observe(inputs: inputs, outputs: UnsafeBufferPointer(start: nil, count: 0), rows: 1)
    }
}

func cpuSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

print(
    "features \(features), reference rows \(referenceRows), window \(window) in \(blocks) blocks, "
        + "significance \(options.significance) (Bonferroni over \(features)), PSI limit \(options.maxInputDrift)"
)

// Detection delay: a full window of reference traffic, then feature 17 shifted by `shift` σ in 5 % of calls.
var delays: [Int] = []
var wrongFeatures = 0
for seed in 1...seeds {
    var detector = DriftDetector(profile: reference(seed: UInt64(seed)), options: options)
    var g = Generator(state: UInt64(seed) &* 1_000_003)
    var values = [Float](repeating: 0, count: features)
    for _ in 0..<window {
        row(&g, into: &values)
        _ = observe(&detector, values)
    }
    var delay = -1
    for call in 1...100_000 {
        row(&g, into: &values)
        if g.uniform() < 0.05 { values[drifted] += Float(shift) }
        if observe(&detector, values), detector.scores.status == .drifting {
            let flagged = detector.scores.features.filter(\.flagged).map(\.name)
            if flagged != ["x[\(drifted)]"] { wrongFeatures += 1 }
            delay = call
            break
        }
    }
    delays.append(delay)
}
let sortedDelays = delays.sorted()
print(
    "drift of +\(Int(shift))σ on x[\(drifted)] in 5 % of calls, flagged after (calls, \(seeds) seeds): "
        + "median \(sortedDelays[sortedDelays.count / 2]), max \(sortedDelays.last!), all \(delays); "
        + "runs flagging another feature: \(wrongFeatures)"
)

// False alarms: `nullCalls` calls from the reference distribution, scored at every block.
var detector = DriftDetector(profile: reference(seed: 99), options: options)
var g = Generator(state: 424_242)
var values = [Float](repeating: 0, count: features)
var evaluations = 0
var alarms = 0
var minimumAdjustedP = 1.0
var maximumPSI = 0.0
let started = cpuSeconds()
for _ in 0..<nullCalls {
    row(&g, into: &values)
    if observe(&detector, values) {
        let scores = detector.scores
        guard scores.status != .warmingUp else { continue }
        evaluations += 1
        if scores.status == .drifting { alarms += 1 }
        for feature in scores.features {
            minimumAdjustedP = min(minimumAdjustedP, feature.pValue * Double(features))
            maximumPSI = max(maximumPSI, feature.psi)
        }
    }
}
let seconds = cpuSeconds() - started
print(
    "\(nullCalls) reference calls: \(evaluations) window evaluations, \(alarms) alarms; smallest adjusted p "
        + "\(minimumAdjustedP), largest PSI \(maximumPSI); \(Int(seconds / Double(nullCalls) * 1e9)) ns CPU per call "
        + "(generation + detector)"
)

// Binning cost of the 784-wide input: thread CPU per observed row, per kernel, on a reference of 10 000
// uniform rows (continuous features, 20 quantile bins each) and 20 000 other rows from the same distribution.
let wide = 784
let wideRows = argument("--wide-rows", 200_000)
var wideGenerator = Generator(state: 784)
let wideReference = (0..<(10_000 * wide)).map { _ in Float(wideGenerator.uniform()) }
let wideProfile = ReferenceProfile.build(
    inputs: wideReference,
    inputNames: ReferenceProfile.featureNames([(name: "input", width: wide)]),
    options: options.profile
)
let wideDistinct = 20_000
let wideTraffic = (0..<(wideDistinct * wide)).map { _ in Float(wideGenerator.uniform()) }
// Each kernel twice: one row per call (a detector fed call by call), then runs of 64 rows (what the monitor's thread
// hands the detector: the rows of a version's consecutive sampled calls, gathered).
for kernel in BinningKernel.allCases where kernel.isAvailable {
    for run in [1, 64] {
        var wideDetector = DriftDetector(profile: wideProfile, options: DriftDetectorOptions(), kernel: kernel)
        let wideStarted = cpuSeconds()
        // A run's rows are copied together first, as the monitor gathers them (the copy is in the figure).
        var gathered: [Float] = []
        wideTraffic.withUnsafeBufferPointer { traffic in
            var call = 0
            while call < wideRows {
                let row = call % wideDistinct
                let rows = min(run, wideRows - call, wideDistinct - row)
                let values = UnsafeBufferPointer(rebasing: traffic[(row * wide)..<((row + rows) * wide)])
                if run == 1 {
                    _ = wideDetector.observe(inputs: values, outputs: .init(start: nil, count: 0), rows: rows)
                } else {
                    gathered.removeAll(keepingCapacity: true)
                    gathered.append(contentsOf: values)
                    gathered.withUnsafeBufferPointer {
                        _ = wideDetector.observe(inputs: $0, outputs: .init(start: nil, count: 0), rows: rows)
                    }
                }
                call += rows
            }
        }
        let perRow = (cpuSeconds() - wideStarted) / Double(wideRows) * 1e9
        print(
            "\(wide)-feature rows, \(kernel.rawValue) kernel, runs of \(run): \(Int(perRow)) ns CPU per row "
                + "(binning, window, scoring), status \(wideDetector.scores.status.rawValue)"
        )
    }
}
