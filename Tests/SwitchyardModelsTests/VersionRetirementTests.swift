// Retiring a model version with calls in flight: the calls finish, new calls are refused by name, the pool stops
// once (on the registry's retirement thread, after the last call), waiters resume, and nothing is left behind.

import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardWorkers
import Synchronization
import Testing

@testable import SwitchyardModels

#if canImport(Glibc)
    import Glibc
#endif

extension ModelVersion {
    /// Whether the registry has stopped and joined the version's pool.
    fileprivate var stopped: Bool { poolStopped.load(ordering: .acquiring) }
}

/// y = x over rows of one value; every batch waits until the test opens the gate.
private final class GatedEngine: InferenceEngine, Sendable {
    let signature = ModelSignature(
        inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 1])],
        outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 1])]
    )
    private let gate = ConditionLock(false)
    private let opened = MonotonicCondition()

    func open() {
        gate.withLock { isOpen in
            isOpen = true
            opened.broadcast()
        }
    }

    fileprivate func waitForGate() {
        gate.withLock(waitingOn: opened, while: { !$0 }) { _ in }
    }

    final class Executor: EngineExecutor {
        let engine: GatedEngine
        init(engine: GatedEngine) { self.engine = engine }

        func run(
            inputs: [UnsafeBufferPointer<Float>],
            rows: Int,
            outputs: [UnsafeMutableBufferPointer<Float>]
        ) throws(SwitchyardError) {
            engine.waitForGate()
            for index in 0..<rows { outputs[0][index] = inputs[0][index] }
        }
    }

    func makeExecutor() -> any EngineExecutor { Executor(engine: self) }
}

/// Keeps log messages, to count what the registry reports.
private final class LogRecorder: Sendable {
    let messages = Mutex<[String]>([])

    func count(_ message: String) -> Int { messages.withLock { $0.count { $0 == message } } }

    var logger: Logger {
        Logger(label: "retirement-test") { _ in Handler(recorder: self) }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) { recorder.messages.withLock { $0.append("\(event.message)") } }
    }
}

/// Answers of the calls a test submitted, by tag.
private final class Answers: Sendable {
    let results = Mutex<[Int: Result<VersionOutputs, SwitchyardError>]>([:])
    let answered = ConditionLock(0)
    let changed = MonotonicCondition()

    func record(_ tag: Int, _ result: Result<VersionOutputs, SwitchyardError>) {
        results.withLock { $0[tag] = result }
        answered.withLock { count in
            count += 1
            changed.broadcast()
        }
    }

    /// Waits up to five seconds for `count` answers; returns how many came.
    func wait(for count: Int) -> Int {
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
        return answered.withLock(waitingOn: changed, while: { $0 < count }, until: deadline) { $0 }
    }
}

/// A registry serving "m" version 1 on a started pool over `engine`.
private func makeRegistry(
    engine: GatedEngine,
    drainBound: Duration = .seconds(30),
    logger: Logger
) throws -> (ModelRegistry, ModelVersion) {
    let configuration = ModelConfiguration(maxBatchSize: 1, workers: 1)
    let pool = WorkerPool(name: "m:1", engine: engine, configuration: configuration, logger: logger)
    try pool.start()
    let version = ModelVersion(model: "m", version: "1", configuration: configuration, pool: pool)
    let registry = ModelRegistry(
        entries: [ModelEntry(name: "m", configuration: configuration, versions: [version], failures: [:])],
        drainBound: drainBound,
        logger: logger
    )
    return (registry, version)
}

private func submit(_ value: Float, tag: Int, to version: ModelVersion, answers: Answers) {
    version.submit(
        inputs: [[value]],
        rows: 1,
        deadline: nil,
        priority: 0,
        enqueuedAt: .now(),
        deferWakeUp: false,
        isCancelled: { false },
        completion: { answers.record(tag, $0) }
    )
}

/// Polls `condition` for up to five seconds.
private func eventually(_ condition: () -> Bool) -> Bool {
    let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
    while !condition() {
        if MonotonicInstant.now() >= deadline { return false }
        usleep(1_000)
    }
    return true
}

@Suite struct VersionRetirementTests {
    @Test func callsInFlightFinishAndThePoolStopsOnceAfterThem() async throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let answers = Answers()
        weak var weakVersion: ModelVersion?
        weak var weakPool: WorkerPool?
        do {
            let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
            weakVersion = version
            weakPool = version.pool
            for tag in 0..<3 {
                let held = try registry.hold(model: "m", version: "")
                #expect(held === version)
                submit(Float(tag), tag: tag, to: held, answers: answers)
            }
            #expect(version.callsInFlight == 3)

            let unloaded = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
            #expect(unloaded === version)
            #expect(version.isRetired)
            // A new call no longer finds the version; one that read the old snapshot is refused by name.
            #expect(throws: SwitchyardError.self) { try registry.hold(model: "m", version: "1") }
            #expect(!version.hold())
            #expect(version.retiredError.code == .unavailable)
            #expect(version.retiredError.message.contains("model 'm' version 1 is being unloaded"))

            let waiting = Task { try await registry.waitUntilRetired(version) }
            // The calls still run: the pool is not stopped under them.
            #expect(version.callsInFlight == 3)
            #expect(!version.stopped)
            #expect(log.count("retired model version stopped") == 0)

            engine.open()
            #expect(answers.wait(for: 3) == 3)
            #expect(try await waiting.value == .stopped)
            #expect(version.stopped)
            #expect(version.callsInFlight == 0)
            for tag in 0..<3 {
                let outputs = try #require(try answers.results.withLock { $0[tag] }?.get())
                #expect(Array(outputs.tensors[0]) == [Float(tag)])
            }
            // Waiting again after the stop answers at once.
            try await registry.waitUntilRetired(version)
            registry.shutdown()
            #expect(log.count("retired model version stopped") == 1)
        }
        // The retirement thread let go of the version, and the pool's threads of the pool.
        #expect(weakVersion == nil)
        #expect(weakPool == nil)
    }

    @Test func aVersionNoCallHoldsStopsAtOnce() async throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        defer { registry.shutdown() }
        _ = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        try await registry.waitUntilRetired(version)
        #expect(version.stopped)
        #expect(registry.model(named: "m") == nil)
    }

    @Test func aDrainPastItsBoundAnswersTheUnloadWithANoteAndThePoolStillStopsAfterTheCall() async throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let answers = Answers()
        let (registry, version) = try makeRegistry(engine: engine, drainBound: .milliseconds(50), logger: log.logger)
        defer { registry.shutdown() }
        submit(1, tag: 0, to: try registry.hold(model: "m", version: "1"), answers: answers)
        _ = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        // The unload has taken effect (the version takes no new calls), so the answer is not an error: it says
        // that the pool is still draining, and why.
        let outcome = try await registry.waitUntilRetired(version)
        let note = try #require(outcome.note, "a version with a call stuck in it was reported stopped")
        #expect(note.contains("model 'm' version 1 is out of service, but 1 calls still hold it after 50 ms"))
        #expect(note.contains("its pool stops once they finish"))
        #expect(throws: SwitchyardError.self) { try registry.hold(model: "m", version: "1") }
        // Waiting again while it still drains answers the same at once.
        #expect(try await registry.waitUntilRetired(version) == outcome)
        #expect(log.count("retired model version has not drained") == 1)
        #expect(!version.stopped)
        engine.open()
        #expect(answers.wait(for: 1) == 1)
        #expect(eventually { version.stopped })
        #expect(try await registry.waitUntilRetired(version) == .stopped)
    }

    @Test func aRetirementThatLosesTheRaceWithShutdownStopsThePoolItself() async throws {
        let engine = GatedEngine()
        engine.open()
        let log = LogRecorder()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        defer { registry.shutdown() }
        // An unload started the retirement thread, then the gateway's shutdown stopped it before the version was
        // handed over: the thread is gone, so the version's pool is stopped by the retirement itself.
        let retirer = VersionRetirer(drainBound: .seconds(30), logger: log.logger)
        try retirer.ensureStarted()
        #expect(retirer.isStarted)
        retirer.stop()
        #expect(!retirer.isStarted)
        retirer.retire(version)
        try #require(version.stopped, "a version retired after the retirement thread stopped was left running")
        #expect(try await retirer.waitUntilStopped(version) == .stopped)
        #expect(log.count("retired model version stopped") == 1)
        // A later unload is refused by name rather than left waiting.
        let refused = #expect(throws: SwitchyardError.self) { try retirer.ensureStarted() }
        #expect(refused?.code == .unavailable)
        #expect(refused?.message == "the model registry is shutting down")
    }

    @Test func anUnloadAfterShutdownIsRefusedAndNothingChanges() throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        registry.shutdown()
        let refused = #expect(throws: SwitchyardError.self) {
            try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        }
        #expect(refused?.code == .unavailable)
        #expect(refused?.message == "the model registry is shutting down")
        #expect(!version.isRetired)
        #expect(registry.model(named: "m")?.versions.count == 1)
    }

    @Test func aRefusedUnloadStartsNoRetirementThread() throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let (registry, _) = try makeRegistry(engine: engine, logger: log.logger)
        defer { registry.shutdown() }
        #expect(throws: SwitchyardError.self) { try registry.unloadVersion(model: "x", version: "1") { _, _ in nil } }
        #expect(throws: SwitchyardError.self) { try registry.unloadVersion(model: "m", version: "9") { _, _ in nil } }
        #expect(throws: SwitchyardError.self) {
            try registry.unloadVersion(model: "m", version: "1") { _, _ in "a route uses it" }
        }
        #expect(!registry.retirementThreadStarted)
        _ = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        #expect(registry.retirementThreadStarted)
    }

    @Test func shutdownStopsAVersionStillDraining() async throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let answers = Answers()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        let held = try registry.hold(model: "m", version: "1")
        _ = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        let waiting = Task { try await registry.waitUntilRetired(version) }
        engine.open()
        // The call never reached the pool; shutting down does not wait for it.
        registry.shutdown()
        #expect(try await waiting.value == .stopped)
        #expect(version.stopped)
        // Its work, submitted late, is refused by the stopped pool; the hold still ends.
        submit(1, tag: 0, to: held, answers: answers)
        #expect(answers.wait(for: 1) == 1)
        #expect(throws: SwitchyardError.self) { try answers.results.withLock { $0[0] }?.get() }
        #expect(version.callsInFlight == 0)
    }

    @Test func aCallThatDeferredItsWakeUpJustBeforeTheUnloadIsStillRun() async throws {
        let engine = GatedEngine()
        engine.open()
        let log = LogRecorder()
        let answers = Answers()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        defer { registry.shutdown() }
        let held = try registry.hold(model: "m", version: "1")
        _ = try registry.unloadVersion(model: "m", version: "1") { _, _ in nil }
        // An event loop submits the call it routed before the unload and wakes the pools at the end of its batch.
        held.submit(
            inputs: [[7]],
            rows: 1,
            deadline: nil,
            priority: 0,
            enqueuedAt: .now(),
            deferWakeUp: true,
            isCancelled: { false },
            completion: { answers.record(0, $0) }
        )
        registry.releaseDeferredWakeUps()
        #expect(answers.wait(for: 1) == 1)
        #expect(try answers.results.withLock { $0[0] }?.get().tensors[0].first == 7)
        try await registry.waitUntilRetired(version)
    }

    @Test func aRefusedCallReleasesItsHold() throws {
        let engine = GatedEngine()
        let log = LogRecorder()
        let (registry, version) = try makeRegistry(engine: engine, logger: log.logger)
        defer { registry.shutdown() }
        let held = try registry.hold(model: "m", version: "")
        #expect(version.callsInFlight == 1)
        held.release()
        #expect(version.callsInFlight == 0)
        #expect(!version.isRetired)
    }
}
