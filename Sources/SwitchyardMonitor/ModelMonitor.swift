// The monitor: the request path hands it sampled calls (a reference to the call's input arrays and a copy of
// its outputs) through a bounded queue; its own thread counts them into each version's drift detector and
// writes captured payloads. Reports and counters are published under a lock the request path never takes.

import Foundation
public import Logging
public import SwitchyardCore
public import SwitchyardModels
import Synchronization

/// A sampled call on its way to the monitor's thread.
@MemberwiseInit
public struct MonitoredCall: Sendable {
    /// The version that served it.
    public var version: ModelVersion
    /// Whether the drift detector observes it.
    public var drift: Bool
    /// Whether its payload is captured.
    public var capture: Bool
    /// The call's id.
    public var id: String
    /// Why that version served it.
    public var route: String
    /// The routing generation.
    public var generation: UInt64
    /// Queue + compute nanoseconds.
    public var latencyNanoseconds: UInt64
    /// The trace id from `traceparent`, or empty.
    public var traceID: String
    /// Rows.
    public var rows: Int
    /// Inputs in signature order, `rows × width` each.
    public var inputs: [[Float]]
    /// Outputs in signature order, `rows × width` each.
    public var outputs: [[Float]]
}

/// A feature's bins as a report shows them.
public struct FeatureHistogram: Sendable, Hashable {
    /// One label per bin: `< a`, `[a, b)`, `≥ b` for ordered bins, the value or `other` for categories.
    public var bins: [String]
    /// Reference share per bin.
    public var reference: [Double]
    /// Current window's share per bin.
    public var current: [Double]
}

/// A version's drift as last scored.
public struct VersionDriftReport: Sendable, Hashable {
    /// Model.
    public var model: String
    /// Version.
    public var version: String
    /// Where the reference came from: a file path, or `traffic`.
    public var referenceSource: String
    /// The scores.
    public var scores: DriftScores
    /// Each feature's histograms, in the order of `scores.features`.
    public var histograms: [FeatureHistogram]
    /// Why the version is not monitored (a reference that failed to load), if so.
    public var error: String?
    /// The share of calls the detector observes now (`drift.fraction`, or less within `drift.max_cpu_share`).
    public var observedFraction: Double
}

/// The monitor's counters.
public struct MonitorStatistics: Sendable, Hashable {
    /// Calls queued for the monitor thread.
    public var accepted: UInt64 = 0
    /// Calls dropped because the queue was full (or closed).
    public var droppedQueueFull: UInt64 = 0
    /// Calls waiting now.
    public var queued: Int = 0
    /// Rows the drift detectors observed.
    public var driftRowsObserved: UInt64 = 0
    /// Capture counters, summed over every directory.
    public var capture = CaptureStatistics()

    /// Zeroed counters.
    public init() {}
}

/// Samples calls for drift detection and payload capture and processes them on its own thread.
public final class ModelMonitor: Sendable {
    private let repository: String
    private let logger: Logger
    private let published: Published
    private let sampleCounter = Atomic<UInt64>(0)
    private let queue: WorkQueue<MonitoredCall>
    private let engine: Engine

    /// Starts the monitor thread.
    /// - Parameters:
    ///   - repository: the model repository; relative `capture.directory` and `drift.reference` paths are
    ///     relative to `<repository>/<model>`.
    ///   - queueCapacity: calls queued before new ones are dropped (counted).
    /// - Throws: `internal` when the thread cannot start.
    public init(repository: String, queueCapacity: Int = 4096, logger: Logger) throws(SwitchyardError) {
        self.repository = repository
        self.logger = logger
        let engine = Engine(repository: repository, logger: logger)
        self.engine = engine
        let published = Published()
        self.published = published
        // Sampled calls gather for 100 ms rather than waking the thread one by one: a wake-up costs the request path
        // a futex call and the machine a context switch (about 100 µs of this thread's CPU in a VM), more than binning
        // a row; a half-full queue wakes it sooner.
        queue = try WorkQueue(name: "sy-monitor", capacity: queueCapacity, gatherNanoseconds: 100_000_000) { batch in
            engine.process(
                batch,
                publish: { reports, rows, capture in
                    published.state.withLock {
                        for report in reports { $0.reports[Engine.key(report.model, report.version)] = report }
                        $0.driftRows += rows
                        for (directory, statistics) in capture { $0.capture[directory] = statistics }
                    }
                }
            )
        }
    }

    /// Whether to sample this call for drift and for capture. Lock-free: one atomic increment, mixed into a
    /// uniform draw compared with each fraction.
    @inlinable
    public func sample(_ version: ModelVersion) -> (drift: Bool, capture: Bool) {
        let drift = version.driftFraction
        let capture = version.captureFraction
        guard drift > 0 || capture > 0 else { return (false, false) }
        let u = uniformDraw()
        return (u < drift, u < capture)
    }

    @usableFromInline
    func uniformDraw() -> Double {
        // splitmix64 of a shared counter: independent-looking draws without a per-thread generator.
        var z = sampleCounter.add(1, ordering: .relaxed).newValue &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-53
    }

    /// Hands a sampled call to the monitor thread; never waits (a full queue drops it, counted).
    public func submit(_ call: MonitoredCall) { queue.enqueue(call) }

    /// Loads what a version's monitoring needs now: its reference file (checked against its inputs) and its
    /// capture directory, so that a wrong reference refuses the version at load rather than later.
    /// - Throws: the reference's or the directory's problem, naming the key, the file and the expected shape.
    public func prepare(_ version: ModelVersion) throws(SwitchyardError) {
        let target = try Engine.makeTarget(for: version, repository: repository)
        engine.adopt(target, for: version)
    }

    /// The latest drift reports of `model`'s versions, by version.
    public func driftReports(model: String) -> [VersionDriftReport] {
        published.state.withLock { state in
            state.reports.values.filter { $0.model == model }.sorted { $0.version < $1.version }
        }.map(\.report)
    }

    /// Every version's latest drift report.
    public var driftReports: [VersionDriftReport] {
        published.state.withLock { state in
            state.reports.values.sorted { ($0.model, $0.version) < ($1.model, $1.version) }
        }.map(\.report)
    }

    /// Counters.
    public var statistics: MonitorStatistics {
        let counters = queue.counters
        var statistics = MonitorStatistics()
        statistics.accepted = counters.accepted
        statistics.droppedQueueFull = counters.dropped
        statistics.queued = counters.queued
        published.state.withLock { state in
            statistics.driftRowsObserved = state.driftRows
            for capture in state.capture.values {
                statistics.capture.written += capture.written
                statistics.capture.droppedWriteFailed += capture.droppedWriteFailed
                statistics.capture.bytesWritten += capture.bytesWritten
                statistics.capture.filesOpened += capture.filesOpened
                statistics.capture.writeErrors += capture.writeErrors
            }
        }
        return statistics
    }

    /// Processes every queued call, writes partial .npy batches and stops the thread.
    public func close() {
        queue.close()
        engine.finish()
    }
}

/// What the monitor thread publishes for the admin plane.
private final class Published: Sendable {
    struct State {
        var reports: [String: DriftSnapshot] = [:]
        var driftRows: UInt64 = 0
        var capture: [String: CaptureStatistics] = [:]
    }

    let state = Mutex(State())
}

/// The monitor thread's state: per version, its detector and capture writer.
private final class Engine: @unchecked Sendable {
    /// Touched by `prepare` before the version serves, then by the monitor thread only.
    final class Target: @unchecked Sendable {
        var detector: DriftDetector?
        var writer: CaptureWriter?
        /// The serial of the version this target monitors; a version unloaded and loaded again gets a new target.
        /// (Not a weak reference: that would give every version a side table, and every retain of it, on the request
        /// path too, the slow path.)
        var owner: UInt64?
        var referenceSource = "traffic"
        var error: String?
        var inputWidths: [Int] = []
        /// Values per row of each output, in signature order.
        var outputWidths: [Int] = []
        /// The detector's CPU budget (`drift.max_cpu_share`), when it has one.
        var budget: DriftBudget?
        /// Calls of the batch being processed.
        var batchCalls = 0
        /// The version's calls (its statistics) when the CPU time serving it was last shared out.
        var lastCalls: UInt64 = 0
        /// The gateway's CPU time spent serving the version, so far: the process's CPU time shared among the
        /// monitored versions by their calls.
        var servingNanoseconds: UInt64 = 0
    }

    private let repository: String
    private let logger: Logger
    // Written by `prepare` before traffic and by the thread after; the lock only guards the hand-over.
    private let lock = Mutex<[String: Target]>([:])
    private var rowBuffer: [Float] = []
    /// The process's CPU time at the end of the last pass.
    private var lastProcessNanoseconds = processCPUNanoseconds()
    /// The monitor thread's CPU time at the end of its last pass (`nil` before the first).
    private var lastThreadNanoseconds: UInt64?
    /// Input values a run of drift calls gathers before they are binned (1 MiB).
    private static let runValues = 1 << 18
    private var outputBuffer: [Float] = []

    init(repository: String, logger: Logger) {
        self.repository = repository
        self.logger = logger
    }

    func adopt(_ target: Target, for version: ModelVersion) {
        target.owner = version.serial
        lock.withLock { $0[Self.key(version.model, version.version)] = target }
    }

    /// The key of a version in the maps.
    static func key(_ model: String, _ version: String) -> String { model + "\u{0}" + version }

    static func resolve(_ path: String, model: String, repository: String) -> String {
        path.hasPrefix("/") ? path : repository + "/" + model + "/" + path
    }

    static func makeTarget(for version: ModelVersion, repository: String) throws(SwitchyardError) -> Target {
        let target = Target()
        let signature = version.signature
        let inputs = signature.inputs.map { (name: $0.name, width: $0.elementsPerRow) }
        let outputs = signature.outputs.map { (name: $0.name, width: $0.elementsPerRow) }
        target.inputWidths = inputs.map(\.width)
        target.outputWidths = outputs.map(\.width)
        if let drift = version.configuration.drift, drift.covers(version: version.version) {
            let options = DriftDetectorOptions(
                window: drift.window,
                blocks: drift.blocks,
                significance: drift.significance,
                maxInputDrift: drift.maxInputDrift,
                maxOutputDrift: drift.maxOutputDrift,
                profile: ProfileOptions(bins: drift.bins, categoricalMaxValues: drift.categoricalMaxValues)
            )
            if let reference = drift.reference {
                let path = resolve(reference, model: version.model, repository: repository)
                let profile = try ReferenceFile.load(
                    path: path,
                    outputsPath: drift.referenceOutputs.map {
                        resolve($0, model: version.model, repository: repository)
                    },
                    inputs: inputs,
                    outputs: outputs,
                    options: options.profile
                )
                target.detector = DriftDetector(profile: profile, options: options)
                target.referenceSource = path
            } else {
                target.detector = DriftDetector(
                    referenceRows: drift.referenceRows,
                    inputNames: ReferenceProfile.featureNames(inputs),
                    outputLayout: outputs,
                    options: options
                )
            }
            target.budget = drift.maxCPUShare.map { DriftBudget(configured: drift.fraction, maxShare: $0) }
            target.lastCalls = version.statistics.successes + version.statistics.failures
        }
        if let capture = version.configuration.capture, capture.covers(version: version.version) {
            let directory =
                resolve(capture.directory, model: version.model, repository: repository) + "/"
                + CaptureWriter.fileSafe(version.model) + "/" + CaptureWriter.fileSafe(version.version)
            target.writer = try CaptureWriter(configuration: capture, directory: directory)
        }
        return target
    }

    private func target(for version: ModelVersion) -> Target {
        if let target = lock.withLock({ $0[Self.key(version.model, version.version)] }), target.owner == version.serial
        {
            return target
        }
        let target: Target
        do {
            target = try Self.makeTarget(for: version, repository: repository)
        } catch {
            logger.error(
                "monitoring is off for this version",
                metadata: ["model": "\(version.model)", "version": "\(version.version)", "error": "\(error)"]
            )
            target = Target()
            target.error = error.description
        }
        adopt(target, for: version)
        return target
    }

    func process(
        _ batch: [MonitoredCall],
        publish: ([DriftSnapshot], UInt64, [String: CaptureStatistics]) -> Void
    ) {
        var touched: [String: (ModelVersion, Target)] = [:]
        var captured: [String: [CapturedCall]] = [:]
        var rows: UInt64 = 0
        var refreshed = Set<String>()
        // Calls of one version come in runs: its key and target are looked up once per run, and the rows of a
        // run's drift calls are gathered and binned in one pass (the detector counts them as it would one by one).
        var last: (version: ModelVersion, key: String, target: Target)?
        var driftRun: (key: String, target: Target, rows: Int)?
        func observeRun() {
            guard let run = driftRun else { return }
            driftRun = nil
            let completed = rowBuffer.withUnsafeBufferPointer { inputs in
                outputBuffer.withUnsafeBufferPointer { outputs in
                    run.target.detector?.observe(inputs: inputs, outputs: outputs, rows: run.rows) ?? false
                }
            }
            rows += UInt64(run.rows)
            if completed || run.target.detector?.isCollectingReference == true { refreshed.insert(run.key) }
            rowBuffer.removeAll(keepingCapacity: true)
            outputBuffer.removeAll(keepingCapacity: true)
        }
        for call in batch {
            let key: String
            let target: Target
            if let last, last.version === call.version {
                (key, target) = (last.key, last.target)
            } else {
                key = Self.key(call.version.model, call.version.version)
                target = self.target(for: call.version)
                touched[key] = (call.version, target)
                last = (call.version, key, target)
            }
            target.batchCalls += 1
            if call.drift, target.detector != nil {
                if driftRun?.target !== target {
                    observeRun()
                    driftRun = (key, target, 0)
                }
                gather(call, target)
                driftRun?.rows += call.rows
                // A run is binned once it holds a MiB of inputs: what the thread keeps stays bounded.
                if rowBuffer.count >= Self.runValues { observeRun() }
            }
            if call.capture, target.writer != nil {
                let signature = call.version.signature
                let what = call.version.configuration.capture?.what ?? .both
                captured[key, default: []].append(
                    CapturedCall(
                        id: call.id,
                        model: call.version.model,
                        version: call.version.version,
                        route: call.route,
                        generation: call.generation,
                        latencyNanoseconds: call.latencyNanoseconds,
                        traceID: call.traceID,
                        timestampMilliseconds: wallClockMilliseconds(),
                        rows: call.rows,
                        inputNames: signature.inputs.map(\.name),
                        inputs: what == .outputs ? [] : call.inputs,
                        outputNames: signature.outputs.map(\.name),
                        outputs: what == .inputs ? [] : call.outputs
                    )
                )
            }
        }
        observeRun()
        var captureStatistics: [String: CaptureStatistics] = [:]
        for (key, calls) in captured {
            guard let writer = touched[key]?.1.writer else { continue }
            writer.write(calls)
            captureStatistics[writer.directory] = writer.statistics
        }
        // The thread's CPU time since the last pass ended (this pass, and releasing the last one's calls and waiting
        // for this one), shared by this pass's versions by their calls; the process's CPU time since the last pass,
        // shared by the versions' calls since theirs; then each budget's revision.
        let thread = threadCPUNanoseconds()
        let spent = lastThreadNanoseconds.map { thread &- $0 } ?? 0
        lastThreadNanoseconds = thread
        let process = processCPUNanoseconds()
        let served = process &- lastProcessNanoseconds
        lastProcessNanoseconds = process
        var calls: [(target: Target, calls: UInt64)] = []
        for (version, target) in touched.values {
            let now = version.statistics.successes + version.statistics.failures
            calls.append((target, now &- target.lastCalls))
            target.lastCalls = now
        }
        let allCalls = calls.reduce(0) { $0 + $1.calls }
        for (target, count) in calls where allCalls > 0 {
            target.servingNanoseconds &+= UInt64(Double(served) * Double(count) / Double(allCalls))
        }
        for (key, (version, target)) in touched {
            defer { target.batchCalls = 0 }
            guard target.budget != nil else { continue }
            target.budget?.charge(spent * UInt64(target.batchCalls) / UInt64(max(batch.count, 1)))
            if let fraction = target.budget?.revise(
                current: version.driftFraction,
                servingNanoseconds: target.servingNanoseconds
            ) {
                version.setDriftFraction(fraction)
                // Reports show the share observed.
                refreshed.insert(key)
            }
        }
        var reports: [DriftSnapshot] = []
        for key in refreshed {
            guard let entry = touched[key] else { continue }
            reports.append(Self.snapshot(version: entry.0, target: entry.1))
        }
        for entry in touched.values where entry.1.error != nil {
            reports.append(Self.snapshot(version: entry.0, target: entry.1))
        }
        publish(reports, rows, captureStatistics)
    }

    /// Writes every capture writer's partial .npy batch.
    func finish() {
        let targets = lock.withLock { Array($0.values) }
        for target in targets { target.writer?.flush() }
    }

    /// Appends the call's rows to `rowBuffer` (its inputs' values row by row, in signature order) and to
    /// `outputBuffer` (likewise its outputs). A tensor of the wrong size (which validation does not let through)
    /// becomes NaN values, which the detector counts in each feature's last bin.
    private func gather(_ call: MonitoredCall, _ target: Target) {
        Self.append(call.inputs, widths: target.inputWidths, rows: call.rows, to: &rowBuffer)
        Self.append(call.outputs, widths: target.outputWidths, rows: call.rows, to: &outputBuffer)
    }

    private static func append(_ tensors: [[Float]], widths: [Int], rows: Int, to buffer: inout [Float]) {
        if tensors.count == 1, widths.count == 1, tensors[0].count == rows * widths[0] {
            buffer.append(contentsOf: tensors[0])
            return
        }
        guard tensors.count == widths.count, zip(tensors, widths).allSatisfy({ $0.count == rows * $1 }) else {
            buffer.append(contentsOf: repeatElement(.nan, count: rows * widths.reduce(0, +)))
            return
        }
        for row in 0..<rows {
            for (tensor, width) in zip(tensors, widths) {
                buffer.append(contentsOf: tensor[(row * width)..<((row + 1) * width)])
            }
        }
    }

    /// What a report of the version needs, taken on the monitor's thread; the report itself (its labels) is built
    /// only when the admin plane asks for it.
    static func snapshot(version: ModelVersion, target: Target) -> DriftSnapshot {
        let scores =
            target.detector?.scores
            ?? DriftScores(
                status: .collectingReference,
                rowsObserved: 0,
                windowRows: 0,
                referenceRows: 0,
                features: [],
                maxInputPSI: 0,
                maxOutputPSI: 0,
                inputsFlagged: 0,
                outputsFlagged: 0
            )
        var profile: ReferenceProfile?
        var current: [[Double]] = []
        if let detector = target.detector, let detected = detector.profile, !scores.features.isEmpty {
            profile = detected
            current = detector.currentCounts()
        }
        return DriftSnapshot(
            model: version.model,
            version: version.version,
            referenceSource: target.referenceSource,
            scores: scores,
            profile: profile,
            current: current,
            error: target.error,
            observedFraction: version.driftFraction
        )
    }
}

/// A version's drift as the monitor thread last published it; `report` labels its histograms.
struct DriftSnapshot: Sendable {
    var model: String
    var version: String
    var referenceSource: String
    var scores: DriftScores
    /// The reference, once scores exist.
    var profile: ReferenceProfile?
    /// The window's counts per feature, inputs first.
    var current: [[Double]]
    var error: String?
    var observedFraction: Double

    var report: VersionDriftReport {
        var histograms: [FeatureHistogram] = []
        if let profile {
            for (index, feature) in (profile.inputs + profile.outputs).enumerated() where index < current.count {
                histograms.append(
                    FeatureHistogram(
                        bins: Self.labels(feature.binning),
                        reference: Self.shares(feature.referenceCounts),
                        current: Self.shares(current[index])
                    )
                )
            }
        }
        return VersionDriftReport(
            model: model,
            version: version,
            referenceSource: referenceSource,
            scores: scores,
            histograms: histograms,
            error: error,
            observedFraction: observedFraction
        )
    }

    static func shares(_ counts: [Double]) -> [Double] {
        let total = counts.reduce(0, +)
        return counts.map { total > 0 ? $0 / total : 0 }
    }

    static func labels(_ binning: FeatureBinning) -> [String] {
        switch binning {
        case .continuous(let edges):
            var labels = ["< \(edges[0])"]
            for i in 0..<(edges.count - 1) { labels.append("[\(edges[i]), \(edges[i + 1]))") }
            labels.append("≥ \(edges[edges.count - 1])")
            return labels
        case .categorical(let values):
            return values.map { "\($0)" } + ["other"]
        }
    }
}

/// Milliseconds since 1970.
func wallClockMilliseconds() -> UInt64 {
    UInt64((Date().timeIntervalSince1970 * 1000).rounded())
}
