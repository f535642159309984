// The drift detector's CPU budget: how the observed share moves with what the monitor spent against what the
// CPU time spent serving the version allows, and the `max_cpu_share` key.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardMonitor

@Suite struct DriftBudgetTests {
    @Test func theShareFollowsTheCostWithinItsBoundsAndSteps() {
        // Spent twice what is allowed: half the share.
        #expect(DriftBudget.next(current: 0.5, allowed: 100, spent: 200, configured: 1) == 0.25)
        // Far over: at most ten times less per revision.
        #expect(DriftBudget.next(current: 1, allowed: 1, spent: 1_000, configured: 1) == 0.1)
        // Under: at most twice as much, never above drift.fraction.
        #expect(DriftBudget.next(current: 0.2, allowed: 300, spent: 100, configured: 1) == 0.4)
        #expect(DriftBudget.next(current: 0.4, allowed: 300, spent: 100, configured: 0.5) == 0.5)
        // Nothing spent (no sampled call): back up.
        #expect(DriftBudget.next(current: 0.01, allowed: 100, spent: 0, configured: 1) == 0.02)
        // Never below the floor.
        #expect(DriftBudget.next(current: 0.001, allowed: 1, spent: 1_000_000, configured: 1) == 0.001)
    }

    @Test func revisionsWaitForAnIntervalAndForCompute() {
        let start = MonotonicInstant.now()
        let interval = DriftBudget.intervalNanoseconds
        var budget = DriftBudget(configured: 1, maxShare: 0.02, servingNanoseconds: 1_000, now: start)
        budget.charge(4_000_000)
        // Before the interval: nothing.
        #expect(budget.revise(current: 1, servingNanoseconds: 50_001_000, now: start.advanced(byNanoseconds: 1)) == nil)
        // 50 ms spent serving the version allow 1 ms of monitor time; 4 ms were spent: a quarter of the share.
        let revised = budget.revise(
            current: 1,
            servingNanoseconds: 50_001_000,
            now: start.advanced(byNanoseconds: interval)
        )
        #expect(revised == 0.25)
        // Nothing served since (no traffic): the share stays.
        #expect(
            budget.revise(
                current: 0.25,
                servingNanoseconds: 50_001_000,
                now: start.advanced(byNanoseconds: 2 * interval)
            )
                == nil
        )
        // Nothing spent since, with traffic served: the share goes back up.
        #expect(
            budget.revise(
                current: 0.25,
                servingNanoseconds: 60_001_000,
                now: start.advanced(byNanoseconds: 3 * interval)
            )
                == 0.5
        )
    }

    @Test func theKeyDefaultsToTwoPercentAndNullLiftsIt() throws {
        func decode(_ json: String) throws -> DriftConfiguration {
            try JSONDecoder().decode(DriftConfiguration.self, from: Data(json.utf8))
        }
        #expect(try decode(#"{"window": 1000}"#).maxCPUShare == 0.02)
        #expect(try decode(#"{"max_cpu_share": null}"#).maxCPUShare == nil)
        #expect(try decode(#"{"max_cpu_share": 0.5}"#).maxCPUShare == 0.5)
        let negative = try decode(#"{"max_cpu_share": -1}"#)
        #expect(
            negative.validate() == ["drift.max_cpu_share: expected a positive share of CPU time, or null, got -1.0"]
        )
    }
}
