// Calls in, spans out. The request path asks `begin` once per call, which decides from the caller's
// `traceparent` (parent-based) or the sampling ratio whether the call is traced, and only then starts its server
// span (so that its trace id is known to the payload records). The steps' timings ride on the call; once it is
// answered, `finish` queues it for the `sy-trace` thread, which builds the child spans (receive, route, validate,
// queue, compute, respond), one span per batch linked to every traced call in it, and a linked span per shadow
// run, and hands them to swift-otel's batch processor and OTLP/HTTP exporter.

import Instrumentation
public import Logging
import OTel
import ServiceLifecycle
public import SwitchyardCore
import Synchronization
import Tracing
import W3CTraceContext

#if canImport(Glibc)
    import Glibc
#endif

/// Traces sampled calls with swift-otel and exports them over OTLP/HTTP.
public final class OTelCallTracer: CallTracer {
    private let tracer: any Tracer
    private let group: ServiceGroup
    private let running = Mutex<Task<Void, Never>?>(nil)
    private let queue: WorkQueue<TraceItem>
    private let assembler: SpanAssembler
    /// Where swift-otel's tasks run: the tracing thread, after each pass.
    private let executor = TracingThreadExecutor()
    private let exportCounters: ExportCounters
    private let traced = Atomic<UInt64>(0)
    /// Head sampling: a new trace starts when the next value of this sequence, mixed, falls under the threshold.
    private let sequence: Atomic<UInt64>
    private let threshold: UInt64
    private let alwaysSample: Bool

    /// How long finished calls gather before the tracing thread turns them into spans.
    static let gatherNanoseconds: UInt64 = 100_000_000

    /// Creates the tracer and starts its thread; `run()` starts swift-otel's processor and exporter.
    /// - Throws: `invalidArgument` when swift-otel refuses the configuration; `internal` without a thread.
    public init(configuration: TracingConfiguration, logger: Logger) throws(SwitchyardError) {
        var otel = OTel.Configuration.default
        otel.serviceName = configuration.serviceName
        otel.propagators = [.traceContext]
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        // The decision is taken once per call, before anything is created: every span handed to swift-otel is
        // of a call that head sampling chose (or a batch or shadow run of one), so its sampler keeps them all.
        otel.traces.sampler = .parentBasedAlwaysOn
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.endpoint = configuration.otlpEndpoint
        otel.traces.otlpExporter.protocol = .httpProtobuf
        otel.traces.otlpExporter.timeout = .milliseconds(configuration.exportTimeoutMilliseconds)
        otel.traces.batchSpanProcessor.maxQueueSize = configuration.maxQueuedSpans
        otel.traces.batchSpanProcessor.maxExportBatchSize = min(512, configuration.maxQueuedSpans)
        otel.traces.batchSpanProcessor.scheduleDelay = .milliseconds(configuration.exportIntervalMilliseconds)
        otel.traces.batchSpanProcessor.exportTimeout = .milliseconds(configuration.exportTimeoutMilliseconds)
        let counters = ExportCounters()
        exportCounters = counters
        var diagnostic = Logger(label: "switchyard.otel") { _ in
            ExportCountingLogHandler(counters: counters, forward: logger)
        }
        diagnostic.logLevel = .debug
        otel.diagnosticLogger = .custom(diagnostic)
        otel.diagnosticLogLevel = .debug
        let backend: (factory: any Tracer, service: any Service)
        do {
            let made = try OTel.makeTracingBackend(configuration: otel)
            backend = (made.factory, made.service)
        } catch {
            throw .invalidArgument("tracing: swift-otel refused the configuration: \(error)")
        }
        tracer = backend.factory
        group = ServiceGroup(services: [backend.service], gracefulShutdownSignals: [], logger: logger)
        let ratio = configuration.sampleRatio
        alwaysSample = ratio >= 1
        // 2^64 · ratio, for 0 < ratio < 1 (1 samples every call without comparing).
        threshold = ratio <= 0 || ratio >= 1 ? 0 : UInt64((ratio * 18_446_744_073_709_551_616.0).rounded(.down))
        sequence = Atomic(UInt64.random(in: .min ... .max))
        let assembler = SpanAssembler(tracer: backend.factory)
        self.assembler = assembler
        queue = try WorkQueue(
            name: "sy-trace",
            capacity: configuration.queueCapacity,
            tickNanoseconds: SpanAssembler.batchWindowNanoseconds,
            // Finished calls are taken in bursts, not one wake-up each: every span handed to swift-otel yields to
            // its event stream, and a burst wakes that stream's consumer once rather than once per span.
            gatherNanoseconds: Self.gatherNanoseconds
        ) { [executor] items in
            assembler.process(items)
            executor.runQueued()
        }
    }

    /// Starts swift-otel's processor and exporter (its service group) in a task of their own.
    public func run() {
        let group = group
        running.withLock { task in
            guard task == nil else { return }
            let executor = executor
            task = Task.detached(executorPreference: executor) { _ = try? await group.run() }
        }
    }

    /// Turns what is queued into spans, then flushes them to the collector (bounded by the export timeout) and
    /// stops. Calls finished later are dropped and counted.
    public func shutdown() async {
        queue.close()
        assembler.closeAll()
        // The tracing thread has stopped: swift-otel's tasks finish on the global executor.
        executor.forwardToGlobal()
        await group.triggerGracefulShutdown()
        let task = running.withLock { $0 }
        await task?.value
    }

    /// The counters for /metrics.
    public var counters: TraceCounters {
        var counters = TraceCounters()
        counters.callsTraced = traced.load(ordering: .relaxed)
        counters.droppedQueueFull = queue.counters.dropped
        counters.spansExported = exportCounters.exported.load(ordering: .relaxed)
        counters.droppedProcessorFull = exportCounters.droppedProcessorFull.load(ordering: .relaxed)
        counters.droppedExportFailed = exportCounters.droppedExportFailed.load(ordering: .relaxed)
        return counters
    }

    // MARK: CallTracer

    public func begin(
        traceparent: String?,
        tracestate: @autoclosure () -> String?,
        operation: String,
        started: MonotonicInstant
    ) -> CallTrace? {
        // A traceparent that does not parse is as good as none: the call starts a trace of its own.
        let parent = traceparent.flatMap { try? TraceContext(traceParentHeaderValue: $0) }
        if let parent {
            guard parent.flags.contains(.sampled) else { return nil }
        } else if !sampleNewTrace() {
            return nil
        }
        traced.add(1, ordering: .relaxed)
        var context = InstrumentationContext.topLevel
        if parent != nil, let traceparent {
            tracer.extract(
                TraceHeaders(traceparent: traceparent, tracestate: tracestate()),
                into: &context,
                using: TraceHeadersExtractor()
            )
        }
        let span = tracer.startSpan(
            operation,
            context: context,
            ofKind: .server,
            at: EpochClock.instant(started),
            function: #function,
            file: #fileID,
            line: #line
        )
        return SpanCallTrace(span: span, traceID: span.context.otelTraceID ?? "", started: started)
    }

    public func finish(_ trace: CallTrace) {
        guard let trace = trace as? SpanCallTrace else { return }
        if !queue.enqueue(.call(trace)) {
            // The tracing thread is behind: the step spans are dropped (counted), but the server span, already
            // started, still ends, so that swift-otel lets go of it.
            trace.span.end(at: EpochClock.instant(trace.responded ?? trace.completed ?? .now()))
        }
    }

    public func finishShadow(
        of call: CallTrace,
        version: String,
        started: MonotonicInstant,
        ended: MonotonicInstant,
        error: String?
    ) {
        guard let call = call as? SpanCallTrace else { return }
        queue.enqueue(.shadow(ShadowRun(call: call, version: version, started: started, ended: ended, error: error)))
    }

    /// Whether a call without a caller's decision starts a trace: a splitmix64 step over a shared sequence,
    /// one relaxed atomic add per call, compared with the ratio's share of 2^64.
    private func sampleNewTrace() -> Bool {
        if alwaysSample { return true }
        if threshold == 0 { return false }
        var z = sequence.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return z < threshold
    }
}

/// A traced call with its server span, started on the request path.
final class SpanCallTrace: CallTrace, @unchecked Sendable {
    let span: any Span
    /// The shadow runs that finished before the call itself reached the tracing thread (that thread's only).
    var pendingShadows: [ShadowRun] = []
    /// Whether the call's spans were built (the tracing thread's only).
    var assembled = false

    init(span: any Span, traceID: String, started: MonotonicInstant) {
        self.span = span
        super.init(traceID: traceID, started: started)
    }
}

/// A shadow run of a traced call.
struct ShadowRun: Sendable {
    let call: SpanCallTrace
    let version: String
    let started: MonotonicInstant
    let ended: MonotonicInstant
    let error: String?
}

/// What the request path hands the tracing thread.
enum TraceItem: Sendable {
    case call(SpanCallTrace)
    case shadow(ShadowRun)
}

/// The caller's W3C headers, for swift-otel's propagator.
struct TraceHeaders: Sendable {
    let traceparent: String
    let tracestate: String?
}

struct TraceHeadersExtractor: Extractor {
    func extract(key: String, from carrier: TraceHeaders) -> String? {
        switch key {
        case "traceparent": carrier.traceparent
        case "tracestate": carrier.tracestate
        default: nil
        }
    }
}

/// A point in time as OpenTelemetry wants it: nanoseconds since the Unix epoch.
struct EpochInstant: TracerInstant {
    let nanosecondsSinceEpoch: UInt64
    static func < (lhs: EpochInstant, rhs: EpochInstant) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }
}

/// Monotonic instants (what the request path stamps) on the wall clock, by the offset between the two clocks
/// read once at start: steps are timed consistently even if the wall clock is stepped meanwhile.
enum EpochClock {
    static let offset: Int64 = {
        var wall = timespec()
        clock_gettime(CLOCK_REALTIME, &wall)
        let monotonic = MonotonicInstant.now().nanoseconds
        return Int64(wall.tv_sec) * 1_000_000_000 + Int64(wall.tv_nsec) - Int64(bitPattern: monotonic)
    }()

    static func instant(_ instant: MonotonicInstant) -> EpochInstant {
        EpochInstant(nanosecondsSinceEpoch: UInt64(max(0, Int64(bitPattern: instant.nanoseconds) + offset)))
    }
}
