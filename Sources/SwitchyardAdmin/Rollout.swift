// A progressive rollout as a pure state machine: a plan (canary weight steps, a step interval, gates) and the
// decision for a window of live observations — hold, advance, complete or roll back — with no clock or I/O of
// its own, so every rule is tested with scripted windows. RolloutController applies the decisions.

public import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardModels
import SwitchyardMonitor

/// What an operator asks for: move traffic from `baseline` to `canary` in weight steps, as long as the gates
/// hold on the canary's live metrics.
@MemberwiseInit
public struct RolloutPlan: Sendable, Hashable, Codable {
    /// Thresholds on the canary's calls during the current step; any one failing rolls back at once.
    public typealias Gates = RolloutGates

    /// The version serving now, which gets the traffic back on a rollback.
    public var baseline: String
    /// The version being rolled out.
    public var canary: String
    /// The canary's weight in percent at each step, ascending; the rollout completes after the last.
    public var steps: [Double]
    /// Seconds each step lasts (at least; a step without enough traffic waits for it).
    public var stepSeconds: Double
    /// The gates.
    public var gates: Gates = Gates()
    /// Share of calls mirrored to the canary for the agreement gate (default 1, only with that gate).
    public var shadowFraction: Double?

    /// The plan a `POST /v1/rollouts/{model}` body asks for, its defaults filled in.
    public init(_ request: RolloutRequest) {
        self.init(
            baseline: request.baseline,
            canary: request.canary,
            steps: request.steps ?? [10, 25, 50, 100],
            stepSeconds: request.stepSeconds ?? 60,
            gates: request.gates ?? Gates(),
            shadowFraction: request.shadowFraction
        )
    }

    enum CodingKeys: String, CodingKey {
        case baseline, canary, steps, gates
        case stepSeconds = "step_seconds"
        case shadowFraction = "shadow_fraction"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        baseline = try c.decode(String.self, forKey: .baseline)
        canary = try c.decode(String.self, forKey: .canary)
        steps = try c.decodeIfPresent([Double].self, forKey: .steps) ?? [10, 25, 50, 100]
        stepSeconds = try c.decodeIfPresent(Double.self, forKey: .stepSeconds) ?? 60
        gates = try c.decodeIfPresent(Gates.self, forKey: .gates) ?? Gates()
        shadowFraction = try c.decodeIfPresent(Double.self, forKey: .shadowFraction)
    }

    /// Every problem with the plan, each naming its field (`rollout.…`), given the model's loaded versions.
    public func problems(loadedVersions: [String]) -> [String] {
        var problems: [String] = []
        let known = loadedVersions.joined(separator: ", ")
        for (field, version) in [("baseline", baseline), ("canary", canary)] where !loadedVersions.contains(version) {
            problems.append("rollout.\(field): version '\(version)' is not loaded; loaded versions: \(known)")
        }
        if baseline == canary { problems.append("rollout.canary: must differ from the baseline ('\(baseline)')") }
        if steps.isEmpty { problems.append("rollout.steps: expected at least one canary weight in percent") }
        for (index, step) in steps.enumerated() {
            if !(step > 0 && step <= 100) {
                problems.append("rollout.steps[\(index)]: expected a percentage in (0, 100], got \(step)")
            } else if index > 0 && !(step > steps[index - 1]) {
                problems.append(
                    "rollout.steps[\(index)]: expected steps in ascending order, got \(steps[index - 1]) then \(step)"
                )
            }
        }
        if !(stepSeconds >= 0.1 && stepSeconds <= 86_400) {
            problems.append("rollout.step_seconds: expected 0.1…86400 seconds, got \(stepSeconds)")
        }
        if let rate = gates.maxErrorRate, !(rate >= 0 && rate <= 1) {
            problems.append("rollout.gates.max_error_rate: expected a share in [0, 1], got \(rate)")
        }
        if let p99 = gates.maxP99Milliseconds, !(p99 > 0 && p99.isFinite) {
            problems.append("rollout.gates.max_p99_ms: expected milliseconds > 0, got \(p99)")
        }
        if let agreement = gates.minShadowAgreement, !(agreement >= 0 && agreement <= 1) {
            problems.append("rollout.gates.min_shadow_agreement: expected a share in [0, 1], got \(agreement)")
        }
        for (key, limit) in [
            ("max_input_drift", gates.maxInputDrift), ("max_output_drift", gates.maxOutputDrift),
        ] {
            if let limit, !(limit >= 0 && limit.isFinite) {
                problems.append("rollout.gates.\(key): expected a population stability index ≥ 0, got \(limit)")
            }
        }
        problems += gates.comparisonProblems()
        if !(1...1_000_000).contains(gates.minRequests) {
            problems.append("rollout.gates.min_requests: expected 1…1000000 calls, got \(gates.minRequests)")
        }
        if let fraction = shadowFraction {
            if !(fraction > 0 && fraction <= 1) {
                problems.append("rollout.shadow_fraction: expected a share in (0, 1], got \(fraction)")
            } else if gates.minShadowAgreement == nil {
                problems.append("rollout.shadow_fraction: only used with gates.min_shadow_agreement, which is not set")
            }
        }
        if gates.maxErrorRate == nil && gates.maxP99Milliseconds == nil && gates.minShadowAgreement == nil
            && !gates.judgesDrift && !gates.comparesWithBaseline
        {
            problems.append(
                "rollout.gates: expected at least one of max_error_rate, max_p99_ms, min_shadow_agreement, "
                    + "max_input_drift, max_output_drift, error_rate_vs_baseline, latency_vs_baseline; "
                    + "a rollout without gates is a timed weight change"
            )
        }
        return problems
    }
}

/// Cumulative counters of the canary at one instant; the difference of two is a step's window.
@MemberwiseInit
public struct RolloutCounters: Sendable, Hashable {
    /// Finished canary calls.
    public var calls: UInt64
    /// Failed canary calls.
    public var failures: UInt64
    /// The canary's latency histogram (`LatencyHistogram.bucketCounts`).
    public var latencyBuckets: [UInt64]
    /// Baseline→canary shadow pairs with a classification verdict.
    public var compared: UInt64
    /// Of those, pairs whose argmax agreed.
    public var agreed: UInt64
    /// The canary's latest drift scores, `nil` until its detector has a full window (or without `drift:`).
    public var drift: DriftReading?

    /// What happened between `earlier` and `self`.
    public func since(_ earlier: RolloutCounters) -> RolloutCounters {
        RolloutCounters(
            calls: calls &- earlier.calls,
            failures: failures &- earlier.failures,
            latencyBuckets: zip(latencyBuckets, earlier.latencyBuckets).map { $0 &- $1 },
            compared: compared &- earlier.compared,
            agreed: agreed &- earlier.agreed,
            drift: drift
        )
    }

    /// The window's error rate, `nil` without calls.
    public var errorRate: Double? { calls == 0 ? nil : Double(failures) / Double(calls) }
    /// The window's p99 in milliseconds, `nil` without calls.
    public var p99Milliseconds: Double? { LatencyHistogram.quantile(0.99, of: latencyBuckets).map { $0 / 1e6 } }
    /// The window's agreement rate, `nil` without compared pairs.
    public var agreement: Double? { compared == 0 ? nil : Double(agreed) / Double(compared) }
}

extension RolloutCounters {
    /// A version's calls, failures and latencies since it was loaded (none for a version not loaded), without
    /// shadow pairs or drift.
    init(_ statistics: VersionStatistics?) {
        let succeeded = statistics?.successes ?? 0
        let failed = statistics?.failures ?? 0
        self.init(
            calls: succeeded + failed,
            failures: failed,
            latencyBuckets: statistics?.latency.bucketCounts ?? [],
            compared: 0,
            agreed: 0
        )
    }
}

/// Refuses `action` on `model`'s rollout unless the rollout is in one of `phases`, naming them.
func requirePhase(
    _ phase: RolloutPhase,
    in phases: Set<RolloutPhase>,
    model: String,
    action: String
) throws(SwitchyardError) {
    guard !phases.contains(phase) else { return }
    throw SwitchyardError(
        .failedPrecondition,
        "the rollout of '\(model)' is \(phase.rawValue); \(action) needs it "
            + phases.map(\.rawValue).sorted().joined(separator: " or ")
    )
}

/// A version's drift against its reference over the detector's latest full window: the largest population stability
/// index among its inputs and among its outputs, and which feature holds it. Not a difference of counters: a window
/// keeps the latest reading.
@MemberwiseInit
public struct DriftReading: Sendable, Hashable {
    public var maxInputPSI: Double
    public var worstInput: String
    public var maxOutputPSI: Double
    public var worstOutput: String
    /// Rows in the scored window.
    public var windowRows: Int
}

extension DriftReading {
    /// The latest scores of `version` of `model` once its detector has scored a full window; `nil` before that or
    /// without a detector.
    init?(latestOf monitor: ModelMonitor, model: String, version: String) {
        guard let report = monitor.driftReports(model: model).first(where: { $0.version == version }) else {
            return nil
        }
        let scores = report.scores
        guard scores.status == .ok || scores.status == .drifting, !scores.features.isEmpty else { return nil }
        let inputs = scores.features.filter { !$0.isOutput }
        let outputs = scores.features.filter(\.isOutput)
        let worstInput = inputs.max { $0.psi < $1.psi }
        let worstOutput = outputs.max { $0.psi < $1.psi }
        self.init(
            maxInputPSI: worstInput?.psi ?? 0,
            worstInput: worstInput?.name ?? "",
            maxOutputPSI: worstOutput?.psi ?? 0,
            worstOutput: worstOutput?.name ?? "",
            windowRows: scores.windowRows
        )
    }
}

/// What to do with a rollout after looking at its current step's window.
public enum RolloutDecision: Sendable, Hashable {
    /// Stay on this step; the text says why (time left, waiting for traffic).
    case hold(String)
    /// Move to the next step.
    case advance
    /// The last step passed: the canary takes all traffic.
    case complete
    /// A gate failed: the text names it and the measured value.
    case rollBack(String)
}

extension RolloutPlan {
    /// The decision for a step that has lasted `elapsedSeconds` with `window` observed on the canary (and
    /// `baseline` on the baseline, for the gates that compare the two).
    /// Gates are judged as soon as the window has `minRequests` calls (pairs for the agreement gate), so a
    /// failing canary is rolled back at once rather than at the end of its step; a step advances only when its
    /// time is up and every gate had enough evidence and passed.
    public func decide(
        step: Int,
        elapsedSeconds: Double,
        window: RolloutCounters,
        baseline: RolloutCounters? = nil
    ) -> RolloutDecision {
        let enough = window.calls >= UInt64(gates.minRequests)
        if enough, let limit = gates.maxErrorRate, let rate = window.errorRate, rate > limit {
            return .rollBack(
                "gate max_error_rate failed: \(window.failures) of \(window.calls) canary calls failed "
                    + "(\(percent(rate)) > \(percent(limit)))"
            )
        }
        if enough, let limit = gates.maxP99Milliseconds, let p99 = window.p99Milliseconds, p99 > limit {
            return .rollBack(
                "gate max_p99_ms failed: canary p99 \(milliseconds(p99)) ms over \(window.calls) calls > "
                    + "\(milliseconds(limit)) ms"
            )
        }
        let enoughPairs = window.compared >= UInt64(gates.minRequests)
        if enoughPairs, let limit = gates.minShadowAgreement, let agreement = window.agreement, agreement < limit {
            return .rollBack(
                "gate min_shadow_agreement failed: canary agreed with the baseline on \(window.agreed) of "
                    + "\(window.compared) mirrored calls (\(percent(agreement)) < \(percent(limit)))"
            )
        }
        if let drift = window.drift, let limit = gates.maxInputDrift, drift.maxInputPSI > limit {
            return .rollBack(
                "gate max_input_drift failed: canary input '\(drift.worstInput)' has PSI \(index(drift.maxInputPSI)) "
                    + "against its reference over its last \(drift.windowRows) rows (> \(index(limit)))"
            )
        }
        if let drift = window.drift, let limit = gates.maxOutputDrift, drift.maxOutputPSI > limit {
            return .rollBack(
                "gate max_output_drift failed: canary output '\(drift.worstOutput)' has PSI "
                    + "\(index(drift.maxOutputPSI)) against its reference over its last \(drift.windowRows) rows "
                    + "(> \(index(limit)))"
            )
        }
        let comparison = compareWithBaseline(step: step, canary: window, baseline: baseline)
        if let reason = comparison.rollBack { return .rollBack(reason) }
        let position = "step \(step + 1)/\(steps.count) at \(number(steps[step]))%"
        guard enough else {
            return .hold("\(position): waiting for traffic, \(window.calls) of \(gates.minRequests) canary calls")
        }
        // At 100% the baseline serves nothing, so nothing is mirrored: the step stands on the other gates.
        if gates.minShadowAgreement != nil && !enoughPairs && steps[step] < 100 {
            return .hold(
                "\(position): waiting for mirrored calls, \(window.compared) of \(gates.minRequests) compared"
            )
        }
        if gates.judgesDrift && window.drift == nil {
            return .hold("\(position): waiting for the canary's first full drift window")
        }
        // A comparison gate holds the step, whatever its time, until the evidence clears the canary.
        if let wait = comparison.wait { return .hold("\(position): \(wait)") }
        guard elapsedSeconds >= stepSeconds else {
            return .hold("\(position): gates pass; \(number((stepSeconds - elapsedSeconds).rounded(.up))) s left")
        }
        return step + 1 < steps.count ? .advance : .complete
    }
}

extension RolloutPlan {
    /// The route of a rollout of this plan on `model` at a canary weight: a canary split of baseline and canary with
    /// the original route's sticky key; while running with the agreement gate, the canary mirrors the baseline's
    /// calls, otherwise the original route's shadow of another version stays.
    func route(
        model: String,
        canaryWeight: Double,
        mirror: Bool,
        sticky: RouteConfiguration.StickyKey?,
        otherShadow: RouteConfiguration.ShadowSettings?,
        fallback: RouteConfiguration.FallbackSettings? = nil
    ) -> RouteConfiguration {
        var shadow = otherShadow
        if mirror, gates.minShadowAgreement != nil {
            shadow = .init(version: canary, fraction: shadowFraction ?? 1, explicit: false)
        }
        return RouteConfiguration(
            model: model,
            policy: .canary,
            versions: [
                .init(version: baseline, weight: 100 - canaryWeight),
                .init(version: canary, weight: canaryWeight),
            ],
            sticky: sticky,
            shadow: shadow,
            fallback: fallback
        )
    }
}

/// A step's window in words: calls, error rate, and the p99, agreement and drift it has.
func windowSummary(_ window: RolloutCounters) -> String {
    var parts = ["\(window.calls) calls", "error rate \(window.errorRate.map(percent) ?? "n/a")"]
    if let p99 = window.p99Milliseconds { parts.append("p99 \(milliseconds(p99)) ms") }
    if let agreement = window.agreement { parts.append("agreement \(percent(agreement))") }
    if let drift = window.drift {
        parts.append("input PSI \(index(drift.maxInputPSI)), output PSI \(index(drift.maxOutputPSI))")
    }
    return parts.joined(separator: ", ")
}

func percent(_ share: Double) -> String {
    let value = (share * 1000).rounded() / 10
    return "\(value == value.rounded() ? String(Int(value)) : String(value))%"
}

/// A drift index to three decimals.
func index(_ value: Double) -> String { number((value * 1000).rounded() / 1000) }

func milliseconds(_ value: Double) -> String { number((value * 100).rounded() / 100) }

func number(_ value: Double) -> String {
    value.compactDescription
}

/// What every rollout keeps, whoever drives it: a replica on its own (`RolloutController`, in memory) or the fleet's
/// elected leader (`FleetRolloutRecord`, in etcd). One type, so that what a rollout carries from the route it
/// replaced (sticky key, another version's shadow, the fallback) and the weight of each phase cannot drift apart
/// between the two.
struct RolloutState: Sendable, Hashable, Codable {
    var model: String
    var plan: RolloutPlan
    /// `running` → (`paused` ↔ `running`) → `completed` | `rolledBack` | `aborted`.
    var phase: RolloutPhase
    /// The current step, an index into `plan.steps`.
    var step: Int
    /// The original route's sticky key, kept by every step's route.
    var sticky: RouteConfiguration.StickyKey?
    /// The original route's shadow of a version outside the rollout, kept by every step's route.
    var otherShadow: RouteConfiguration.ShadowSettings?
    /// The original route's fallback when it falls back to the rollout's baseline: the canary's failed calls are
    /// answered by the baseline while the gates still count them against the canary.
    var fallback: RouteConfiguration.FallbackSettings?
    /// The latest decision or action, in words.
    var detail: String
    /// ISO 8601 UTC time of the start.
    var startedAt: String
    /// Who started it.
    var actor: String
    var events: [RolloutStatus.Event]

    /// A rollout of `plan` on `model` at its first step, keeping what it can of `original`, the route it replaces.
    init(model: String, plan: RolloutPlan, original: RouteConfiguration?, detail: String, actor: String) {
        self.model = model
        self.plan = plan
        self.phase = .running
        self.step = 0
        self.sticky = original?.sticky
        self.otherShadow = original?.shadow.flatMap { shadow in
            shadow.version.map { [plan.baseline, plan.canary].contains($0) } == false ? shadow : nil
        }
        self.fallback = original?.fallback.flatMap { fallback in
            [RouteConfiguration.FallbackSettings.baseline, plan.baseline].contains(fallback.to) ? fallback : nil
        }
        self.detail = detail
        self.startedAt = AdminControl.now()
        self.actor = actor
        self.events = []
    }

    /// The canary's weight in this phase: the step's while active, everything once completed, nothing once ended
    /// otherwise.
    var canaryWeight: Double {
        switch phase {
        case .completed: 100
        case .rolledBack, .aborted: 0
        case .running, .paused: plan.steps[step]
        }
    }

    /// The route at `canaryWeight`: the canary split with the original route's sticky key, fallback and other
    /// shadow; with `mirror` (while running) the canary mirrors the baseline's calls for the agreement gate.
    func route(canaryWeight: Double, mirror: Bool) -> RouteConfiguration {
        plan.route(
            model: model,
            canaryWeight: canaryWeight,
            mirror: mirror,
            sticky: sticky,
            otherShadow: otherShadow,
            fallback: fallback
        )
    }

    /// Appends `event` at the current canary weight.
    mutating func record(_ event: String, _ detail: String) {
        events.append(.init(time: AdminControl.now(), event: event, canaryWeight: canaryWeight, detail: detail))
    }
}
