// Progressive rollouts: the plan's decision on scripted windows (gates judged as soon as there is evidence,
// steps advancing only when their time is up), plan validation, and the controller driving a real routing
// table, audit log and state file through start → advance → complete and start → rollback, with a scripted
// clock and scripted counters on real loaded model versions.

import Foundation
import Logging
import SwitchyardAdmin
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardModels
import SwitchyardRouting
import SwitchyardWorkers
import Synchronization
import Testing

private let plan = rolloutPlan(
    steps: [10, 50, 100],
    gates: .init(maxErrorRate: 0.05, maxP99Milliseconds: 20, minRequests: 100)
)

/// A window of `calls` canary calls of which `failures` failed, each taking `milliseconds`.
private func window(calls: UInt64, failures: UInt64 = 0, milliseconds: Double = 3) -> RolloutCounters {
    counters(calls: calls, failures: failures, latencyMilliseconds: Array(repeating: milliseconds, count: Int(calls)))
}

@Suite struct RolloutPlanTests {
    @Test func holdsUntilTheStepHasTrafficAndTime() throws {
        let why = try #require(
            plan.decide(step: 0, elapsedSeconds: 60, window: window(calls: 40)).holdReason,
            "expected hold without enough calls"
        )
        #expect(why.contains("40 of 100 canary calls"))
        let left = try #require(
            plan.decide(step: 0, elapsedSeconds: 10, window: window(calls: 500)).holdReason,
            "expected hold before the interval is up"
        )
        #expect(left.contains("20 s left"))
        #expect(plan.decide(step: 0, elapsedSeconds: 30, window: window(calls: 500)) == .advance)
        #expect(plan.decide(step: 2, elapsedSeconds: 30, window: window(calls: 500)) == .complete)
    }

    @Test func failingErrorRateRollsBackBeforeTheStepEnds() throws {
        let decision = plan.decide(step: 1, elapsedSeconds: 1, window: window(calls: 120, failures: 12))
        let why = try #require(decision.rollBackReason, "expected a rollback, got \(decision)")
        #expect(why.contains("max_error_rate"))
        #expect(why.contains("12 of 120"))
        // Under the evidence threshold nothing is judged, however bad it looks.
        if case .rollBack = plan.decide(step: 1, elapsedSeconds: 1, window: window(calls: 10, failures: 10)) {
            Issue.record("judged a gate on 10 calls with min_requests 100")
        }
    }

    @Test func slowCanaryFailsTheLatencyGate() throws {
        let decision = plan.decide(step: 0, elapsedSeconds: 40, window: window(calls: 200, milliseconds: 40))
        let why = try #require(decision.rollBackReason, "expected a rollback, got \(decision)")
        #expect(why.contains("max_p99_ms"))
    }

    @Test func agreementGateWaitsForComparedPairsAndJudgesThem() throws {
        var gated = plan
        gated.gates.minShadowAgreement = 0.9
        var counters = window(calls: 500)
        let why = try #require(
            gated.decide(step: 0, elapsedSeconds: 60, window: counters).holdReason,
            "expected a hold without compared pairs"
        )
        #expect(why.contains("mirrored calls"))
        // At 100% nothing is mirrored, so the last step stands on the other gates.
        #expect(gated.decide(step: 2, elapsedSeconds: 60, window: counters) == .complete)
        counters.compared = 200
        counters.agreed = 199
        #expect(gated.decide(step: 0, elapsedSeconds: 60, window: counters) == .advance)
        counters.agreed = 150
        let disagreement = try #require(
            gated.decide(step: 0, elapsedSeconds: 1, window: counters).rollBackReason,
            "expected a rollback at 75% agreement"
        )
        #expect(disagreement.contains("150 of 200"))
    }

    @Test func driftGatesWaitForAFullWindowAndJudgeItWhateverTheCallCount() throws {
        var gated = plan
        gated.gates.maxInputDrift = 0.2
        gated.gates.maxOutputDrift = 0.25
        var counters = window(calls: 500)
        let why = try #require(
            gated.decide(step: 0, elapsedSeconds: 60, window: counters).holdReason,
            "expected a hold without a drift window"
        )
        #expect(why.contains("first full drift window"))
        let calm = DriftReading(
            maxInputPSI: 0.05,
            worstInput: "x[3]",
            maxOutputPSI: 0.1,
            worstOutput: "y[0]",
            windowRows: 2000
        )
        counters.drift = calm
        #expect(gated.decide(step: 0, elapsedSeconds: 60, window: counters) == .advance)
        // A reading is not a difference of counters: the window keeps the latest one.
        #expect(counters.since(window(calls: 100)).drift == calm)
        var shifted = calm
        shifted.maxInputPSI = 0.8
        shifted.worstInput = "x[17]"
        counters = window(calls: 5)
        counters.drift = shifted
        let input = try #require(
            gated.decide(step: 0, elapsedSeconds: 1, window: counters).rollBackReason,
            "expected a rollback on input drift"
        )
        #expect(input.contains("max_input_drift") && input.contains("'x[17]'") && input.contains("PSI 0.8"))
        shifted = calm
        shifted.maxOutputPSI = 0.3
        counters.drift = shifted
        let output = try #require(
            gated.decide(step: 0, elapsedSeconds: 1, window: counters).rollBackReason,
            "expected a rollback on prediction drift"
        )
        #expect(output.contains("max_output_drift") && output.contains("'y[0]'") && output.contains("2000 rows"))
        var negative = gated
        negative.gates.maxInputDrift = -1
        #expect(
            negative.problems(loadedVersions: ["1", "2"]).contains { $0.hasPrefix("rollout.gates.max_input_drift") }
        )
        let driftOnly = RolloutPlan(
            baseline: "1",
            canary: "2",
            steps: [100],
            stepSeconds: 1,
            gates: .init(maxInputDrift: 0.2)
        )
        #expect(driftOnly.problems(loadedVersions: ["1", "2"]).isEmpty)
    }

    @Test func validationNamesEveryBadField() {
        let bad = RolloutPlan(
            baseline: "1",
            canary: "7",
            steps: [50, 20, 120],
            stepSeconds: 0,
            gates: .init(maxErrorRate: 2, minRequests: 0),
            shadowFraction: 0.5
        )
        let problems = bad.problems(loadedVersions: ["1", "2"]).joined(separator: "\n")
        for field in [
            "rollout.canary: version '7' is not loaded", "rollout.steps[1]", "rollout.steps[2]",
            "rollout.step_seconds", "rollout.gates.max_error_rate", "rollout.gates.min_requests",
            "rollout.shadow_fraction",
        ] {
            #expect(problems.contains(field), "missing \(field) in:\n\(problems)")
        }
        #expect(plan.problems(loadedVersions: ["1", "2"]).isEmpty)
        let ungated = RolloutPlan(baseline: "1", canary: "2", steps: [100], stepSeconds: 1)
        #expect(ungated.problems(loadedVersions: ["1", "2"]).contains { $0.hasPrefix("rollout.gates") })
    }
}

/// A clock the rollout tests move by hand.
final class ManualClock: Sendable {
    private let nanoseconds = Atomic<UInt64>(1_000_000_000)
    func now() -> MonotonicInstant { MonotonicInstant(nanoseconds: nanoseconds.load(ordering: .relaxed)) }
    func advance(seconds: Double) { nanoseconds.add(UInt64(seconds * 1e9), ordering: .relaxed) }
}

@Suite struct RolloutControllerTests {
    /// The bundled digits model, both versions loaded with the reference engine.
    static func registry() throws -> ModelRegistry {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("models").path
        return try ModelRegistry.load(
            repository: ModelRepository(root: root),
            engineLoader: { ReferenceEngine(model: try ONNXModel(contentsOf: $0)) },
            logger: Logger(label: "test")
        )
    }

    struct Setup {
        let workspace: Workspace
        let registry: ModelRegistry
        let control: AdminControl
        let controller: RolloutController
        let clock: ManualClock

        init() throws {
            workspace = try Workspace()
            registry = try RolloutControllerTests.registry()
            let registry = registry
            let catalog: @Sendable (String) -> ModelCatalogEntry? = { name in
                registry.model(named: name).map {
                    ModelCatalogEntry(versions: $0.versions.map(\.version), latencyTargetMilliseconds: 50)
                }
            }
            control = AdminControl(
                routing: try RoutingTable(routes: [], catalog: catalog),
                catalog: catalog,
                modelNames: { registry.models.map(\.name) },
                audit: try AuditLog(path: workspace.auditPath),
                state: RouteStateFile(path: workspace.statePath)
            )
            let clock = ManualClock()
            self.clock = clock
            controller = RolloutController(
                control: control,
                registry: registry,
                sink: nil,
                clock: { clock.now() },
                logger: Logger(label: "test")
            )
        }

        /// Counts `calls` finished canary calls, `failures` of them failed.
        func serveCanary(calls: UInt64, failures: UInt64 = 0) throws {
            let statistics = try #require(registry.model(named: "digits")?.versions.first { $0.version == "2" })
                .statistics
            let outputs = VersionOutputs(tensors: [], rows: 1, queueNanoseconds: 0, computeNanoseconds: 0, batchRows: 1)
            for _ in 0..<(calls - failures) {
                statistics.recordSuccess(route: .canary, elapsedNanoseconds: 2_000_000, outputs: outputs)
            }
            for _ in 0..<failures { statistics.recordFailure(route: .canary, code: 13, elapsedNanoseconds: 2_000_000) }
        }

        func canaryWeight() -> Double? {
            control.routing.route(for: "digits")?.versions.first { $0.version == "2" }?.weight
        }
    }

    @Test func healthyCanaryAdvancesStepByStepAndCompletes() throws {
        let setup = try Setup()
        defer { setup.registry.shutdown() }
        try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: "v2 to everyone")
        #expect(setup.canaryWeight() == 10)
        // The held route refuses other changes while the rollout runs.
        #expect(throws: SwitchyardError.self) {
            try setup.control.applyLocally(.weights(model: "digits", ["2": 90]), actor: "ops", reason: nil)
        }
        for expected in [50.0, 100] {
            try setup.serveCanary(calls: 150)
            setup.clock.advance(seconds: 31)
            setup.controller.tick()
            #expect(setup.canaryWeight() == expected)
        }
        try setup.serveCanary(calls: 150)
        setup.clock.advance(seconds: 31)
        setup.controller.tick()
        let status = try #require(setup.controller.status(model: "digits"))
        #expect(status.phase == .completed)
        #expect(setup.canaryWeight() == 100)
        #expect(
            try setup.workspace.auditEntries().map(\.action) == [
                "rollout.start", "rollout.advance", "rollout.advance", "rollout.complete",
            ]
        )
        // Released: operators own the route again.
        try setup.control.applyLocally(.weights(model: "digits", ["1": 1]), actor: "ops", reason: nil)
    }

    @Test func aRolloutKeepsTheRoutesFallbackToTheBaseline() throws {
        let setup = try Setup()
        defer { setup.registry.shutdown() }
        let fallback = RouteConfiguration.FallbackSettings(to: "baseline", on: ["internal"])
        try setup.control.applyLocally(
            .put(
                RouteConfiguration(
                    model: "digits",
                    policy: .fixed,
                    versions: [.init(version: "1")],
                    fallback: fallback
                )
            ),
            actor: "ops",
            reason: nil
        )
        try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: nil)
        #expect(setup.control.routing.route(for: "digits")?.fallback == fallback)
        #expect(setup.canaryWeight() == 10)
    }

    @Test func failingCanaryIsRolledBackAtOnce() throws {
        let setup = try Setup()
        defer { setup.registry.shutdown() }
        try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: nil)
        try setup.serveCanary(calls: 150)
        setup.clock.advance(seconds: 31)
        setup.controller.tick()
        #expect(setup.canaryWeight() == 50)
        // Two seconds into the 50% step the canary starts failing a fifth of its calls.
        setup.clock.advance(seconds: 2)
        try setup.serveCanary(calls: 150, failures: 30)
        setup.controller.tick()
        let status = try #require(setup.controller.status(model: "digits"))
        #expect(status.phase == .rolledBack)
        #expect(status.detail.contains("max_error_rate"))
        #expect(setup.canaryWeight() == 0)
        let last = try #require(try setup.workspace.auditEntries().last)
        #expect(last.action == "rollout.rollback")
        #expect(last.reason?.contains("30 of 150") == true)
        // The state file holds the rolled-back route for a restart.
        let saved = try #require(try RouteStateFile(path: setup.workspace.statePath).load())
        #expect(saved.routes.first?.versions.first { $0.version == "2" }?.weight == 0)
    }

    @Test func pauseStopsAdvancingResumeRestartsTheStepAbortRestoresTheBaseline() throws {
        let setup = try Setup()
        defer { setup.registry.shutdown() }
        try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: nil)
        try setup.controller.pause(model: "digits", actor: "ops", reason: "weekend")
        try setup.serveCanary(calls: 150)
        setup.clock.advance(seconds: 31)
        setup.controller.tick()
        #expect(setup.canaryWeight() == 10)
        #expect(throws: SwitchyardError.self) { try setup.controller.pause(model: "digits", actor: "ops", reason: nil) }
        try setup.controller.resume(model: "digits", actor: "ops", reason: nil)
        // The resumed step needs its own traffic and time.
        setup.clock.advance(seconds: 31)
        setup.controller.tick()
        #expect(setup.canaryWeight() == 10)
        let aborted = try setup.controller.abort(model: "digits", actor: "ops", reason: "not today")
        #expect(aborted.phase == .aborted)
        #expect(setup.canaryWeight() == 0)
        #expect(
            try setup.workspace.auditEntries().map(\.action) == [
                "rollout.start", "rollout.pause", "rollout.resume", "rollout.abort",
            ]
        )
        // A second rollout may start once the first has ended; one at a time while active.
        try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: nil)
        #expect(throws: SwitchyardError.self) {
            try setup.controller.start(model: "digits", plan: plan, actor: "ops", reason: nil)
        }
    }

    @Test func loadAndUnloadWhileServing() throws {
        let setup = try Setup()
        defer { setup.registry.shutdown() }
        let registry = setup.registry
        // Version 2 is routed: it stays.
        try setup.control.applyLocally(.put(canary), actor: "ops", reason: nil)
        #expect(throws: SwitchyardError.self) {
            try registry.unloadVersion(model: "digits", version: "2") { setup.control.use(model: $0, version: $1) }
        }
        try setup.control.applyLocally(.delete(model: "digits"), actor: "ops", reason: nil)
        let unloaded = try registry.unloadVersion(model: "digits", version: "2") {
            setup.control.use(model: $0, version: $1)
        }
        unloaded.pool.shutdown()
        #expect(registry.model(named: "digits")?.versions.map(\.version) == ["1"])
        #expect(registry.pools.count == 1)
        #expect(throws: SwitchyardError.self) { try registry.resolve(model: "digits", version: "2") }
        try registry.loadVersion(model: "digits", version: "2")
        #expect(registry.model(named: "digits")?.versions.map(\.version) == ["1", "2"])
        #expect(registry.pools.count == 2)
        let again = #expect(throws: SwitchyardError.self) { try registry.loadVersion(model: "digits", version: "2") }
        #expect(again?.message.contains("already loaded") == true)
        let missing = #expect(throws: SwitchyardError.self) { try registry.loadVersion(model: "digits", version: "9") }
        #expect(missing?.code == .notFound)
    }
}
