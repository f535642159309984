// The fleet window of a rollout step: what every replica publishing now served since the step started, summed, with a
// replica that restarted counted from its start and one that left no longer counted; and the gates judged on it.

import Foundation
import SwitchyardAdminAPI
import SwitchyardCluster
import Testing

@testable import SwitchyardAdmin

@Suite struct FleetWindowTests {
    static let plan = rolloutPlan(gates: .init(maxErrorRate: 0.1, minRequests: 20))

    static func published(
        _ replica: String,
        incarnation: String = "x",
        canary: (UInt64, UInt64),
        baseline: UInt64 = 0,
        compared: UInt64 = 0,
        agreed: UInt64 = 0,
        drift: FleetDriftReading? = nil
    ) -> ReplicaAggregates {
        ReplicaAggregates(
            replica: replica,
            incarnation: incarnation,
            versions: [
                "digits": [
                    "1": FleetVersionCounters(calls: baseline, failures: 0, latency: [baseline]),
                    "2": FleetVersionCounters(calls: canary.0, failures: canary.1, latency: [canary.0], drift: drift),
                ]
            ],
            pairs: [FleetPairCounters(model: "digits", primary: "1", shadow: "2", compared: compared, agreed: agreed)]
        )
    }

    static func record(base: [String: ReplicaAggregates]) -> FleetRolloutRecord {
        FleetRolloutRecord(
            state: RolloutState(model: "digits", plan: plan, original: nil, detail: "", actor: "e2e"),
            stepStartedAt: 0,
            base: base.mapValues { .init($0, model: "digits", plan: plan) },
            writtenBy: "a"
        )
    }

    @Test func sumsWhatEachReplicaServedSinceTheStepStarted() throws {
        let record = Self.record(base: [
            "a": Self.published("a", canary: (100, 1), baseline: 900, compared: 50, agreed: 50),
            "b": Self.published("b", canary: (40, 0), baseline: 400),
        ])
        let window = FleetWindow(
            record: record,
            aggregates: [
                "a": Self.published("a", canary: (110, 3), baseline: 990, compared: 60, agreed: 58),
                "b": Self.published("b", canary: (55, 1), baseline: 450),
            ]
        )
        #expect(window.canary.calls == 25)
        #expect(window.canary.failures == 3)
        #expect(window.canary.latencyBuckets == [25])
        #expect(window.canary.compared == 10 && window.canary.agreed == 8)
        #expect(window.baseline.calls == 140)
        #expect(
            window.replicas == [
                .init(replica: "a", calls: 10, failures: 2, baselineCalls: 90),
                .init(replica: "b", calls: 15, failures: 1, baselineCalls: 50),
            ]
        )
        // 3 of 25 failed: 12% > 10%, judged on the fleet although neither replica has 20 calls alone.
        let why = try #require(
            Self.plan.decide(step: 0, elapsedSeconds: 1, window: window.canary).rollBackReason,
            "expected a rollback on the fleet window"
        )
        #expect(why.contains("3 of 25 canary calls failed"))
    }

    @Test func aRestartedReplicaCountsFromItsStartAndADepartedOneNoLonger() {
        let record = Self.record(base: [
            "a": Self.published("a", canary: (100, 0)),
            "b": Self.published("b", canary: (500, 50)),
        ])
        let window = FleetWindow(
            record: record,
            aggregates: [
                // a restarted since the step began: everything its new incarnation served is in the step.
                "a": Self.published("a", incarnation: "y", canary: (7, 1)),
                // c joined after the step began: counted from its start.
                "c": Self.published("c", canary: (4, 0)),
            ]
        )
        #expect(window.canary.calls == 11)
        #expect(window.canary.failures == 1)
        #expect(window.replicas.map(\.replica) == ["a", "c"])
        #expect(Self.plan.decide(step: 0, elapsedSeconds: 60, window: window.canary) != .advance)
    }

    @Test func driftGatesJudgeTheWorstReplicasLatestReading() throws {
        let plan = rolloutPlan(gates: .init(maxInputDrift: 0.3, maxOutputDrift: 0.5, minRequests: 1))
        func reading(_ input: Double, _ inputName: String, _ output: Double, rows: Int) -> FleetDriftReading {
            FleetDriftReading(
                maxInputPSI: input,
                worstInput: inputName,
                maxOutputPSI: output,
                worstOutput: "probabilities[3]",
                windowRows: rows
            )
        }
        let base = ["a": Self.published("a", canary: (0, 0)), "b": Self.published("b", canary: (0, 0))]
        let record = FleetRolloutRecord(
            state: RolloutState(model: "digits", plan: plan, original: nil, detail: "", actor: "e2e"),
            stepStartedAt: 0,
            base: base.mapValues { .init($0, model: "digits", plan: plan) },
            writtenBy: "a"
        )
        // No replica has scored a full window yet: the gates wait.
        var window = FleetWindow(
            record: record,
            aggregates: ["a": Self.published("a", canary: (5, 0)), "b": Self.published("b", canary: (5, 0))]
        )
        #expect(window.canary.drift == nil)
        let waiting = try #require(
            plan.decide(step: 0, elapsedSeconds: 60, window: window.canary).holdReason,
            "expected a hold without drift readings"
        )
        #expect(waiting.contains("drift window"))
        // a's traffic is calm; b's input drifted and a's output a little: the worst of each is judged, named.
        window = FleetWindow(
            record: record,
            aggregates: [
                "a": Self.published("a", canary: (500, 0), drift: reading(0.05, "pixels[1]", 0.2, rows: 1000)),
                "b": Self.published("b", canary: (500, 0), drift: reading(0.9, "pixels[10]", 0.1, rows: 800)),
            ]
        )
        let drift = window.canary.drift
        #expect(drift?.maxInputPSI == 0.9 && drift?.worstInput == "pixels[10] on b")
        #expect(drift?.maxOutputPSI == 0.2 && drift?.worstOutput == "probabilities[3] on a")
        #expect(drift?.windowRows == 800)
        let why = try #require(
            plan.decide(step: 0, elapsedSeconds: 1, window: window.canary).rollBackReason,
            "expected a rollback on b's drift"
        )
        #expect(why.contains("gate max_input_drift failed") && why.contains("'pixels[10] on b'"))
    }
}
