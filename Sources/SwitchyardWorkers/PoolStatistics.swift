// A pool's counters and current estimates, read as one snapshot for model statistics and metrics.

/// Counters of a pool, read as a snapshot.
public struct PoolStatistics: Sendable, Hashable {
    /// Primary jobs completed successfully.
    public var succeeded: UInt64 = 0
    /// Primary jobs that failed in the engine.
    public var failed: UInt64 = 0
    /// Primary jobs rejected or dropped before running, for any reason (the sum of the reasons below).
    public var rejected: UInt64 {
        rejectedQueueFull + shed + deadlineExceeded + cancelled + rejectedShuttingDown
    }
    /// Primary jobs rejected because the queue held `max_queue_size` jobs.
    public var rejectedQueueFull: UInt64 = 0
    /// Primary jobs shed because the latency target could not be met at the current load.
    public var shed: UInt64 = 0
    /// Primary jobs whose deadline passed before they ran (at submission or while queued).
    public var deadlineExceeded: UInt64 = 0
    /// Primary jobs dropped because the caller cancelled.
    public var cancelled: UInt64 = 0
    /// Primary jobs rejected because the pool was shutting down.
    public var rejectedShuttingDown: UInt64 = 0
    /// Shadow jobs completed successfully.
    public var shadowSucceeded: UInt64 = 0
    /// Shadow jobs that failed in the engine.
    public var shadowFailed: UInt64 = 0
    /// Shadow jobs dropped or rejected (queue full, deadline, cancelled, primary load, shutdown).
    public var shadowDropped: UInt64 = 0
    /// Primary batches executed.
    public var batches: UInt64 = 0
    /// Shadow batches executed.
    public var shadowBatches: UInt64 = 0
    /// Batches of several jobs that failed and were re-run one job at a time, so that one job the engine
    /// cannot run fails alone instead of taking its batch-mates with it (primary and shadow).
    public var batchesIsolated: UInt64 = 0
    /// Primary batches by rows: element `n` counts batches of `n` rows (the last element also counts
    /// larger batches, which only single jobs above `max_batch_size` make).
    public var batchCounts: [UInt64] = []
    /// Compute nanoseconds of primary batches by rows, indexed as `batchCounts`.
    public var batchComputeNanoseconds: [UInt64] = []
    /// Total nanoseconds primary jobs spent queued.
    public var queueNanoseconds: UInt64 = 0
    /// Total nanoseconds primary batches spent computing.
    public var computeNanoseconds: UInt64 = 0
    /// Total nanoseconds shadow batches spent computing.
    public var shadowComputeNanoseconds: UInt64 = 0
    /// Primary jobs waiting now.
    public var queued: Int = 0
    /// Rows in the primary jobs waiting now.
    public var queuedRows: Int = 0
    /// Shadow jobs waiting now.
    public var shadowQueued: Int = 0
    /// Workers running a batch now.
    public var busyWorkers: Int = 0
    /// The cost model's marginal nanoseconds per row (`a` of a·n + b).
    public var costNanosecondsPerRow: Double = 0
    /// The cost model's fixed nanoseconds per batch (`b` of a·n + b).
    public var costNanosecondsPerBatch: Double = 0
    /// Recent arrival rate in rows per second.
    public var arrivalRowsPerSecond: Double = 0
    /// Largest batch the latency target allows now.
    public var batchCap: Int = 0
    /// Batch size the batcher aims for at the current arrival rate.
    public var targetBatchRows: Int = 0
    /// Share of the latency budget in use (lowered when jobs miss the target).
    public var latencyScale: Double = 1

    /// Creates empty statistics with a batch-size histogram for batches of up to `maxBatchRows` rows.
    public init(maxBatchRows: Int = 0) {
        batchCounts = [UInt64](repeating: 0, count: max(1, maxBatchRows) + 1)
        batchComputeNanoseconds = batchCounts
    }

    /// Mean rows per primary batch, or 0 before the first.
    public var meanBatchRows: Double {
        let batches = batchCounts.reduce(0, +)
        guard batches > 0 else { return 0 }
        let rows = batchCounts.enumerated().reduce(0.0) { $0 + Double($1.offset) * Double($1.element) }
        return rows / Double(batches)
    }
}
