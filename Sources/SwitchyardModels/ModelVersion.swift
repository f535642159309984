// A loaded model version as the request path sees it: its signature, its counters, the calls holding it, and
// `submit`, the one way a call's work reaches the version's worker pool. The pool itself stays inside this module
// (and the admin plane's metrics, within the package), so the service never handles pools or jobs.

public import SwitchyardCore
package import SwitchyardWorkers
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A reading of a version's request counters (each counter read once; counters recorded meanwhile may show in
/// some and not others).
public struct VersionCounters: Sendable, Hashable {
    /// Successful calls.
    public var successes: UInt64
    /// Total nanoseconds of successful calls, from decode to response.
    public var successNanoseconds: UInt64
    /// Failed calls (validation errors after the version was resolved, engine errors, rejections).
    public var failures: UInt64
    /// Total nanoseconds of failed calls.
    public var failureNanoseconds: UInt64
    /// Total nanoseconds successful calls waited in the pool's queue.
    public var queueNanoseconds: UInt64
    /// Total compute nanoseconds attributed to successful calls: each batch's time shared by its rows.
    public var computeNanoseconds: UInt64
    /// Rows inferred.
    public var inferences: UInt64
    /// Wall-clock milliseconds since 1970 of the last successful inference; 0 for none.
    public var lastInferenceMilliseconds: UInt64
}

/// Per-version request counters for ModelStatistics and metrics, recorded as named events from loop and worker
/// threads: the request path records through `recordRefused`, `recordSuccess` and `recordFailure`, and the
/// statistics readers (ModelStatistics, `/metrics`, rollouts) read `counters`, the histograms and `calls`.
public final class VersionStatistics: Sendable {
    private let successCount = Atomic<UInt64>(0)
    private let successNanoseconds = Atomic<UInt64>(0)
    private let failureCount = Atomic<UInt64>(0)
    private let failureNanoseconds = Atomic<UInt64>(0)
    /// Durations of every call (successful or failed), for the `/metrics` latency histogram.
    public let latency = LatencyHistogram()
    private let queueNanoseconds = Atomic<UInt64>(0)
    /// Time successful calls waited in the pool's queue.
    public let queueWait = LatencyHistogram()
    private let computeNanoseconds = Atomic<UInt64>(0)
    private let inferenceCount = Atomic<UInt64>(0)
    private let lastInferenceMilliseconds = Atomic<UInt64>(0)
    /// Finished calls by how the version was chosen and gRPC status code (`RouteReason.allCases.count` × 17).
    private let calls: InlineArray<85, Atomic<UInt64>>

    /// Creates zeroed counters.
    public init() { calls = InlineArray { _ in Atomic(0) } }

    /// Records a call the version refused before its work reached the pool (its request did not fit the
    /// signature): a failure without a duration, answered with gRPC status `code`.
    public func recordRefused(route: RouteReason, code: Int) {
        failureCount.add(1, ordering: .relaxed)
        recordCall(route: route, code: code)
    }

    /// Records a call answered with outputs.
    /// - Parameters:
    ///   - route: how the version was chosen.
    ///   - elapsedNanoseconds: from decode to the answer.
    ///   - outputs: what the pool answered, with the call's rows, queue time and its batch's compute time.
    public func recordSuccess(route: RouteReason, elapsedNanoseconds: UInt64, outputs: VersionOutputs) {
        successCount.add(1, ordering: .relaxed)
        successNanoseconds.add(elapsedNanoseconds, ordering: .relaxed)
        latency.record(elapsedNanoseconds)
        inferenceCount.add(UInt64(outputs.rows), ordering: .relaxed)
        queueNanoseconds.add(outputs.queueNanoseconds, ordering: .relaxed)
        queueWait.record(outputs.queueNanoseconds)
        recordCall(route: route, code: 0)
        // The batch's compute time, shared by its rows.
        computeNanoseconds.add(
            outputs.computeNanoseconds * UInt64(outputs.rows) / UInt64(max(outputs.batchRows, 1)),
            ordering: .relaxed
        )
        lastInferenceMilliseconds.store(wallClockMilliseconds(), ordering: .relaxed)
    }

    /// Records a call the pool or the engine failed, answered with gRPC status `code` after `elapsedNanoseconds`.
    public func recordFailure(route: RouteReason, code: Int, elapsedNanoseconds: UInt64) {
        failureCount.add(1, ordering: .relaxed)
        failureNanoseconds.add(elapsedNanoseconds, ordering: .relaxed)
        latency.record(elapsedNanoseconds)
        recordCall(route: route, code: code)
    }

    /// Counts one finished call: chosen by `route`, answered with gRPC status `code` (0…16; others count as 2,
    /// UNKNOWN).
    @inline(__always)
    public func recordCall(route: RouteReason, code: Int) {
        let code = (0...16).contains(code) ? code : 2
        calls[route.index * 17 + code].add(1, ordering: .relaxed)
    }

    /// Finished calls chosen by `route` and answered with `code`.
    public func calls(route: RouteReason, code: Int) -> UInt64 {
        guard (0...16).contains(code) else { return 0 }
        return calls[route.index * 17 + code].load(ordering: .relaxed)
    }

    /// Successful calls so far.
    public var successes: UInt64 { successCount.load(ordering: .relaxed) }
    /// Failed calls so far (refused, rejected or failed).
    public var failures: UInt64 { failureCount.load(ordering: .relaxed) }

    /// Every counter as it stands now.
    public var counters: VersionCounters {
        VersionCounters(
            successes: successCount.load(ordering: .relaxed),
            successNanoseconds: successNanoseconds.load(ordering: .relaxed),
            failures: failureCount.load(ordering: .relaxed),
            failureNanoseconds: failureNanoseconds.load(ordering: .relaxed),
            queueNanoseconds: queueNanoseconds.load(ordering: .relaxed),
            computeNanoseconds: computeNanoseconds.load(ordering: .relaxed),
            inferences: inferenceCount.load(ordering: .relaxed),
            lastInferenceMilliseconds: lastInferenceMilliseconds.load(ordering: .relaxed)
        )
    }
}

/// A version's batch counters, for ModelStatistics' `execution_count` and `batch_stats`.
public struct VersionBatchStatistics: Sendable, Hashable {
    /// Primary batches executed.
    public var batches: UInt64
    /// Primary batches by rows: element `n` counts batches of `n` rows.
    public var batchCounts: [UInt64]
    /// Compute nanoseconds of primary batches by rows, indexed as `batchCounts`.
    public var batchComputeNanoseconds: [UInt64]
}

/// A loaded, servable model version: its signature, settings, counters and worker pool.
///
/// Lifecycle: a version serves from its load until the registry retires it. Every call holds the version from
/// routing until its answer is produced (`ModelRegistry.hold`, released by the job `submit` queues, or by
/// `release()` for a call that never reaches the pool). Once retired it takes no new holds; when the last hold is
/// released the registry's retirement thread stops and joins its pool.
public final class ModelVersion: Sendable {
    /// Model name.
    public let model: String
    /// Version name.
    public let version: String
    /// Inputs and outputs.
    public let signature: ModelSignature
    /// The model's settings.
    public let configuration: ModelConfiguration
    /// The pool that runs this version (the registry's and the admin plane's metrics; calls go through `submit`).
    package let pool: WorkerPool
    /// Unique among the versions this process has loaded: a version unloaded and loaded again is another.
    public let serial: UInt64
    private static let serials = Atomic<UInt64>(0)
    /// The share of calls captured, 0 when this version's payloads are not captured: read for every call, so kept
    /// apart from `configuration`'s optionals.
    public let captureFraction: Double
    /// The share of calls the drift detector observes now, as a Double's bits (0: not watched).
    private let driftFractionBits: Atomic<UInt64>
    /// Request counters.
    public let statistics = VersionStatistics()
    /// Calls holding the version (the low 63 bits) and whether it is retired (the top bit): one word, so that a
    /// hold and a retirement cannot pass each other.
    private let holds = Atomic<UInt64>(0)
    /// Told when the last hold of a retired version is released; set before the retired bit.
    private let retirer = Mutex<VersionRetirer?>(nil)
    /// Set once the retired version's pool has been stopped and joined (guarded by the retirer's lock for
    /// waiters; read without it elsewhere).
    let poolStopped = Atomic<Bool>(false)

    private static let retiredBit: UInt64 = 1 << 63

    /// Creates a loaded version around a started pool.
    package init(model: String, version: String, configuration: ModelConfiguration, pool: WorkerPool) {
        self.model = model
        self.version = version
        self.signature = pool.signature
        self.configuration = configuration
        self.pool = pool
        serial = Self.serials.add(1, ordering: .relaxed).newValue
        captureFraction = configuration.capture.map { $0.covers(version: version) ? $0.fraction : 0 } ?? 0
        let drift = configuration.drift.map { $0.covers(version: version) ? $0.fraction : 0 } ?? 0
        driftFractionBits = Atomic(drift.bitPattern)
    }

    /// The share of calls the drift detector observes now (0 when this version is not watched): `drift.fraction`,
    /// or less while the monitor keeps within `drift.max_cpu_share`. One relaxed load.
    public var driftFraction: Double { Double(bitPattern: driftFractionBits.load(ordering: .relaxed)) }

    /// Sets the share of calls the drift detector observes (the monitor's CPU budget).
    package func setDriftFraction(_ fraction: Double) {
        driftFractionBits.store(fraction.bitPattern, ordering: .relaxed)
    }

    // MARK: Holds

    /// Takes a hold for one call: false once the version is retired. One atomic add, undone when refused.
    @inline(__always)
    func hold() -> Bool {
        let before = holds.wrappingAdd(1, ordering: .relaxed).oldValue
        if before & Self.retiredBit == 0 { return true }
        release()
        return false
    }

    /// Releases a hold taken by `ModelRegistry.hold` for a call whose work never reached `submit` (refused before
    /// the pool). A call `submit` queued is released by its job, after its completion has run.
    @inline(__always)
    public func release() {
        let after = holds.wrappingSubtract(1, ordering: .releasing).newValue
        if after == Self.retiredBit { retirer.withLock { $0 }?.versionDrained() }
    }

    /// Calls holding the version now.
    public var callsInFlight: Int { Int(holds.load(ordering: .acquiring) & ~Self.retiredBit) }

    /// Whether the version has been retired (it takes no new calls).
    public var isRetired: Bool { holds.load(ordering: .acquiring) & Self.retiredBit != 0 }

    /// Marks the version retired, to be told by `retirer` when its last hold goes. Returns false when it was
    /// already retired.
    func retire(by retirer: VersionRetirer) -> Bool {
        self.retirer.withLock { $0 = $0 ?? retirer }
        return holds.bitwiseOr(Self.retiredBit, ordering: .acquiringAndReleasing).oldValue & Self.retiredBit == 0
    }

    /// The refusal of a call that reached this version after it was retired.
    var retiredError: SwitchyardError {
        SwitchyardError(
            .unavailable,
            "model '\(model)' version \(version) is being unloaded and takes no new calls"
        )
    }

    // MARK: Work

    /// Queues a held call's work on the version's pool. Never blocks; `completion` runs exactly once (on a worker
    /// thread, the pool's timer thread, or this thread when the pool refuses the work at once), and the call's
    /// hold is released right after it.
    /// - Parameters:
    ///   - inputs: input tensors in signature order, `rows × elementsPerRow` FP32 values each.
    ///   - rows: the call's batch rows.
    ///   - deadline: when the answer stops being useful; `nil` for none.
    ///   - priority: the call's priority level (higher first; 0 by default).
    ///   - enqueuedAt: when the call started.
    ///   - tenant: the call's tenant, whose share of the pool it queues in (`nil`: no tenants configured).
    ///   - deferWakeUp: leave idle workers asleep until `ModelRegistry.releaseDeferredWakeUps()` (an event loop
    ///     submitting a batch of calls wakes the pools once for all of them).
    ///   - isCancelled: whether the caller has gone away (an atomic load; read under the pool's lock).
    ///   - completion: the outputs, or why the call did not run.
    public func submit(
        inputs: [[Float]],
        rows: Int,
        deadline: MonotonicInstant?,
        priority: Int,
        enqueuedAt: MonotonicInstant,
        tenant: TenantShare? = nil,
        deferWakeUp: Bool,
        isCancelled: @escaping @Sendable () -> Bool,
        completion: @escaping @Sendable (Result<VersionOutputs, SwitchyardError>) -> Void
    ) {
        pool.submit(
            VersionJob(
                version: self,
                inputs: inputs,
                rows: rows,
                deadline: deadline,
                priority: priority,
                workClass: .primary,
                enqueuedAt: enqueuedAt,
                tenant: tenant,
                isCancelled: isCancelled,
                completion: completion
            ),
            deferWakeUp: deferWakeUp
        )
    }

    /// Queues a held call's shadow work: it runs only on capacity primary work leaves idle and is dropped first
    /// (a pool without room completes it at once with the reason). The hold is released after `completion`.
    public func submitShadow(
        inputs: [[Float]],
        rows: Int,
        deadline: MonotonicInstant?,
        priority: Int,
        enqueuedAt: MonotonicInstant,
        completion: @escaping @Sendable (Result<VersionOutputs, SwitchyardError>) -> Void
    ) {
        pool.submit(
            VersionJob(
                version: self,
                inputs: inputs,
                rows: rows,
                deadline: deadline,
                priority: priority,
                workClass: .shadow,
                enqueuedAt: enqueuedAt,
                tenant: nil,
                isCancelled: { false },
                completion: completion
            )
        )
    }

    /// Wakes the pool if submissions since the last call deferred their wake-up. Cheap when none did.
    @inline(__always)
    func releaseDeferredWakeUp() { pool.releaseDeferredWakeUp() }

    /// The pool's batch counters.
    public var batchStatistics: VersionBatchStatistics {
        let pool = pool.statistics
        return VersionBatchStatistics(
            batches: pool.batches,
            batchCounts: pool.batchCounts,
            batchComputeNanoseconds: pool.batchComputeNanoseconds
        )
    }
}

/// A call's work on a version's pool: answers the call, then releases the call's hold on the version. One object
/// per call, as a bare job would be.
private final class VersionJob: InferenceJob, @unchecked Sendable {
    private let version: ModelVersion
    private let completion: @Sendable (Result<VersionOutputs, SwitchyardError>) -> Void

    init(
        version: ModelVersion,
        inputs: [[Float]],
        rows: Int,
        deadline: MonotonicInstant?,
        priority: Int,
        workClass: WorkClass,
        enqueuedAt: MonotonicInstant,
        tenant: TenantShare?,
        isCancelled: @escaping @Sendable () -> Bool,
        completion: @escaping @Sendable (Result<VersionOutputs, SwitchyardError>) -> Void
    ) {
        self.version = version
        self.completion = completion
        super.init(
            inputs: inputs,
            rows: rows,
            deadline: deadline,
            priority: priority,
            workClass: workClass,
            enqueuedAt: enqueuedAt,
            tenant: tenant,
            isCancelled: isCancelled
        )
    }

    override func complete(_ result: Result<VersionOutputs, SwitchyardError>) {
        completion(result)
        version.release()
    }
}

/// Milliseconds since 1970, for ModelStatistics' `last_inference`.
private func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
