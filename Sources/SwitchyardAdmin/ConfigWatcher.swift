// Watches the configuration file and reloads routes when its contents change. Comparing contents (a small
// file, read once per interval) catches every kind of update: in-place writes, renames over it, and the
// symlink swap of a Kubernetes ConfigMap, whatever the file system's timestamp granularity.

import Foundation
public import Logging
import Synchronization

/// Polls a file and calls `onChange` when its contents change.
public final class ConfigWatcher: Sendable {
    private let path: String
    private let intervalSeconds: Double
    private let onChange: @Sendable () -> Void
    private let stopped = Atomic<Bool>(false)
    private let logger: Logger

    /// Creates a watcher; call `start()` to begin polling.
    public init(path: String, intervalSeconds: Double, logger: Logger, onChange: @escaping @Sendable () -> Void) {
        self.path = path
        self.intervalSeconds = intervalSeconds
        self.onChange = onChange
        self.logger = logger
    }

    /// The file's contents, or `nil` when it cannot be read.
    static func fingerprint(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    /// Starts polling on a thread of its own.
    public func start() {
        let thread = Thread { [self] in
            var last = Self.fingerprint(path)
            while !stopped.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: intervalSeconds)
                let current = Self.fingerprint(path)
                // A file being replaced may be missing for a moment: wait for it to reappear.
                guard let current, current != last else { continue }
                last = current
                logger.notice("configuration file changed; reloading routes", metadata: ["path": "\(path)"])
                onChange()
            }
        }
        thread.name = "config-watch"
        thread.start()
    }

    /// Stops polling after the current interval.
    public func stop() { stopped.store(true, ordering: .relaxed) }
}
