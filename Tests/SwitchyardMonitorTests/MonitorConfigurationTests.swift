// `capture:` and `drift:` in a model's config.yaml: defaults, and every problem reported with its key path.

import Foundation
import SwitchyardCore
import SwitchyardModels
import Testing

@Suite struct MonitorConfigurationTests {
    static func load(_ yaml: String) throws -> ModelConfiguration {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sy-config-\(getpid())-\(yaml.hashValue).yaml"
        ).path
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try ModelRepository.loadConfiguration(at: path)
    }

    @Test func keysDecodeWithTheirDefaults() throws {
        let configuration = try Self.load(
            """
            capture:
              directory: captured
              what: inputs
              redact: [ssn]
            drift:
              reference: reference.npy
              window: 5000
              max_input_drift: 0.2
            """
        )
        let capture = try #require(configuration.capture)
        #expect(capture.fraction == 0.01)
        #expect(capture.what == .inputs)
        #expect(capture.redact == ["ssn"])
        #expect(capture.maxFileMegabytes == 64)
        let drift = try #require(configuration.drift)
        #expect(drift.reference == "reference.npy")
        #expect(drift.window == 5000)
        #expect(drift.maxInputDrift == 0.2)
        #expect(drift.blocks == 10)
        #expect(drift.significance == 1e-6)
    }

    @Test func everyProblemIsNamedWithItsKeyPath() {
        var capture = CaptureConfiguration(directory: "")
        capture.fraction = 2
        capture.maxFileMegabytes = 0
        capture.versions = []
        #expect(
            capture.validate() == [
                "capture.fraction: expected 0…1, got 2.0",
                "capture.directory: expected a directory, got none",
                "capture.max_file_mb: expected at least 1, got 0",
                "capture.versions: expected at least one version, got []",
            ]
        )
        var drift = DriftConfiguration(reference: "ref.csv")
        drift.window = 5
        drift.significance = 0
        drift.maxInputDrift = -1
        #expect(
            drift.validate() == [
                "drift.reference: expected a .npy or .json file, got 'ref.csv'",
                "drift.window: expected at least 100 rows and one per block, got 5",
                "drift.significance: expected a p-value in (0, 1), got 0.0",
                "drift.max_input_drift: expected a positive PSI, got -1.0",
            ]
        )
    }

    @Test func aConfigFileWithABadKeyIsRefusedNamingIt() {
        do {
            _ = try Self.load("drift:\n  bins: 1\n")
            Issue.record("expected a refusal")
        } catch {
            #expect("\(error)".contains("drift.bins: expected 2…1000, got 1"))
        }
    }
}
