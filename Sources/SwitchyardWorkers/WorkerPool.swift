// A pool of worker threads for one model version: jobs queue here, workers take batches of them and
// run them through their own engine executor.

public import Logging
public import SwitchyardCore
public import SwitchyardEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Counters of a pool, read as a snapshot.
public struct PoolStatistics: Sendable, Hashable {
    /// Jobs completed successfully.
    public var succeeded: UInt64 = 0
    /// Jobs that failed in the engine.
    public var failed: UInt64 = 0
    /// Jobs rejected or dropped before running (queue full, deadline passed, cancelled, shutting down).
    public var rejected: UInt64 = 0
    /// Batches executed.
    public var batches: UInt64 = 0
    /// Total nanoseconds jobs spent queued.
    public var queueNanoseconds: UInt64 = 0
    /// Total nanoseconds batches spent computing.
    public var computeNanoseconds: UInt64 = 0
    /// Jobs waiting now.
    public var queued: Int = 0
}

/// Worker threads over one shared engine, fed from a bounded queue.
public final class WorkerPool: Sendable {
    private struct State {
        var queue: [InferenceJob] = []
        var head = 0
        var running = true
        var stats = PoolStatistics()
        var queuedCount: Int { queue.count - head }
    }

    /// The pool's name in logs, e.g. `digits:2`.
    public let name: String
    /// The model's signature.
    public let signature: ModelSignature
    private let engine: any InferenceEngine
    private let configuration: ModelConfiguration
    private let state = Mutex(State())
    private let condition = ConditionSignal()
    private let threads = Mutex<[pthread_t]>([])
    private let logger: Logger

    /// Creates a pool; call `start()` to launch its threads.
    public init(name: String, engine: any InferenceEngine, configuration: ModelConfiguration, logger: Logger) {
        self.name = name
        self.engine = engine
        self.signature = engine.signature
        self.configuration = configuration
        self.logger = logger
    }

    /// Launches the worker threads.
    public func start() {
        for index in 0..<configuration.workers {
            let thread = startThread(name: "sy-\(name)-\(index)") { [self] in self.workerLoop() }
            threads.withLock { $0.append(thread) }
        }
    }

    /// Queues a job. Never blocks; a job that cannot be queued is completed at once with the reason.
    public func submit(_ job: InferenceJob) {
        let rejection: SwitchyardError? = state.withLock { state in
            guard state.running else { return SwitchyardError(.unavailable, "model '\(name)' is shutting down") }
            guard state.queuedCount < configuration.maxQueueSize else {
                state.stats.rejected += 1
                return SwitchyardError(
                    .resourceExhausted,
                    "model '\(name)': queue full (\(configuration.maxQueueSize) requests waiting); retry later"
                )
            }
            state.queue.append(job)
            return nil
        }
        if let rejection {
            job.completion(.failure(rejection))
        } else {
            condition.signal()
        }
    }

    /// A snapshot of the pool's counters.
    public var statistics: PoolStatistics {
        state.withLock { state in
            var stats = state.stats
            stats.queued = state.queuedCount
            return stats
        }
    }

    /// Stops taking work, finishes what is queued, and joins the worker threads.
    public func shutdown() {
        state.withLock { $0.running = false }
        condition.broadcast()
        let joined = threads.withLock { threads in
            defer { threads.removeAll() }
            return threads
        }
        for thread in joined { pthread_join(thread, nil) }
    }

    private func nextBatch() -> [InferenceJob]? {
        condition.wait(until: { self.state.withLock { $0.queuedCount > 0 || !$0.running } })
        return state.withLock { state -> [InferenceJob]? in
            if state.queuedCount == 0 { return state.running ? [] : nil }
            var batch: [InferenceJob] = []
            var rows = 0
            let limit = max(1, configuration.maxBatchSize)
            while state.head < state.queue.count {
                let job = state.queue[state.head]
                if !batch.isEmpty && rows + job.rows > limit { break }
                batch.append(job)
                rows += job.rows
                state.head += 1
            }
            if state.head > 1024 && state.head * 2 > state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            if state.queuedCount > 0 { condition.signal() }
            return batch
        }
    }

    private func workerLoop() {
        let executor = engine.makeExecutor()
        while let batch = nextBatch() {
            if batch.isEmpty { continue }
            run(batch, on: executor)
        }
    }

    private func run(_ candidates: [InferenceJob], on executor: any EngineExecutor) {
        let start = MonotonicInstant.now()
        var batch: [InferenceJob] = []
        var dropped = 0
        for job in candidates {
            if job.isCancelled() {
                dropped += 1
                job.completion(.failure(SwitchyardError(.cancelled, "the call was cancelled while queued")))
            } else if let deadline = job.deadline, deadline <= start {
                dropped += 1
                job.completion(.failure(SwitchyardError(.deadlineExceeded, "the deadline passed while queued")))
            } else {
                batch.append(job)
            }
        }
        guard !batch.isEmpty else {
            state.withLock { $0.stats.rejected += UInt64(dropped) }
            return
        }
        let rows = batch.reduce(0) { $0 + $1.rows }
        let inputs: [[Float]] = signature.inputs.indices.map { index in
            batch.count == 1 ? batch[0].inputs[index] : batch.flatMap { $0.inputs[index] }
        }
        var outputs: [[Float]] = signature.outputs.map { [Float](repeating: 0, count: rows * $0.elementsPerRow) }
        let result: Result<Void, SwitchyardError> = withBuffers(inputs, &outputs) { inputBuffers, outputBuffers in
            do {
                try executor.run(inputs: inputBuffers, rows: rows, outputs: outputBuffers)
                return .success(())
            } catch let error as SwitchyardError {
                return .failure(error)
            } catch {
                return .failure(.internal("model '\(name)' failed: \(error)"))
            }
        }
        let end = MonotonicInstant.now()
        let compute = end.nanoseconds(since: start)
        var queueTotal: UInt64 = 0
        switch result {
        case .success:
            var offset = 0
            for job in batch {
                let queued = start.nanoseconds(since: job.enqueuedAt)
                queueTotal += queued
                let tensors = signature.outputs.indices.map { index -> [Float] in
                    let width = signature.outputs[index].elementsPerRow
                    return Array(outputs[index][(offset * width)..<((offset + job.rows) * width)])
                }
                offset += job.rows
                job.completion(
                    .success(
                        JobOutputs(
                            tensors: tensors,
                            rows: job.rows,
                            queueNanoseconds: queued,
                            computeNanoseconds: compute,
                            batchRows: rows
                        )
                    )
                )
            }
        case .failure(let error):
            for job in batch { job.completion(.failure(error)) }
        }
        state.withLock { state in
            state.stats.batches += 1
            state.stats.rejected += UInt64(dropped)
            state.stats.computeNanoseconds += compute
            state.stats.queueNanoseconds += queueTotal
            if case .success = result {
                state.stats.succeeded += UInt64(batch.count)
            } else {
                state.stats.failed += UInt64(batch.count)
            }
        }
    }
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
