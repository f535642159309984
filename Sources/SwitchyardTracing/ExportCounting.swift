// swift-otel keeps its batch processor and exporter to itself: what they drop shows only in its diagnostic log.
// This log handler reads the three messages swift-otel 1.6 writes per export (exported, export failed, queue
// full) into counters for /metrics, and passes every warning on to the gateway's own log.

import Logging
import Synchronization

/// Spans exported and dropped inside swift-otel, as its diagnostic log tells them.
final class ExportCounters: Sendable {
    let exported = Atomic<UInt64>(0)
    let droppedProcessorFull = Atomic<UInt64>(0)
    let droppedExportFailed = Atomic<UInt64>(0)

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

/// swift-otel's diagnostic log handler: counts export outcomes, forwards warnings and worse to `forward`.
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
        if event.level >= .warning {
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
