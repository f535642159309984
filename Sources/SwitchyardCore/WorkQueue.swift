// The comparison sink's queue + writer design, generic over the item: callers on the request path append to
// a bounded queue under a short lock and never wait; one low-priority thread swaps the whole queue out and
// processes it. A full queue (or a closed one) drops the item and counts it. Shared by the monitor (capture, drift)
// and the tracer (spans).

#if canImport(Glibc)
    import Glibc
#endif

/// A bounded queue drained by its own thread.
public final class WorkQueue<Item: Sendable>: Sendable {
    private struct State: Sendable {
        var queue: [Item] = []
        var closing = false
        var dropped: UInt64 = 0
        var accepted: UInt64 = 0
        var thread: pthread_t?
    }

    private let capacity: Int
    private let tickNanoseconds: UInt64?
    private let gatherNanoseconds: UInt64?
    private let state = ConditionLock(State())
    private let wake = MonotonicCondition()

    /// Starts the thread `name`, which hands every batch of queued items to `process` (on that thread).
    /// - Parameters:
    ///   - tickNanoseconds: when set, `process` is also called with no items after the queue stayed empty this
    ///     long, so that the consumer can finish work that waits for time to pass; `nil` (the default): never.
    ///   - gatherNanoseconds: when set, a queued item does not wake the thread: it wakes once per this interval
    ///     (or as soon as the queue is half full) and takes everything queued meanwhile, for a consumer that pays
    ///     per wake-up downstream; `nil` (the default): every item wakes it.
    /// - Throws: `internal` when the system refuses the thread.
    public init(
        name: String,
        capacity: Int,
        tickNanoseconds: UInt64? = nil,
        gatherNanoseconds: UInt64? = nil,
        process: @escaping @Sendable ([Item]) -> Void
    ) throws(SwitchyardError) {
        self.capacity = max(1, capacity)
        self.tickNanoseconds = tickNanoseconds
        self.gatherNanoseconds = gatherNanoseconds
        state.withLock { $0.queue.reserveCapacity(self.capacity) }
        let thread = try startThread(name: name) { [self] in
            // Monitoring is never part of a call: on a saturated machine it yields to the request path.
            _ = SystemInfo.lowerCurrentThreadPriority()
            run(process)
        }
        state.withLock { $0.thread = thread }
    }

    /// Queues `item`, or drops it (counted) when the queue is full or closed. Never waits for the consumer.
    /// - Returns: whether the item was queued.
    @discardableResult
    public func enqueue(_ item: Item) -> Bool {
        state.withLock { state in
            if state.closing || state.queue.count >= capacity {
                state.dropped += 1
                return false
            }
            state.queue.append(item)
            state.accepted += 1
            if gatherNanoseconds == nil || state.queue.count == max(1, capacity / 2) { wake.signal() }
            return true
        }
    }

    /// Items accepted, dropped, and waiting now.
    public var counters: (accepted: UInt64, dropped: UInt64, queued: Int) {
        state.withLock { ($0.accepted, $0.dropped, $0.queue.count) }
    }

    /// Processes what is queued, then stops the thread. Later items are dropped.
    public func close() {
        let handle = state.withLock { state in
            defer { state.thread = nil }
            state.closing = true
            wake.signal()
            return state.thread
        }
        if let handle { pthread_join(handle, nil) }
    }

    private func run(_ process: ([Item]) -> Void) {
        var batch: [Item] = []
        batch.reserveCapacity(capacity)
        let half = max(1, capacity / 2)
        while true {
            let finished: Bool
            if let gatherNanoseconds {
                // Gathering: wait out the interval (unless the queue fills up or closes), then take it all.
                finished = state.withLock(
                    waitingOn: wake,
                    while: { $0.queue.count < half && !$0.closing },
                    until: MonotonicInstant.now().advanced(byNanoseconds: gatherNanoseconds)
                ) { state in
                    if state.queue.isEmpty { return state.closing }
                    swap(&batch, &state.queue)
                    return false
                }
                if finished { break }
                if batch.isEmpty && tickNanoseconds == nil { continue }
                process(batch)
                batch.removeAll(keepingCapacity: true)
                continue
            }
            let deadline = tickNanoseconds.map { MonotonicInstant.now().advanced(byNanoseconds: $0) }
            finished = state.withLock(
                waitingOn: wake,
                while: { $0.queue.isEmpty && !$0.closing },
                until: deadline
            ) { state in
                if state.queue.isEmpty { return state.closing }
                swap(&batch, &state.queue)
                return false
            }
            if finished { break }
            // An empty batch is a tick: the queue stayed empty for `tickNanoseconds`.
            process(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
}
