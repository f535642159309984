// A model's `config.yaml` in the model repository: batching, workers, latency targets and monitoring.

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

    /// The defaults.
    public init(
        maxBatchSize: Int = 64,
        workers: Int = ModelConfiguration.defaultWorkers,
        sloMilliseconds: Double = 50,
        maxQueueSize: Int = 4096,
        defaultVersion: String? = nil,
        workerCPUs: String? = nil,
        capture: CaptureConfiguration? = nil,
        drift: DriftConfiguration? = nil
    ) {
        self.maxBatchSize = maxBatchSize
        self.workers = workers
        self.sloMilliseconds = sloMilliseconds
        self.maxQueueSize = maxQueueSize
        self.defaultVersion = defaultVersion
        self.workerCPUs = workerCPUs
        self.capture = capture
        self.drift = drift
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
        case capture, drift
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
        return problems
    }
}
