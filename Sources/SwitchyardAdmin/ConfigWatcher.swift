// Watches the configuration file and reloads routes when its contents change. Comparing contents (a small
// file, read once per interval) catches every kind of update: in-place writes, renames over it, and the
// symlink swap of a Kubernetes ConfigMap, whatever the file system's timestamp granularity.

import Foundation
public import Logging
public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// Polls a file and calls `onChange` when its contents change.
public final class ConfigWatcher: Sendable {
    private let path: String
    private let intervalNanoseconds: UInt64
    private let onChange: @Sendable () -> Void
    private let logger: Logger
    /// Whether `stop()` was called, and the thread to join; `stopRequested` ends the current interval at once.
    private let state = ConditionLock<(stopped: Bool, thread: pthread_t?)>((false, nil))
    private let stopRequested = MonotonicCondition()

    /// Creates a watcher; call `start()` to begin polling.
    public init(path: String, intervalSeconds: Double, logger: Logger, onChange: @escaping @Sendable () -> Void) {
        self.path = path
        self.intervalNanoseconds = UInt64(max(intervalSeconds, 0.001) * 1e9)
        self.onChange = onChange
        self.logger = logger
    }

    /// The file's contents, or `nil` when it cannot be read.
    static func fingerprint(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Starts polling on a thread of its own (`sy-config-watch`).
    /// - Throws: `internal` when the system refuses the thread.
    public func start() throws(SwitchyardError) {
        let thread = try startThread(name: "sy-config-watch") { [self] in
            var last = Self.fingerprint(path)
            while true {
                let deadline = MonotonicInstant.now().advanced(byNanoseconds: intervalNanoseconds)
                let stopped = state.withLock(waitingOn: stopRequested, while: { !$0.stopped }, until: deadline) {
                    $0.stopped
                }
                if stopped { return }
                let current = Self.fingerprint(path)
                // A file being replaced may be missing for a moment: wait for it to reappear.
                guard let current, current != last else { continue }
                last = current
                logger.notice("configuration file changed; reloading routes", metadata: ["path": "\(path)"])
                onChange()
            }
        }
        state.withLock { $0.thread = thread }
    }

    /// Stops polling: wakes the thread from its interval and waits for a reload in progress to finish.
    public func stop() {
        let thread = state.withLock { state in
            defer { state.thread = nil }
            state.stopped = true
            stopRequested.signal()
            return state.thread
        }
        if let thread { pthread_join(thread, nil) }
    }
}
