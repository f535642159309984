// The process's log level as one shared, changeable value: Triton's LogSettings RPC reads and changes it while
// the gateway serves. swift-log fixes a handler's level when a Logger is made, so every handler the logging
// system makes reads its level from here instead.

public import Logging
import Synchronization

/// The log level every `SwitchedLogHandler` made from it obeys; changing it takes effect for every logger at once.
public final class LogLevelSwitch: Sendable {
    private let raw: Atomic<Int>

    /// Creates a switch set to `level`.
    public init(_ level: Logger.Level) { raw = Atomic(Self.index(level)) }

    /// The current level.
    public var level: Logger.Level {
        get { Self.levels[raw.load(ordering: .relaxed)] }
        set { raw.store(Self.index(newValue), ordering: .relaxed) }
    }

    /// A handler that logs through `base` at this switch's level.
    public func handler<Base: LogHandler>(_ base: Base) -> SwitchedLogHandler<Base> {
        SwitchedLogHandler(base: base, level: self)
    }

    /// The levels in order, read once: every log statement asks for the current level.
    private static let levels = Logger.Level.allCases

    private static func index(_ level: Logger.Level) -> Int { levels.firstIndex(of: level)! }
}

/// A log handler whose level is a `LogLevelSwitch`'s (setting a logger's level sets the switch).
public struct SwitchedLogHandler<Base: LogHandler>: LogHandler {
    private var base: Base
    private let level: LogLevelSwitch

    init(base: Base, level: LogLevelSwitch) {
        self.base = base
        self.level = level
    }

    public var logLevel: Logger.Level {
        get { level.level }
        nonmutating set { level.level = newValue }
    }

    public var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        base.log(event: event)
    }
}
