// The idle scheduling class for shadow work (threads: SwitchyardCore's startThread; the pool's lock and conditions:
// its ThreadLock and MonotonicCondition).

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
