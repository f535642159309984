// The state every rollout keeps, shared by a replica's own rollouts and the fleet's record in etcd: what it keeps of
// the route it replaces (the fallback among it), and the fleet record's JSON, which carries it at its top level.

import Foundation
import SwitchyardAdminAPI
import SwitchyardCore
import Testing

@testable import SwitchyardAdmin

@Suite struct RolloutStateTests {
    static let plan = rolloutPlan(steps: [10, 50, 100], gates: .init(maxErrorRate: 0.1, minRequests: 20))

    static func original(fallbackTo: String?) -> RouteConfiguration {
        RouteConfiguration(
            model: "digits",
            policy: .fixed,
            versions: [.init(version: "1")],
            sticky: .init(header: "x-user"),
            shadow: .init(version: "3", fraction: 0.5),
            fallback: fallbackTo.map { .init(to: $0, on: ["unavailable"], deadlineMarginMilliseconds: 7) }
        )
    }

    @Test(arguments: [("baseline", true), ("1", true), ("2", false), (nil, false)] as [(String?, Bool)])
    func keepsAFallbackToTheBaselineOnEveryStep(fallbackTo: String?, kept: Bool) {
        let original = Self.original(fallbackTo: fallbackTo)
        let state = RolloutState(model: "digits", plan: Self.plan, original: original, detail: "", actor: "op")
        #expect((state.fallback != nil) == kept)
        for weight in [10.0, 50, 100, 0] {
            let route = state.route(canaryWeight: weight, mirror: false)
            #expect(route.fallback == (kept ? original.fallback : nil))
            #expect(route.sticky == original.sticky)
            #expect(route.shadow?.version == "3")
            #expect(route.versions.map(\.weight) == [100 - weight, weight])
        }
    }

    @Test func canaryWeightFollowsThePhase() {
        var state = RolloutState(model: "digits", plan: Self.plan, original: nil, detail: "", actor: "op")
        state.step = 1
        #expect(state.canaryWeight == 50)
        state.phase = .paused
        #expect(state.canaryWeight == 50)
        state.phase = .completed
        #expect(state.canaryWeight == 100)
        for phase in [RolloutPhase.rolledBack, .aborted] {
            state.phase = phase
            #expect(state.canaryWeight == 0)
        }
        state.record("abort", "by op")
        #expect(state.events.last?.canaryWeight == 0)
        #expect(state.events.last?.event == "abort")
    }

    @Test func theFleetRecordCarriesTheFallbackAtItsTopLevel() throws {
        let state = RolloutState(
            model: "digits",
            plan: Self.plan,
            original: Self.original(fallbackTo: "baseline"),
            detail: "step 1/3",
            actor: "op"
        )
        let record = FleetRolloutRecord(state: state, stepStartedAt: 12.5, base: [:], writtenBy: "replica-a")
        let data = try JSONEncoder().encode(record)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in [
            "model", "plan", "phase", "step", "sticky", "otherShadow", "fallback", "stepStartedAt", "writtenBy",
        ] {
            #expect(object[key] != nil, "key \(key) missing from \(String(decoding: data, as: UTF8.self))")
        }
        let decoded = try JSONDecoder().decode(FleetRolloutRecord.self, from: data)
        #expect(decoded == record)
        #expect(FleetRollouts.route(for: decoded, canaryWeight: 10, mirror: true).fallback?.to == "baseline")
    }

    @Test func aRecordWrittenWithoutAFallbackStillReads() throws {
        // The spelling of records written before the fallback was kept.
        let plan = String(decoding: try JSONEncoder().encode(Self.plan), as: UTF8.self)
        let json = """
            {"model":"digits","plan":\(plan),"phase":"running","step":0,"stepStartedAt":1,"base":{},\
            "detail":"","startedAt":"","actor":"op","writtenBy":"a","events":[]}
            """
        let record = try JSONDecoder().decode(FleetRolloutRecord.self, from: Data(json.utf8))
        #expect(record.fallback == nil)
        #expect(record.canaryWeight == 10)
    }
}
