// The work queue's two ways of waking its thread: every item (the default), or gathered per interval, where the
// items queued meanwhile arrive as one batch and a half-full queue or close() still wakes the thread at once.

import Synchronization
import Testing

@testable import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct WorkQueueTests {
    final class Batches: Sendable {
        let sizes = Mutex<[Int]>([])
        var total: Int { sizes.withLock { $0.reduce(0, +) } }
    }

    static func waitUntil(_ condition: () -> Bool) {
        for _ in 0..<500 where !condition() { usleep(10_000) }
    }

    @Test func gatheredItemsArriveTogetherAfterTheInterval() throws {
        let batches = Batches()
        let queue = try WorkQueue<Int>(name: "test-gather", capacity: 1000, gatherNanoseconds: 300_000_000) {
            items in
            if !items.isEmpty { batches.sizes.withLock { $0.append(items.count) } }
        }
        for i in 0..<20 { #expect(queue.enqueue(i)) }
        Self.waitUntil { batches.total == 20 }
        #expect(batches.sizes.withLock { $0 } == [20])
        queue.close()
    }

    @Test func aHalfFullQueueWakesAGatheringThreadAtOnce() throws {
        let batches = Batches()
        // An interval far longer than the test: only the half-full wake-up can deliver the items in time.
        let queue = try WorkQueue<Int>(name: "test-half", capacity: 10, gatherNanoseconds: 60_000_000_000) { items in
            if !items.isEmpty { batches.sizes.withLock { $0.append(items.count) } }
        }
        let started = MonotonicInstant.now()
        for i in 0..<5 { #expect(queue.enqueue(i)) }
        Self.waitUntil { batches.total >= 5 }
        #expect(batches.total == 5)
        #expect(MonotonicInstant.now().nanoseconds(since: started) < 5_000_000_000)
        queue.close()
    }

    @Test func closeProcessesWhatAGatheringQueueHolds() throws {
        let batches = Batches()
        let queue = try WorkQueue<Int>(name: "test-close", capacity: 100, gatherNanoseconds: 60_000_000_000) { items in
            if !items.isEmpty { batches.sizes.withLock { $0.append(items.count) } }
        }
        for i in 0..<3 { #expect(queue.enqueue(i)) }
        queue.close()
        #expect(batches.total == 3)
        #expect(!queue.enqueue(4))
        #expect(queue.counters.dropped == 1)
    }
}
