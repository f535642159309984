// Long-lived, named, joinable threads for the gateway's own machinery (pool workers, timers, the shadow
// worker, the comparison sink's writer, the host CPU monitor).

#if canImport(Glibc)
    public import Glibc
#endif

private final class ThreadBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable thread named `name` (Linux keeps 15 bytes) running `body`. The thread may run on any of the
/// process's CPUs, whatever its creator was pinned to (a pool started from a pinned event loop must not inherit
/// the loop's CPUs); `body` pins it further if it should be.
/// - Throws: `internal`, naming the thread, when the system refuses another thread.
public func startThread(name: String, _ body: @escaping @Sendable () -> Void) throws(SwitchyardError) -> pthread_t {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(
        ThreadBox {
            SystemInfo.nameCurrentThread(name)
            SystemInfo.pinCurrentThread(to: SystemInfo.allowedCPUs)
            body()
        }
    ).toOpaque()
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
    guard rc == 0 else {
        Unmanaged<ThreadBox>.fromOpaque(box).release()
        throw SwitchyardError.internal("cannot start thread \(name): pthread_create returned \(rc)")
    }
    return thread
}
