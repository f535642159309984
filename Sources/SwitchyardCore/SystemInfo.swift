// Facts about the host that defaults are derived from, and naming the calling thread.
import CEpoll

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Host facts used for defaults.
public enum SystemInfo {
    /// Online processor count, at least 1.
    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Names the calling thread (Linux keeps the first 15 bytes), so that `top -H`, `perf` and
    /// `/proc/PID/task/*/comm` tell the gateway's threads apart.
    public static func nameCurrentThread(_ name: String) {
        cswitchyard_set_thread_name(name)
    }

    /// Gives the calling thread the lowest normal priority (nice 19): it still runs on a busy machine,
    /// but with about 1/70 of a default thread's share. For background threads whose work may fall
    /// behind, such as the comparison sink's writer. Returns whether the kernel accepted it.
    @discardableResult
    public static func lowerCurrentThreadPriority() -> Bool {
        cswitchyard_set_thread_nice(19) == 0
    }
}
