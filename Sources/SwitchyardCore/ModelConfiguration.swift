// A model's `config.yaml` in the model repository: batching, workers, latency targets, monitoring and the
// arithmetic precision the engine runs the model in.

/// Per-model settings read from `<repository>/<model>/config.yaml`. Every field is optional in the file;
/// absent fields take the defaults documented here.
public struct ModelConfiguration: Sendable, Hashable, Codable {
    /// Largest number of rows the pool runs in one batch. Default 64. 0 disables batching (batch-1 only
    /// models still take a leading batch dimension of 1).
    public var maxBatchSize: Int
    /// Worker threads in each version's pool. Default: half the cores, at least 1.
    public var workers: Int
    /// Latency target in milliseconds for p99 of queue + compute; the batcher adapts batches to it.
    /// Default 50.
    public var sloMilliseconds: Double
    /// Most requests queued per version before new work is shed. Default 4096.
    public var maxQueueSize: Int
    /// The version served when a request names none: `latest` (highest number, the default) or a version.
    public var defaultVersion: String?
    /// CPUs each version's worker threads run on, as a list in `taskset -c` notation (`1`, `2-3`, `0,4-7`);
    /// `nil` (the default): wherever the kernel places them. Giving a model's workers cores of their own
    /// (and the event loops others, `io_cpus`) keeps batch times steady when other threads are busy.
    public var workerCPUs: String?
    /// Payload capture (`capture:`); `nil` (the default): none.
    public var capture: CaptureConfiguration?
    /// Drift detection (`drift:`); `nil` (the default): none.
    public var drift: DriftConfiguration?
    /// The precision of the fused engine's dense layers (`precision:`): `fp32` (the default), `bf16` (CPUs with
    /// AVX-512 BF16) or `int8` (dynamic quantization). A precision other than fp32 is checked against FP32 on the
    /// model's samples at load before it serves (`precision_check:`).
    public var precision: Precision
    /// A `precision` name from the file that is not a known precision (reported by `validate`).
    var unknownPrecision: String?
    /// How bf16 or int8 is checked against FP32 at load (`precision_check:`); `nil` (the default): the model
    /// directory's `samples.json` if there is one, the thresholds' defaults, refused on failure.
    public var precisionCheck: PrecisionCheckConfiguration?

    /// The arithmetic of the fused engine's dense layers.
    public enum Precision: String, Sendable, Hashable, Codable, CaseIterable {
        /// FP32 weights and products.
        case fp32
        /// Weights and layer inputs rounded to bfloat16, sums in FP32 (needs AVX-512 BF16).
        case bf16
        /// INT8 weights per output channel, each row's inputs quantized at run time, int32 sums.
        case int8
    }

    /// The defaults.
    public init(
        maxBatchSize: Int = 64,
        workers: Int = ModelConfiguration.defaultWorkers,
        sloMilliseconds: Double = 50,
        maxQueueSize: Int = 4096,
        defaultVersion: String? = nil,
        workerCPUs: String? = nil,
        capture: CaptureConfiguration? = nil,
        drift: DriftConfiguration? = nil,
        precision: Precision = .fp32,
        precisionCheck: PrecisionCheckConfiguration? = nil
    ) {
        self.maxBatchSize = maxBatchSize
        self.workers = workers
        self.sloMilliseconds = sloMilliseconds
        self.maxQueueSize = maxQueueSize
        self.defaultVersion = defaultVersion
        self.workerCPUs = workerCPUs
        self.capture = capture
        self.drift = drift
        self.precision = precision
        self.precisionCheck = precisionCheck
    }

    /// Half the online cores, at least one.
    public static var defaultWorkers: Int { max(1, SystemInfo.coreCount / 2) }

    enum CodingKeys: String, CodingKey {
        case maxBatchSize = "max_batch_size"
        case workers
        case sloMilliseconds = "slo_ms"
        case maxQueueSize = "max_queue_size"
        case defaultVersion = "default_version"
        case workerCPUs = "worker_cpus"
        case capture, drift, precision
        case precisionCheck = "precision_check"
    }

    public init(from decoder: any Decoder) throws {
        let defaults = ModelConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxBatchSize = try c.decodeIfPresent(Int.self, forKey: .maxBatchSize) ?? defaults.maxBatchSize
        workers = try c.decodeIfPresent(Int.self, forKey: .workers) ?? defaults.workers
        sloMilliseconds = try c.decodeIfPresent(Double.self, forKey: .sloMilliseconds) ?? defaults.sloMilliseconds
        maxQueueSize = try c.decodeIfPresent(Int.self, forKey: .maxQueueSize) ?? defaults.maxQueueSize
        defaultVersion = try c.decodeIfPresent(String.self, forKey: .defaultVersion)
        workerCPUs = try c.decodeCPUListIfPresent(forKey: .workerCPUs)
        capture = try c.decodeIfPresent(CaptureConfiguration.self, forKey: .capture)
        drift = try c.decodeIfPresent(DriftConfiguration.self, forKey: .drift)
        let precisionName = try c.decodeIfPresent(String.self, forKey: .precision) ?? Precision.fp32.rawValue
        precision = Precision(rawValue: precisionName) ?? .fp32
        unknownPrecision = Precision(rawValue: precisionName) == nil ? precisionName : nil
        precisionCheck = try c.decodeIfPresent(PrecisionCheckConfiguration.self, forKey: .precisionCheck)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxBatchSize, forKey: .maxBatchSize)
        try c.encode(workers, forKey: .workers)
        try c.encode(sloMilliseconds, forKey: .sloMilliseconds)
        try c.encode(maxQueueSize, forKey: .maxQueueSize)
        try c.encodeIfPresent(defaultVersion, forKey: .defaultVersion)
        try c.encodeIfPresent(workerCPUs, forKey: .workerCPUs)
        try c.encodeIfPresent(capture, forKey: .capture)
        try c.encodeIfPresent(drift, forKey: .drift)
        try c.encode(unknownPrecision ?? precision.rawValue, forKey: .precision)
        try c.encodeIfPresent(precisionCheck, forKey: .precisionCheck)
    }

    /// The CPUs of `worker_cpus`, or empty when the workers may run anywhere (or the list is invalid, which
    /// `validate()` reports).
    public var workerCPUList: [Int] { workerCPUs.flatMap(SystemInfo.parseCPUList) ?? [] }

    /// Every problem with these settings, each prefixed with its key.
    public func validate() -> [String] {
        var problems: [String] = []
        if maxBatchSize < 0 || maxBatchSize > 65_536 {
            problems.append("max_batch_size: expected 0…65536, got \(maxBatchSize)")
        }
        if workers < 1 || workers > 256 { problems.append("workers: expected 1…256, got \(workers)") }
        if !(sloMilliseconds > 0) { problems.append("slo_ms: expected a positive number, got \(sloMilliseconds)") }
        if maxQueueSize < 1 { problems.append("max_queue_size: expected at least 1, got \(maxQueueSize)") }
        if let workerCPUs, let problem = SystemInfo.cpuListProblem(workerCPUs, key: "worker_cpus") {
            problems.append(problem)
        }
        problems += capture?.validate() ?? []
        problems += drift?.validate() ?? []
        if let unknownPrecision {
            problems.append(
                "precision: unknown precision '\(unknownPrecision)'; expected one of "
                    + Precision.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        problems += precisionCheck?.validate() ?? []
        return problems
    }
}

/// How a precision other than fp32 is measured against FP32 at load (`precision_check:` in a model's
/// `config.yaml`): the samples run through both, and the version is refused (or served with a warning) when the
/// top-1 agreement or the largest difference is worse than allowed.
///
/// ```yaml
/// precision: int8
/// precision_check:
///   samples: samples.json        # relative to the model's directory
///   min_top1_agreement: 0.99
///   max_abs_error: 0.5
///   on_failure: refuse           # refuse | warn
/// ```
public struct PrecisionCheckConfiguration: Sendable, Hashable, Codable {
    /// A JSON file of sample inputs, relative to the model's directory (or absolute): an object with, for each
    /// model input, its name and a list of rows. Default: `samples.json`; when that default file is absent the
    /// check is skipped, while a file named here must exist.
    public var samples: String?
    /// The least share of samples whose first output's largest entry (top-1) is the same as FP32's. Default 0.99.
    public var minTop1Agreement: Double
    /// The largest allowed |FP32 − chosen precision| over every output value; `nil` (the default): not checked.
    public var maxAbsError: Double?
    /// What a failed check does: `refuse` (the default) the version, or `warn` and serve it.
    public var onFailure: FailureAction
    /// An `on_failure` value from the file that is not an action (reported by `validate`).
    var unknownOnFailure: String?

    /// What a failed check does.
    public enum FailureAction: String, Sendable, Hashable, Codable, CaseIterable {
        /// The version does not load; the reason names both figures.
        case refuse
        /// The version serves; the warning (in its engine description and load log) names both figures.
        case warn
    }

    /// The defaults.
    public init(
        samples: String? = nil,
        minTop1Agreement: Double = 0.99,
        maxAbsError: Double? = nil,
        onFailure: FailureAction = .refuse
    ) {
        self.samples = samples
        self.minTop1Agreement = minTop1Agreement
        self.maxAbsError = maxAbsError
        self.onFailure = onFailure
    }

    enum CodingKeys: String, CodingKey {
        case samples
        case minTop1Agreement = "min_top1_agreement"
        case maxAbsError = "max_abs_error"
        case onFailure = "on_failure"
    }

    public init(from decoder: any Decoder) throws {
        let defaults = PrecisionCheckConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        samples = try c.decodeIfPresent(String.self, forKey: .samples)
        minTop1Agreement = try c.decodeIfPresent(Double.self, forKey: .minTop1Agreement) ?? defaults.minTop1Agreement
        maxAbsError = try c.decodeIfPresent(Double.self, forKey: .maxAbsError)
        let action = try c.decodeIfPresent(String.self, forKey: .onFailure) ?? FailureAction.refuse.rawValue
        onFailure = FailureAction(rawValue: action) ?? .refuse
        unknownOnFailure = FailureAction(rawValue: action) == nil ? action : nil
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(samples, forKey: .samples)
        try c.encode(minTop1Agreement, forKey: .minTop1Agreement)
        try c.encodeIfPresent(maxAbsError, forKey: .maxAbsError)
        try c.encode(unknownOnFailure ?? onFailure.rawValue, forKey: .onFailure)
    }

    /// Every problem with these settings, each prefixed with its key path.
    public func validate() -> [String] {
        var problems: [String] = []
        if !(0...1).contains(minTop1Agreement) {
            problems.append("precision_check.min_top1_agreement: expected 0…1, got \(minTop1Agreement)")
        }
        if let maxAbsError, !(maxAbsError >= 0) || !maxAbsError.isFinite {
            problems.append("precision_check.max_abs_error: expected a finite number >= 0, got \(maxAbsError)")
        }
        if let samples, samples.isEmpty {
            problems.append("precision_check.samples: expected a file name, got an empty string")
        }
        if let unknownOnFailure {
            problems.append(
                "precision_check.on_failure: unknown action '\(unknownOnFailure)'; expected one of "
                    + FailureAction.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        return problems
    }
}
