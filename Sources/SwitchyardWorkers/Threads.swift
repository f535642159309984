// Thin wrappers over pthreads for the pools: one mutex with condition variables that wait against the
// monotonic clock, and the idle scheduling class for shadow work (threads: SwitchyardCore's startThread).

import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Moves the calling thread into Linux's idle scheduling class (`true`), where it runs only on CPU
/// time no other thread wants, or back to the normal class (`false`). Returns whether the kernel
/// accepted it.
@discardableResult
func setIdleSchedulingClass(_ idle: Bool) -> Bool {
    #if os(Linux)
        var parameters = sched_param()
        parameters.sched_priority = 0
        // SCHED_IDLE (5) is not imported by Glibc's module map; SCHED_OTHER is 0.
        return pthread_setschedparam(pthread_self(), idle ? 5 : 0, &parameters) == 0
    #else
        return false
    #endif
}

/// Moves the calling thread to the lowest real-time priority (SCHED_FIFO 1) where the process is
/// allowed to, so that it runs as soon as it wakes even on a saturated machine. Only for threads that
/// do a few microseconds of work per wake-up. Returns whether the kernel accepted it.
@discardableResult
func enterLowestRealtimePriority() -> Bool {
    #if os(Linux)
        var parameters = sched_param()
        parameters.sched_priority = 1
        return pthread_setschedparam(pthread_self(), 1, &parameters) == 0
    #else
        return false
    #endif
}

/// Whether threads of this process may enter the idle scheduling class and leave it again. Leaving
/// needs CAP_SYS_NICE or an RLIMIT_NICE of 20, so it is tried once, on a throwaway thread, since a
/// thread that cannot leave would be stuck in the idle class.
let idleSchedulingClassIsReversible: Bool = {
    let result = Atomic<Bool>(false)
    guard
        let probe = try? startThread(
            name: "sy-probe",
            {
                if setIdleSchedulingClass(true) && setIdleSchedulingClass(false) {
                    result.store(true, ordering: .relaxed)
                }
            }
        )
    else { return false }
    pthread_join(probe, nil)
    return result.load(ordering: .relaxed)
}()

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
