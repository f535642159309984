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
        #expect(counts[0] == 1)  // 0
        #expect(counts[2] == 1)  // exactly 250 µs (upper bounds are inclusive)
        #expect(counts[3] == 1)  // 250.001 µs
        #expect(counts[7] == 1)  // 7 ms ≤ 10 ms
        #expect(counts.last == 1)  // 20 s
        #expect(counts.reduce(0, +) == 5)
    }

    @Test func quantileInterpolatesInsideItsBucket() throws {
        let histogram = LatencyHistogram()
        #expect(LatencyHistogram.quantile(0.99, of: histogram.bucketCounts) == nil)
        // 100 calls between 5 and 10 ms: the median is halfway through that bucket.
        for _ in 0..<100 { histogram.record(7_000_000) }
        let median = try #require(LatencyHistogram.quantile(0.5, of: histogram.bucketCounts))
        #expect(abs(median - 7_500_000) < 1)
        // A window: the difference of two snapshots sees only what came between them.
        let before = histogram.bucketCounts
        for _ in 0..<10 { histogram.record(40_000_000) }
        let window = zip(histogram.bucketCounts, before).map { $0 - $1 }
        let p99 = try #require(LatencyHistogram.quantile(0.99, of: window))
        #expect(p99 > 25_000_000 && p99 <= 50_000_000)
        // Beyond the last bound the last finite bound is reported.
        histogram.record(60_000_000_000)
        let top = try #require(LatencyHistogram.quantile(1, of: histogram.bucketCounts))
        #expect(top == 10_000_000_000)
    }

    @Test func emptyGatewayExposesItsFamilies() throws {
        let routing = try RoutingTable(routes: [canary], catalog: testCatalog)
        var frontEnd = FrontEndCounters()
        frontEnd.callsByCode = [0: 12, 14: 2]
        frontEnd.connectionsOpen = 3
        let text = MetricsRenderer(version: "1.2.3").render(
            registry: ModelRegistry(entries: [], logger: Logger(label: "test")),
            routing: routing,
            sink: nil,
            frontEnd: frontEnd,
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
