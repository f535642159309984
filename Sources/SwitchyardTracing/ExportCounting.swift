// swift-otel keeps its batch processor and exporter to itself: what they drop shows only in its diagnostic log.
// This log handler reads the three messages swift-otel 1.6 writes per export (exported, export failed, queue
// full) into counters for /metrics, and passes warnings on to the gateway's own log, at most one every 10 seconds
// (a collector that is down fails every export; the counters say how many).

import Logging
import SwitchyardCore
import Synchronization

/// Spans exported and dropped inside swift-otel, as its diagnostic log tells them.
final class ExportCounters: Sendable {
    let exported = Atomic<UInt64>(0)
    let droppedProcessorFull = Atomic<UInt64>(0)
    let droppedExportFailed = Atomic<UInt64>(0)
    /// When a warning was last passed on (monotonic nanoseconds; 0: never).
    private let lastForwarded = Atomic<UInt64>(0)
    private static let forwardIntervalNanoseconds: UInt64 = 10_000_000_000

    /// Whether a warning may go to the gateway's log now (and, if so, marks it sent).
    func mayForward() -> Bool {
        let now = MonotonicInstant.now().nanoseconds
        let last = lastForwarded.load(ordering: .relaxed)
        guard last == 0 || now &- last >= Self.forwardIntervalNanoseconds else { return false }
        return lastForwarded.compareExchange(expected: last, desired: max(now, 1), ordering: .relaxed).exchanged
    }

    /// Counts what one diagnostic message says happened to spans.
    func record(message: String, metadata: Logger.Metadata) {
        switch message {
        case "Exported batch.":
            exported.add(Self.count(metadata["batch_size"]), ordering: .relaxed)
        case "Failed to export batch.":
            droppedExportFailed.add(Self.count(metadata["batch_size"]), ordering: .relaxed)
        case "Spans were dropped this iteration because queue was full":
            droppedProcessorFull.add(Self.count(metadata["dropped_count"]), ordering: .relaxed)
        default:
            break
        }
    }

    private static func count(_ value: Logger.MetadataValue?) -> UInt64 {
        guard case .string(let text)? = value else {
            if case .stringConvertible(let convertible)? = value { return UInt64(convertible.description) ?? 0 }
            return 0
        }
        return UInt64(text) ?? 0
    }
}

/// swift-otel's diagnostic log handler: counts export outcomes, forwards warnings and worse to `forward` (at most one
/// every 10 seconds).
struct ExportCountingLogHandler: LogHandler {
    let counters: ExportCounters
    let forward: Logger
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        counters.record(message: event.message.description, metadata: merged)
        if event.level >= .warning && counters.mayForward() {
            forward.log(
                level: event.level,
                event.message,
                metadata: merged,
                source: "otel",
                file: event.file,
                function: event.function,
                line: event.line
            )
        }
    }
}
