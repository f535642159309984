import SwitchyardCore
import Testing

@testable import SwitchyardRouting

private func route(_ fallback: RouteConfiguration.FallbackSettings?, policy: RouteConfiguration.Policy = .canary)
    -> RouteConfiguration
{
    RouteConfiguration(
        model: "digits",
        policy: policy,
        versions: [.init(version: "1", weight: 50), .init(version: "2", weight: 50)],
        fallback: fallback
    )
}

private let at = MonotonicInstant(nanoseconds: 1_000_000_000)

@Suite struct FallbackTests {
    @Test func decisionsOfOtherVersionsCarryTheFallbackAndTheFallbackVersionsDoNot() throws {
        let table = try RoutingTable(
            routes: [route(.init(to: "baseline"))],
            catalog: catalog,
            random: SharedRandom(seed: 7)
        )
        var seen: Set<String> = []
        for _ in 0..<200 {
            let decision = decide(table)
            seen.insert(decision.version)
            if decision.version == "1" {
                #expect(decision.fallback == nil)
            } else {
                #expect(decision.fallback?.version == "1")
            }
        }
        #expect(seen == ["1", "2"])
        // A call naming its version gets what it asked for, or nothing: no fallback.
        #expect(decide(table, version: "2").fallback == nil)
        // A route without `fallback` has none.
        let plain = try RoutingTable(routes: [route(nil)], catalog: catalog, random: SharedRandom(seed: 7))
        #expect((0..<50).allSatisfy { _ in decide(plain).fallback == nil })
    }

    @Test func aNamedVersionIsTheFallback() throws {
        let table = try RoutingTable(
            routes: [route(.init(to: "2"), policy: .fixed)],
            catalog: catalog,
            random: SharedRandom(seed: 7)
        )
        let decision = decide(table)
        #expect(decision.version == "1")
        #expect(decision.fallback?.version == "2")
    }

    @Test(arguments: [
        (SwitchyardError.Code.internal, Int64?.none, Fallback.Verdict.retry),
        (.unavailable, 50_000_000, .retry),
        (.resourceExhausted, 10_000_000, .retry),
        (.resourceExhausted, 9_999_999, .noTime),
        (.internal, 0, .noTime),
        (.internal, -5_000_000, .noTime),
        (.invalidArgument, nil, .notOnThisCode),
        (.cancelled, nil, .notOnThisCode),
        (.deadlineExceeded, 50_000_000, .notOnThisCode),
    ])
    func verdictFollowsTheCodesAndTheDeadlineMargin(
        code: SwitchyardError.Code,
        leftNanoseconds: Int64?,
        expected: Fallback.Verdict
    ) throws {
        let table = try RoutingTable(
            routes: [route(.init(to: "baseline", deadlineMarginMilliseconds: 10))],
            catalog: catalog,
            random: SharedRandom(seed: 1)
        )
        let fallback = try #require((0..<100).lazy.compactMap { _ in decide(table).fallback }.first)
        let deadline = leftNanoseconds.map { MonotonicInstant(nanoseconds: UInt64(Int64(at.nanoseconds) + $0)) }
        #expect(fallback.verdict(after: SwitchyardError(code, "x"), now: at, deadline: deadline) == expected)
    }

    @Test func outcomesAreCountedAcrossGenerationsAndTheTrailerNamesTheFailedVersion() throws {
        let table = try RoutingTable(
            routes: [route(.init(to: "baseline", on: ["internal", "invalid_argument"]))],
            catalog: catalog,
            random: SharedRandom(seed: 2)
        )
        let decision = try #require((0..<100).lazy.map { _ in decide(table) }.first { $0.fallback != nil })
        let fallback = try #require(decision.fallback)
        #expect(
            fallback.trailer(decision, failedVersion: "2", code: .internal)
                == "generation=1; version=1; policy=canary; fallback=2,internal"
        )
        #expect(fallback.verdict(after: .invalidArgument("bad"), now: at, deadline: nil) == .retry)
        #expect(fallback.verdict(after: SwitchyardError(.unavailable, "x"), now: at, deadline: nil) == .notOnThisCode)
        fallback.record(.answered, from: "2", code: .internal)
        fallback.record(.answered, from: "2", code: .internal)
        // A new generation keeps the counters.
        try table.replace(route: route(.init(to: "baseline")))
        let next = try #require((0..<100).lazy.compactMap { _ in decide(table).fallback }.first)
        next.record(.noTime, from: "2", code: .resourceExhausted)
        let counts = table.fallbackCounters.snapshot.map {
            "\($0.key.from)>\($0.key.to) \($0.key.code) \($0.key.outcome.rawValue)=\($0.count)"
        }
        #expect(counts == ["2>1 internal answered=2", "2>1 resource_exhausted no_time=1"])
    }

    @Test func aFallbackOutsideTheRouteIsRefusedWithItsKeyPath() {
        let problems = RoutingTable.problems(
            in: [route(.init(to: "3", on: ["internal", "teapot"], deadlineMarginMilliseconds: -1))],
            catalog: catalog
        )
        #expect(
            problems == [
                "routes[0].fallback.to: version '3' is not in the route; expected 'baseline' or one of 1, 2",
                "routes[0].fallback.on[1]: unknown failure code 'teapot'; expected one of deadline_exceeded, "
                    + "failed_precondition, internal, invalid_argument, not_found, resource_exhausted, unavailable, "
                    + "unimplemented",
                "routes[0].fallback.deadline_margin_ms: expected a finite number ≥ 0, got -1.0",
            ]
        )
        #expect(throws: SwitchyardError.self) {
            try RoutingTable(routes: [route(.init(to: "9"))], catalog: catalog)
        }
        let empty = RoutingTable.problems(in: [route(.init(to: "", on: []))], catalog: catalog)
        #expect(
            empty == [
                "routes[0].fallback.to: expected 'baseline' or a version of the route, got ''",
                "routes[0].fallback.on: expected at least one failure code",
            ]
        )
    }
}
