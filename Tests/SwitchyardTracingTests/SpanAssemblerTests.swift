// The tracing thread's span building against an in-memory tracer: a call's steps as children of its server span,
// one batch span linked to every traced call of a batch, a shadow span linked to its call whichever arrives first.

import InMemoryTracing
import Instrumentation
import SwitchyardCore
import Testing
import Tracing

@testable import SwitchyardTracing

@Suite struct SpanAssemblerTests {
    private func call(
        _ tracer: InMemoryTracer,
        at base: UInt64,
        batchStart: UInt64? = nil,
        compute: UInt64 = 500,
        batchRows: Int = 4,
        status: Int = 0
    ) -> SpanCallTrace {
        let started = MonotonicInstant(nanoseconds: base)
        let span = tracer.startSpan(
            "ModelInfer",
            context: InstrumentationContext.topLevel,
            ofKind: .server,
            at: EpochClock.instant(started),
            function: #function,
            file: #fileID,
            line: #line
        )
        let trace = SpanCallTrace(
            span: span,
            traceID: span.context.inMemorySpanContext?.traceID ?? "",
            started: started
        )
        trace.decoded = MonotonicInstant(nanoseconds: base + 100)
        trace.routed = MonotonicInstant(nanoseconds: base + 200)
        trace.model = "digits"
        trace.version = "2"
        trace.route = "canary"
        trace.generation = 7
        trace.rows = 1
        trace.requestID = "r-\(base)"
        trace.statusCode = status
        if status == 0 {
            trace.submitted = MonotonicInstant(nanoseconds: base + 300)
            let start = batchStart ?? base + 1000
            trace.batch = (start: MonotonicInstant(nanoseconds: start), computeNanoseconds: compute, rows: batchRows)
            trace.completed = MonotonicInstant(nanoseconds: start + compute + 50)
            trace.responded = MonotonicInstant(nanoseconds: start + compute + 80)
        } else {
            trace.statusMessage = "invalid argument: input 'pixels': expected shape [-1, 64], got [1, 63]"
            trace.completed = MonotonicInstant(nanoseconds: base + 250)
            trace.responded = trace.completed
        }
        return trace
    }

    private func nanos(_ instant: any TracerInstant) -> UInt64 { instant.nanosecondsSinceEpoch }

    @Test func aCallsStepsAreChildrenOfItsServerSpanInOrder() throws {
        let tracer = InMemoryTracer()
        let assembler = SpanAssembler(tracer: tracer)
        let traced = call(tracer, at: 1_000_000)
        assembler.process([.call(traced)])
        assembler.closeAll()
        let spans = tracer.finishedSpans
        let server = try #require(spans.first { $0.operationName == "ModelInfer" })
        #expect(server.attributes.get("switchyard.model") == .string("digits"))
        #expect(server.attributes.get("switchyard.route_generation") == .int64(7))
        #expect(server.attributes.get("switchyard.batch_size") == .int64(4))
        #expect(server.status == nil)
        let children = spans.filter { $0.parentSpanID == server.spanID }
        #expect(children.map(\.operationName) == ["receive", "route", "validate", "queue", "compute", "respond"])
        let offset = nanos(server.startInstant) - 1_000_000
        let expected: [(UInt64, UInt64)] = [
            (0, 100), (100, 200), (200, 300), (300, 1000), (1000, 1500), (1550, 1580),
        ]
        for (child, (start, end)) in zip(children, expected) {
            #expect(nanos(child.startInstant) - offset == 1_000_000 + start, "\(child.operationName)")
            #expect(nanos(child.endInstant) - offset == 1_000_000 + end, "\(child.operationName)")
        }
        #expect(nanos(server.endInstant) - offset == 1_001_580)
        #expect(children[4].attributes.get("switchyard.batch_size") == .int64(4))
    }

    @Test func callsOfOneBatchShareOneBatchSpanLinkedToEach() throws {
        let tracer = InMemoryTracer()
        let assembler = SpanAssembler(tracer: tracer)
        let first = call(tracer, at: 1_000, batchStart: 50_000)
        let second = call(tracer, at: 2_000, batchStart: 50_000)
        let other = call(tracer, at: 3_000, batchStart: 90_000)
        assembler.process([.call(first)])
        assembler.process([.call(second), .call(other)])
        assembler.closeAll()
        let batches = tracer.finishedSpans.filter { $0.operationName == "batch" }
        #expect(batches.count == 2)
        let linked = batches.map { batch in
            batch.links.compactMap { $0.context.inMemorySpanContext?.spanID }.sorted()
        }
        let ids = [first, second, other].map { $0.span.context.inMemorySpanContext!.spanID }
        #expect(Set(linked) == [[ids[0], ids[1]].sorted(), [ids[2]]])
        for batch in batches {
            #expect(batch.parentSpanID == nil)
            #expect(batch.attributes.get("switchyard.batch_size") == .int64(4))
        }
    }

    @Test func aShadowThatFinishesFirstWaitsForItsCall() throws {
        let tracer = InMemoryTracer()
        let assembler = SpanAssembler(tracer: tracer)
        let traced = call(tracer, at: 5_000)
        let shadow = ShadowRun(
            call: traced,
            version: "1",
            started: MonotonicInstant(nanoseconds: 5_400),
            ended: MonotonicInstant(nanoseconds: 9_000),
            error: nil
        )
        assembler.process([.shadow(shadow)])
        #expect(!tracer.finishedSpans.contains { $0.operationName == "shadow" })
        assembler.process([.call(traced)])
        let span = try #require(tracer.finishedSpans.first { $0.operationName == "shadow" })
        #expect(
            span.links.map { $0.context.inMemorySpanContext?.spanID } == [
                traced.span.context.inMemorySpanContext?.spanID
            ]
        )
        #expect(span.attributes.get("switchyard.primary_version") == .string("2"))
        #expect(span.parentSpanID == nil)
        // Once the call is built, a later shadow is emitted at once.
        assembler.process([.shadow(shadow)])
        #expect(tracer.finishedSpans.filter { $0.operationName == "shadow" }.count == 2)
    }

    @Test func aRefusedCallEndsWithAnErrorAndNoBatch() throws {
        let tracer = InMemoryTracer()
        let assembler = SpanAssembler(tracer: tracer)
        assembler.process([.call(call(tracer, at: 7_000, status: 3))])
        assembler.closeAll()
        let server = try #require(tracer.finishedSpans.first { $0.operationName == "ModelInfer" })
        #expect(server.status?.code == .error)
        #expect(server.status?.message?.contains("expected shape [-1, 64]") == true)
        #expect(!tracer.finishedSpans.contains { ["queue", "compute", "batch"].contains($0.operationName) })
        #expect(server.attributes.get("rpc.grpc.status_code") == .int64(3))
    }
}
