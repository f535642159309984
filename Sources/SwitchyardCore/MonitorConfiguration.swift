// The monitoring keys of a model's `config.yaml`: `capture` (sampled payloads to disk) and `drift` (input and
// prediction drift against a reference profile).

/// `capture:` — which calls' tensors are written, and where.
@MemberwiseInit
public struct CaptureConfiguration: Sendable, Hashable, Codable {
    /// What a capture record holds.
    public enum Payload: String, Sendable, Hashable, Codable {
        /// Request tensors only.
        case inputs
        /// Response tensors only.
        case outputs
        /// Both.
        case both
    }

    /// Share of successful calls captured, 0…1. Default 0.01.
    public var fraction: Double = 0.01
    /// Versions captured; `nil` (the default): every version.
    public var versions: [String]?
    /// What each record holds. Default `both`.
    public var what: Payload = .both
    /// Directory of the files (relative paths are relative to the model's directory). Required.
    public var directory: String
    /// Size at which a file is rotated, in MiB. Default 64.
    public var maxFileMegabytes: Int = 64
    /// Files kept per kind (JSON Lines, .npy); the oldest are deleted. Default 16.
    public var maxFiles: Int = 16
    /// Calls per .npy batch file. Default 1024.
    public var npyBatchCalls: Int = 1024
    /// Records queued for the writer before new ones are dropped (counted). Default 4096.
    public var queueCapacity: Int = 4096
    /// Inputs whose values are never written (their shape is).
    public var redact: [String] = []

    enum CodingKeys: String, CodingKey {
        case fraction, versions, what, directory, redact
        case maxFileMegabytes = "max_file_mb"
        case maxFiles = "max_files"
        case npyBatchCalls = "npy_batch_calls"
        case queueCapacity = "queue_capacity"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CaptureConfiguration(directory: "")
        fraction = try c.decodeIfPresent(Double.self, forKey: .fraction) ?? d.fraction
        versions = try c.decodeIfPresent([String].self, forKey: .versions)
        what = try c.decodeIfPresent(Payload.self, forKey: .what) ?? d.what
        directory = try c.decodeIfPresent(String.self, forKey: .directory) ?? ""
        maxFileMegabytes = try c.decodeIfPresent(Int.self, forKey: .maxFileMegabytes) ?? d.maxFileMegabytes
        maxFiles = try c.decodeIfPresent(Int.self, forKey: .maxFiles) ?? d.maxFiles
        npyBatchCalls = try c.decodeIfPresent(Int.self, forKey: .npyBatchCalls) ?? d.npyBatchCalls
        queueCapacity = try c.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? d.queueCapacity
        redact = try c.decodeIfPresent([String].self, forKey: .redact) ?? []
    }

    /// Every problem, each prefixed with its key path under `capture`.
    public func validate() -> [String] {
        var problems: [String] = []
        if !(0...1).contains(fraction) { problems.append("capture.fraction: expected 0…1, got \(fraction)") }
        if directory.isEmpty { problems.append("capture.directory: expected a directory, got none") }
        if maxFileMegabytes < 1 { problems.append("capture.max_file_mb: expected at least 1, got \(maxFileMegabytes)") }
        if maxFiles < 1 { problems.append("capture.max_files: expected at least 1, got \(maxFiles)") }
        if npyBatchCalls < 1 { problems.append("capture.npy_batch_calls: expected at least 1, got \(npyBatchCalls)") }
        if queueCapacity < 1 { problems.append("capture.queue_capacity: expected at least 1, got \(queueCapacity)") }
        if versions?.isEmpty == true { problems.append("capture.versions: expected at least one version, got []") }
        return problems
    }

    /// Whether `version` is captured.
    public func covers(version: String) -> Bool { versions?.contains(version) ?? true }
}

/// `drift:` — the reference and the detector's window and thresholds.
public struct DriftConfiguration: Sendable, Hashable, Codable {
    /// A reference sample of inputs: `.npy` `[rows, width]` or `.json` rows / `{inputs, outputs}` (relative paths
    /// are relative to the model's directory). `nil` (the default): the first `reference_rows` rows served.
    public var reference: String?
    /// The outputs of the same rows as a `.npy` `[rows, output width]` (outputs in signature order), giving prediction
    /// drift a reference next to a `.npy` input reference; `nil` (the default): outputs are not watched with a
    /// `.npy` reference (a `.json` reference carries its own `outputs`).
    public var referenceOutputs: String?
    /// Rows taken from traffic as the reference when `reference` is not given. Default 10 000.
    public var referenceRows: Int
    /// Rows in the sliding window. Default 10 000.
    public var window: Int
    /// Blocks the window slides by. Default 10.
    public var blocks: Int
    /// Quantile bins per continuous feature. Default 20.
    public var bins: Int
    /// Features with at most this many distinct reference values are categorical (chi-squared). Default 10.
    public var categoricalMaxValues: Int
    /// Bonferroni-adjusted p-value below which a feature is flagged. Default 1e-6.
    public var significance: Double
    /// PSI above which an input feature is flagged. Default 0.25.
    public var maxInputDrift: Double
    /// PSI above which an output feature is flagged. Default 0.25.
    public var maxOutputDrift: Double
    /// Share of calls the detector observes, 0…1. Default 1.
    public var fraction: Double
    /// The monitor's CPU (drift and capture) allowed for the version, as a share of the gateway's CPU spent serving it
    /// (the process's CPU time, shared among the monitored versions by their calls).
    /// While observing `fraction` of calls would cost more, the detector observes fewer (never fewer than 1 in
    /// 1000); the share it observes is reported beside its scores. Default 0.02. `null`: no limit.
    public var maxCPUShare: Double?
    /// Versions watched; `nil` (the default): every version.
    public var versions: [String]?
    /// Calls queued for the detector thread before new ones are dropped (counted). Default 4096.
    public var queueCapacity: Int

    /// The defaults.
    public init(
        reference: String? = nil,
        referenceOutputs: String? = nil,
        referenceRows: Int = 10_000,
        window: Int = 10_000,
        blocks: Int = 10,
        bins: Int = 20,
        categoricalMaxValues: Int = 10,
        significance: Double = 1e-6,
        maxInputDrift: Double = 0.25,
        maxOutputDrift: Double = 0.25,
        fraction: Double = 1,
        maxCPUShare: Double? = 0.02,
        versions: [String]? = nil,
        queueCapacity: Int = 4096
    ) {
        self.reference = reference
        self.referenceOutputs = referenceOutputs
        self.referenceRows = referenceRows
        self.window = window
        self.blocks = blocks
        self.bins = bins
        self.categoricalMaxValues = categoricalMaxValues
        self.significance = significance
        self.maxInputDrift = maxInputDrift
        self.maxOutputDrift = maxOutputDrift
        self.fraction = fraction
        self.maxCPUShare = maxCPUShare
        self.versions = versions
        self.queueCapacity = queueCapacity
    }

    enum CodingKeys: String, CodingKey {
        case reference, window, blocks, bins, significance, fraction, versions
        case maxCPUShare = "max_cpu_share"
        case referenceRows = "reference_rows"
        case referenceOutputs = "reference_outputs"
        case categoricalMaxValues = "categorical_max_values"
        case maxInputDrift = "max_input_drift"
        case maxOutputDrift = "max_output_drift"
        case queueCapacity = "queue_capacity"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DriftConfiguration()
        reference = try c.decodeIfPresent(String.self, forKey: .reference)
        referenceOutputs = try c.decodeIfPresent(String.self, forKey: .referenceOutputs)
        referenceRows = try c.decodeIfPresent(Int.self, forKey: .referenceRows) ?? d.referenceRows
        window = try c.decodeIfPresent(Int.self, forKey: .window) ?? d.window
        blocks = try c.decodeIfPresent(Int.self, forKey: .blocks) ?? d.blocks
        bins = try c.decodeIfPresent(Int.self, forKey: .bins) ?? d.bins
        categoricalMaxValues =
            try c.decodeIfPresent(Int.self, forKey: .categoricalMaxValues) ?? d.categoricalMaxValues
        significance = try c.decodeIfPresent(Double.self, forKey: .significance) ?? d.significance
        maxInputDrift = try c.decodeIfPresent(Double.self, forKey: .maxInputDrift) ?? d.maxInputDrift
        maxOutputDrift = try c.decodeIfPresent(Double.self, forKey: .maxOutputDrift) ?? d.maxOutputDrift
        fraction = try c.decodeIfPresent(Double.self, forKey: .fraction) ?? d.fraction
        // An explicit null lifts the limit; an absent key keeps the default.
        if c.contains(.maxCPUShare) {
            maxCPUShare = try c.decodeNil(forKey: .maxCPUShare) ? nil : try c.decode(Double.self, forKey: .maxCPUShare)
        } else {
            maxCPUShare = d.maxCPUShare
        }
        versions = try c.decodeIfPresent([String].self, forKey: .versions)
        queueCapacity = try c.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? d.queueCapacity
    }

    /// Every problem, each prefixed with its key path under `drift`.
    public func validate() -> [String] {
        var problems: [String] = []
        if let reference, !(reference.hasSuffix(".npy") || reference.hasSuffix(".json")) {
            problems.append("drift.reference: expected a .npy or .json file, got '\(reference)'")
        }
        if let referenceOutputs {
            if !referenceOutputs.hasSuffix(".npy") {
                problems.append("drift.reference_outputs: expected a .npy file, got '\(referenceOutputs)'")
            } else if reference?.hasSuffix(".npy") != true {
                problems.append(
                    "drift.reference_outputs: expected beside a .npy drift.reference (a .json reference carries its "
                        + "own \"outputs\"), got reference \(reference.map { "'\($0)'" } ?? "none")"
                )
            }
        }
        if referenceRows < 100 { problems.append("drift.reference_rows: expected at least 100, got \(referenceRows)") }
        if blocks < 1 || blocks > 1000 { problems.append("drift.blocks: expected 1…1000, got \(blocks)") }
        if window < max(blocks, 100) {
            problems.append("drift.window: expected at least 100 rows and one per block, got \(window)")
        }
        if bins < 2 || bins > 1000 { problems.append("drift.bins: expected 2…1000, got \(bins)") }
        if categoricalMaxValues < 0 || categoricalMaxValues > 1000 {
            problems.append("drift.categorical_max_values: expected 0…1000, got \(categoricalMaxValues)")
        }
        if !(significance > 0 && significance < 1) {
            problems.append("drift.significance: expected a p-value in (0, 1), got \(significance)")
        }
        if !(maxInputDrift > 0) {
            problems.append("drift.max_input_drift: expected a positive PSI, got \(maxInputDrift)")
        }
        if !(maxOutputDrift > 0) {
            problems.append("drift.max_output_drift: expected a positive PSI, got \(maxOutputDrift)")
        }
        if !(fraction > 0 && fraction <= 1) { problems.append("drift.fraction: expected (0, 1], got \(fraction)") }
        if let maxCPUShare, !(maxCPUShare > 0) {
            problems.append(
                "drift.max_cpu_share: expected a positive share of CPU time, or null, got \(maxCPUShare)"
            )
        }
        if versions?.isEmpty == true { problems.append("drift.versions: expected at least one version, got []") }
        if queueCapacity < 1 { problems.append("drift.queue_capacity: expected at least 1, got \(queueCapacity)") }
        return problems
    }

    /// Whether `version` is watched.
    public func covers(version: String) -> Bool { versions?.contains(version) ?? true }
}
