// The pool end to end over real threads and a real (test) engine: results, batching, deadlines while a
// batch runs, cancellation, queue bounds, shedding, shadow work and shutdown.

import Logging
import SwitchyardEngine
import Synchronization
import Testing

@testable import SwitchyardCore
@testable import SwitchyardWorkers

#if canImport(Glibc)
    import Glibc
#endif

private let ms: UInt64 = 1_000_000

/// Collects each job's result and when it arrived, keyed by the job's tag (its input values).
private final class Outcomes: Sendable {
    let results = Mutex<[Int: (result: Result<VersionOutputs, SwitchyardError>, at: MonotonicInstant)]>([:])

    /// A job whose every input value is `value` (by default the tag), or whose inputs are `inputs`.
    func job(
        _ tag: Int,
        rows: Int = 1,
        width: Int = 4,
        value: Float? = nil,
        inputs: [[Float]]? = nil,
        deadlineIn: UInt64? = nil,
        priority: Int = 0,
        workClass: WorkClass = .primary,
        isCancelled: @escaping @Sendable () -> Bool = { false }
    ) -> InferenceJob {
        InferenceJob(
            inputs: inputs ?? [[Float](repeating: value ?? Float(tag), count: rows * width)],
            rows: rows,
            deadline: deadlineIn.map { MonotonicInstant.now().advanced(byNanoseconds: $0) },
            priority: priority,
            workClass: workClass,
            isCancelled: isCancelled,
            completion: { result in self.results.withLock { $0[tag] = (result, MonotonicInstant.now()) } }
        )
    }

    /// Waits up to `seconds` for `count` results.
    @discardableResult
    func wait(for count: Int, seconds: Double = 10) -> Bool {
        let end = MonotonicInstant.now().advanced(byNanoseconds: UInt64(seconds * 1e9))
        while MonotonicInstant.now() < end {
            if results.withLock({ $0.count }) >= count { return true }
            usleep(1_000)
        }
        return false
    }

    func result(_ tag: Int) -> Result<VersionOutputs, SwitchyardError>? { results.withLock { $0[tag]?.result } }
    func time(_ tag: Int) -> MonotonicInstant? { results.withLock { $0[tag]?.at } }

    func error(_ tag: Int) -> SwitchyardError? {
        if case .failure(let error)? = result(tag) { return error }
        return nil
    }

    func outputs(_ tag: Int) -> VersionOutputs? {
        if case .success(let outputs)? = result(tag) { return outputs }
        return nil
    }
}

private func makePool(
    _ engine: DoublingEngine,
    maxBatch: Int = 8,
    workers: Int = 1,
    slo: Double = 50,
    maxQueue: Int = 4096
) throws -> WorkerPool {
    let pool = WorkerPool(
        name: "test:1",
        engine: engine,
        configuration: ModelConfiguration(
            maxBatchSize: maxBatch,
            workers: workers,
            sloMilliseconds: slo,
            maxQueueSize: maxQueue
        ),
        logger: Logger(label: "test")
    )
    try pool.start()
    return pool
}

/// Waits until the engine has started `count` batches (the first batch is running).
private func waitForRunning(_ engine: DoublingEngine, pool: WorkerPool) {
    let end = MonotonicInstant.now().advanced(byNanoseconds: 5_000 * ms)
    while pool.statistics.busyWorkers == 0 && MonotonicInstant.now() < end { usleep(200) }
}

/// Runs `body` on a started pool whose worker is busy with job 1 (`firstRows` rows; every batch takes
/// `perBatchNanoseconds`), so that what `body` submits queues behind it; shuts the pool down afterwards.
private func whileJobOneRuns(
    perBatchNanoseconds: UInt64,
    firstRows: Int = 1,
    maxBatch: Int = 8,
    maxQueue: Int = 4096,
    _ body: (DoublingEngine, WorkerPool, Outcomes) throws -> Void
) throws {
    let engine = DoublingEngine(perBatchNanoseconds: perBatchNanoseconds)
    let pool = try makePool(engine, maxBatch: maxBatch, maxQueue: maxQueue)
    defer { pool.shutdown() }
    let outcomes = Outcomes()
    pool.submit(outcomes.job(1, rows: firstRows))
    waitForRunning(engine, pool: pool)
    try body(engine, pool, outcomes)
}

@Suite(.serialized) struct WorkerPoolTests {
    @Test func computesEveryJobAndSplitsBatchedOutputs() throws {
        try whileJobOneRuns(perBatchNanoseconds: 100 * ms, firstRows: 2) { engine, pool, outcomes in
            engine.perBatchNanoseconds.withLock { $0 = 1 * ms }
            for tag in 2...20 { pool.submit(outcomes.job(tag, rows: 1 + tag % 3)) }
            #expect(outcomes.wait(for: 20))
            for tag in 1...20 {
                let outputs = try #require(outcomes.outputs(tag))
                #expect(outputs.rows == 1 + tag % 3)
                #expect(Array(outputs.tensors[0]) == [Float](repeating: Float(2 * tag), count: 4 * outputs.rows))
                #expect(outputs.batchRows <= 8)
            }
            let stats = pool.statistics
            #expect(stats.succeeded == 20)
            #expect(stats.batchCounts.reduce(0, +) == stats.batches)
            #expect(stats.batches < 20)
            #expect(stats.meanBatchRows > 1)
            #expect(stats.batchComputeNanoseconds.reduce(0, +) == stats.computeNanoseconds)
        }
    }

    @Test func lowLoadRunsEachJobAlone() throws {
        let engine = DoublingEngine(perBatchNanoseconds: 200_000)
        let pool = try makePool(engine, maxBatch: 64)
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        for tag in 1...30 {
            pool.submit(outcomes.job(tag))
            #expect(outcomes.wait(for: tag))
            usleep(1_000)
        }
        for tag in 1...30 { #expect(outcomes.outputs(tag)?.batchRows == 1) }
        #expect(pool.statistics.batchCounts[1] == 30)
    }

    @Test func deadlineIsAnsweredWhileALongBatchRuns() throws {
        try whileJobOneRuns(perBatchNanoseconds: 400 * ms) { _, pool, outcomes in
            let submitted = MonotonicInstant.now()
            pool.submit(outcomes.job(2, deadlineIn: 30 * ms))
            #expect(outcomes.wait(for: 2))
            let error = try #require(outcomes.error(2))
            #expect(error.code == .deadlineExceeded)
            #expect(error.message.contains("deadline passed"))
            let answered = try #require(outcomes.time(2))
            let running = try #require(outcomes.time(1))
            #expect(answered < running)
            // Answered at the deadline, not when the running batch ends (370 ms later).
            #expect(answered.nanoseconds(since: submitted) < 150 * ms)
            #expect(answered.nanoseconds(since: submitted) >= 30 * ms)
            #expect(pool.statistics.deadlineExceeded == 1)
        }
    }

    @Test func aDeadlineAlreadyPassedIsRejectedAtOnce() throws {
        let pool = try makePool(DoublingEngine())
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        pool.submit(outcomes.job(1, deadlineIn: 0))
        #expect(outcomes.error(1)?.code == .deadlineExceeded)
    }

    @Test func cancelledJobsAreDroppedAndCounted() throws {
        try whileJobOneRuns(perBatchNanoseconds: 200 * ms) { engine, pool, outcomes in
            let gone = Atomic<Bool>(false)
            let polled = outcomes.job(2, isCancelled: { gone.load(ordering: .relaxed) })
            pool.submit(polled)
            pool.submit(outcomes.job(3))
            let removed = outcomes.job(4)
            pool.submit(removed)
            gone.store(true, ordering: .relaxed)
            pool.cancel(removed)
            // Removed at once, while job 1 still runs.
            #expect(outcomes.error(4)?.code == .cancelled)
            #expect(outcomes.result(1) == nil)
            #expect(outcomes.wait(for: 4))
            #expect(outcomes.error(2)?.code == .cancelled)
            #expect(outcomes.outputs(3) != nil)
            #expect(engine.records.allSatisfy { $0.firstValue != 2 && $0.firstValue != 4 })
            let stats = pool.statistics
            #expect(stats.cancelled == 2)
            #expect(stats.succeeded == 2)
        }
    }

    @Test func aFullQueueRejectsWithTheReason() throws {
        try whileJobOneRuns(perBatchNanoseconds: 200 * ms, maxQueue: 2) { _, pool, outcomes in
            pool.submit(outcomes.job(2))
            pool.submit(outcomes.job(3))
            pool.submit(outcomes.job(4))
            let error = try #require(outcomes.error(4))
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("max_queue_size 2"))
            #expect(outcomes.wait(for: 4))
            #expect(outcomes.outputs(2) != nil && outcomes.outputs(3) != nil)
            #expect(pool.statistics.rejectedQueueFull == 1)
        }
    }

    @Test func cancelledJobsMakeRoomInAFullQueue() throws {
        try whileJobOneRuns(perBatchNanoseconds: 200 * ms, maxQueue: 2) { _, pool, outcomes in
            let gone = Atomic<Bool>(false)
            pool.submit(outcomes.job(2, isCancelled: { gone.load(ordering: .relaxed) }))
            pool.submit(outcomes.job(3))
            gone.store(true, ordering: .relaxed)
            pool.submit(outcomes.job(4))
            #expect(outcomes.error(2)?.code == .cancelled)
            #expect(outcomes.result(4) == nil)
            #expect(outcomes.wait(for: 4))
            #expect(outcomes.outputs(4) != nil)
            #expect(pool.statistics.cancelled == 1)
            #expect(pool.statistics.rejectedQueueFull == 0)
        }
    }

    @Test func overloadIsShedWithTheReason() throws {
        let engine = DoublingEngine(perRowNanoseconds: 500_000, perBatchNanoseconds: 2 * ms)
        let pool = try makePool(engine, maxBatch: 8, slo: 10)
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        // Teach the cost model with batches of several sizes, one at a time.
        for (index, rows) in [1, 2, 4, 8, 1, 3, 6, 2, 5, 7].enumerated() {
            pool.submit(outcomes.job(index, rows: rows))
            #expect(outcomes.wait(for: index + 1))
        }
        for tag in 100..<400 { pool.submit(outcomes.job(tag)) }
        #expect(outcomes.wait(for: 310))
        let shed = (100..<400).compactMap { outcomes.error($0) }
        #expect(!shed.isEmpty)
        for error in shed {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("overloaded"))
            #expect(error.message.contains("slo_ms 10;"))
        }
        // What was accepted ran; most of it within the target, since the queue was cut at the target.
        let served = (100..<400).compactMap { outcomes.outputs($0) }
        #expect(served.count + shed.count == 300)
        #expect(!served.isEmpty)
        #expect(shed.count >= 200)
        let stats = pool.statistics
        #expect(stats.shed == UInt64(shed.count))
        // The cost model learned what batches cost (on a loaded machine the split between per-row and per-batch
        // time can land all on one side).
        #expect(stats.costNanosecondsPerRow + stats.costNanosecondsPerBatch > 0)
    }

    @Test func priorityThenDeadlineDecideTheOrder() throws {
        try whileJobOneRuns(perBatchNanoseconds: 50 * ms, maxBatch: 1) { engine, pool, outcomes in
            pool.submit(outcomes.job(2))
            pool.submit(outcomes.job(3, deadlineIn: 10_000 * ms))
            pool.submit(outcomes.job(4, priority: 5))
            pool.submit(outcomes.job(5, deadlineIn: 5_000 * ms))
            #expect(outcomes.wait(for: 5))
            #expect(engine.records.map(\.firstValue) == [1, 4, 5, 3, 2])
        }
    }

    @Test func shadowWorkWaitsForIdleCapacity() throws {
        try whileJobOneRuns(perBatchNanoseconds: 100 * ms) { engine, pool, outcomes in
            pool.submit(outcomes.job(2))
            pool.submit(outcomes.job(-1, workClass: .shadow))
            #expect(outcomes.wait(for: 3))
            let records = engine.records
            let first = try #require(records.first { $0.firstValue == 1 })
            let primary = try #require(records.first { $0.firstValue == 2 })
            let shadow = try #require(records.first { $0.firstValue == -1 })
            // The shadow job did not start while primary work was queued, and the primary job that was
            // queued started as soon as the worker was free.
            #expect(shadow.start >= first.end)
            #expect(primary.start.nanoseconds(since: first.end) < 50 * ms)
            #expect(outcomes.outputs(-1)?.tensors[0].elementsEqual([-2, -2, -2, -2]) == true)
            // Shadow compute runs in the idle scheduling class where the process may leave it again.
            #expect(primary.policy == 0)
            #expect(shadow.policy == (idleSchedulingClassIsReversible ? 5 : 0))
            let stats = pool.statistics
            #expect(stats.shadowSucceeded == 1)
            #expect(stats.succeeded == 2)
            #expect(stats.batches == 2)
        }
    }

    @Test func shadowIsDroppedFirstWhenItsQueueIsFull() throws {
        try whileJobOneRuns(perBatchNanoseconds: 100 * ms, maxQueue: 4) { _, pool, outcomes in
            pool.submit(outcomes.job(2))
            pool.submit(outcomes.job(-1, workClass: .shadow))
            pool.submit(outcomes.job(-2, workClass: .shadow))
            let error = try #require(outcomes.error(-2))
            #expect(error.code == .unavailable)
            #expect(error.message.contains("shadow queue is full"))
            #expect(outcomes.wait(for: 4))
            #expect(outcomes.outputs(-1) != nil)
            #expect(pool.statistics.shadowDropped == 1)
        }
    }

    @Test func shutdownDrainsQueuedPrimaryWork() throws {
        let engine = DoublingEngine(perBatchNanoseconds: 5 * ms)
        let pool = try makePool(engine, maxBatch: 2)
        let outcomes = Outcomes()
        for tag in 1...10 { pool.submit(outcomes.job(tag)) }
        pool.shutdown()
        #expect(outcomes.results.withLock { $0.count } == 10)
        for tag in 1...10 { #expect(outcomes.outputs(tag) != nil) }
        pool.submit(outcomes.job(11))
        #expect(outcomes.error(11)?.code == .unavailable)
        #expect(outcomes.error(11)?.message.contains("shutting down") == true)
        let stats = pool.statistics
        #expect(stats.succeeded == 10)
        #expect(stats.rejectedShuttingDown == 1)
        pool.shutdown()
    }

    @Test func aStoppedPoolLetsGoOfTheJobsItRan() throws {
        let engine = DoublingEngine()
        let pool = try makePool(engine, maxBatch: 2)
        let outcomes = Outcomes()
        weak var first: InferenceJob?
        do {
            // Deadlines put the jobs in the deadline index too, where finished entries linger longest.
            let jobs = (1...6).map { outcomes.job($0, deadlineIn: 10_000 * ms) }
            first = jobs[0]
            for job in jobs { pool.submit(job) }
            #expect(outcomes.wait(for: 6))
        }
        pool.shutdown()
        // Nothing a job holds (its caller's state) outlives the pool's work.
        #expect(first == nil)
    }

    static let malformed: [(rows: Int, inputs: [[Float]], mentions: String)] = [
        (0, [[]], "at least 1 row"),
        (1, [], "expected 1 input tensors, got 0"),
        (2, [[1, 2, 3, 4]], "input 'x': expected 2 × 4 = 8 values, got 4"),
    ]

    @Test(arguments: malformed)
    func malformedJobsAreRefusedAlone(rows: Int, inputs: [[Float]], mentions: String) throws {
        let pool = try makePool(DoublingEngine())
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        pool.submit(outcomes.job(1, rows: rows, inputs: inputs))
        let error = try #require(outcomes.error(1))
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(mentions))
        pool.submit(outcomes.job(2))
        #expect(outcomes.wait(for: 2))
        #expect(outcomes.outputs(2) != nil)
    }

    @Test func engineFailureFailsTheBatchAndIsCounted() throws {
        let engine = DoublingEngine()
        let pool = try makePool(engine)
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        pool.submit(outcomes.job(1, inputs: [[Float.nan, 0, 0, 0]]))
        #expect(outcomes.wait(for: 1))
        #expect(outcomes.error(1)?.code == .invalidArgument)
        #expect(pool.statistics.failed == 1)
    }

    @Test(arguments: [Float.nan, -.infinity])
    func aPoisonedJobFailsAloneAndItsBatchMatesAreAnswered(poison: Float) throws {
        try whileJobOneRuns(perBatchNanoseconds: 50 * ms) { engine, pool, outcomes in
            // Queued behind the running batch, these five run as one batch; the third cannot be computed.
            for tag in 2...6 { pool.submit(outcomes.job(tag, value: tag == 4 ? poison : nil)) }
            #expect(outcomes.wait(for: 6))
            #expect(engine.records.contains { $0.rows == 5 })
            for tag in [1, 2, 3, 5, 6] {
                let outputs = try #require(
                    outcomes.outputs(tag),
                    "job \(tag): \(String(describing: outcomes.error(tag)))"
                )
                #expect(Array(outputs.tensors[0]) == [Float](repeating: Float(2 * tag), count: 4))
            }
            let error = try #require(outcomes.error(4))
            if poison.isNaN {
                #expect(error.code == .invalidArgument)
                #expect(error.message == "input 'x': expected numbers, got NaN")
            } else {
                // The engine's own fault: INTERNAL, naming the pool and the cause.
                #expect(error.code == .internal)
                #expect(error.message == "model 'test:1' failed: kernel fault: row starts with -inf")
            }
            let statistics = pool.statistics
            #expect(statistics.succeeded == 5)
            #expect(statistics.failed == 1)
            #expect(statistics.batchesIsolated == 1)
        }
    }

    @Test func thePoolKeepsServingAfterEngineFailures() throws {
        let engine = DoublingEngine()
        let pool = try makePool(engine, workers: 2)
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        for round in 0..<50 {
            pool.submit(outcomes.job(round, value: round % 2 == 0 ? -.infinity : nil))
        }
        #expect(outcomes.wait(for: 50))
        for round in 0..<50 {
            if round % 2 == 0 {
                #expect(outcomes.error(round)?.code == .internal)
            } else {
                #expect(outcomes.outputs(round)?.tensors[0].first == Float(2 * round))
            }
        }
        #expect(pool.statistics.failed == 25)
        #expect(pool.statistics.succeeded == 25)
    }

    @Test func aPoisonedShadowJobFailsAloneAndPrimaryWorkIsUntouched() throws {
        try whileJobOneRuns(perBatchNanoseconds: 50 * ms) { _, pool, outcomes in
            pool.submit(outcomes.job(2))  // queued primary work holds the shadow worker back
            for tag in 10...13 {
                pool.submit(outcomes.job(tag, value: tag == 12 ? -.infinity : nil, workClass: .shadow))
            }
            #expect(outcomes.wait(for: 6))
            #expect(outcomes.outputs(1) != nil && outcomes.outputs(2) != nil)
            for tag in [10, 11, 13] { #expect(outcomes.outputs(tag)?.tensors[0].first == Float(2 * tag)) }
            #expect(outcomes.error(12)?.code == .internal)
            let statistics = pool.statistics
            #expect(statistics.shadowSucceeded == 3)
            #expect(statistics.shadowFailed == 1)
            #expect(statistics.failed == 0)
            #expect(statistics.batchesIsolated == 1)
        }
    }

    @Test func workersRunBatchesInParallel() throws {
        let engine = DoublingEngine(perBatchNanoseconds: 100 * ms)
        let pool = try makePool(engine, maxBatch: 1, workers: 2)
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        pool.submit(outcomes.job(1))
        pool.submit(outcomes.job(2))
        #expect(outcomes.wait(for: 2))
        let records = engine.records
        #expect(records.count == 2)
        let overlap = min(records[0].end, records[1].end).nanoseconds(since: max(records[0].start, records[1].start))
        #expect(overlap > 50 * ms)
    }
}

/// Waits up to 2 s until each thread named in `names` may run on exactly `cpus`: pool threads set their CPUs as
/// they start, which may be after the job that was waited for has run.
private func waitForThreads(_ names: [String], toRunOn cpus: [Int]) {
    let end = MonotonicInstant.now().advanced(byNanoseconds: 2_000 * ms)
    while names.contains(where: { SystemInfo.cpus(ofThreadsNamed: $0) != [cpus] }) && MonotonicInstant.now() < end {
        usleep(1_000)
    }
}

@Suite struct WorkerPinningTests {
    @Test func workerCPUsPinTheWorkersAndTheShadowThread() throws {
        let cpu = try #require(SystemInfo.allowedCPUs.last)
        let pool = WorkerPool(
            name: "pin:1",
            engine: DoublingEngine(perBatchNanoseconds: 1 * ms),
            configuration: ModelConfiguration(workers: 2, workerCPUs: "\(cpu)"),
            logger: Logger(label: "test")
        )
        try pool.start()
        defer { pool.shutdown() }
        let outcomes = Outcomes()
        pool.submit(outcomes.job(1, rows: 1))
        #expect(outcomes.wait(for: 1))
        waitForThreads(["sy-w0-pin:1", "sy-w1-pin:1", "sy-s-pin:1"], toRunOn: [cpu])
        #expect(SystemInfo.cpus(ofThreadsNamed: "sy-w0-pin:1") == [[cpu]])
        #expect(SystemInfo.cpus(ofThreadsNamed: "sy-w1-pin:1") == [[cpu]])
        #expect(SystemInfo.cpus(ofThreadsNamed: "sy-s-pin:1") == [[cpu]])
        // The deadline timer is not pinned: it only wakes to answer expired calls.
        #expect(SystemInfo.cpus(ofThreadsNamed: "sy-t-pin:1") == [SystemInfo.allowedCPUs])
    }

    @Test(.enabled(if: SystemInfo.allowedCPUs.count >= 2, "needs two CPUs to tell pinned from free"))
    func aPoolStartedFromAPinnedThreadDoesNotInheritItsCPUs() throws {
        let allowed = SystemInfo.allowedCPUs
        // A model loaded by a control call runs `start()` on an event loop, which `io_cpus` may pin.
        let pool = Mutex<WorkerPool?>(nil)
        let starter = try startThread(name: "sy-pin-starter") {
            SystemInfo.pinCurrentThread(to: [allowed[0]])
            let started = WorkerPool(
                name: "free:1",
                engine: DoublingEngine(perBatchNanoseconds: 1 * ms),
                configuration: ModelConfiguration(workers: 1),
                logger: Logger(label: "test")
            )
            try? started.start()
            pool.withLock { $0 = started }
        }
        pthread_join(starter, nil)
        let started = try #require(pool.withLock { $0 })
        defer { started.shutdown() }
        let outcomes = Outcomes()
        started.submit(outcomes.job(1, rows: 1))
        #expect(outcomes.wait(for: 1))
        let names = ["sy-w0-free:1", "sy-s-free:1", "sy-t-free:1"]
        waitForThreads(names, toRunOn: allowed)
        for name in names {
            #expect(SystemInfo.cpus(ofThreadsNamed: name) == [allowed], "\(name)")
        }
    }
}
