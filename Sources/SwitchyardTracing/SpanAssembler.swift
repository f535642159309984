// The `sy-trace` thread's work: a finished call's timings become its child spans; calls that ran in the same
// batch share one batch span linked to each of them; a shadow run becomes a span linked to its call. Spans are
// created with the instants the request path stamped, then ended, which hands them to swift-otel's processor.

import Instrumentation
import SwitchyardCore
import Tracing

/// Builds spans from finished calls. Used by the tracing thread only (and by `closeAll` once that thread stopped).
@MemberwiseInit(.internal)
final class SpanAssembler: @unchecked Sendable {
    /// How long a batch span stays open for more of its calls after the first arrived. Calls of one batch are
    /// answered back to back, so they arrive within microseconds of each other.
    static let batchWindowNanoseconds: UInt64 = 50_000_000

    /// Calls that ran in one batch: a pool's batch is told apart by its model, version, start, compute time and
    /// rows (two batches of one pool starting in the same nanosecond and computing for the same nanoseconds do
    /// not happen).
    struct BatchKey: Hashable {
        let model: String
        let version: String
        let start: UInt64
        let computeNanoseconds: UInt64
        let rows: Int
    }

    private struct OpenBatch {
        let span: any Span
        let end: MonotonicInstant
        let opened: MonotonicInstant
    }

    private let tracer: any Tracer
    private var batches: [BatchKey: OpenBatch] = [:]
    /// Spans finished by this pass, ended together at its end: each end hands the span to swift-otel's processor
    /// through a stream whose consumer runs on another thread, and ends in a tight run wake it once per pass rather
    /// than once per span.
    private var finished: [(span: any Span, end: MonotonicInstant)] = []

    func process(_ items: [TraceItem]) {
        for item in items {
            switch item {
            case .call(let call): assemble(call)
            case .shadow(let run):
                if run.call.assembled {
                    emit(run)
                } else {
                    run.call.pendingShadows.append(run)
                }
            }
        }
        let now = MonotonicInstant.now().nanoseconds
        closeBatches(openedBefore: MonotonicInstant(nanoseconds: now - min(now, Self.batchWindowNanoseconds)))
        endFinished()
    }

    /// Ends every open batch span (at shutdown).
    func closeAll() {
        closeBatches(openedBefore: MonotonicInstant(nanoseconds: .max))
        endFinished()
    }

    private func closeBatches(openedBefore limit: MonotonicInstant) {
        guard !batches.isEmpty else { return }
        for (key, batch) in batches where batch.opened < limit {
            finished.append((batch.span, batch.end))
            batches[key] = nil
        }
    }

    private func endFinished() {
        for (span, end) in finished { span.end(at: EpochClock.instant(end)) }
        finished.removeAll(keepingCapacity: true)
    }

    private func assemble(_ call: SpanCallTrace) {
        let server = call.span
        let context = server.context
        let end = call.responded ?? call.completed ?? MonotonicInstant.now()
        var attributes = server.attributes
        attributes.set("switchyard.model", value: .string(call.model))
        attributes.set("switchyard.version", value: .string(call.version))
        attributes.set("switchyard.route", value: .string(call.route))
        attributes.set("switchyard.route_generation", value: .int64(Int64(truncatingIfNeeded: call.generation)))
        attributes.set("switchyard.rows", value: .int64(Int64(call.rows)))
        if !call.requestID.isEmpty { attributes.set("switchyard.request_id", value: .string(call.requestID)) }
        attributes.set("rpc.grpc.status_code", value: .int64(Int64(call.statusCode)))
        if let batch = call.batch { attributes.set("switchyard.batch_size", value: .int64(Int64(batch.rows))) }
        server.attributes = attributes
        if call.statusCode != 0 {
            server.setStatus(SpanStatus(code: .error, message: call.statusMessage))
        }

        var from = call.started
        func step(_ name: String, to instant: MonotonicInstant?, _ extra: SpanAttributes = [:]) {
            guard let instant else { return }
            child(name, of: context, from: from, to: instant, extra)
            from = instant
        }
        step("receive", to: call.decoded)
        step(
            "route",
            to: call.routed,
            [
                "switchyard.route": .string(call.route),
                "switchyard.route_generation": .int64(Int64(truncatingIfNeeded: call.generation)),
                "switchyard.version": .string(call.version),
            ]
        )
        step("validate", to: call.submitted)
        if let batch = call.batch {
            step("queue", to: batch.start)
            let computed = batch.start.advanced(byNanoseconds: batch.computeNanoseconds)
            step("compute", to: computed, ["switchyard.batch_size": .int64(Int64(batch.rows))])
            link(call, to: batch, end: computed)
        }
        if let completed = call.completed, let responded = call.responded {
            child("respond", of: context, from: completed, to: responded, [:])
        }
        finished.append((server, end))
        call.assembled = true
        for run in call.pendingShadows { emit(run) }
        call.pendingShadows = []
    }

    private func child(
        _ name: String,
        of context: InstrumentationContext,
        from start: MonotonicInstant,
        to end: MonotonicInstant,
        _ attributes: SpanAttributes
    ) {
        let span = tracer.startSpan(
            name,
            context: context,
            ofKind: .internal,
            at: EpochClock.instant(start),
            function: #function,
            file: #fileID,
            line: #line
        )
        if !attributes.isEmpty { span.attributes = attributes }
        finished.append((span, max(start, end)))
    }

    /// Adds the call to its batch's span, opening the span for the batch's first traced call.
    private func link(
        _ call: SpanCallTrace,
        to batch: (start: MonotonicInstant, computeNanoseconds: UInt64, rows: Int),
        end: MonotonicInstant
    ) {
        let key = BatchKey(
            model: call.model,
            version: call.version,
            start: batch.start.nanoseconds,
            computeNanoseconds: batch.computeNanoseconds,
            rows: batch.rows
        )
        let open: OpenBatch
        if let existing = batches[key] {
            open = existing
        } else {
            // A batch serves calls of many traces: its span starts a trace of its own and links to each call.
            let span = tracer.startSpan(
                "batch",
                context: InstrumentationContext.topLevel,
                ofKind: .internal,
                at: EpochClock.instant(batch.start),
                function: #function,
                file: #fileID,
                line: #line
            )
            span.attributes = [
                "switchyard.model": .string(call.model),
                "switchyard.version": .string(call.version),
                "switchyard.batch_size": .int64(Int64(batch.rows)),
            ]
            open = OpenBatch(span: span, end: end, opened: MonotonicInstant.now())
            batches[key] = open
        }
        open.span.addLink(
            SpanLink(context: call.span.context, attributes: ["switchyard.rows": .int64(Int64(call.rows))])
        )
    }

    /// A shadow run's span: a trace of its own (the caller never waits for it), linked to the call.
    private func emit(_ run: ShadowRun) {
        let span = tracer.startSpan(
            "shadow",
            context: InstrumentationContext.topLevel,
            ofKind: .internal,
            at: EpochClock.instant(run.started),
            function: #function,
            file: #fileID,
            line: #line
        )
        span.attributes = [
            "switchyard.model": .string(run.call.model),
            "switchyard.version": .string(run.version),
            "switchyard.primary_version": .string(run.call.version),
        ]
        if let error = run.error { span.setStatus(SpanStatus(code: .error, message: error)) }
        span.addLink(SpanLink(context: run.call.span.context, attributes: [:]))
        finished.append((span, max(run.started, run.ended)))
    }
}
