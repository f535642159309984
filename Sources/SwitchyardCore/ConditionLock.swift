// State that a thread sleeps on until another changes it: a pthread mutex and condition variables on the monotonic
// clock, with the state reachable only while the mutex is held. `Synchronization.Mutex` guards state nobody waits
// for; the queues drained by their own threads (the comparison sink's writer, the monitor's queue, the inflate
// thread's wake-up) wait on this one.

#if canImport(Glibc)
    import Glibc
#endif

/// `State` behind a mutex, with conditions to sleep on until it changes.
public final class ConditionLock<State: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // Guarded by `mutex`.
    private var state: State

    /// A condition variable on the monotonic clock, signalled by whoever changes the state a waiter is waiting on.
    public final class Condition: @unchecked Sendable {
        fileprivate let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        public init() {
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(cond, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(cond)
            cond.deallocate()
        }

        /// Wakes one waiter. Cheap when nobody waits (glibc returns without a system call).
        public func signal() { pthread_cond_signal(cond) }
        /// Wakes every waiter.
        public func broadcast() { pthread_cond_broadcast(cond) }
    }

    public init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    public func withLock<R, E: Error>(_ body: (inout State) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }

    /// Sleeps on `condition`, with the lock released, for as long as `blocked` holds and `deadline` (monotonic) has
    /// not passed; then runs `body` with the lock held. `body` sees the state whether `blocked` still holds or the
    /// deadline ended the wait, so it decides what a timeout means. Spurious wake-ups re-check `blocked`.
    public func withLock<R, E: Error>(
        waitingOn condition: Condition,
        while blocked: (State) -> Bool,
        until deadline: MonotonicInstant? = nil,
        _ body: (inout State) throws(E) -> R
    ) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while blocked(state) {
            if let deadline {
                var time = timespec()
                time.tv_sec = Int(deadline.nanoseconds / 1_000_000_000)
                time.tv_nsec = Int(deadline.nanoseconds % 1_000_000_000)
                if pthread_cond_timedwait(condition.cond, mutex, &time) == ETIMEDOUT { break }
            } else {
                pthread_cond_wait(condition.cond, mutex)
            }
        }
        return try body(&state)
    }
}
