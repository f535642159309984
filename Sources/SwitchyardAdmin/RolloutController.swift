// Runs progressive rollouts in the gateway: each tick reads the canary's live counters, asks the plan for a
// decision on the current step's window, and applies it as an audited, persisted route change. While a rollout
// runs, its model's route is held: operators pause, resume or abort the rollout instead of editing the route.

import Foundation
public import Logging
public import SwitchyardAdminAPI
public import SwitchyardCore
public import SwitchyardModels
public import SwitchyardMonitor
import SwitchyardRouting
public import SwitchyardSink
import Synchronization

/// Starts, advances, rolls back, pauses, resumes and aborts rollouts.
public final class RolloutController: Sendable {
    /// A rollout on this replica: the state every rollout keeps, and the step's window measured here.
    @dynamicMemberLookup
    private struct Rollout: Sendable {
        var state: RolloutState
        var stepStartedAt: MonotonicInstant
        var stepCounters: RolloutCounters
        /// The baseline's counters at the step's start, for the gates that compare with it.
        var baselineStepCounters: RolloutCounters
        var lastWindow: RolloutCounters

        subscript<Value>(dynamicMember keyPath: WritableKeyPath<RolloutState, Value>) -> Value {
            get { state[keyPath: keyPath] }
            set { state[keyPath: keyPath] = newValue }
        }

        var canaryWeight: Double { state.canaryWeight }
    }

    private let control: AdminControl
    private let registry: ModelRegistry
    private let sink: ComparisonSink?
    private let monitor: ModelMonitor?
    private let clock: @Sendable () -> MonotonicInstant
    private let logger: Logger
    private let rollouts = Mutex<[String: Rollout]>([:])
    private let ticker = Mutex<Task<Void, Never>?>(nil)
    /// In fleet mode (`control.fleet`), the rollouts coordinated through etcd; this controller's own table stays
    /// empty then.
    public let fleet: FleetRollouts?

    /// Creates a controller.
    /// - Parameters:
    ///   - control: applies the route changes (audited, persisted) and holds routes.
    ///   - registry: the canary's counters.
    ///   - sink: the baseline→canary agreement, for the agreement gate.
    ///   - monitor: the canary's drift scores, for the drift gates.
    ///   - clock: the time steps are measured with (injected by tests).
    ///   - logger: where every step is logged.
    public init(
        control: AdminControl,
        registry: ModelRegistry,
        sink: ComparisonSink?,
        monitor: ModelMonitor? = nil,
        clock: @escaping @Sendable () -> MonotonicInstant = { .now() },
        logger: Logger
    ) {
        self.control = control
        self.registry = registry
        self.sink = sink
        self.monitor = monitor
        self.clock = clock
        self.logger = logger
        self.fleet = control.fleet.map {
            FleetRollouts(
                fleet: $0,
                control: control,
                registry: registry,
                sink: sink,
                monitor: monitor,
                logger: logger
            )
        }
    }

    // MARK: Operator actions

    /// Starts a rollout of `plan.canary` against `plan.baseline` on `model`: the route becomes a canary split at
    /// the first step's weight (keeping the route's sticky key) and is held until the rollout ends.
    /// - Throws: `notFound` for an unknown model; `invalidArgument` naming every bad field; `failedPrecondition`
    ///   when a rollout of the model is already active.
    @discardableResult
    public func start(
        model: String,
        plan: RolloutPlan,
        actor: String,
        reason: String?
    ) throws(SwitchyardError) -> RolloutStatus {
        try check(model: model, plan: plan)
        return try rollouts.withLock { rollouts throws(SwitchyardError) -> RolloutStatus in
            if let existing = rollouts[model], existing.phase.isActive {
                throw SwitchyardError(
                    .failedPrecondition,
                    "a rollout of '\(model)' version \(existing.plan.canary) is \(existing.phase.rawValue); "
                        + "abort it before starting another"
                )
            }
            let original = control.routing.route(for: model)
            var rollout = Rollout(
                state: RolloutState(model: model, plan: plan, original: original, detail: "started", actor: actor),
                stepStartedAt: clock(),
                stepCounters: counters(model: model, plan: plan),
                baselineStepCounters: baselineCounters(model: model, plan: plan),
                lastWindow: RolloutCounters(calls: 0, failures: 0, latencyBuckets: [], compared: 0, agreed: 0)
            )
            try control.hold(
                model: model,
                reason: "a rollout of version \(plan.canary) is in progress; pause or abort it (/v1/rollouts/\(model))"
            )
            let detail = "step 1/\(plan.steps.count): canary \(number(plan.steps[0]))%"
            do throws(SwitchyardError) {
                try control.apply(
                    route: route(for: rollout, canaryWeight: plan.steps[0], mirror: true),
                    action: "rollout.start",
                    actor: actor,
                    reason: [reason, detail].compactMap { $0 }.joined(separator: ": ")
                )
            } catch {
                control.release(model: model)
                throw error
            }
            record(&rollout, "start", detail)
            rollouts[model] = rollout
            return status(of: rollout)
        }
    }

    /// `start` in fleet mode: the rollout's state, hold and first step go into etcd in one transaction, and the
    /// replica elected to lead rollouts drives it on the fleet's window. Standalone it is `start`.
    /// - Throws: what `start` throws; `unavailable` when the fleet's store cannot be reached.
    public func submitStart(
        model: String,
        plan: RolloutPlan,
        actor: String,
        reason: String?
    ) async throws(SwitchyardError) -> RolloutStatus {
        guard let fleet else { return try start(model: model, plan: plan, actor: actor, reason: reason) }
        try check(model: model, plan: plan)
        return try await fleet.start(model: model, plan: plan, actor: actor, reason: reason)
    }

    /// `pause`, `resume` or `abort` (`action`), in fleet mode through etcd, guarded by the rollout's revision.
    public func submit(action: String, model: String, actor: String, reason: String?) async throws(SwitchyardError)
        -> RolloutStatus
    {
        if let fleet { return try await fleet.transition(model: model, action: action, actor: actor, reason: reason) }
        switch action {
        case "pause": return try pause(model: model, actor: actor, reason: reason)
        case "resume": return try resume(model: model, actor: actor, reason: reason)
        default: return try abort(model: model, actor: actor, reason: reason)
        }
    }

    /// Every rollout (in fleet mode the fleet's, with their fleet windows and leader, read from etcd).
    public func submitStatus(model: String?) async throws(SwitchyardError) -> [RolloutStatus] {
        if let fleet { return try await fleet.all(only: model) }
        if let model { return status(model: model).map { [$0] } ?? [] }
        return all
    }

    private func check(model: String, plan: RolloutPlan) throws(SwitchyardError) {
        try control.requireModel(model)
        let loaded = registry.model(named: model)?.versions.map(\.version) ?? []
        let problems = plan.problems(loadedVersions: loaded)
        guard problems.isEmpty else { throw .invalidArgument(problems.joined(separator: "; ")) }
        if plan.gates.judgesDrift {
            let canary = registry.model(named: model)?.versions.first { $0.version == plan.canary }
            guard monitor != nil, canary?.configuration.drift?.covers(version: plan.canary) == true else {
                throw .invalidArgument(
                    "rollout.gates: max_input_drift and max_output_drift need drift detection on the canary; "
                        + "'\(model)' version \(plan.canary) has none (configure drift: in the model's config.yaml)"
                )
            }
        }
    }

    /// Holds the current weights: the rollout stops advancing, but a failing gate still rolls it back.
    /// - Throws: `notFound` without a rollout; `failedPrecondition` unless it is running.
    @discardableResult
    public func pause(model: String, actor: String, reason: String?) throws(SwitchyardError) -> RolloutStatus {
        try transition(model: model, from: [.running], action: "pause", actor: actor, reason: reason) { rollout in
            rollout.phase = .paused
            return nil
        }
    }

    /// Continues a paused rollout; its step starts afresh (a new window and a full interval).
    /// - Throws: `notFound` without a rollout; `failedPrecondition` unless it is paused.
    @discardableResult
    public func resume(model: String, actor: String, reason: String?) throws(SwitchyardError) -> RolloutStatus {
        try transition(model: model, from: [.paused], action: "resume", actor: actor, reason: reason) { rollout in
            rollout.phase = .running
            rollout.stepStartedAt = clock()
            rollout.stepCounters = counters(model: rollout.model, plan: rollout.plan)
            rollout.baselineStepCounters = baselineCounters(model: rollout.model, plan: rollout.plan)
            return nil
        }
    }

    /// Stops a rollout and gives the baseline all traffic back.
    /// - Throws: `notFound` without a rollout; `failedPrecondition` when it has already ended.
    @discardableResult
    public func abort(model: String, actor: String, reason: String?) throws(SwitchyardError) -> RolloutStatus {
        try transition(model: model, from: [.running, .paused], action: "abort", actor: actor, reason: reason) {
            rollout in
            rollout.phase = .aborted
            return route(for: rollout, canaryWeight: 0, mirror: false)
        }
    }

    /// The rollout of `model` (active or the last one that ended), if any.
    public func status(model: String) -> RolloutStatus? {
        rollouts.withLock { $0[model].map(status(of:)) }
    }

    /// Every rollout, by model.
    public var all: [RolloutStatus] {
        rollouts.withLock { $0.values.sorted { $0.model < $1.model }.map(status(of:)) }
    }

    private func transition(
        model: String,
        from phases: Set<RolloutPhase>,
        action: String,
        actor: String,
        reason: String?,
        _ change: (inout Rollout) -> RouteConfiguration?
    ) throws(SwitchyardError) -> RolloutStatus {
        try rollouts.withLock { rollouts throws(SwitchyardError) -> RolloutStatus in
            guard var rollout = rollouts[model] else { throw .notFound("model '\(model)' has no rollout") }
            try requirePhase(rollout.phase, in: phases, model: model, action: action)
            let detail = reason ?? "by \(actor)"
            if let route = change(&rollout) {
                try control.apply(route: route, action: "rollout.\(action)", actor: actor, reason: detail)
                control.release(model: model)
            } else {
                try control.audit(
                    action: "rollout.\(action)",
                    model: model,
                    version: rollout.plan.canary,
                    actor: actor,
                    reason: detail
                ) {}
            }
            rollout.detail = "\(action): \(detail)"
            record(&rollout, action, detail)
            rollouts[model] = rollout
            return status(of: rollout)
        }
    }

    // MARK: Ticking

    /// Starts ticking every `interval` on a task of its own.
    public func start(interval: Duration = .milliseconds(250)) {
        ticker.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if let fleet { await fleet.tick() } else { tick() }
                }
            }
        }
    }

    /// Stops ticking.
    public func stop() { ticker.withLock { $0?.cancel() } }

    /// Judges every active rollout's current step and applies the decisions.
    public func tick() {
        rollouts.withLock { rollouts in
            for model in rollouts.keys.sorted() {
                guard var rollout = rollouts[model], rollout.phase.isActive else { continue }
                advance(&rollout)
                rollouts[model] = rollout
            }
        }
    }

    private func advance(_ rollout: inout Rollout) {
        let plan = rollout.plan
        guard registry.model(named: rollout.model)?.versions.contains(where: { $0.version == plan.canary }) == true
        else {
            finish(&rollout, .rolledBack, "rollback", "version \(plan.canary) is no longer loaded")
            return
        }
        let window = counters(model: rollout.model, plan: plan).since(rollout.stepCounters)
        rollout.lastWindow = window
        let elapsed = Double(clock().nanoseconds(since: rollout.stepStartedAt)) / 1e9
        let baseline =
            plan.gates.comparesWithBaseline
            ? baselineCounters(model: rollout.model, plan: plan).since(rollout.baselineStepCounters) : nil
        let decision = plan.decide(step: rollout.step, elapsedSeconds: elapsed, window: window, baseline: baseline)
        switch decision {
        case .rollBack(let why):
            finish(&rollout, .rolledBack, "rollback", why)
        case .hold(let why):
            rollout.detail = rollout.phase == .paused ? "paused; \(why)" : why
        case .advance where rollout.phase == .running:
            let next = rollout.step + 1
            let detail =
                "step \(next + 1)/\(plan.steps.count): canary \(number(plan.steps[next]))% "
                + "(\(windowSummary(window)) at \(number(plan.steps[rollout.step]))%)"
            guard
                apply(
                    &rollout,
                    canaryWeight: plan.steps[next],
                    mirror: true,
                    "advance",
                    detail,
                    "rollout step not applied"
                )
            else { return }
            rollout.step = next
            rollout.stepStartedAt = clock()
            rollout.stepCounters = counters(model: rollout.model, plan: plan)
            rollout.baselineStepCounters = baselineCounters(model: rollout.model, plan: plan)
            rollout.detail = detail
            record(&rollout, "advance", detail)
        case .complete where rollout.phase == .running:
            finish(&rollout, .completed, "complete", "every step passed (\(windowSummary(window)) at the last)")
        case .advance, .complete:
            rollout.detail = "paused; the step's gates pass"
        }
    }

    /// Ends a rollout: the canary gets everything (completed) or nothing (rolled back), the hold is released.
    private func finish(_ rollout: inout Rollout, _ phase: RolloutPhase, _ event: String, _ why: String) {
        let weight: Double = phase == .completed ? 100 : 0
        guard apply(&rollout, canaryWeight: weight, mirror: false, event, why, "rollout end not applied") else {
            return
        }
        control.release(model: rollout.model)
        rollout.phase = phase
        rollout.detail = why
        record(&rollout, event, why)
    }

    // MARK: Helpers

    private func route(for rollout: Rollout, canaryWeight: Double, mirror: Bool) -> RouteConfiguration {
        rollout.state.route(canaryWeight: canaryWeight, mirror: mirror)
    }

    /// Applies the rollout's route at `canaryWeight` for `event`. On failure the rollout's detail says so and the
    /// next tick retries: returns false.
    private func apply(
        _ rollout: inout Rollout,
        canaryWeight: Double,
        mirror: Bool,
        _ event: String,
        _ reason: String,
        _ failure: Logger.Message
    ) -> Bool {
        do {
            try control.apply(
                route: route(for: rollout, canaryWeight: canaryWeight, mirror: mirror),
                action: "rollout.\(event)",
                actor: "rollout",
                reason: reason
            )
            return true
        } catch {
            rollout.detail = "could not \(event), retrying: \(error.message)"
            logger.error(failure, metadata: ["model": "\(rollout.model)", "reason": "\(error)"])
            return false
        }
    }

    private func counters(model: String, plan: RolloutPlan) -> RolloutCounters {
        var counters = RolloutCounters(
            registry.model(named: model)?.versions.first { $0.version == plan.canary }?.statistics
        )
        let pair = sink?.aggregate(
            for: ComparisonKey(model: model, primaryVersion: plan.baseline, shadowVersion: plan.canary)
        )
        counters.compared = pair?.classified ?? 0
        counters.agreed = pair?.agreed ?? 0
        counters.drift = plan.gates.judgesDrift ? driftReading(model: model, version: plan.canary) : nil
        return counters
    }

    /// The baseline's calls, failures and latencies, for the gates that compare the canary with it.
    private func baselineCounters(model: String, plan: RolloutPlan) -> RolloutCounters {
        RolloutCounters(registry.model(named: model)?.versions.first { $0.version == plan.baseline }?.statistics)
    }

    /// The canary's latest scores once its detector has scored a full window.
    private func driftReading(model: String, version: String) -> DriftReading? {
        monitor.flatMap { DriftReading(latestOf: $0, model: model, version: version) }
    }

    private func record(_ rollout: inout Rollout, _ event: String, _ detail: String) {
        rollout.state.record(event, detail)
        logger.notice(
            "rollout \(event)",
            metadata: [
                "model": "\(rollout.model)", "canary": "\(rollout.plan.canary)",
                "canary_weight": "\(number(rollout.canaryWeight))", "detail": "\(detail)",
            ]
        )
    }

    private func status(of rollout: Rollout) -> RolloutStatus {
        let window = rollout.lastWindow
        return RolloutStatus(
            model: rollout.model,
            baseline: rollout.plan.baseline,
            canary: rollout.plan.canary,
            phase: rollout.phase,
            step: rollout.step + 1,
            steps: rollout.plan.steps,
            canaryWeight: rollout.canaryWeight,
            stepSeconds: rollout.plan.stepSeconds,
            gates: rollout.plan.gates,
            window: .init(
                calls: window.calls,
                failures: window.failures,
                errorRate: window.errorRate,
                p99Milliseconds: window.p99Milliseconds,
                compared: window.compared,
                agreement: window.agreement,
                inputDrift: window.drift?.maxInputPSI,
                outputDrift: window.drift?.maxOutputPSI,
                elapsedSeconds: rollout.phase.isActive
                    ? Double(clock().nanoseconds(since: rollout.stepStartedAt)) / 1e9 : 0
            ),
            detail: rollout.detail,
            startedAt: rollout.startedAt,
            actor: rollout.actor,
            events: rollout.events
        )
    }
}
