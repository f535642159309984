import SwitchyardCore
import Synchronization
import Testing

@testable import SwitchyardRouting

/// A manual clock for feedback TTLs.
final class TestClock: Sendable {
    let now = Atomic<UInt64>(1_000)
    func advance(seconds: Double) { now.add(UInt64(seconds * 1e9), ordering: .relaxed) }
}

let catalog: @Sendable (String) -> ModelCatalogEntry? = { name in
    switch name {
    case "digits": ModelCatalogEntry(versions: ["1", "2", "3"], latencyTargetMilliseconds: 20)
    case "other": ModelCatalogEntry(versions: ["1"], latencyTargetMilliseconds: 50)
    default: nil
    }
}

func canary(_ weights: [Double], sticky: String? = "x-user-id", shadow: RouteConfiguration.ShadowSettings? = nil)
    -> RouteConfiguration
{
    RouteConfiguration(
        model: "digits",
        policy: .canary,
        versions: weights.enumerated().map { .init(version: String($0.offset + 1), weight: $0.element) },
        sticky: sticky.map { .init(header: $0) },
        shadow: shadow
    )
}

func decide(
    _ table: RoutingTable,
    model: String = "digits",
    version: String = "",
    id: String = "",
    user: String? = nil
) -> RoutingDecision {
    table.decide(model: model, requestedVersion: version, requestID: id) { source in
        source.header == "x-user-id" ? user : nil
    }
}

@Suite struct RoutingTableTests {
    @Test func randomSplitProportionsAreWithinTolerance() throws {
        let table = try RoutingTable(
            routes: [canary([70, 20, 10], sticky: nil)],
            catalog: catalog,
            random: SharedRandom(seed: 3)
        )
        var counts: [String: Int] = [:]
        for _ in 0..<100_000 { counts[decide(table).version, default: 0] += 1 }
        #expect(abs(Double(counts["1"]!) / 100_000 - 0.7) < 0.01)
        #expect(abs(Double(counts["2"]!) / 100_000 - 0.2) < 0.01)
        #expect(abs(Double(counts["3"]!) / 100_000 - 0.1) < 0.01)
    }

    @Test func stickyKeysAlwaysLandOnTheSameVersion() throws {
        let table = try RoutingTable(routes: [canary([50, 50])], catalog: catalog, random: SharedRandom(seed: 3))
        var counts: [String: Int] = [:]
        for user in 0..<2_000 {
            let first = decide(table, user: "user-\(user)").version
            counts[first, default: 0] += 1
            for _ in 0..<5 { #expect(decide(table, user: "user-\(user)").version == first) }
        }
        #expect(abs(counts["1"]! - 1_000) < 100, "\(counts)")
    }

    @Test func stickinessSurvivesAnUnrelatedChangeAndRaisingTheCanary() throws {
        let table = try RoutingTable(routes: [canary([90, 10])], catalog: catalog)
        let users = (0..<5_000).map { "user-\($0)" }
        let before = users.map { decide(table, user: $0).version }
        try table.replace(route: RouteConfiguration(model: "other", policy: .fixed, versions: [.init(version: "1")]))
        #expect(users.map { decide(table, user: $0).version } == before)
        try table.replace(route: canary([80, 20]))
        let after = users.map { decide(table, user: $0).version }
        for index in users.indices where before[index] == "2" { #expect(after[index] == "2") }
        #expect(abs(Double(after.count { $0 == "2" }) / 5_000 - 0.2) < 0.02)
    }

    @Test func everyChangePublishesANewGenerationInTheTrailer() throws {
        let table = try RoutingTable(routes: [canary([1, 0])], catalog: catalog)
        #expect(table.generation == 1)
        #expect(decide(table).trailer(servedVersion: "1") == "generation=1; version=1; policy=canary")
        #expect(try table.replace(route: canary([0, 1])) == 2)
        let decision = decide(table)
        #expect(decision.version == "2")
        #expect(decision.trailer(servedVersion: "2") == "generation=2; version=2; policy=canary")
        #expect(try table.remove(model: "digits") == 3)
        let unrouted = decide(table)
        #expect(unrouted.version == "" && unrouted.reason == .default)
        #expect(unrouted.trailer(servedVersion: "3") == "generation=3; version=3; policy=default")
        #expect(throws: SwitchyardError.self) { try table.remove(model: "digits") }
        #expect(table.routes.isEmpty)
    }

    @Test func aGivenGenerationIsPublishedAndNeverGoesBack() throws {
        // Fleet mode: the generation is the etcd revision of the fleet's last route change.
        let table = try RoutingTable(routes: [canary([1, 0])], catalog: catalog)
        #expect(try table.replaceAll(routes: [canary([0, 1])], generation: 57) == 57)
        #expect(decide(table).trailer(servedVersion: "2") == "generation=57; version=2; policy=canary")
        #expect(try table.replaceAll(routes: [canary([1, 0])], generation: 12) == 58)
        #expect(try table.replaceAll(routes: [canary([1, 0])]) == 59)
    }

    @Test func explicitVersionsBypassThePolicy() throws {
        let table = try RoutingTable(routes: [canary([1, 0])], catalog: catalog)
        let decision = decide(table, version: "3", user: "user-1")
        #expect(decision.version == "3")
        #expect(decision.reason == .explicit)
        #expect(decision.trailer(servedVersion: "3") == "generation=1; version=3; policy=explicit")
    }

    @Test(arguments: [0.0, 0.1, 0.5, 1.0])
    func shadowsTheConfiguredFraction(fraction: Double) throws {
        let table = try RoutingTable(
            routes: [canary([1, 0], shadow: .init(version: "3", fraction: fraction))],
            catalog: catalog,
            random: SharedRandom(seed: 11)
        )
        let shadowed = (0..<20_000).count { _ in decide(table).shadowVersion == "3" }
        #expect(abs(Double(shadowed) / 20_000 - fraction) < 0.01)
    }

    @Test func shadowWithoutAVersionMirrorsToTheOtherVersion() throws {
        let table = try RoutingTable(routes: [canary([1, 1], sticky: nil, shadow: .init())], catalog: catalog)
        for _ in 0..<100 {
            let decision = decide(table)
            #expect(decision.shadowVersion == (decision.version == "1" ? "2" : "1"))
        }
        // An explicit version is mirrored too unless `explicit: false`.
        #expect(decide(table, version: "2").shadowVersion == "1")
        try table.replace(route: canary([1, 1], sticky: nil, shadow: .init(explicit: false)))
        #expect(decide(table, version: "2").shadowVersion == nil)
    }

    @Test func aShadowEqualToTheServedVersionIsSkipped() throws {
        let table = try RoutingTable(routes: [canary([0, 1], shadow: .init(version: "2"))], catalog: catalog)
        #expect(decide(table).shadowVersion == nil)
        #expect(decide(table, version: "1").shadowVersion == "2")
        #expect(decide(table, version: "2").shadowVersion == nil)
    }

    @Test func reportsEveryProblemWithItsKeyPath() {
        let routes = [
            RouteConfiguration(
                model: "digits",
                policy: .canary,
                versions: [.init(version: "1", weight: 0), .init(version: "9", weight: 0)],
                shadow: .init(version: "8", fraction: 1.5)
            ),
            RouteConfiguration(
                model: "digits",
                policy: .bandit,
                versions: [.init(version: "1")],
                bandit: .init(algorithm: "softmax", discount: 0)
            ),
            RouteConfiguration(model: "nope", policy: .fixed, versions: [.init(version: "1")]),
        ]
        let problems = RoutingTable.problems(in: routes, catalog: catalog)
        let expected = [
            "routes[0].versions: canary weights must sum to more than 0",
            "routes[0].versions[1].version: model 'digits' has no loaded version '9'; available versions: 1, 2, 3",
            "routes[0].shadow.fraction: expected 0…1, got 1.5",
            "routes[0].shadow.version: model 'digits' has no loaded version '8'; available versions: 1, 2, 3",
            "routes[1].model: model 'digits' already has a route (routes[0])",
            "routes[1].bandit.algorithm: unknown algorithm 'softmax'; expected one of epsilon_greedy, ucb1, thompson",
            "routes[1].bandit.discount: expected 0 < discount ≤ 1, got 0.0",
            "routes[2].model: unknown model 'nope'",
        ]
        for message in expected { #expect(problems.contains(message), "missing: \(message)\nin: \(problems)") }
        #expect(problems.count == expected.count, "\(problems)")
        #expect(throws: SwitchyardError.self) { try RoutingTable(routes: routes, catalog: catalog) }
    }

    @Test func anInvalidReplacementChangesNothing() throws {
        let table = try RoutingTable(routes: [canary([1, 0])], catalog: catalog)
        #expect(throws: SwitchyardError.self) { try table.replace(route: canary([0, 0])) }
        #expect(throws: SwitchyardError.self) { try table.replaceAll(routes: [canary([1, 1]), canary([1])]) }
        #expect(table.generation == 1)
        #expect(table.route(for: "digits") == canary([1, 0]))
    }

    @Test func automaticRewardIsSuccessWithinTheLatencyTarget() throws {
        let route = RouteConfiguration(
            model: "digits",
            policy: .bandit,
            versions: [.init(version: "1"), .init(version: "2")],
            bandit: .init(algorithm: "ucb1")
        )
        let table = try RoutingTable(routes: [route], catalog: catalog, random: SharedRandom(seed: 5))
        for _ in 0..<200 {
            let decision = decide(table)
            #expect(decision.wantsOutcome)
            // Version 2 meets the model's 20 ms target, version 1 takes 30 ms.
            decision.recordOutcome(
                succeeded: true,
                latencyNanoseconds: decision.version == "2" ? 5_000_000 : 30_000_000
            )
        }
        let state = try #require(table.banditState(model: "digits"))
        #expect(state.versions == ["1", "2"])
        #expect(state.arms[0].meanReward == 0)
        #expect(state.arms[1].meanReward == 1)
        #expect(state.arms[1].pulls > 150)
        // Failures earn 0 even when fast.
        let decision = decide(table)
        decision.recordOutcome(succeeded: false, latencyNanoseconds: 1)
        #expect(try #require(table.banditState(model: "digits")).arms[decision.version == "1" ? 0 : 1].rewards > 0)
    }

    @Test func banditStateSurvivesUnrelatedChangesAndResetsOnItsOwn() throws {
        let route = RouteConfiguration(
            model: "digits",
            policy: .bandit,
            versions: [.init(version: "1"), .init(version: "2")],
            bandit: .init(algorithm: "thompson")
        )
        let table = try RoutingTable(routes: [route], catalog: catalog)
        for _ in 0..<10 { decide(table).recordOutcome(succeeded: true, latencyNanoseconds: 0) }
        try table.replace(route: RouteConfiguration(model: "other", policy: .fixed, versions: [.init(version: "1")]))
        #expect(try #require(table.banditState(model: "digits")).arms.map(\.pulls).reduce(0, +) == 10)
        var changed = route
        changed.bandit?.algorithm = "ucb1"
        try table.replace(route: changed)
        #expect(try #require(table.banditState(model: "digits")).arms.map(\.pulls).reduce(0, +) == 0)
    }

    @Test func feedbackIsJoinedByRequestIDWithinTheTTL() throws {
        let clock = TestClock()
        let route = RouteConfiguration(
            model: "digits",
            policy: .bandit,
            versions: [.init(version: "1"), .init(version: "2")],
            bandit: .init(algorithm: "ucb1", reward: "feedback", feedbackTTLSeconds: 10)
        )
        let table = try RoutingTable(
            routes: [route],
            catalog: catalog,
            clock: { clock.now.load(ordering: .relaxed) }
        )
        let first = decide(table, id: "a")
        #expect(!first.wantsOutcome)
        _ = decide(table, id: "b")
        _ = decide(table, id: "")
        #expect(try table.report(requestID: "a", reward: 1) == .applied)
        #expect(try table.report(requestID: "a", reward: 1) == .unknown)
        #expect(try table.report(requestID: "zzz", reward: 1) == .unknown)
        clock.advance(seconds: 11)
        #expect(try table.report(requestID: "b", reward: 1) == .late)
        clock.advance(seconds: 30)
        #expect(try table.report(requestID: "b", reward: 1) == .unknown)
        #expect(throws: SwitchyardError.self) { try table.report(requestID: "a", reward: 2) }
        #expect(throws: SwitchyardError.self) { try table.report(requestID: "", reward: 0) }
        let counters = table.feedbackCounters
        #expect(counters.registered == 2)
        #expect(counters.applied == 1)
        #expect(counters.late == 1)
        #expect(counters.unknown == 3)
        #expect(counters.pending == 0)
        let state = try #require(table.banditState(model: "digits"))
        let arm = first.version == "1" ? 0 : 1
        #expect(state.arms[arm].rewardSum == 1)
        #expect(state.arms[1 - arm].observations == 0)
    }
}

@Suite struct FeedbackLedgerTests {
    @Test func capacityEvictsTheOldestAndCountsItExpired() {
        var ledger = FeedbackLedger<Int>(capacity: 2)
        ledger.register(id: "a", value: 1, now: 0, ttlNanoseconds: 100)
        ledger.register(id: "b", value: 2, now: 1, ttlNanoseconds: 100)
        ledger.register(id: "c", value: 3, now: 2, ttlNanoseconds: 100)
        #expect(ledger.claim(id: "a", now: 3).outcome == .unknown)
        #expect(ledger.claim(id: "c", now: 3).value == 3)
        #expect(ledger.counters.expired == 1)
    }

    @Test func aNewDecisionWithTheSameIDReplacesTheOld() {
        var ledger = FeedbackLedger<Int>()
        ledger.register(id: "a", value: 1, now: 0, ttlNanoseconds: 100)
        ledger.register(id: "a", value: 2, now: 1, ttlNanoseconds: 100)
        #expect(ledger.claim(id: "a", now: 2).value == 2)
        #expect(ledger.counters.replaced == 1)
        // The first registration's queue entry must not forget the second one.
        ledger.sweep(now: 201)
        #expect(ledger.counters.pending == 1)
        ledger.sweep(now: 202)
        #expect(ledger.counters.pending == 0)
    }
}
