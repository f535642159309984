// The comparison sink's queue + writer design, generic over the item: callers on the request path append to
// a bounded queue under a short lock and never wait; one low-priority thread swaps the whole queue out and
// processes it. A full queue (or a closed one) drops the item and counts it.

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// A bounded queue drained by its own thread.
final class WorkQueue<Item: Sendable>: @unchecked Sendable {
    private let capacity: Int

    // Guarded by `mutex`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [Item] = []
    private var consumerWaiting = false
    private var closing = false
    private var dropped: UInt64 = 0
    private var accepted: UInt64 = 0
    private var thread: pthread_t?

    /// Starts the thread `name`, which hands every batch of queued items to `process` (on that thread).
    /// - Throws: `internal` when the system refuses the thread.
    init(name: String, capacity: Int, process: @escaping @Sendable ([Item]) -> Void) throws(SwitchyardError) {
        self.capacity = max(1, capacity)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        queue.reserveCapacity(self.capacity)
        thread = try startThread(name: name) { [self] in
            // Monitoring is never part of a call: on a saturated machine it yields to the request path.
            _ = SystemInfo.lowerCurrentThreadPriority()
            run(process)
        }
    }

    deinit {
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        mutex.deallocate()
    }

    /// Queues `item`, or drops it (counted) when the queue is full or closed. Never waits for the consumer.
    func enqueue(_ item: Item) {
        pthread_mutex_lock(mutex)
        if closing || queue.count >= capacity {
            dropped += 1
        } else {
            queue.append(item)
            accepted += 1
            if consumerWaiting { pthread_cond_signal(wake) }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Items accepted, dropped, and waiting now.
    var counters: (accepted: UInt64, dropped: UInt64, queued: Int) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (accepted, dropped, queue.count)
    }

    /// Processes what is queued, then stops the thread. Later items are dropped.
    func close() {
        pthread_mutex_lock(mutex)
        let handle = thread
        thread = nil
        closing = true
        pthread_cond_signal(wake)
        pthread_mutex_unlock(mutex)
        if let handle { pthread_join(handle, nil) }
    }

    private func run(_ process: ([Item]) -> Void) {
        var batch: [Item] = []
        batch.reserveCapacity(capacity)
        while true {
            pthread_mutex_lock(mutex)
            while queue.isEmpty && !closing {
                consumerWaiting = true
                pthread_cond_wait(wake, mutex)
                consumerWaiting = false
            }
            if queue.isEmpty && closing {
                pthread_mutex_unlock(mutex)
                break
            }
            swap(&batch, &queue)
            pthread_mutex_unlock(mutex)
            process(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }
}
