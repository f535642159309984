// Head sampling with swift-otel's own tracer behind it (its exporter never started): parent-based on a valid
// traceparent, the ratio otherwise, and a malformed traceparent treated as none (a new trace).

import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardTracing

@Suite struct HeadSamplingTests {
    private let caller = "0af7651916cd43dd8448eb211c80319c"

    private func tracer(ratio: Double) throws -> OTelCallTracer {
        try OTelCallTracer(
            configuration: TracingConfiguration(otlpEndpoint: "http://127.0.0.1:9/v1/traces", sampleRatio: ratio),
            logger: Logger(label: "test")
        )
    }

    private func begin(_ tracer: OTelCallTracer, _ traceparent: String?) -> CallTrace? {
        tracer.begin(traceparent: traceparent, tracestate: nil, operation: "ModelInfer", started: .now())
    }

    @Test func aSampledCallerIsFollowedWhateverTheRatio() throws {
        let tracer = try tracer(ratio: 0)
        let trace = try #require(begin(tracer, "00-\(caller)-b7ad6b7169203331-01"))
        #expect(trace.traceID == caller)
        #expect(tracer.counters.callsTraced == 1)
    }

    @Test func anUnsampledCallerIsNotTracedWhateverTheRatio() throws {
        let tracer = try tracer(ratio: 1)
        #expect(begin(tracer, "00-\(caller)-b7ad6b7169203331-00") == nil)
        #expect(tracer.counters.callsTraced == 0)
    }

    @Test(arguments: [
        "garbage", "00-\(String(repeating: "0", count: 32))-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ])
    func aMalformedTraceparentStartsANewTrace(_ header: String) throws {
        let trace = try #require(begin(try tracer(ratio: 1), header))
        #expect(trace.traceID.count == 32 && trace.traceID != caller)
        #expect(trace.traceID != String(repeating: "0", count: 32))
        #expect(begin(try tracer(ratio: 0), header) == nil)
    }

    @Test(arguments: [0.0, 0.01, 0.25, 1.0])
    func theRatioIsHonouredForCallsWithoutAParent(_ ratio: Double) throws {
        let tracer = try tracer(ratio: ratio)
        let calls = 20_000
        var traced = 0
        var ids = Set<String>()
        for _ in 0..<calls {
            if let trace = begin(tracer, nil) {
                traced += 1
                ids.insert(trace.traceID)
            }
        }
        let expected = Double(calls) * ratio
        // Within 5 standard deviations of the binomial mean.
        #expect(abs(Double(traced) - expected) <= 5 * (expected * (1 - ratio)).squareRoot() + 0.5)
        #expect(ids.count == traced)
        #expect(tracer.counters.callsTraced == UInt64(traced))
    }
}
