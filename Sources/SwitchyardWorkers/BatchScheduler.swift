// The micro-batcher's decisions as a pure state machine with an injected clock: when an idle worker
// should take a batch and how many rows, how long waiting for more rows may last, and whether a new
// job can still meet the latency target or must be shed. The pool feeds it observations (arrivals,
// finished batches, job latencies) and performs what it decides; it does no I/O and keeps no time.

public import SwitchyardCore

/// How a pool forms batches.
public enum BatchingMode: Sendable, Hashable {
    /// Batch size and waiting adapt to the latency target from the online cost model (the default).
    case adaptive
    /// Wait up to a fixed window after the oldest queued job, or until a batch is full (the classic
    /// dynamic batcher; kept for comparison).
    case fixedWindow(nanoseconds: UInt64)
}

/// The batching decision of one pool.
///
/// States and moves: with no queued rows or no idle worker the answer is `.idle` (the pool sleeps until
/// a submission or a finished batch). Otherwise it is `.dispatch(rows:)` when the queue holds at least
/// a target batch, when the pool drains, or when waiting would break the latency budget or a deadline;
/// else `.wait(until:)` the instant the target batch is expected or the budget runs out, whichever is
/// first. The target batch is the size that minimises expected latency under the online cost model
/// at the current arrival rate, so at low load it is one row and dispatch is immediate
/// (work-conserving), and it grows with load.
public struct BatchScheduler: Sendable {
    /// Fixed inputs of the decision.
    public struct Settings: Sendable, Hashable {
        /// Most rows per batch (at least 1).
        public var maxBatchRows: Int
        /// Latency target (p99 of queue + compute) in nanoseconds.
        public var sloNanoseconds: UInt64
        /// Worker threads sharing the queue.
        public var workers: Int
        /// Adaptive or fixed-window batching.
        public var mode: BatchingMode
        /// Whether new primary work is shed when the latency target cannot be met.
        public var shedding: Bool
        /// Highest utilisation a target batch size may imply (0.5…0.99); below 1 leaves headroom for
        /// bursts. Default 0.9.
        public var targetUtilization: Double

        /// Creates settings; `maxBatchRows` below 1 means no batching (one job's rows per batch).
        public init(
            maxBatchRows: Int,
            sloNanoseconds: UInt64,
            workers: Int,
            mode: BatchingMode = .adaptive,
            shedding: Bool = true,
            targetUtilization: Double = 0.9
        ) {
            self.maxBatchRows = max(1, maxBatchRows)
            self.sloNanoseconds = max(1, sloNanoseconds)
            self.workers = max(1, workers)
            self.mode = mode
            self.shedding = shedding
            self.targetUtilization = min(0.99, max(0.5, targetUtilization))
        }
    }

    /// What the queue looks like now.
    @MemberwiseInit
    public struct QueueState: Sendable, Hashable {
        /// Jobs queued.
        public var jobs: Int
        /// Rows in those jobs.
        public var rows: Int
        /// When the longest-waiting job was queued.
        public var oldestEnqueuedAt: MonotonicInstant?
        /// The earliest deadline among queued jobs.
        public var earliestDeadline: MonotonicInstant?

        /// An empty queue.
        public static let empty = QueueState(jobs: 0, rows: 0)
    }

    /// What the workers are doing now.
    @MemberwiseInit
    public struct WorkerState: Sendable, Hashable {
        /// Workers waiting for a batch.
        public var idle: Int
        /// When the first busy worker is expected to finish, if all are busy.
        public var earliestExpectedFree: MonotonicInstant?
        /// The pool is shutting down: queued work runs at once, nothing waits.
        public var draining: Bool = false
    }

    /// The answer to "what should an idle worker do now?".
    public enum Decision: Sendable, Hashable {
        /// Take queued jobs, in queue order, up to this many rows (always at least one job).
        case dispatch(rows: Int)
        /// Wait for more rows, deciding again at this instant or at the next submission.
        case wait(until: MonotonicInstant)
        /// Nothing to do until a submission or a finished batch.
        case idle
    }

    /// Why a new job cannot meet the latency target.
    public struct Overload: Sendable, Hashable {
        /// Estimated nanoseconds the job would queue.
        public var waitNanoseconds: Double
        /// Estimated nanoseconds of the batch it would run in.
        public var computeNanoseconds: Double
    }

    /// The fixed settings.
    public let settings: Settings
    /// Batch time vs rows, fitted as batches finish.
    public private(set) var costModel = BatchCostModel()
    /// Recent arrival rate of rows.
    public private(set) var arrivals = ArrivalRateEstimator()
    /// Share of the latency budget in use, lowered when too many jobs miss the target.
    public private(set) var feedback = LatencyFeedback()

    /// Batches needed before the cost model is trusted for waiting, capping and shedding.
    public static let warmUpBatches: UInt64 = 8
    /// Slack kept between a batch's expected end and the earliest queued deadline.
    public static let deadlineMarginNanoseconds: Double = 200_000

    /// Creates a scheduler with no observations.
    public init(settings: Settings) {
        self.settings = settings
        // Follow the arrival rate over a few latency targets, but at least 20 ms so that a handful of
        // requests does not look like a burst.
        arrivals = ArrivalRateEstimator(timeConstantNanoseconds: max(20_000_000, 2 * Double(settings.sloNanoseconds)))
    }

    /// Whether the cost model has seen enough batches to be trusted.
    public var isWarm: Bool { costModel.observations >= Self.warmUpBatches }

    // MARK: Observations

    /// Counts a submission of `rows` at `now`.
    public mutating func recordArrival(rows: Int, at now: MonotonicInstant) {
        arrivals.record(rows: rows, at: now)
    }

    /// Adds a finished batch to the cost model.
    public mutating func recordBatch(rows: Int, nanoseconds: UInt64) {
        costModel.observe(rows: rows, nanoseconds: nanoseconds)
    }

    /// Adds a finished job's queue + compute latency to the feedback.
    public mutating func recordLatency(nanoseconds: UInt64) {
        feedback.record(latencyNanoseconds: nanoseconds, targetNanoseconds: settings.sloNanoseconds)
    }

    // MARK: Derived quantities

    /// Most rows one batch may take: `max_batch_size`, lowered in adaptive mode so that a batch's
    /// estimated time fits half the latency target (a job may wait for one running batch, then run in
    /// its own). Latency feedback does not lower it: missed targets under load come from queueing, and
    /// smaller batches would only cut capacity and make the queue longer.
    public var batchCap: Int {
        let limit = settings.maxBatchRows
        guard case .adaptive = settings.mode, isWarm else { return limit }
        let budget = Double(settings.sloNanoseconds) * 0.5
        let a = costModel.nanosecondsPerRow
        let b = costModel.nanosecondsPerBatch
        guard a > 0 else { return limit }
        // The fit is not exact; a hair of tolerance keeps 4.9999 rows from rounding down to 4.
        let fits = Int(((budget - b) / a + 1e-3).rounded(.down))
        return min(limit, max(1, fits))
    }

    /// The batch size worth waiting for at the arrival rate around `now`: the n that minimises a row's
    /// expected latency, which is the time for the batch to fill, (n − 1) / (2·rate), plus its compute
    /// t(n) = a·n + b, plus queueing behind other batches at the utilisation ρ = rate·t(n) / (workers·n)
    /// that this size implies, ρ / (2(1 − ρ))·t(n) / workers (the M/D/1 mean wait), among sizes with
    /// ρ below `targetUtilization`. At low load filling costs more than it saves and the answer is one
    /// row; as the rate grows the optimum moves towards the cap.
    public func targetRows(at now: MonotonicInstant) -> Int {
        guard isWarm else { return 1 }
        let cap = batchCap
        let rate = arrivals.rowsPerNanosecond(at: now)
        guard rate > 0 else { return 1 }
        let workers = Double(settings.workers)
        var best = cap
        var bestLatency = Double.infinity
        for rows in 1...min(cap, 4_096) {
            let fill = Double(rows - 1) / (2 * rate)
            // The fill time only grows with n: past the best latency so far nothing larger can win.
            if fill >= bestLatency { break }
            guard let compute = costModel.estimate(rows: rows) else { return 1 }
            let utilization = rate * compute / (workers * Double(rows))
            guard utilization < settings.targetUtilization else { continue }
            let queueing = utilization / (2 * (1 - utilization)) * compute / workers
            let latency = fill + compute + queueing
            if latency < bestLatency {
                bestLatency = latency
                best = rows
            }
        }
        return best
    }

    /// Nanoseconds the latency budget allows a batch to wait for more rows.
    public var waitBudgetNanoseconds: Double {
        Double(settings.sloNanoseconds) * 0.5 * feedback.scale
    }

    /// Estimated queue + compute beyond which new work is shed: the latency target, lowered (by a fifth
    /// at most) while finished jobs miss it more often than a p99 allows, since the estimate is then
    /// evidently too optimistic. Not lower: a shorter queue means smaller batches, less capacity and
    /// yet more shedding.
    public var sheddingThresholdNanoseconds: Double {
        Double(settings.sloNanoseconds) * max(0.8, feedback.scale)
    }

    // MARK: Decisions

    /// What an idle worker should do at `now`.
    public func decide(now: MonotonicInstant, queue: QueueState, workers: WorkerState) -> Decision {
        guard queue.jobs > 0, queue.rows > 0, workers.idle > 0 else { return .idle }
        let cap = batchCap
        if workers.draining || queue.rows >= cap { return .dispatch(rows: cap) }
        let oldest = queue.oldestEnqueuedAt ?? now

        if case .fixedWindow(let window) = settings.mode {
            let closes = oldest.advanced(byNanoseconds: window)
            return closes <= now ? .dispatch(rows: cap) : .wait(until: closes)
        }

        let target = targetRows(at: now)
        if queue.rows >= target { return .dispatch(rows: cap) }
        // Waiting pays only here: at the current arrival rate, batches of the queued size would not keep
        // up, so the rows would queue anyway. Wait no longer than the budget and the earliest deadline.
        let rate = arrivals.rowsPerNanosecond(at: now)
        guard rate > 0, let targetCost = costModel.estimate(rows: target) else { return .dispatch(rows: cap) }
        var latest = Double(oldest.nanoseconds) + waitBudgetNanoseconds - targetCost
        if let deadline = queue.earliestDeadline {
            latest = min(latest, Double(deadline.nanoseconds) - targetCost - Self.deadlineMarginNanoseconds)
        }
        let nowNs = Double(now.nanoseconds)
        guard latest > nowNs else { return .dispatch(rows: cap) }
        let filled = nowNs + Double(target - queue.rows) / rate
        let until = min(latest, filled)
        return .wait(until: MonotonicInstant(nanoseconds: UInt64(until.rounded(.up))))
    }

    /// Whether a new primary job of `rows` behind `rowsAhead` queued rows can meet the latency target;
    /// `nil` when it can (or when the model is not yet known well enough to say), else the estimate
    /// that rules it out.
    ///
    /// A job that would start at once (nothing queued ahead of it, a worker idle) is never shed: no
    /// queue is protected by refusing it, and only the cost model says it would miss. Shedding it
    /// anyway can lock a pool out for good: a fit spoiled by a stalled batch predicts every job too
    /// slow, every job is shed, no batch runs, and nothing corrects the fit.
    public func overload(now: MonotonicInstant, rows: Int, rowsAhead: Int, workers: WorkerState) -> Overload? {
        guard settings.shedding, isWarm, case .adaptive = settings.mode else { return nil }
        guard rowsAhead > 0 || workers.idle == 0 else { return nil }
        let cap = batchCap
        guard let fullBatch = costModel.estimate(rows: cap) else { return nil }
        // Until two batch sizes have been seen, `a` and `b` are not told apart; assume the cheaper
        // split (all fixed cost) so that an unknown model is never shed on a guess.
        let drainRowsPerNanosecond: Double
        if costModel.isIdentified {
            drainRowsPerNanosecond = Double(settings.workers) * Double(cap) / fullBatch
        } else {
            drainRowsPerNanosecond = Double(settings.workers) * Double(cap) / (costModel.estimate(rows: 1) ?? fullBatch)
        }
        var wait = Double(rowsAhead) / drainRowsPerNanosecond
        if workers.idle == 0, let free = workers.earliestExpectedFree {
            wait += Double(free.nanoseconds(since: now))
        }
        let ownRows = costModel.isIdentified ? min(cap, max(1, rows + rowsAhead)) : max(1, min(cap, rows))
        let own = costModel.estimate(rows: ownRows) ?? 0
        guard wait + own > sheddingThresholdNanoseconds else { return nil }
        return Overload(waitNanoseconds: wait, computeNanoseconds: own)
    }
}
