// ConditionLock and ThreadLock with real threads: a waiter sleeps until another thread changes the state, and a
// deadline ends a wait that nothing will end.

import SwitchyardCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ConditionLockTests {
    @Test func aWaiterWakesWhenAnotherThreadChangesTheState() throws {
        let counter = ConditionLock(0)
        let changed = MonotonicCondition()
        let thread = try startThread(name: "sy-test-signal") {
            for _ in 0..<3 {
                usleep(2_000)
                counter.withLock { value in
                    value += 1
                    changed.signal()
                }
            }
        }
        let seen = counter.withLock(waitingOn: changed, while: { $0 < 3 }) { $0 }
        pthread_join(thread, nil)
        #expect(seen == 3)
    }

    @Test func aDeadlineEndsAWaitThatNothingEnds() {
        let ready = ConditionLock(false)
        let never = MonotonicCondition()
        let start = MonotonicInstant.now()
        let deadline = start.advanced(byNanoseconds: 20_000_000)
        let sawReady = ready.withLock(waitingOn: never, while: { !$0 }, until: deadline) { $0 }
        #expect(!sawReady)
        #expect(MonotonicInstant.now() >= deadline)
    }

    @Test func threadLockWaitsReleaseTheLock() throws {
        let lock = ThreadLock()
        let posted = MonotonicCondition()
        nonisolated(unsafe) var value = 0
        lock.lock()
        let thread = try startThread(name: "sy-test-post") {
            lock.withLock {
                value = 7
                posted.signal()
            }
        }
        while value == 0 { lock.wait(on: posted) }
        lock.unlock()
        pthread_join(thread, nil)
        #expect(value == 7)
    }
}
