// A pool of worker threads for one model version. Jobs queue here by priority and deadline; idle
// workers ask the batch scheduler whether to take a batch now or wait for more rows, and run batches
// through their own engine executor. A timer thread answers jobs whose deadline passes while queued,
// and an idle-class thread runs shadow work only when no primary work is queued.

public import Logging
public import SwitchyardCore
public import SwitchyardEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Worker threads over one shared engine, fed by a deadline-ordered queue and an adaptive micro-batcher.
///
/// Every mutable field below is guarded by `lock`; threads sleep on the lock's conditions.
public final class WorkerPool: @unchecked Sendable {
    /// The pool's name in logs and messages, e.g. `digits:2`.
    public let name: String
    /// The model's signature.
    public let signature: ModelSignature
    private let engine: any InferenceEngine
    private let configuration: ModelConfiguration
    private let logger: Logger
    private let maxBatchRows: Int
    private let shadowCapacity: Int

    private let lock = ThreadLock()
    private let workAvailable = MonotonicCondition()
    private let timerWake = MonotonicCondition()
    private let shadowWake = MonotonicCondition()

    // Guarded by `lock`.
    private var queue = JobQueue()
    private var scheduler: BatchScheduler
    private var stats: PoolStatistics
    private var started = false
    private var stopping = false
    private var timerExits = false
    private var idleWorkers = 0
    /// Counted by the shadow worker without the lock, since it counts in the idle scheduling class.
    private let shadowCounters = ShadowCounters()
    /// Set when a submission left the workers asleep for `releaseDeferredWakeUp()`.
    private let wakeUpDeferred = Atomic<Bool>(false)
    private var expectedFree: [MonotonicInstant?]
    private var timedWaiter = false
    private var timerSleepsUntil: MonotonicInstant?
    private var nextCancelledSweep = MonotonicInstant(nanoseconds: 0)
    private var workerThreads: [pthread_t] = []
    private var serviceThreads: [pthread_t] = []

    /// Creates a pool; call `start()` to launch its threads.
    /// - Parameters:
    ///   - name: the pool's name in logs and messages.
    ///   - engine: the loaded model, shared read-only by the workers.
    ///   - configuration: batch size, workers, latency target and queue bound.
    ///   - logger: where lifecycle events go.
    ///   - batching: adaptive (the default) or fixed-window batching.
    ///   - shedding: whether new work is shed when the latency target cannot be met (default true).
    public init(
        name: String,
        engine: any InferenceEngine,
        configuration: ModelConfiguration,
        logger: Logger,
        batching: BatchingMode = .adaptive,
        shedding: Bool = true
    ) {
        self.name = name
        self.engine = engine
        self.signature = engine.signature
        self.configuration = configuration
        self.logger = logger
        self.maxBatchRows = max(1, configuration.maxBatchSize)
        self.shadowCapacity = max(1, configuration.maxQueueSize / 4)
        let workers = max(1, configuration.workers)
        self.expectedFree = Array(repeating: nil, count: workers)
        self.scheduler = BatchScheduler(
            settings: .init(
                maxBatchRows: configuration.maxBatchSize,
                sloNanoseconds: UInt64(max(0.001, configuration.sloMilliseconds) * 1_000_000),
                workers: workers,
                mode: batching,
                shedding: shedding
            )
        )
        self.stats = PoolStatistics(maxBatchRows: maxBatchRows)
    }

    /// Launches the worker threads, the deadline timer and the shadow worker. Calling it again does nothing.
    /// - Throws: when the system refuses a thread; `shutdown()` then stops those already started.
    public func start() throws {
        try lock.withLock {
            guard !started, !stopping else { return }
            started = true
            for index in expectedFree.indices {
                workerThreads.append(
                    try startThread(name: "sy-w\(index)-\(name)") { [self] in
                        pinToWorkerCPUs()
                        workerLoop(index)
                    }
                )
            }
            serviceThreads.append(try startThread(name: "sy-t-\(name)") { [self] in self.timerLoop() })
            // Shadow work runs in the idle class, so on the workers' CPUs it takes only what they leave.
            serviceThreads.append(
                try startThread(name: "sy-s-\(name)") { [self] in
                    pinToWorkerCPUs()
                    shadowLoop()
                }
            )
        }
        logger.debug(
            "worker pool started",
            metadata: [
                "pool": "\(name)", "workers": "\(expectedFree.count)", "max_batch": "\(maxBatchRows)",
                "cpus": "\(configuration.workerCPUs ?? "any")",
            ]
        )
    }

    /// Restricts the calling pool thread to `worker_cpus`, if set. The list was validated when the model
    /// loaded; should the kernel still refuse it (the process's CPU set shrank since), the thread runs
    /// unpinned and the refusal is logged.
    private func pinToWorkerCPUs() {
        let cpus = configuration.workerCPUList
        guard !cpus.isEmpty else { return }
        let rc = SystemInfo.pinCurrentThread(to: cpus)
        if rc != 0 {
            logger.error(
                "cannot pin a worker thread to worker_cpus; it runs on any CPU",
                metadata: ["pool": "\(name)", "worker_cpus": "\(configuration.workerCPUs ?? "")", "errno": "\(rc)"]
            )
        }
    }

    /// Queues a job. Never blocks; a job that cannot be queued is completed at once, on the calling
    /// thread, with an error whose message says why.
    /// - Parameter deferWakeUp: leave idle workers asleep until `releaseDeferredWakeUp()`. An event loop that
    ///   submits many calls from one batch of socket events wakes the pool once for all of them, so the first
    ///   call does not pull a worker onto the CPU for a batch of one while the rest are still being decoded.
    public func submit(_ job: InferenceJob, deferWakeUp: Bool = false) {
        if let problem = validate(job) {
            job.complete(.failure(problem))
            return
        }
        let now = MonotonicInstant.now()
        var swept: [InferenceJob] = []
        var evicted: [InferenceJob] = []
        let rejection: SwitchyardError? = lock.withLock {
            switch job.workClass {
            case .primary:
                admitPrimary(job, now: now, swept: &swept, evictedForShare: &evicted, deferWakeUp: deferWakeUp)
            case .shadow: admitShadow(job, now: now)
            }
        }
        complete(swept, cancelledError())
        for victim in evicted { victim.complete(.failure(evictedError(victim))) }
        if let rejection { job.complete(.failure(rejection)) }
    }

    /// Wakes an idle worker if submissions since the last call deferred their wake-up. Cheap when none did.
    public func releaseDeferredWakeUp() {
        guard wakeUpDeferred.exchange(false, ordering: .relaxed) else { return }
        lock.withLock {
            if idleWorkers > 0 && queue.primaryJobs > 0 { workAvailable.signal() }
        }
    }

    /// Removes `job` from the queue if it is still there and completes it with `cancelled`; a job
    /// already running finishes normally. Jobs whose `isCancelled` turns true are also dropped when a
    /// batch is formed and when the queue is full, without this call.
    public func cancel(_ job: InferenceJob) {
        let removed = lock.withLock {
            let removed = queue.removeAll(where: { $0 === job })
            count(cancelled: removed)
            wakeShadowIfIdle()
            return removed
        }
        for job in removed {
            job.complete(.failure(cancelledError()))
        }
    }

    /// A snapshot of the pool's counters and estimates.
    public var statistics: PoolStatistics {
        lock.withLock {
            let now = MonotonicInstant.now()
            var snapshot = stats
            snapshot.queued = queue.primaryJobs
            snapshot.queuedRows = queue.primaryRows
            snapshot.shadowQueued = queue.shadowJobs
            shadowCounters.add(to: &snapshot)
            snapshot.busyWorkers = expectedFree.count { $0 != nil }
            snapshot.costNanosecondsPerRow = scheduler.costModel.nanosecondsPerRow
            snapshot.costNanosecondsPerBatch = scheduler.costModel.nanosecondsPerBatch
            snapshot.arrivalRowsPerSecond = scheduler.arrivals.rowsPerNanosecond(at: now) * 1e9
            snapshot.batchCap = scheduler.batchCap
            snapshot.targetBatchRows = scheduler.targetRows(at: now)
            snapshot.latencyScale = scheduler.feedback.scale
            return snapshot
        }
    }

    /// Stops taking work, finishes the queued primary work, drops queued shadow work, and joins every
    /// thread. Calling it again does nothing. Must not be called from a job's completion, which runs
    /// on the threads it joins.
    public func shutdown() {
        let workers: [pthread_t] = lock.withLock {
            guard !stopping else { return [] }
            stopping = true
            workAvailable.broadcast()
            shadowWake.broadcast()
            return workerThreads
        }
        if !started {
            // Queued jobs of a pool that never ran still get their answer.
            let left = lock.withLock {
                let left = queue.removeAll(where: { _ in true })
                for job in left {
                    if job.workClass == .primary {
                        stats.rejectedShuttingDown += 1
                    } else {
                        stats.shadowDropped += 1
                    }
                }
                return left
            }
            for job in left { job.complete(.failure(shuttingDown())) }
        }
        for thread in workers { pthread_join(thread, nil) }
        let service: [pthread_t] = lock.withLock {
            timerExits = true
            timerWake.signal()
            defer { serviceThreads.removeAll() }
            return serviceThreads
        }
        for thread in service { pthread_join(thread, nil) }
        // Entries of finished jobs linger in the queue's indexes until they reach a top; drop them with the threads,
        // so that nothing a job holds (its caller's state, its model version) outlives the pool's work.
        let left: [InferenceJob] = lock.withLock {
            workerThreads.removeAll()
            let left = queue.removeAll(where: { _ in true })
            queue = JobQueue()
            return left
        }
        complete(left, shuttingDown())
    }

    /// A job whose buffers do not match the signature would break the whole batch it joined, so it is
    /// refused on its own.
    private func validate(_ job: InferenceJob) -> SwitchyardError? {
        guard job.rows >= 1 else {
            return .invalidArgument("model '\(name)': expected at least 1 row, got \(job.rows)")
        }
        guard job.inputs.count == signature.inputs.count else {
            return .invalidArgument(
                "model '\(name)': expected \(signature.inputs.count) input tensors, got \(job.inputs.count)"
            )
        }
        for (spec, values) in zip(signature.inputs, job.inputs) where values.count != job.rows * spec.elementsPerRow {
            return .invalidArgument(
                "model '\(name)' input '\(spec.name)': expected \(job.rows) × \(spec.elementsPerRow) = "
                    + "\(job.rows * spec.elementsPerRow) values, got \(values.count)"
            )
        }
        return nil
    }

    // MARK: Admission (called with the lock held)

    private func admitPrimary(
        _ job: InferenceJob,
        now: MonotonicInstant,
        swept: inout [InferenceJob],
        evictedForShare: inout [InferenceJob],
        deferWakeUp: Bool
    ) -> SwitchyardError? {
        if stopping {
            stats.rejectedShuttingDown += 1
            return shuttingDown()
        }
        if let deadline = job.deadline, deadline <= now {
            stats.deadlineExceeded += 1
            return SwitchyardError(
                .deadlineExceeded,
                "the deadline had already passed when the request reached model '\(name)'"
            )
        }
        if queue.primaryJobs >= configuration.maxQueueSize && now >= nextCancelledSweep {
            // Callers that went away should not hold places in a full queue. The sweep scans the whole
            // queue under the lock, so under sustained overload it runs at most every 10 ms.
            swept = queue.removeAll(where: { $0.workClass == .primary && $0.isCancelled() })
            count(cancelled: swept)
            nextCancelledSweep = now.advanced(byNanoseconds: 10_000_000)
        }
        if queue.primaryJobs >= configuration.maxQueueSize, let tenant = job.tenant,
            let evicted = queue.evictForFairShare(tenant, rows: job.rows)
        {
            // A full queue sheds the tenant furthest over its share, not the caller within its own.
            stats.rejectedQueueFull += 1
            evictedForShare.append(evicted)
        }
        if queue.primaryJobs >= configuration.maxQueueSize {
            stats.rejectedQueueFull += 1
            return SwitchyardError(
                .resourceExhausted,
                "model '\(name)' queue is full: \(queue.primaryJobs) requests waiting (max_queue_size "
                    + "\(configuration.maxQueueSize)); retry later or raise max_queue_size"
            )
        }
        // Under fair sharing a tenant waits for its own queued rows and the others' shares of that time, not for
        // the whole queue: the tenants over their share see the longest waits and are shed first.
        let ahead =
            job.tenant.map { queue.fairRowsAhead(of: $0, rows: job.rows) } ?? queue.primaryRows(atOrAbove: job.priority)
        if let overload = scheduler.overload(now: now, rows: job.rows, rowsAhead: ahead, workers: workerState(now)) {
            stats.shed += 1
            if let tenant = job.tenant {
                return SwitchyardError(
                    .resourceExhausted,
                    "model '\(name)' is overloaded and tenant '\(tenant.name)' is over its share (weight "
                        + "\(number(tenant.weight))): estimated queue wait \(milliseconds(overload.waitNanoseconds)) ms "
                        + "(\(ahead) rows ahead, \(queue.rows(of: tenant)) of them its own) plus compute "
                        + "\(milliseconds(overload.computeNanoseconds)) ms exceeds the latency target slo_ms "
                        + "\(number(configuration.sloMilliseconds)); retry later or lower the tenant's request rate"
                )
            }
            // RESOURCE_EXHAUSTED, not UNAVAILABLE: stock clients retry UNAVAILABLE (KServe's gRPC client three times
            // by default), which would multiply the traffic of a server already over its target.
            return SwitchyardError(
                .resourceExhausted,
                "model '\(name)' is overloaded: estimated queue wait \(milliseconds(overload.waitNanoseconds)) ms "
                    + "(\(ahead) rows ahead) plus compute \(milliseconds(overload.computeNanoseconds)) ms exceeds "
                    + "its latency target slo_ms \(number(configuration.sloMilliseconds)); retry later or lower the "
                    + "request rate"
            )
        }
        queue.append(job)
        scheduler.recordArrival(rows: job.rows, at: now)
        if deferWakeUp {
            wakeUpDeferred.store(true, ordering: .relaxed)
        } else if idleWorkers > 0 {
            workAvailable.signal()
        }
        wakeTimerIfNeeded(for: job)
        return nil
    }

    private func admitShadow(_ job: InferenceJob, now: MonotonicInstant) -> SwitchyardError? {
        let reason: String
        if stopping {
            reason = "model '\(name)' is shutting down and takes no new requests"
        } else if let deadline = job.deadline, deadline <= now {
            reason = "the deadline of the shadow request had already passed"
        } else if queue.primaryJobs * 2 >= configuration.maxQueueSize {
            reason = "model '\(name)' has \(queue.primaryJobs) primary requests queued; shadow work is dropped first"
        } else if queue.shadowJobs >= shadowCapacity {
            reason = "model '\(name)' shadow queue is full (\(shadowCapacity) jobs); shadow work is dropped first"
        } else {
            queue.append(job)
            if queue.primaryJobs == 0 { shadowWake.signal() }
            wakeTimerIfNeeded(for: job)
            return nil
        }
        stats.shadowDropped += 1
        return SwitchyardError(.unavailable, reason)
    }

    /// Lets the shadow worker run once no primary work is queued. Called with the lock held.
    private func wakeShadowIfIdle() {
        if queue.primaryJobs == 0 && queue.shadowJobs > 0 { shadowWake.signal() }
    }

    private func wakeTimerIfNeeded(for job: InferenceJob) {
        if let deadline = job.deadline, let sleeping = timerSleepsUntil, deadline < sleeping { timerWake.signal() }
    }

    // MARK: Worker threads

    private func workerLoop(_ index: Int) {
        let executor = engine.makeExecutor()
        lock.lock()
        idleWorkers += 1
        while true {
            if stopping && queue.primaryJobs == 0 { break }
            let now = MonotonicInstant.now()
            let decision = scheduler.decide(now: now, queue: queueState(), workers: workerState(now))
            switch decision {
            case .dispatch(let rows):
                // A job whose deadline passed is never run, even if the timer has not answered it yet.
                let (batch, dropped) = queue.takePrimary(
                    rows: rows,
                    isDropped: { job in job.deadline.map { $0 <= now } ?? false || job.isCancelled() }
                )
                let expired = dropped.filter { job in job.deadline.map { $0 <= now } ?? false }
                let cancelled = dropped.filter { job in !(job.deadline.map { $0 <= now } ?? false) }
                stats.deadlineExceeded += UInt64(expired.count)
                count(cancelled: cancelled)
                wakeShadowIfIdle()
                guard !batch.isEmpty else {
                    lock.unlock()
                    expire(expired, now: now)
                    complete(cancelled, cancelledError())
                    lock.lock()
                    continue
                }
                let batchRows = batch.reduce(0) { $0 + $1.rows }
                idleWorkers -= 1
                expectedFree[index] = now.advanced(
                    byNanoseconds: UInt64(scheduler.costModel.estimate(rows: batchRows) ?? 0)
                )
                if queue.primaryJobs > 0 && idleWorkers > 0 { workAvailable.signal() }
                lock.unlock()
                expire(expired, now: now)
                complete(cancelled, cancelledError())
                let runs = runIsolatingFailures(batch, rows: batchRows, on: executor)
                lock.lock()
                if runs.count > 1 { stats.batchesIsolated += 1 }
                for run in runs { record(run.outcome, batch: run.jobs, rows: run.rows) }
                expectedFree[index] = nil
                idleWorkers += 1
                wakeShadowIfIdle()
                lock.unlock()
                for run in runs { deliver(run.outcome, to: run.jobs) }
                lock.lock()
            case .wait(let until):
                // One idle worker keeps the batching timer; the others sleep until work or shutdown.
                if timedWaiter {
                    lock.wait(on: workAvailable)
                } else {
                    timedWaiter = true
                    lock.wait(on: workAvailable, until: until)
                    timedWaiter = false
                }
            case .idle:
                lock.wait(on: workAvailable)
            }
        }
        idleWorkers -= 1
        // Let another sleeping worker see the shutdown too.
        workAvailable.signal()
        lock.unlock()
    }

    private func queueState() -> BatchScheduler.QueueState {
        BatchScheduler.QueueState(
            jobs: queue.primaryJobs,
            rows: queue.primaryRows,
            oldestEnqueuedAt: queue.oldestPrimaryEnqueuedAt(),
            earliestDeadline: queue.nextPrimaryDeadline()
        )
    }

    private func workerState(_ now: MonotonicInstant) -> BatchScheduler.WorkerState {
        var earliest: MonotonicInstant?
        for case let free? in expectedFree { earliest = min(earliest ?? free, free) }
        return BatchScheduler.WorkerState(idle: idleWorkers, earliestExpectedFree: earliest, draining: stopping)
    }

    // MARK: Deadline timer

    private func timerLoop() {
        // Expired jobs must be answered within a millisecond of their deadline even when every core is
        // busy; where permitted the timer preempts other threads (it only ever works for microseconds).
        enterLowestRealtimePriority()
        lock.lock()
        while !timerExits {
            let now = MonotonicInstant.now()
            let expired = queue.takeExpired(now: now)
            if !expired.isEmpty {
                var primary: [InferenceJob] = []
                for job in expired {
                    if job.workClass == .primary {
                        stats.deadlineExceeded += 1
                        primary.append(job)
                    } else {
                        stats.shadowDropped += 1
                    }
                }
                timerSleepsUntil = nil
                wakeShadowIfIdle()
                lock.unlock()
                expire(expired, now: now)
                lock.lock()
                continue
            }
            let next = queue.earliestDeadline()
            timerSleepsUntil = next ?? MonotonicInstant(nanoseconds: .max)
            lock.wait(on: timerWake, until: next)
            timerSleepsUntil = nil
        }
        lock.unlock()
    }

    // MARK: Shadow worker

    /// How long the shadow worker lets shadow jobs gather once it finds fewer than a full batch.
    /// Shadow calls promise no latency, and waking the thread once per mirrored call, then moving it
    /// into the idle scheduling class and out again (system calls that each reschedule), cost more
    /// CPU on the request path's cores than a small model's computation (measured with `perf` on the
    /// demo model); gathering pays that about once per interval for all the jobs that arrived.
    static let shadowGatherMicroseconds: UInt32 = 1_000

    private func shadowLoop() {
        var executor: (any EngineExecutor)?
        var gathered = false
        lock.lock()
        while true {
            if stopping {
                let left = queue.removeAll(where: { $0.workClass == .shadow })
                stats.shadowDropped += UInt64(left.count)
                lock.unlock()
                complete(left, shuttingDown())
                lock.lock()
                break
            }
            guard queue.shadowJobs > 0, queue.primaryJobs == 0 else {
                lock.wait(on: shadowWake)
                continue
            }
            if !gathered && queue.shadowJobs < maxBatchRows {
                lock.unlock()
                usleep(Self.shadowGatherMicroseconds)
                lock.lock()
                gathered = true
                continue
            }
            gathered = false
            let now = MonotonicInstant.now()
            let (batch, dropped) = queue.takeShadow(
                rows: maxBatchRows,
                isDropped: { job in job.isCancelled() || (job.deadline.map { $0 <= now } ?? false) }
            )
            stats.shadowDropped += UInt64(dropped.count)
            lock.unlock()
            complete(dropped, SwitchyardError(.cancelled, "the shadow call was cancelled or expired while queued"))
            if !batch.isEmpty {
                let rows = batch.reduce(0) { $0 + $1.rows }
                let runner = executor ?? engine.makeExecutor()
                executor = runner
                // Computing and delivering run in the idle class, where the thread gets only CPU time
                // no other thread wants. It never holds the pool's lock there (the shadow statistics
                // are atomics); delivering takes the comparison sink's locks, which request threads
                // hold for a few instructions, and only when a primary call finishes after its
                // shadow. Should the kernel preempt the thread inside one, the waiting thread's core
                // goes idle and the idle-class thread runs there. Where the class cannot be left
                // again (no CAP_SYS_NICE), shadow work is still held back while primary work is queued.
                let idle = idleSchedulingClassIsReversible && setIdleSchedulingClass(true)
                let runs = runIsolatingFailures(batch, rows: rows, on: runner)
                shadowCounters.record(runs)
                for run in runs { deliver(run.outcome, to: run.jobs) }
                if idle { setIdleSchedulingClass(false) }
            }
            lock.lock()
        }
        lock.unlock()
    }

    // MARK: Running batches

    private struct Outcome {
        var start: MonotonicInstant
        var computeNanoseconds: UInt64
        var outputs: [[Float]]
        var failure: SwitchyardError?
    }

    private func run(_ batch: [InferenceJob], rows: Int, on executor: any EngineExecutor) -> Outcome {
        let start = MonotonicInstant.now()
        let inputs: [[Float]] = signature.inputs.indices.map { index in
            batch.count == 1 ? batch[0].inputs[index] : batch.flatMap { $0.inputs[index] }
        }
        var outputs: [[Float]] = signature.outputs.map { [Float](repeating: 0, count: rows * $0.elementsPerRow) }
        let failure: SwitchyardError? = withBuffers(inputs, &outputs) {
            inputBuffers,
            outputBuffers -> SwitchyardError? in
            do throws(SwitchyardError) {
                try executor.run(inputs: inputBuffers, rows: rows, outputs: outputBuffers)
                return nil
            } catch  where error.code == .internal {
                // The engine's own fault, not the request's: say which pool it was.
                return .internal("model '\(name)' failed: \(error.message)")
            } catch {
                return error
            }
        }
        let compute = MonotonicInstant.now().nanoseconds(since: start)
        return Outcome(start: start, computeNanoseconds: compute, outputs: outputs, failure: failure)
    }

    /// Jobs run together and how that went.
    private struct BatchRun {
        var jobs: [InferenceJob]
        var rows: Int
        var outcome: Outcome
    }

    /// Runs `batch`; when it fails and holds several jobs, runs each job alone, so that a job the engine
    /// cannot run (a poisoned row, a numeric guard) fails by itself and its batch-mates still get answers.
    /// An engine that fails for every input pays one extra run per job, only on this failure path.
    private func runIsolatingFailures(
        _ batch: [InferenceJob],
        rows: Int,
        on executor: any EngineExecutor
    ) -> [BatchRun] {
        let whole = run(batch, rows: rows, on: executor)
        guard whole.failure != nil, batch.count > 1 else { return [BatchRun(jobs: batch, rows: rows, outcome: whole)] }
        logger.warning(
            "batch failed; running its jobs one at a time",
            metadata: ["pool": "\(name)", "jobs": "\(batch.count)", "reason": "\(whole.failure!.message)"]
        )
        return batch.map { job in
            BatchRun(jobs: [job], rows: job.rows, outcome: run([job], rows: job.rows, on: executor))
        }
    }

    /// Adds a finished primary batch to the statistics and the scheduler. Called with the lock held.
    private func record(_ outcome: Outcome, batch: [InferenceJob], rows: Int) {
        let size = min(rows, maxBatchRows)
        stats.batches += 1
        stats.batchCounts[size] += 1
        stats.batchComputeNanoseconds[size] += outcome.computeNanoseconds
        stats.computeNanoseconds += outcome.computeNanoseconds
        if outcome.failure == nil {
            stats.succeeded += UInt64(batch.count)
            scheduler.recordBatch(rows: rows, nanoseconds: outcome.computeNanoseconds)
        } else {
            stats.failed += UInt64(batch.count)
        }
        for job in batch {
            let queued = outcome.start.nanoseconds(since: job.enqueuedAt)
            stats.queueNanoseconds += queued
            scheduler.recordLatency(nanoseconds: queued + outcome.computeNanoseconds)
        }
    }

    /// Completes a batch's jobs back to back, so that callers sharing an event loop get one wake-up.
    private func deliver(_ outcome: Outcome, to batch: [InferenceJob]) {
        if let failure = outcome.failure {
            for job in batch { job.complete(.failure(failure)) }
            return
        }
        let rows = batch.reduce(0) { $0 + $1.rows }
        var offset = 0
        for job in batch {
            let tensors = signature.outputs.indices.map { index -> ArraySlice<Float> in
                let width = signature.outputs[index].elementsPerRow
                return outcome.outputs[index][(offset * width)..<((offset + job.rows) * width)]
            }
            offset += job.rows
            job.complete(
                .success(
                    VersionOutputs(
                        tensors: tensors,
                        rows: job.rows,
                        queueNanoseconds: outcome.start.nanoseconds(since: job.enqueuedAt),
                        computeNanoseconds: outcome.computeNanoseconds,
                        batchRows: rows
                    )
                )
            )
        }
    }

    // MARK: Helpers

    /// Counts primary jobs dropped because their callers cancelled. Called with the lock held.
    private func count(cancelled jobs: [InferenceJob]) {
        for job in jobs {
            if job.workClass == .primary {
                stats.cancelled += 1
            } else {
                stats.shadowDropped += 1
            }
        }
    }

    /// The answer of a queued job shed from a full queue to make room for a tenant within its share.
    private func evictedError(_ job: InferenceJob) -> SwitchyardError {
        SwitchyardError(
            .resourceExhausted,
            "model '\(name)' queue is full (max_queue_size \(configuration.maxQueueSize)) and tenant "
                + "'\(job.tenant?.name ?? "")' holds the most of it for its weight; its queued call was shed to make "
                + "room for a tenant within its share; retry later or lower the tenant's request rate"
        )
    }

    private func cancelledError() -> SwitchyardError {
        SwitchyardError(.cancelled, "the call was cancelled while queued for model '\(name)'")
    }

    /// Answers jobs whose deadline passed while queued.
    private func expire(_ jobs: [InferenceJob], now: MonotonicInstant) {
        for job in jobs {
            let waited = Double(now.nanoseconds(since: job.enqueuedAt))
            job.complete(
                .failure(
                    SwitchyardError(
                        .deadlineExceeded,
                        "the deadline passed after \(milliseconds(waited)) ms in the queue of model '\(name)', "
                            + "before a worker could run it"
                    )
                )
            )
        }
    }

    /// Fails `jobs` with `error`, which is only built when there is a job to fail (its message costs an
    /// allocation, and this runs on every submit and batch).
    private func complete(_ jobs: [InferenceJob], _ error: @autoclosure () -> SwitchyardError) {
        guard !jobs.isEmpty else { return }
        let error = error()
        for job in jobs { job.complete(.failure(error)) }
    }

    private func shuttingDown() -> SwitchyardError {
        SwitchyardError(.unavailable, "model '\(name)' is shutting down and takes no new requests")
    }
}

/// `10` for 10.0, `2.5` for 2.5.
private func number(_ value: Double) -> String { value.compactDescription }

private func milliseconds(_ nanoseconds: Double) -> String {
    let value = (nanoseconds / 10_000).rounded() / 100
    return "\(value)"
}

private func withBuffers<R>(
    _ inputs: [[Float]],
    _ outputs: inout [[Float]],
    _ body: ([UnsafeBufferPointer<Float>], [UnsafeMutableBufferPointer<Float>]) -> R
) -> R {
    // Pointers stay valid because the arrays are not mutated while `body` runs.
    let inputPointers = inputs.map { array in array.withUnsafeBufferPointer { $0 } }
    var outputPointers: [UnsafeMutableBufferPointer<Float>] = []
    for index in outputs.indices {
        outputPointers.append(outputs[index].withUnsafeMutableBufferPointer { $0 })
    }
    return withExtendedLifetime(inputs) { body(inputPointers, outputPointers) }
}

extension WorkerPool {
    /// The shadow worker's counters, kept apart from the locked statistics.
    private final class ShadowCounters: Sendable {
        private let succeeded = Atomic<UInt64>(0)
        private let failed = Atomic<UInt64>(0)
        private let batches = Atomic<UInt64>(0)
        private let isolated = Atomic<UInt64>(0)
        private let computeNanoseconds = Atomic<UInt64>(0)

        /// Counts the runs of one shadow batch (more than one when failures were isolated).
        func record(_ runs: [BatchRun]) {
            if runs.count > 1 { isolated.add(1, ordering: .relaxed) }
            for run in runs {
                batches.add(1, ordering: .relaxed)
                computeNanoseconds.add(run.outcome.computeNanoseconds, ordering: .relaxed)
                if run.outcome.failure == nil {
                    succeeded.add(UInt64(run.jobs.count), ordering: .relaxed)
                } else {
                    failed.add(UInt64(run.jobs.count), ordering: .relaxed)
                }
            }
        }

        func add(to statistics: inout PoolStatistics) {
            statistics.shadowSucceeded = succeeded.load(ordering: .relaxed)
            statistics.shadowFailed = failed.load(ordering: .relaxed)
            statistics.shadowBatches = batches.load(ordering: .relaxed)
            statistics.shadowComputeNanoseconds = computeNanoseconds.load(ordering: .relaxed)
            statistics.batchesIsolated += isolated.load(ordering: .relaxed)
        }
    }
}
