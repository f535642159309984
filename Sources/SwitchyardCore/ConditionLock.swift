// Locks that threads sleep on until another thread changes what they guard: pthread mutexes with condition
// variables on the monotonic clock. `Synchronization.Mutex` guards state nobody waits for. `ConditionLock` keeps
// its state reachable only while its mutex is held (the comparison sink's writer, the monitor's queue, the inflate
// thread's wake-up); `ThreadLock` is the bare mutex, for loops that release it part-way through an iteration
// (the worker pool's threads).

#if canImport(Glibc)
    import Glibc
#endif

/// A condition variable on the monotonic clock, signalled by whoever changes the state a waiter is waiting on.
public final class MonotonicCondition: @unchecked Sendable {
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

    /// Sleeps on this condition, releasing `mutex` (held by the caller) until signalled or until `deadline`.
    /// Returns false when the deadline passed. Spurious wake-ups are possible, so callers re-check their state.
    fileprivate func wait(_ mutex: UnsafeMutablePointer<pthread_mutex_t>, until deadline: MonotonicInstant?) -> Bool {
        guard let deadline else {
            pthread_cond_wait(cond, mutex)
            return true
        }
        var time = timespec()
        time.tv_sec = Int(deadline.nanoseconds / 1_000_000_000)
        time.tv_nsec = Int(deadline.nanoseconds % 1_000_000_000)
        return pthread_cond_timedwait(cond, mutex, &time) != ETIMEDOUT
    }
}

/// `State` behind a mutex, with conditions to sleep on until it changes.
public final class ConditionLock<State: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // Guarded by `mutex`.
    private var state: State

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
        waitingOn condition: MonotonicCondition,
        while blocked: (State) -> Bool,
        until deadline: MonotonicInstant? = nil,
        _ body: (inout State) throws(E) -> R
    ) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while blocked(state) {
            if !condition.wait(mutex, until: deadline) { break }
        }
        return try body(&state)
    }
}

/// A bare mutex for code that releases it part-way through an iteration and sleeps on conditions tied to it. State
/// behind it is the caller's to guard: prefer `ConditionLock` where a closure can hold the lock for the whole access.
public final class ThreadLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    public init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    public func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Sleeps on `condition` until signalled or until `deadline`. Call with the lock held; the lock is held again
    /// on return. Spurious wake-ups are possible, so callers re-check their state.
    public func wait(on condition: MonotonicCondition, until deadline: MonotonicInstant? = nil) {
        _ = condition.wait(mutex, until: deadline)
    }
}
