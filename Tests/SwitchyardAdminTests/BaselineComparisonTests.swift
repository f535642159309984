// The rollout gates that compare the canary with the baseline: the always-valid intervals, the decisions they lead
// to on scripted windows, their validation, and simulated rollouts (seeded, so every run draws the same calls)
// that show the promised error rates: a canary 2 points worse is rolled back, an equal one promoted, each in at
// least 95% of 1000 rollouts.

import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardModels
import Testing

@testable import SwitchyardAdmin

/// Counters of `calls` calls, `failures` of them failed, with the durations in `latencyMilliseconds`.
func counters(calls: UInt64, failures: UInt64, latencyMilliseconds: [Double] = []) -> RolloutCounters {
    let histogram = LatencyHistogram()
    for milliseconds in latencyMilliseconds { histogram.record(UInt64(milliseconds * 1e6)) }
    return RolloutCounters(
        calls: calls,
        failures: failures,
        latencyBuckets: histogram.bucketCounts,
        compared: 0,
        agreed: 0
    )
}

private let comparingPlan = rolloutPlan(
    steps: [10, 50, 100],
    gates: .init(errorRateVsBaseline: .init(confidence: 0.95, maxIncrease: 0.02), minRequests: 100)
)

@Suite struct BaselineComparisonTests {
    @Test func intervalsNarrowWithEvidenceAndCoverTheDifference() {
        let small = BaselineComparison.errorRateDifference(
            canary: counters(calls: 200, failures: 4),
            baseline: counters(calls: 200, failures: 2),
            tau: 0.02,
            alpha: 0.05
        )
        let large = BaselineComparison.errorRateDifference(
            canary: counters(calls: 200_000, failures: 4_000),
            baseline: counters(calls: 200_000, failures: 2_000),
            tau: 0.02,
            alpha: 0.05
        )
        guard let small, let large else {
            Issue.record("expected intervals once both arms have calls")
            return
        }
        #expect(abs(small.estimate - 0.01) < 1e-12 && abs(large.estimate - 0.01) < 1e-12)
        #expect(small.lower < 0 && small.upper > 0.02)  // 200 calls each prove nothing
        #expect(large.lower > 0.008 && large.upper < 0.012)  // 200 000 each pin it down
        #expect(large.upper - large.lower < small.upper - small.lower)
        // Stricter confidence, wider interval.
        let strict = BaselineComparison.errorRateDifference(
            canary: counters(calls: 200_000, failures: 4_000),
            baseline: counters(calls: 200_000, failures: 2_000),
            tau: 0.02,
            alpha: 0.001
        )
        #expect((strict?.upper ?? 0) > large.upper)
        #expect(
            BaselineComparison.errorRateDifference(
                canary: counters(calls: 0, failures: 0),
                baseline: counters(calls: 10, failures: 0),
                tau: 0.02,
                alpha: 0.05
            ) == nil
        )
    }

    @Test func slowerProbabilityFromHistograms() {
        let same = BaselineComparison.slowerProbability(
            canary: counters(calls: 400, failures: 0, latencyMilliseconds: Array(repeating: 3, count: 400))
                .latencyBuckets,
            baseline: counters(calls: 400, failures: 0, latencyMilliseconds: Array(repeating: 3, count: 400))
                .latencyBuckets,
            tau: 0.1,
            alpha: 0.05
        )
        #expect(same?.estimate == 0.5)
        let slower = BaselineComparison.slowerProbability(
            canary: counters(calls: 400, failures: 0, latencyMilliseconds: Array(repeating: 9, count: 400))
                .latencyBuckets,
            baseline: counters(calls: 400, failures: 0, latencyMilliseconds: Array(repeating: 3, count: 400))
                .latencyBuckets,
            tau: 0.1,
            alpha: 0.05
        )
        #expect(slower?.estimate == 1)
        #expect((slower?.lower ?? 0) > 0.5)
    }

    @Test func aWorseCanaryIsRolledBackNamingTheInterval() throws {
        let decision = comparingPlan.decide(
            step: 0,
            elapsedSeconds: 5,
            window: counters(calls: 5_000, failures: 250),
            baseline: counters(calls: 45_000, failures: 450)
        )
        let why = try #require(decision.rollBackReason, "expected a rollback, got \(decision)")
        #expect(why.hasPrefix("gate error_rate_vs_baseline failed: the canary is worse than the baseline; "))
        #expect(why.contains("canary error rate 5% vs baseline 1%: difference +4 pp, 95% always-valid interval ["))
        #expect(why.contains("over 5000 and 45000 calls"))
    }

    @Test func anUnprovenCanaryHoldsPastItsTimeAndAProvenOneAdvances() throws {
        let unproven = comparingPlan.decide(
            step: 0,
            elapsedSeconds: 600,
            window: counters(calls: 150, failures: 2),
            baseline: counters(calls: 1_350, failures: 14)
        )
        let why = try #require(unproven.holdReason, "expected a hold, got \(unproven)")
        #expect(why.hasPrefix("step 1/3 at 10%: waiting for evidence: error_rate_vs_baseline not yet below +2 pp: "))
        let proven = comparingPlan.decide(
            step: 0,
            elapsedSeconds: 600,
            window: counters(calls: 20_000, failures: 200),
            baseline: counters(calls: 180_000, failures: 1_800)
        )
        #expect(proven == .advance)
        // Without baseline traffic there is nothing to compare with: the step waits for it.
        let alone = comparingPlan.decide(step: 0, elapsedSeconds: 600, window: counters(calls: 20_000, failures: 0))
        let waiting = try #require(alone.holdReason, "expected a hold, got \(alone)")
        #expect(waiting.contains("waiting for baseline traffic to compare with, 0 of 100 calls"))
        // At 100% the baseline serves nothing: the last step stands on the earlier steps' comparisons.
        #expect(
            comparingPlan.decide(step: 2, elapsedSeconds: 600, window: counters(calls: 500, failures: 1)) == .complete
        )
    }

    @Test func validationNamesTheComparisonKeys() {
        let plan = rolloutPlan(
            gates: .init(
                errorRateVsBaseline: .init(confidence: 1.2, maxIncrease: 0),
                latencyVsBaseline: .init(confidence: 0.4, maxSlowerProbability: 0.5)
            )
        )
        #expect(
            plan.problems(loadedVersions: ["1", "2"]) == [
                "rollout.gates.error_rate_vs_baseline.confidence: expected a value in (0.5, 1), got 1.2",
                "rollout.gates.error_rate_vs_baseline.max_increase: expected a share in (0, 1), got 0.0",
                "rollout.gates.latency_vs_baseline.confidence: expected a value in (0.5, 1), got 0.4",
                "rollout.gates.latency_vs_baseline.max_slower_probability: expected a probability in (0.5, 1), "
                    + "got 0.5",
            ]
        )
        // A comparison gate alone is a gate.
        #expect(comparingPlan.problems(loadedVersions: ["1", "2"]).isEmpty)
    }

    /// How a rollout ends when every call fails with `canaryRate` on the canary and `baselineRate` on the baseline,
    /// 200 calls a second split by the step's weight, decided once a second as the controller does.
    private static func simulate(canaryRate: Double, baselineRate: Double, seed: UInt64) -> RolloutDecision {
        var random = SplitMix64(seed: seed)
        var step = 0
        var elapsed = 0.0
        var canary = (calls: UInt64(0), failures: UInt64(0))
        var baseline = (calls: UInt64(0), failures: UInt64(0))
        for _ in 0..<36_000 {
            let weight = comparingPlan.steps[step] / 100
            for _ in 0..<200 {
                if random.unitDouble() < weight {
                    canary.calls += 1
                    if random.unitDouble() < canaryRate { canary.failures += 1 }
                } else {
                    baseline.calls += 1
                    if random.unitDouble() < baselineRate { baseline.failures += 1 }
                }
            }
            elapsed += 1
            let decision = comparingPlan.decide(
                step: step,
                elapsedSeconds: elapsed,
                window: counters(calls: canary.calls, failures: canary.failures),
                baseline: counters(calls: baseline.calls, failures: baseline.failures)
            )
            switch decision {
            case .hold: continue
            case .advance:
                step += 1
                elapsed = 0
                canary = (0, 0)
                baseline = (0, 0)
            case .complete, .rollBack: return decision
            }
        }
        return .hold("undecided after 10 hours")
    }

    @Test func simulatedRolloutsKeepTheirPromises() {
        var worseRolledBack = 0
        var equalPromoted = 0
        for seed in 0..<1000 {
            if case .rollBack = Self.simulate(canaryRate: 0.03, baselineRate: 0.01, seed: UInt64(seed)) {
                worseRolledBack += 1
            }
            if Self.simulate(canaryRate: 0.01, baselineRate: 0.01, seed: UInt64(10_000 + seed)) == .complete {
                equalPromoted += 1
            }
        }
        print(
            "simulated rollouts: 2 pp worse rolled back \(worseRolledBack)/1000, equal promoted \(equalPromoted)/1000"
        )
        #expect(worseRolledBack >= 950)
        #expect(equalPromoted >= 950)
    }
}
