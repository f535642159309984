// InferenceService end to end without sockets: ModelInfer bytes go in through `handle`, exactly as the front end
// delivers them, and come out through a scripted responder. Routing (a real RoutingTable with a canary split),
// validation, deadlines, real worker pools running a test engine, encoding and the route trailer are all the
// gateway's own code.

import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardHTTP2
import SwitchyardProto
import SwitchyardRouting
import SwitchyardSink
import SwitchyardWorkers
import Synchronization
import Testing

@testable import SwitchyardInference
@testable import SwitchyardModels

#if canImport(Glibc)
    import Glibc
#endif

/// y = factor · x over rows of four values; with `failsOnNegative`, a batch holding a row that starts below zero
/// fails as a broken engine would (INTERNAL).
private struct ScalingEngine: InferenceEngine {
    let factor: Float
    var failsOnNegative = false
    let signature = ModelSignature(
        inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 4])],
        outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 4])]
    )

    final class Executor: EngineExecutor {
        let factor: Float
        let failsOnNegative: Bool
        init(factor: Float, failsOnNegative: Bool) {
            self.factor = factor
            self.failsOnNegative = failsOnNegative
        }

        func run(
            inputs: [UnsafeBufferPointer<Float>],
            rows: Int,
            outputs: [UnsafeMutableBufferPointer<Float>]
        ) throws(SwitchyardError) {
            if failsOnNegative, (0..<rows).contains(where: { inputs[0][$0 * 4] < 0 }) {
                throw .internal("negative input")
            }
            for index in 0..<(rows * 4) { outputs[0][index] = inputs[0][index] * factor }
        }
    }

    func makeExecutor() -> any EngineExecutor { Executor(factor: factor, failsOnNegative: failsOnNegative) }
}

/// What the service answered on one call.
private enum Answer: Sendable {
    case sent(message: [UInt8], metadata: [(name: String, value: String)])
    case failed(GRPCStatus, metadata: [(name: String, value: String)])
}

/// A responder that keeps the answer and lets the test wait for it.
private final class ScriptedResponder: GRPCResponder {
    private let answer = ConditionLock<Answer?>(nil)
    private let answered = MonotonicCondition()

    var isCancelled: Bool { false }

    func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        finish(.sent(message: message, metadata: metadata))
    }

    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        finish(.failed(status, metadata: metadata))
    }

    private func finish(_ value: Answer) {
        answer.withLock { answer in
            precondition(answer == nil, "a call was answered twice")
            answer = value
            answered.signal()
        }
    }

    /// The answer, waiting up to five seconds for it.
    func wait() -> Answer? {
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
        return answer.withLock(waitingOn: answered, while: { $0 == nil }, until: deadline) { $0 }
    }
}

/// The route the fixture serves by default: calls without a version split 50/50 between versions 1 and 2.
private let canarySplit = RouteConfiguration(
    model: "typed",
    policy: .canary,
    versions: [.init(version: "1", weight: 50), .init(version: "2", weight: 50)]
)

/// A registry of model "typed" with version 1 doubling and version 2 tripling, their pools started, and a routing
/// table with `route` (by default splitting calls without a version 50/50 between them).
private struct Fixture {
    let service: InferenceService
    let registry: ModelRegistry
    let routing: RoutingTable
    let sink: ComparisonSink?

    /// - Parameter brokenCanary: version 2 fails every batch holding a row that starts below zero.
    init(route: RouteConfiguration = canarySplit, sink: ComparisonSink? = nil, brokenCanary: Bool = false) throws {
        let configuration = ModelConfiguration(maxBatchSize: 8, workers: 1)
        let versions = try [("1", Float(2)), ("2", Float(3))].map { version, factor in
            let pool = WorkerPool(
                name: "typed:\(version)",
                engine: ScalingEngine(factor: factor, failsOnNegative: brokenCanary && version == "2"),
                configuration: configuration,
                logger: Logger(label: "test")
            )
            try pool.start()
            return ModelVersion(model: "typed", version: version, configuration: configuration, pool: pool)
        }
        registry = ModelRegistry(
            entries: [ModelEntry(name: "typed", configuration: configuration, versions: versions, failures: [:])],
            logger: Logger(label: "test")
        )
        routing = try RoutingTable(
            routes: [route],
            catalog: { $0 == "typed" ? ModelCatalogEntry(versions: ["1", "2"], latencyTargetMilliseconds: 50) : nil },
            random: SharedRandom(seed: 7)
        )
        self.sink = sink
        service = InferenceService(registry: registry, routing: routing, sink: sink)
    }

    func shutDown() {
        registry.shutdown()
        sink?.close()
    }

    /// The loaded versions of "typed".
    var versions: [ModelVersion] { registry.model(named: "typed")?.versions ?? [] }

    /// Waits (up to 5 s) until no call holds a version: every call's hold ended once it was answered.
    func holdsEnded() -> Bool {
        eventually { versions.allSatisfy { $0.callsInFlight == 0 } }
    }

    /// One ModelInfer call through `handle`, as the front end makes it.
    func call(_ bytes: [UInt8], deadline: MonotonicInstant? = nil) throws -> Answer {
        let responder = ScriptedResponder()
        let method = try #require(service.method(for: "/inference.GRPCInferenceService/ModelInfer"))
        bytes.withUnsafeBytes { message in
            service.handle(
                message: message,
                method: method,
                head: GRPCRequestHead(path: "/inference.GRPCInferenceService/ModelInfer", deadline: deadline),
                responder: responder
            )
        }
        service.eventLoopDidProcessBatch()
        return try #require(responder.wait(), "no answer within 5 s")
    }
}

/// Polls `condition` for up to five seconds: for what the service records after the answer is on its way.
private func eventually(_ condition: () -> Bool) -> Bool {
    let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
    while !condition() {
        if MonotonicInstant.now() >= deadline { return false }
        usleep(1_000)
    }
    return true
}

/// ModelInfer bytes for "typed" with rows of four FP32 values, optionally naming a version.
private func inferRequest(_ values: [Float], version: String? = nil, shape: [Int64]? = nil) -> [UInt8] {
    var bytes = requestBytes([
        RequestTensor(
            datatype: "FP32",
            shape: shape ?? [Int64(values.count / 4), 4],
            raw: values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
        )
    ])
    if let version {
        // requestBytes names no version: append field 2 (model_version), which protobuf readers merge.
        bytes += [0x12, UInt8(version.utf8.count)] + Array(version.utf8)
    }
    return bytes
}

/// The served version and the output values of a successful answer.
private func decodeAnswer(_ message: [UInt8]) throws -> (version: String, values: [Float]) {
    let response = try #require(
        message.withUnsafeBufferPointer { inference__model_infer_response__unpack(nil, $0.count, $0.baseAddress) }
    )
    defer { inference__model_infer_response__free_unpacked(response, nil) }
    try #require(response.pointee.n_raw_output_contents == 1)
    let raw = response.pointee.raw_output_contents[0]
    let bytes = UnsafeRawBufferPointer(start: raw.data, count: raw.len)
    let values = stride(from: 0, to: bytes.count, by: 4).map {
        Float(bitPattern: bytes.loadUnaligned(fromByteOffset: $0, as: UInt32.self))
    }
    return (String(cString: response.pointee.model_version), values)
}

@Suite(.serialized) struct InferenceServiceTests {
    @Test func callsAreSplitByTheRouteAndAnsweredByTheVersionTheTrailerNames() throws {
        let fixture = try Fixture()
        defer { fixture.shutDown() }
        let input: [Float] = [1, 2, 3, 4, -1, -2, -3, -4]
        var served: [String: Int] = [:]
        for _ in 0..<40 {
            guard case .sent(let message, let metadata) = try fixture.call(inferRequest(input)) else {
                Issue.record("a call failed")
                continue
            }
            let (version, values) = try decodeAnswer(message)
            let factor: Float = version == "1" ? 2 : 3
            #expect(values == input.map { $0 * factor }, "version \(version)")
            let trailer = try #require(metadata.first { $0.name == "switchyard-route" }?.value)
            #expect(trailer == "generation=1; version=\(version); policy=canary")
            served[version, default: 0] += 1
        }
        // 40 draws of a fair split: each side at least 8 times unless the split is broken (p < 1e-4).
        #expect(served["1", default: 0] >= 8 && served["2", default: 0] >= 8, "\(served)")
        // The pool counts a call after its answer is on its way: wait (up to 5 s) for the last one to be counted.
        let versions = try #require(fixture.registry.model(named: "typed")).versions
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
        var succeeded: UInt64 = 0
        repeat {
            succeeded = versions.reduce(0) { $0 + $1.statistics.successes }
            if succeeded < 40 { usleep(1_000) }
        } while succeeded < 40 && MonotonicInstant.now() < deadline
        #expect(succeeded == 40)
    }

    @Test func anExplicitVersionBypassesTheSplit() throws {
        let fixture = try Fixture()
        defer { fixture.shutDown() }
        for _ in 0..<10 {
            guard case .sent(let message, let metadata) = try fixture.call(inferRequest([1, 1, 1, 1], version: "2"))
            else {
                Issue.record("the call failed")
                return
            }
            #expect(try decodeAnswer(message).values == [3, 3, 3, 3])
            #expect(metadata.first { $0.name == "switchyard-route" }?.value.hasSuffix("policy=explicit") == true)
        }
    }

    @Test func refusalsNameWhatWasWrong() throws {
        let fixture = try Fixture()
        defer { fixture.shutDown() }
        var unknown = inferRequest([1, 2, 3, 4])
        unknown[unknown.firstIndex(of: UInt8(ascii: "t"))!] = UInt8(ascii: "T")  // model "Typed"
        guard case .failed(let notFound, _) = try fixture.call(unknown) else {
            Issue.record("an unknown model was served")
            return
        }
        #expect(notFound.code == .notFound)
        #expect(notFound.message.contains("'Typed'"), "\(notFound.message)")

        // Three values for rows of four: refused by the version it was routed to, which the trailer names.
        guard case .failed(let invalid, let metadata) = try fixture.call(inferRequest([1, 2, 3], shape: [1, 3])) else {
            Issue.record("a wrongly shaped input was served")
            return
        }
        #expect(invalid.code == .invalidArgument)
        #expect(invalid.message.contains("'x'"), "\(invalid.message)")
        #expect(metadata.first { $0.name == "switchyard-route" } != nil)
        let failures = try #require(fixture.registry.model(named: "typed")).versions.map {
            $0.statistics.failures
        }
        #expect(failures.reduce(0, +) == 1)
        // The refused call's hold on its version ended with the refusal.
        #expect(fixture.holdsEnded())
    }

    @Test func aCallWhoseDeadlineHasPassedIsNotComputed() throws {
        let fixture = try Fixture()
        defer { fixture.shutDown() }
        let past = MonotonicInstant(nanoseconds: MonotonicInstant.now().nanoseconds - 1_000_000)
        guard case .failed(let status, _) = try fixture.call(inferRequest([1, 2, 3, 4]), deadline: past) else {
            Issue.record("a call past its deadline was answered")
            return
        }
        #expect(status.code == .deadlineExceeded, "\(status)")
        // Counted as the version's failure, and its hold ended.
        #expect(fixture.holdsEnded())
        #expect(eventually { fixture.versions.reduce(0) { $0 + $1.statistics.failures } == 1 })
    }

    @Test(
        arguments: [
            // (transport deadline, timeout parameter µs, expected), in ms/µs after the call started at 1 s.
            (nil, nil, nil),
            (Int64(50), nil, Int64(50)),
            (nil, Int64(20_000), Int64(20)),
            (Int64(50), Int64(20_000), Int64(20)),
            (Int64(10), Int64(20_000), Int64(10)),
            (nil, Int64(0), Int64(0)),
        ] as [(Int64?, Int64?, Int64?)]
    )
    func theDeadlineIsTheEarlierOfTheTransportsAndTheTimeoutParameter(
        transport: Int64?,
        timeout: Int64?,
        expected: Int64?
    ) {
        let started = MonotonicInstant(nanoseconds: 1_000_000_000)
        let deadline = InferenceService.deadline(
            transport: transport.map { started.advanced(byNanoseconds: UInt64($0) * 1_000_000) },
            timeoutMicroseconds: timeout,
            started: started
        )
        #expect(deadline == expected.map { started.advanced(byNanoseconds: UInt64($0) * 1_000_000) })
    }

    @Test func aShadowedCallIsPairedWithItsShadowAndNeverAnsweredByIt() throws {
        let sink = try ComparisonSink(configuration: SinkConfiguration(), logger: Logger(label: "test"))
        let fixture = try Fixture(
            route: RouteConfiguration(
                model: "typed",
                policy: .fixed,
                versions: [.init(version: "1")],
                shadow: .init(version: "2", fraction: 1)
            ),
            sink: sink
        )
        defer { fixture.shutDown() }
        for _ in 0..<5 {
            guard case .sent(let message, _) = try fixture.call(inferRequest([1, 2, 3, 4])) else {
                Issue.record("a shadowed call failed")
                return
            }
            // The primary answers; the shadow (tripling) only feeds the comparison.
            let (version, values) = try decodeAnswer(message)
            #expect(version == "1" && values == [2, 4, 6, 8], "\(version) \(values)")
        }
        let key = ComparisonKey(model: "typed", primaryVersion: "1", shadowVersion: "2")
        #expect(eventually { sink.aggregate(for: key)?.pairs == 5 })
        let aggregate = try #require(sink.aggregate(for: key))
        #expect(aggregate.primaryErrors == 0 && aggregate.shadowErrors == 0, "\(aggregate)")
        #expect(aggregate.compared == 5)
        // Both the primary's and the shadow's holds ended.
        #expect(fixture.holdsEnded())
    }

    @Test func aBanditRouteIsRewardedForEachAnsweredCall() throws {
        let fixture = try Fixture(
            route: RouteConfiguration(
                model: "typed",
                policy: .bandit,
                versions: [.init(version: "1"), .init(version: "2")],
                bandit: .init(algorithm: "epsilon_greedy", reward: "latency", latencyTargetMilliseconds: 5_000)
            )
        )
        defer { fixture.shutDown() }
        for _ in 0..<6 {
            guard case .sent = try fixture.call(inferRequest([1, 1, 1, 1])) else {
                Issue.record("a bandit call failed")
                return
            }
        }
        // Each answered call within the latency target rewards the arm that served it, after the answer is sent.
        #expect(
            eventually {
                let arms = fixture.routing.banditState(model: "typed")?.arms ?? []
                return arms.reduce(0) { $0 + $1.rewards } == 6
            }
        )
        let arms = try #require(fixture.routing.banditState(model: "typed")).arms
        #expect(arms.reduce(0) { $0 + $1.pulls } == 6)
        #expect(fixture.holdsEnded())
    }

    @Test func aVersionUnloadedUnderTheServiceStopsAfterItsCallsAndLaterCallsGoElsewhere() async throws {
        let fixture = try Fixture()
        defer { fixture.shutDown() }
        let two = try #require(fixture.versions.first { $0.version == "2" })
        _ = try fixture.registry.unloadVersion(model: "typed", version: "2") { _, _ in nil }
        try await fixture.registry.waitUntilRetired(two)
        // Calls naming the unloaded version are refused by name; calls without one are served by version 1.
        guard case .failed(let status, _) = try fixture.call(inferRequest([1, 1, 1, 1], version: "2")) else {
            Issue.record("an unloaded version answered")
            return
        }
        #expect(status.code == .notFound)
        #expect(status.message.contains("'2'"), "\(status.message)")
        guard case .sent(let message, _) = try fixture.call(inferRequest([1, 1, 1, 1], version: "1")) else {
            Issue.record("the remaining version failed")
            return
        }
        #expect(try decodeAnswer(message).values == [2, 2, 2, 2])
    }

    /// Version 2 fails every call whose input starts below zero; the route falls back to its baseline, version 1.
    private static let fallingBack = RouteConfiguration(
        model: "typed",
        policy: .canary,
        versions: [.init(version: "1", weight: 50), .init(version: "2", weight: 50)],
        fallback: .init(to: "baseline", on: ["internal"], deadlineMarginMilliseconds: 50)
    )

    @Test func callsABrokenCanaryFailsAreAnsweredByTheFallbackAndCountedAgainstTheCanary() throws {
        let fixture = try Fixture(route: Self.fallingBack, brokenCanary: true)
        defer { fixture.shutDown() }
        let input: [Float] = [-1, 2, 3, 4]
        var fellBack = 0
        for _ in 0..<40 {
            guard case .sent(let message, let metadata) = try fixture.call(inferRequest(input)) else {
                Issue.record("a call failed although its route falls back")
                continue
            }
            let (version, values) = try decodeAnswer(message)
            #expect(version == "1")
            #expect(values == input.map { $0 * 2 })
            let trailer = try #require(metadata.first { $0.name == "switchyard-route" }?.value)
            if trailer.hasSuffix("; fallback=2,internal") {
                #expect(trailer == "generation=1; version=1; policy=canary; fallback=2,internal")
                fellBack += 1
            } else {
                #expect(trailer == "generation=1; version=1; policy=canary")
            }
        }
        #expect(fellBack >= 8, "a fair split sent \(fellBack) of 40 calls to the broken canary")
        // The canary's failures stay its own: its statistics (which the rollout gates read) count every one.
        let two = try #require(fixture.versions.first { $0.version == "2" })
        let one = try #require(fixture.versions.first { $0.version == "1" })
        #expect(eventually { two.statistics.failures == UInt64(fellBack) })
        #expect(two.statistics.successes == 0)
        #expect(eventually { one.statistics.successes == 40 })
        let counted = fixture.routing.fallbackCounters.snapshot.map {
            "\($0.key.code) \($0.key.outcome.rawValue)=\($0.count)"
        }
        #expect(counted == ["internal answered=\(fellBack)"])
        #expect(fixture.holdsEnded())
        // Inputs the canary takes are served by it as before.
        var servedByCanary = false
        for _ in 0..<20 where !servedByCanary {
            guard case .sent(let message, let metadata) = try fixture.call(inferRequest([1, 1, 1, 1])) else { continue }
            servedByCanary = try decodeAnswer(message).version == "2"
            #expect(metadata.allSatisfy { !$0.value.contains("fallback") })
        }
        #expect(servedByCanary)
    }

    @Test func withoutTimeLeftOrWithoutAFallbackTheFailureIsTheAnswer() throws {
        var route = Self.fallingBack
        route.fallback?.deadlineMarginMilliseconds = 60_000
        let fixture = try Fixture(route: route, brokenCanary: true)
        defer { fixture.shutDown() }
        // A deadline 5 s away leaves less than the 60 s margin: the canary's failure is the answer.
        var refused = 0
        for _ in 0..<30 {
            let deadline = MonotonicInstant.now().advanced(byNanoseconds: 5_000_000_000)
            switch try fixture.call(inferRequest([-1, 1, 1, 1]), deadline: deadline) {
            case .failed(let status, let metadata):
                #expect(status.code == .internal)
                #expect(status.message.contains("negative input"), "\(status.message)")
                #expect(metadata.first { $0.name == "switchyard-route" }?.value.contains("version=2") == true)
                refused += 1
            case .sent(let message, _):
                #expect(try decodeAnswer(message).version == "1")
            }
        }
        #expect(refused > 0)
        let counted = fixture.routing.fallbackCounters.snapshot.map {
            "\($0.key.code) \($0.key.outcome.rawValue)=\($0.count)"
        }
        #expect(counted == ["internal no_time=\(refused)"])
        // The same route without `fallback`: the canary's failures reach the caller.
        var plain = route
        plain.fallback = nil
        try fixture.routing.replace(route: plain)
        var failed = 0
        for _ in 0..<30 {
            if case .failed(let status, _) = try fixture.call(inferRequest([-1, 1, 1, 1])) {
                #expect(status.code == .internal)
                failed += 1
            }
        }
        #expect(failed > 0)
        #expect(fixture.holdsEnded())
    }

    @Test func aBanditsFallbackRewardsNoArmForTheFallbacksAnswer() throws {
        var route = Self.fallingBack
        route.policy = .bandit
        route.versions = [.init(version: "1"), .init(version: "2")]
        route.bandit = .init(
            algorithm: "epsilon_greedy",
            epsilon: 1,
            reward: "latency",
            latencyTargetMilliseconds: 5_000
        )
        let fixture = try Fixture(route: route, brokenCanary: true)
        defer { fixture.shutDown() }
        for _ in 0..<30 {
            guard case .sent = try fixture.call(inferRequest([-1, 1, 1, 1])) else {
                Issue.record("a call failed although its route falls back")
                return
            }
        }
        // Every pull of arm 2 failed and was rewarded 0; the fallback's answers credited neither arm.
        #expect(
            eventually {
                let arms = fixture.routing.banditState(model: "typed")?.arms ?? []
                return arms.reduce(0) { $0 + $1.rewards } == 30
            }
        )
        let arms = try #require(fixture.routing.banditState(model: "typed")).arms
        #expect(arms[1].pulls > 0)
        #expect(arms[1].rewardSum == 0)
        #expect(arms[0].rewardSum == Double(arms[0].pulls))
        #expect(fixture.holdsEnded())
    }
}
