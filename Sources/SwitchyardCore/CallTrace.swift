// One traced call's timings, taken on the request path and turned into spans by the tracer's own thread. Only
// a call that head sampling chose has one; every other call carries `nil` and pays one nil check per step.

/// The steps of a traced call, stamped on the monotonic clock as the call passes them.
///
/// Written by one thread at a time, in the call's order: the event loop until the call is submitted, then the
/// thread that completes it (the pool's queue hands it over under its lock), then the tracer's thread once
/// `CallTracer.finish` queued it. Nothing writes it after `finish`.
open class CallTrace: @unchecked Sendable {
    /// The W3C trace id (32 lower-case hex digits): the caller's, or the one this call started.
    public let traceID: String
    /// When the service started on the call (its message fully received).
    public let started: MonotonicInstant
    /// Decoded and admitted (tenant): routing starts.
    public var decoded: MonotonicInstant?
    /// Routed to a version, which the call now holds.
    public var routed: MonotonicInstant?
    /// Validated and converted; handed to the version's pool.
    public var submitted: MonotonicInstant?
    /// The pool answered (or the call was refused before it reached a pool).
    public var completed: MonotonicInstant?
    /// The answer was handed to the connection.
    public var responded: MonotonicInstant?
    /// When the call's batch started computing, its compute time and its rows; `nil` if it never ran.
    public var batch: (start: MonotonicInstant, computeNanoseconds: UInt64, rows: Int)?
    /// The model, version and route reason (`fixed`, `canary`, …) once routed.
    public var model = ""
    /// The version that served the call.
    public var version = ""
    /// Why that version (`RouteReason`'s raw value).
    public var route = ""
    /// The routing table's generation the call was routed under; 0 without one.
    public var generation: UInt64 = 0
    /// Rows in the call.
    public var rows = 0
    /// The request's `id`.
    public var requestID = ""
    /// The gRPC status code of the answer (0 OK).
    public var statusCode = 0
    /// The error message of a failed call.
    public var statusMessage = ""

    /// Creates a trace of a call that started at `started` in trace `traceID`.
    public init(traceID: String, started: MonotonicInstant) {
        self.traceID = traceID
        self.started = started
    }
}

/// Head sampling and span export for calls. Every method is called on the request path and must not block.
public protocol CallTracer: Sendable {
    /// Decides once whether the call is traced, from the caller's `traceparent` (parent-based) or the sampling
    /// ratio; returns its trace, or `nil` when it is not traced. A malformed `traceparent` starts a new trace.
    /// - Parameters:
    ///   - traceparent: the W3C `traceparent` header or metadata value, if any.
    ///   - tracestate: the W3C `tracestate` value, if any; carried into the call's spans (read only for a traced
    ///     call).
    ///   - operation: the call's span name (`ModelInfer`, `REST infer`).
    ///   - started: when the service started on the call.
    func begin(
        traceparent: String?,
        tracestate: @autoclosure () -> String?,
        operation: String,
        started: MonotonicInstant
    ) -> CallTrace?

    /// Hands an answered call's trace to the tracer's thread (dropped and counted when that thread is behind).
    func finish(_ trace: CallTrace)

    /// Hands the call's shadow run to the tracer's thread: a span of its own, linked to the call's.
    /// - Parameters:
    ///   - call: the primary call's trace.
    ///   - version: the shadow version.
    ///   - started: when the shadow was queued; `ended`: when it finished.
    ///   - error: why it failed, or `nil`.
    func finishShadow(
        of call: CallTrace,
        version: String,
        started: MonotonicInstant,
        ended: MonotonicInstant,
        error: String?
    )
}

/// What the tracer did with the spans it was handed, for `/metrics`.
public struct TraceCounters: Sendable, Hashable {
    /// Calls that head sampling chose.
    public var callsTraced: UInt64 = 0
    /// Spans the exporter delivered to the collector.
    public var spansExported: UInt64 = 0
    /// Calls whose step spans were dropped because the tracing thread's queue was full (their server span still
    /// ends and is exported).
    public var droppedQueueFull: UInt64 = 0
    /// Spans dropped because swift-otel's batch processor was full.
    public var droppedProcessorFull: UInt64 = 0
    /// Spans dropped because their export failed (collector unreachable, refused, or too slow).
    public var droppedExportFailed: UInt64 = 0

    /// No counts yet.
    public init() {}
}
