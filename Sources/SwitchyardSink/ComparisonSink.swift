// The comparison sink: pairs each shadow result with its primary result, keeps online aggregates per
// (model, primary, shadow), and hands records to a writer thread through a bounded queue. Nothing here
// blocks a call: a full queue or a failing disk drops records and counts them.

public import Logging
public import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Counters of the sink.
public struct SinkStatistics: Sendable, Hashable {
    /// Pairs recorded (aggregated).
    public var recorded: UInt64 = 0
    /// Records written to disk.
    public var written: UInt64 = 0
    /// Records dropped because the writer's queue was full (or the sink was already closed).
    public var droppedQueueFull: UInt64 = 0
    /// Records dropped because writing failed.
    public var droppedWriteFailed: UInt64 = 0
    /// Failed writes, opens or rotations.
    public var writeErrors: UInt64 = 0
    /// Bytes written.
    public var bytesWritten: UInt64 = 0
    /// Files started.
    public var filesOpened: UInt64 = 0
    /// Records waiting for the writer.
    public var queued: Int = 0
    /// Calls not mirrored because the host's CPUs were busier than `shadow_max_host_cpu`.
    public var mirrorsSkippedHostBusy: UInt64 = 0

    /// Zeroed counters.
    public init() {}
}

/// Collects shadow/primary comparisons.
public final class ComparisonSink: Sendable {
    private struct State {
        var aggregates: [ComparisonKey: ComparisonAggregate] = [:]
        var recorded: UInt64 = 0
    }

    private let state = Mutex(State())
    private let writer: RecordWriter?
    private let logger: Logger
    private let hostCPU: HostCPUMonitor?
    private let shadowMaxHostCPU: Double
    private let skippedHostBusy = Atomic<UInt64>(0)

    /// Creates a sink; with a `directory` it creates the directory if needed and starts the writer thread.
    /// - Throws: `failedPrecondition` when the directory cannot be created or written.
    public init(configuration: SinkConfiguration, logger: Logger) throws(SwitchyardError) {
        self.logger = logger
        shadowMaxHostCPU = configuration.shadowMaxHostCPU
        hostCPU = configuration.shadowMaxHostCPU < 1 ? try HostCPUMonitor() : nil
        if let directory = configuration.directory {
            writer = try RecordWriter(
                directory: directory,
                maxFileBytes: configuration.maxFileBytes,
                maxFiles: configuration.maxFiles,
                queueCapacity: configuration.queueCapacity,
                logger: logger
            )
        } else {
            writer = nil
        }
    }

    /// Whether a call may be mirrored now: always, unless `shadow_max_host_cpu` is set and the host's CPUs
    /// were busier than that over the last interval (the skipped mirror is then counted).
    public func admitsMirror() -> Bool {
        guard let hostCPU, hostCPU.busyShare > shadowMaxHostCPU else { return true }
        skippedHostBusy.add(1, ordering: .relaxed)
        return false
    }

    /// Starts pairing one mirrored call.
    /// - Parameters:
    ///   - requestID: the call's id.
    ///   - model: the model.
    ///   - layout: the model's outputs (names and values per row) in signature order.
    public func makePair(requestID: String, model: String, layout: OutputLayout) -> ShadowPair {
        ShadowPair(sink: self, requestID: requestID, model: model, layout: layout)
    }

    /// Aggregates and stores one comparison.
    public func record(_ record: ComparisonRecord) {
        let key = ComparisonKey(
            model: record.model,
            primaryVersion: record.primaryVersion,
            shadowVersion: record.shadowVersion
        )
        // The record is queued under the aggregate lock so that files list records in aggregation order.
        state.withLock { state in
            state.aggregates[key, default: ComparisonAggregate()].add(record)
            state.recorded += 1
            writer?.enqueue(record)
        }
    }

    /// The aggregates so far, per (model, primary, shadow).
    public var aggregates: [ComparisonKey: ComparisonAggregate] { state.withLock { $0.aggregates } }

    /// The aggregate of one (model, primary, shadow), without copying the others.
    public func aggregate(for key: ComparisonKey) -> ComparisonAggregate? { state.withLock { $0.aggregates[key] } }

    /// The sink's counters.
    public var statistics: SinkStatistics {
        var statistics = writer?.statistics ?? SinkStatistics()
        statistics.recorded = state.withLock { $0.recorded }
        statistics.mirrorsSkippedHostBusy = skippedHostBusy.load(ordering: .relaxed)
        return statistics
    }

    /// The directory records go to, if any.
    public var directory: String? { writer?.directory }

    /// Writes every queued record and stops the writer thread. Records after this are aggregated only
    /// (and counted in `droppedQueueFull`).
    public func close() {
        hostCPU?.stop()
        writer?.close()
    }
}

/// One mirrored call waiting for both results; whichever side finishes second builds the record.
@MemberwiseInit(.internal)
public final class ShadowPair: Sendable {
    private struct Sides {
        var primary: ComparisonSide?
        var shadow: ComparisonSide?
    }

    private let sink: ComparisonSink
    private let requestID: String
    private let model: String
    private let layout: OutputLayout
    private let sides = Mutex(Sides())

    /// The primary's result.
    public func completePrimary(_ side: ComparisonSide) {
        let shadow: ComparisonSide? = sides.withLock {
            $0.primary = side
            return $0.shadow
        }
        if let shadow { finish(primary: side, shadow: shadow) }
    }

    /// The shadow's result.
    public func completeShadow(_ side: ComparisonSide) {
        let primary: ComparisonSide? = sides.withLock {
            $0.shadow = side
            return $0.primary
        }
        if let primary { finish(primary: primary, shadow: side) }
    }

    private func finish(primary: ComparisonSide, shadow: ComparisonSide) {
        var primaryError: String?
        var shadowError: String?
        var outputs: [OutputComparison] = []
        switch (primary.result, shadow.result) {
        case (.success(let a), .success(let b)):
            switch OutputComparator.compare(primary: a, shadow: b, layout: layout) {
            case .success(let compared): outputs = compared
            case .failure(let error): shadowError = error.message
            }
        case (.failure(let a), .success):
            primaryError = a.message
        case (.success, .failure(let b)):
            shadowError = b.message
        case (.failure(let a), .failure(let b)):
            primaryError = a.message
            shadowError = b.message
        }
        sink.record(
            ComparisonRecord(
                timestampMilliseconds: wallClockMilliseconds(),
                requestID: requestID,
                model: model,
                primaryVersion: primary.version,
                shadowVersion: shadow.version,
                primaryLatencyNanoseconds: primary.latencyNanoseconds,
                shadowLatencyNanoseconds: shadow.latencyNanoseconds,
                primaryError: primaryError,
                shadowError: shadowError,
                outputs: outputs
            )
        )
    }
}

/// Milliseconds since 1970.
func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
