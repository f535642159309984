// Thin wrappers over pthreads and condition variables for the pools' long-lived worker threads.

import Synchronization

#if canImport(Glibc)
import Glibc
#endif

private final class ThreadBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a joinable thread named `name` running `body`.
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

/// A condition variable paired with its own mutex, for sleeping until a predicate on other state holds.
final class ConditionSignal: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var generation: UInt64 = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Sleeps until `predicate` is true. The predicate is re-checked after every signal.
    func wait(until predicate: () -> Bool) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !predicate() {
            let seen = generation
            while generation == seen { pthread_cond_wait(cond, mutex) }
        }
    }

    func signal() {
        pthread_mutex_lock(mutex)
        generation &+= 1
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    func broadcast() {
        pthread_mutex_lock(mutex)
        generation &+= 1
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }
}
