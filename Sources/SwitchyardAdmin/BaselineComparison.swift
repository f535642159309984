// Canary against baseline on the same window, with intervals that stay valid however often they are looked at.
// A rollout looks at its window every tick, so a fixed-sample test (a z-test at 95%) checked again and again would
// cry wolf far more than 5% of the time. The mixture sequential probability ratio test (mSPRT; Johari, Pekelis and
// Walsh, "Always Valid Inference", 2017) gives confidence sequences instead: with a normal mixture of variance τ²
// over the effect, the set of effects θ₀ whose likelihood ratio stays below 1/α
//
//     |θ̂ − θ₀| < √( 2V(V+τ²)/τ² · ( ln(1/α) + ½ ln((V+τ²)/V) ) )
//
// covers the true effect at every look at once with probability ≥ 1 − α (V: the estimate's variance). Error rates
// compare as a difference of proportions; latencies as the Mann–Whitney probability that a canary call is slower
// than a baseline call, from the two latency histograms.

import Foundation
public import SwitchyardAdminAPI
import SwitchyardModels

/// An effect of the canary against the baseline, with its always-valid interval.
public struct BaselineEffect: Sendable, Hashable {
    /// The point estimate.
    public var estimate: Double
    /// The interval's lower end.
    public var lower: Double
    /// The interval's upper end.
    public var upper: Double
}

enum BaselineComparison {
    /// Half the width of the always-valid interval at level 1 − `alpha` for an estimate with variance `variance`,
    /// under a normal mixture with standard deviation `tau` (the scale of the effects that matter).
    static func halfWidth(variance: Double, tau: Double, alpha: Double) -> Double {
        guard variance > 0, tau > 0, alpha > 0, alpha < 1 else { return .infinity }
        let mixed = variance + tau * tau
        return (2 * variance * mixed / (tau * tau) * (log(1 / alpha) + 0.5 * log(mixed / variance))).squareRoot()
    }

    /// The canary's error rate minus the baseline's; `nil` until both have calls.
    static func errorRateDifference(
        canary: RolloutCounters,
        baseline: RolloutCounters,
        tau: Double,
        alpha: Double
    ) -> BaselineEffect? {
        guard canary.calls > 0, baseline.calls > 0 else { return nil }
        let (nc, nb) = (Double(canary.calls), Double(baseline.calls))
        let estimate = Double(canary.failures) / nc - Double(baseline.failures) / nb
        // Rates pulled half a call towards ½ for the variance, so that a window without failures is not certain.
        let pc = (Double(canary.failures) + 0.5) / (nc + 1)
        let pb = (Double(baseline.failures) + 0.5) / (nb + 1)
        let variance = pc * (1 - pc) / nc + pb * (1 - pb) / nb
        let width = halfWidth(variance: variance, tau: tau, alpha: alpha)
        return BaselineEffect(estimate: estimate, lower: estimate - width, upper: estimate + width)
    }

    /// The probability that a canary call is slower than a baseline call (ties count half), from two latency
    /// histograms with the same buckets; `nil` until both have calls. ½ means no difference.
    static func slowerProbability(
        canary: [UInt64],
        baseline: [UInt64],
        tau: Double,
        alpha: Double
    ) -> BaselineEffect? {
        let n1 = Double(canary.reduce(0, +))
        let n2 = Double(baseline.reduce(0, +))
        guard n1 > 0, n2 > 0, canary.count == baseline.count else { return nil }
        var below = 0.0
        var wins = 0.0
        for (c, b) in zip(canary, baseline) {
            wins += Double(c) * (below + 0.5 * Double(b))
            below += Double(b)
        }
        let estimate = wins / (n1 * n2)
        // The Mann–Whitney statistic's variance with no difference (ties within buckets make it conservative).
        let variance = (n1 + n2 + 1) / (12 * n1 * n2)
        let width = halfWidth(variance: variance, tau: tau, alpha: alpha)
        return BaselineEffect(estimate: estimate, lower: estimate - width, upper: estimate + width)
    }
}

extension RolloutPlan.Gates {
    /// Whether a gate compares the canary with the baseline.
    public var comparesWithBaseline: Bool { errorRateVsBaseline != nil || latencyVsBaseline != nil }

    /// Problems with the comparison gates, each naming its key.
    func comparisonProblems() -> [String] {
        var problems: [String] = []
        if let gate = errorRateVsBaseline {
            if !(gate.confidence > 0.5 && gate.confidence < 1) {
                problems.append(
                    "rollout.gates.error_rate_vs_baseline.confidence: expected a value in (0.5, 1), got \(gate.confidence)"
                )
            }
            if !(gate.maxIncrease > 0 && gate.maxIncrease < 1) {
                problems.append(
                    "rollout.gates.error_rate_vs_baseline.max_increase: expected a share in (0, 1), got "
                        + "\(gate.maxIncrease)"
                )
            }
        }
        if let gate = latencyVsBaseline {
            if !(gate.confidence > 0.5 && gate.confidence < 1) {
                problems.append(
                    "rollout.gates.latency_vs_baseline.confidence: expected a value in (0.5, 1), got \(gate.confidence)"
                )
            }
            if !(gate.maxSlowerProbability > 0.5 && gate.maxSlowerProbability < 1) {
                problems.append(
                    "rollout.gates.latency_vs_baseline.max_slower_probability: expected a probability in (0.5, 1), "
                        + "got \(gate.maxSlowerProbability)"
                )
            }
        }
        return problems
    }
}

extension RolloutPlan {
    /// What the comparison gates conclude on a step's windows: a rollback reason, a reason to wait, or nothing.
    func compareWithBaseline(
        step: Int,
        canary: RolloutCounters,
        baseline: RolloutCounters?
    ) -> (rollBack: String?, wait: String?) {
        guard gates.comparesWithBaseline else { return (nil, nil) }
        // At 100% the baseline serves nothing: the last step stands on what the earlier ones showed.
        guard steps[step] < 100 else { return (nil, nil) }
        guard let baseline, baseline.calls >= UInt64(gates.minRequests), canary.calls >= UInt64(gates.minRequests)
        else {
            return (
                nil,
                "waiting for baseline traffic to compare with, \(baseline?.calls ?? 0) of \(gates.minRequests) calls"
            )
        }
        var waits: [String] = []
        if let gate = gates.errorRateVsBaseline,
            let effect = BaselineComparison.errorRateDifference(
                canary: canary,
                baseline: baseline,
                tau: gate.maxIncrease,
                alpha: (1 - gate.confidence) / Double(steps.count)
            )
        {
            let text =
                "canary error rate \(percent(canary.errorRate ?? 0)) vs baseline \(percent(baseline.errorRate ?? 0)): "
                + "difference \(points(effect.estimate)), \(percent(gate.confidence)) always-valid interval "
                + "[\(points(effect.lower)), \(points(effect.upper))] over \(canary.calls) and \(baseline.calls) calls"
            if effect.lower > 0 {
                return ("gate error_rate_vs_baseline failed: the canary is worse than the baseline; \(text)", nil)
            }
            if effect.upper >= gate.maxIncrease {
                waits.append("error_rate_vs_baseline not yet below \(points(gate.maxIncrease)): \(text)")
            }
        }
        if let gate = gates.latencyVsBaseline,
            let effect = BaselineComparison.slowerProbability(
                canary: canary.latencyBuckets,
                baseline: baseline.latencyBuckets,
                tau: gate.maxSlowerProbability - 0.5,
                alpha: (1 - gate.confidence) / Double(steps.count)
            )
        {
            let text =
                "a canary call is slower than a baseline call with probability \(probability(effect.estimate)), "
                + "\(percent(gate.confidence)) always-valid interval [\(probability(effect.lower)), "
                + "\(probability(effect.upper))]"
            if effect.lower > 0.5 {
                return ("gate latency_vs_baseline failed: the canary is slower than the baseline; \(text)", nil)
            }
            if effect.upper >= gate.maxSlowerProbability {
                waits.append(
                    "latency_vs_baseline not yet below \(probability(gate.maxSlowerProbability)): \(text)"
                )
            }
        }
        return (nil, waits.isEmpty ? nil : "waiting for evidence: " + waits.joined(separator: "; "))
    }
}

/// A difference of shares in percentage points, signed.
func points(_ share: Double) -> String {
    let value = (share * 1000).rounded() / 10
    return (value >= 0 ? "+" : "") + number(value) + " pp"
}

/// A probability to three decimals.
func probability(_ value: Double) -> String { number((value * 1000).rounded() / 1000) }
