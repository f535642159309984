// Thin wrappers over pthreads for the pools' long-lived threads: joinable threads, one mutex with
// condition variables that wait against the monotonic clock, and the idle scheduling class for shadow
// work.

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

private final class ThreadBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable thread running `body`; `name` documents the thread's role at the call site.
func startThread(name _: String, _ body: @escaping @Sendable () -> Void) -> pthread_t {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBox(body)).toOpaque()
    let rc = pthread_create(
        &thread,
        nil,
        { raw in
            let box = Unmanaged<ThreadBox>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        },
        box
    )
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

/// Moves the calling thread to Linux's idle scheduling class, so that it runs only on CPU time no
/// other thread wants. Returns whether the kernel accepted it.
@discardableResult
func enterIdleSchedulingClass() -> Bool {
    #if os(Linux)
        var parameters = sched_param()
        parameters.sched_priority = 0
        // SCHED_IDLE (5) is not imported by Glibc's module map.
        return pthread_setschedparam(pthread_self(), 5, &parameters) == 0
    #else
        return false
    #endif
}

/// A pthread mutex with condition variables on the monotonic clock. The pool keeps its state behind
/// this rather than `Synchronization.Mutex` because its threads sleep on conditions tied to the lock.
final class PoolLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() { pthread_mutex_init(mutex, nil) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// A condition variable on the monotonic clock, used with this lock.
    final class Condition: @unchecked Sendable {
        fileprivate let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        init() {
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

        func signal() { pthread_cond_signal(cond) }
        func broadcast() { pthread_cond_broadcast(cond) }
    }

    /// Sleeps on `condition` until signalled or until `deadline`. Call with the lock held; the lock is
    /// held again on return. Spurious wake-ups are possible, so callers re-check their state.
    func wait(on condition: Condition, until deadline: MonotonicInstant? = nil) {
        guard let deadline else {
            pthread_cond_wait(condition.cond, mutex)
            return
        }
        var time = timespec()
        time.tv_sec = Int(deadline.nanoseconds / 1_000_000_000)
        time.tv_nsec = Int(deadline.nanoseconds % 1_000_000_000)
        pthread_cond_timedwait(condition.cond, mutex, &time)
    }
}
