// The `tracing:` section: off by default, decoding with documented defaults, validation with key paths.

import Foundation
import Testing

@testable import SwitchyardCore

@Suite struct TracingConfigurationTests {
    @Test func absentSectionTracesNothing() throws {
        let config = try JSONDecoder().decode(ServerConfiguration.self, from: Data("{}".utf8))
        #expect(config.tracing == nil)
        #expect(TracingConfiguration().isEnabled == false)
    }

    @Test func decodesWithDocumentedDefaults() throws {
        let json = #"{"tracing": {"otlp_endpoint": "http://collector:4318/v1/traces"}}"#
        let tracing = try #require(try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8)).tracing)
        #expect(tracing.isEnabled)
        #expect(tracing.sampleRatio == 0.01)
        #expect(tracing.serviceName == "switchyard")
        #expect(tracing.queueCapacity == 4096)
        #expect(tracing.maxQueuedSpans == 8192)
        #expect(tracing.exportTimeoutMilliseconds == 5000)
        #expect(tracing.exportIntervalMilliseconds == 1000)
        #expect(tracing.validate().isEmpty)
    }

    @Test func anEmptyEndpointIsOff() throws {
        let json = #"{"tracing": {"sample_ratio": 1}}"#
        let tracing = try #require(try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8)).tracing)
        #expect(!tracing.isEnabled)
        #expect(tracing.validate().isEmpty)
    }

    @Test func everyProblemIsNamedWithItsKeyPath() {
        let tracing = TracingConfiguration(
            otlpEndpoint: "collector:4318",
            sampleRatio: 1.5,
            serviceName: "",
            queueCapacity: 0,
            maxQueuedSpans: 0,
            exportTimeoutMilliseconds: 0,
            exportIntervalMilliseconds: 0
        )
        #expect(
            tracing.validate() == [
                "tracing.otlp_endpoint: expected an http:// or https:// OTLP/HTTP traces URL "
                    + "(e.g. http://collector:4318/v1/traces) or \"\" for off, got 'collector:4318'",
                "tracing.sample_ratio: expected 0…1, got 1.5",
                "tracing.service_name: expected a name, got ''",
                "tracing.queue_capacity: expected 1…1048576, got 0",
                "tracing.max_queued_spans: expected 1…4194304, got 0",
                "tracing.export_timeout_ms: expected 1…600000, got 0",
                "tracing.export_interval_ms: expected 1…600000, got 0",
            ]
        )
        #expect(ServerConfiguration(tracing: tracing).validate().count == 7)
    }

    @Test(arguments: [Double.nan, -0.1, 1.000_001])
    func ratiosOutsideZeroToOneAreRefused(_ ratio: Double) {
        let problems = TracingConfiguration(otlpEndpoint: "http://c:4318/v1/traces", sampleRatio: ratio).validate()
        #expect(problems.count == 1 && problems[0].hasPrefix("tracing.sample_ratio: expected 0…1"))
    }

    @Test func unknownKeysAreRefusedByName() {
        let json = #"{"tracing": {"otlp_endpoint": "http://c:4318/v1/traces", "sample_rate": 0.5}}"#
        #expect {
            try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8))
        } throws: { error in
            "\(error)".contains("tracing.sample_rate: unknown key")
        }
    }
}
