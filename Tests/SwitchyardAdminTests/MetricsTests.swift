// The Prometheus exposition: latency histogram buckets (cumulative, +Inf = count), label escaping, number
// formatting, and families present for an empty gateway.

import Logging
import SwitchyardAdmin
import SwitchyardModels
import SwitchyardRouting
import Testing

@Suite struct MetricsTests {
    @Test func latencyHistogramCountsEachCallInItsBucket() {
        let histogram = LatencyHistogram()
        for nanoseconds: UInt64 in [0, 250_000, 250_001, 7_000_000, 20_000_000_000] { histogram.record(nanoseconds) }
        let counts = histogram.bucketCounts
        #expect(counts.count == LatencyHistogram.upperBoundsNanoseconds.count + 1)
        #expect(counts[0] == 2)  // 0 and exactly 250 µs (upper bounds are inclusive)
        #expect(counts[1] == 1)  // 250.001 µs
        #expect(counts[5] == 1)  // 7 ms ≤ 10 ms
        #expect(counts.last == 1)  // 20 s
        #expect(counts.reduce(0, +) == 5)
    }

    @Test func emptyGatewayExposesItsFamilies() throws {
        let routing = try RoutingTable(routes: [canary], catalog: testCatalog)
        let text = MetricsRenderer(version: "1.2.3").render(
            registry: ModelRegistry(entries: [], logger: Logger(label: "test")),
            routing: routing,
            sink: nil,
            frontEnd: FrontEndCounters(callsByCode: [0: 12, 14: 2], connectionsOpen: 3),
            ready: false
        )
        #expect(text.contains("switchyard_ready 0\n"))
        #expect(text.contains("switchyard_route_generation 1\n"))
        #expect(text.contains("switchyard_grpc_calls_total{grpc_code=\"0\"} 12\n"))
        #expect(text.contains("switchyard_grpc_calls_total{grpc_code=\"14\"} 2\n"))
        #expect(text.contains("switchyard_connections_open 3\n"))
        #expect(text.contains("# TYPE switchyard_request_duration_seconds histogram\n"))
        #expect(text.contains("# TYPE switchyard_batch_size_rows histogram\n"))
        // Every line is a comment or `name{labels} value`.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }
}
