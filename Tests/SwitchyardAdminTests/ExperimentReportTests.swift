// The experiments report: each version of a route against its first, with the rollout gates' always-valid intervals,
// and what those intervals say.

import SwitchyardAdminAPI
import Testing

@testable import SwitchyardAdmin

private func experimentCounters(calls: UInt64, failures: UInt64, latency: [UInt64] = [0, 0, 0]) -> RolloutCounters {
    RolloutCounters(calls: calls, failures: failures, latencyBuckets: latency, compared: 0, agreed: 0)
}

@Suite struct ExperimentReportTests {
    @Test func aWorseCanaryIsCalledWorseAndAnEqualOneWithinTheTolerance() throws {
        let settings = try ExperimentSettings()
        let report = ExperimentReport.compare(
            model: "digits",
            policy: "canary",
            versions: [
                ("1", experimentCounters(calls: 20_000, failures: 200, latency: [10_000, 10_000, 0])),
                ("2", experimentCounters(calls: 20_000, failures: 1_000, latency: [10_000, 10_000, 0])),
                ("3", experimentCounters(calls: 20_000, failures: 210, latency: [10_000, 10_000, 0])),
                ("4", experimentCounters(calls: 20, failures: 1, latency: [10, 10, 0])),
                ("5", experimentCounters(calls: 20_000, failures: 200, latency: [0, 0, 20_000])),
                ("6", experimentCounters(calls: 0, failures: 0)),
            ],
            settings: settings
        )
        #expect(report.baseline == "1")
        #expect(
            report.versions.map(\.verdict) == [
                "baseline", "worse: more errors", "no difference beyond the tolerance", "not yet conclusive",
                "worse: slower", "not yet conclusive: no calls to compare",
            ]
        )
        let worse = try #require(report.versions[1].errorRateDifference)
        #expect(abs(worse.estimate - 0.04) < 1e-12)
        #expect(worse.lower > 0 && worse.upper > worse.lower)
        #expect(report.versions[0].errorRateDifference == nil)
        #expect(report.versions[1].errorRate == 0.05)
        let slower = try #require(report.versions[4].slowerProbability)
        #expect(slower.estimate == 1 && slower.lower > 0.5)
    }

    @Test(arguments: [
        ("confidence", "1.5", "confidence: expected a number in (0.5, 1), got '1.5'"),
        ("confidence", "0.5", "confidence: expected a number in (0.5, 1), got '0.5'"),
        ("max_increase", "x", "max_increase: expected a number in (0, 1), got 'x'"),
        ("max_slower_probability", "1", "max_slower_probability: expected a number in (0.5, 1), got '1'"),
    ])
    func settingsOutsideTheirRangeAreRefusedByName(key: String, value: String, message: String) {
        let error = #expect(throws: AdminHTTPError.self) {
            _ = try ExperimentSettings(
                confidence: key == "confidence" ? value : nil,
                maxIncrease: key == "max_increase" ? value : nil,
                maxSlowerProbability: key == "max_slower_probability" ? value : nil
            )
        }
        #expect(error?.message == message)
    }
}
