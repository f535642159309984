// Routing and sink micro-benchmark: CPU per call of routing decisions (every policy) and of the comparison
// sink's bookkeeping for a shadowed call, plus bandit regret in simulations with known reward rates.
//
//   swift run -c release --scratch-path .build-routing switchyard-routing-bench [--quick]

import Foundation
import Logging
import SwitchyardCore
import SwitchyardModels
import SwitchyardRouting
import SwitchyardSink
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

let quick = CommandLine.arguments.contains("--quick")
let iterations = quick ? 200_000 : 2_000_000

func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs `body` `count` times (after a warm-up) and prints CPU nanoseconds per call, best of three.
func measure(_ label: String, count: Int = iterations, _ body: (Int) -> Void) {
    for n in 0..<min(count, 10_000) { body(n) }
    var best = Double.infinity
    for _ in 0..<3 {
        let start = threadCPUNanoseconds()
        for n in 0..<count { body(n) }
        best = min(best, Double(threadCPUNanoseconds() - start) / Double(count))
    }
    print("  " + label.padding(toLength: 58, withPad: " ", startingAt: 0) + String(format: "%8.1f ns", best))
}

let catalog: @Sendable (String) -> ModelCatalogEntry? = { name in
    name.hasPrefix("digits") ? ModelCatalogEntry(versions: ["1", "2"], latencyTargetMilliseconds: 20) : nil
}
func versions(_ weights: [Double]) -> [RouteConfiguration.VersionWeight] {
    weights.enumerated().map { .init(version: String($0.offset + 1), weight: $0.element) }
}
/// A bandit route over two versions of equal prior weight.
func bandit(_ model: String, _ settings: RouteConfiguration.BanditSettings) -> RouteConfiguration {
    RouteConfiguration(model: model, policy: .bandit, versions: versions([1, 1]), bandit: settings)
}
let routes = [
    RouteConfiguration(model: "digits-fixed", policy: .fixed, versions: versions([1])),
    RouteConfiguration(
        model: "digits-sticky",
        policy: .canary,
        versions: versions([90, 10]),
        sticky: .init(header: "x-user-id")
    ),
    RouteConfiguration(model: "digits-random", policy: .canary, versions: versions([50, 50])),
    RouteConfiguration(
        model: "digits-shadow",
        policy: .canary,
        versions: versions([50, 50]),
        sticky: .init(header: "x-user-id"),
        shadow: .init(fraction: 1)
    ),
    bandit("digits-thompson", .init(algorithm: "thompson")),
    bandit("digits-ucb1", .init(algorithm: "ucb1")),
    bandit("digits-egreedy", .init(algorithm: "epsilon_greedy")),
    bandit("digits-feedback", .init(algorithm: "thompson", reward: "feedback")),
]
let table = try RoutingTable(routes: routes, catalog: catalog, random: SharedRandom(seed: 1))
let users = (0..<1024).map { "user-\($0)" }
var sink = 0

print("Routing decision, CPU per call (one thread, \(iterations) calls, best of 3):")
func decide(_ model: String, version: String = "", id: String = "", _ n: Int) -> RoutingDecision {
    let user = users[n & 1023]
    return table.decide(model: model, requestedVersion: version, requestID: id) { source in
        source.header == "x-user-id" ? user : nil
    }
}
measure("unrouted model (default version)") { n in sink &+= decide("digits", n).generation == 0 ? 1 : 0 }
measure("fixed") { n in sink &+= decide("digits-fixed", n).version.utf8.count }
measure("canary, sticky by header") { n in sink &+= decide("digits-sticky", n).version.utf8.count }
measure("canary, random") { n in sink &+= decide("digits-random", n).version.utf8.count }
measure("canary, sticky + 100% shadow") { n in sink &+= decide("digits-shadow", n).shadowVersion?.utf8.count ?? 0 }
measure("explicit version") { n in sink &+= decide("digits-sticky", version: "2", n).version.utf8.count }
measure("bandit ε-greedy + automatic reward") { n in
    let d = decide("digits-egreedy", n)
    d.recordOutcome(succeeded: true, latencyNanoseconds: d.version == "1" ? 1_000_000 : 30_000_000)
}
measure("bandit UCB1 + automatic reward") { n in
    let d = decide("digits-ucb1", n)
    d.recordOutcome(succeeded: true, latencyNanoseconds: d.version == "1" ? 1_000_000 : 30_000_000)
}
measure("bandit Thompson + automatic reward") { n in
    let d = decide("digits-thompson", n)
    d.recordOutcome(succeeded: true, latencyNanoseconds: d.version == "1" ? 1_000_000 : 30_000_000)
}
let ids = (0..<4096).map { "req-\($0)-abcdefgh" }
measure("bandit Thompson, feedback: register id + Report", count: iterations / 4) { n in
    let id = ids[n & 4095]
    _ = decide("digits-feedback", id: id, n)
    sink &+= (try? table.report(requestID: id, reward: 1)) == .applied ? 1 : 0
}
measure("canary + trailer value (cached per snapshot)") { n in
    sink &+= decide("digits-sticky", n).trailer(servedVersion: "1").utf8.count
}
measure("unrouted + trailer value (cached per generation)") { n in
    sink &+= decide("digits", n).trailer(servedVersion: "2").utf8.count
}

// Per-version statistics of one finished call, as the inference service keeps them for ModelStatistics,
// /metrics and rollout gates: counters, the latency and queue-wait histograms, the per-route/code counter.
print("Per-call statistics and metrics bookkeeping:")
let statistics = VersionStatistics()
measure("recordSuccess: counters + 2 histograms + route/code counter + wall clock") { n in
    let elapsed = UInt64(300_000 + (n & 1023) * 1000)
    let outputs = VersionOutputs(
        tensors: [],
        rows: 1,
        queueNanoseconds: elapsed / 4,
        computeNanoseconds: elapsed / 2,
        batchRows: 1
    )
    statistics.recordSuccess(route: .canary, elapsedNanoseconds: elapsed, outputs: outputs)
}
sink &+= Int(statistics.calls(route: .canary, code: 0) & 1)

// Sink bookkeeping for one shadowed call of the demo model: 2 outputs × 10 values, one row.
let logger = Logger(label: "bench")
let layout = OutputLayout(names: ["logits", "probabilities"], elementsPerRow: [10, 10])
let primary: [[Float]] = [(0..<10).map { Float($0) * 0.1 }, (0..<10).map { Float($0) * 0.01 }]
let shadow: [[Float]] = primary.map { $0.map { $0 + 0.001 } }
print("Comparison sink, CPU per shadowed call on the completing threads:")
let memorySink = try ComparisonSink(configuration: SinkConfiguration(), logger: logger)
measure("pair + compare + aggregate (no records)") { n in
    let pair = memorySink.makePair(requestID: ids[n & 4095], model: "digits", layout: layout)
    pair.completePrimary(ComparisonSide(version: "1", latencyNanoseconds: 400_000, result: .success(primary)))
    pair.completeShadow(ComparisonSide(version: "2", latencyNanoseconds: 600_000, result: .success(shadow)))
}
let directory = NSTemporaryDirectory() + "switchyard-routing-bench-\(getpid())"
let diskSink = try ComparisonSink(
    configuration: SinkConfiguration(directory: directory, maxFileBytes: 16 << 20, maxFiles: 2, queueCapacity: 1 << 16),
    logger: logger
)
let diskCount = iterations / 4
measure("pair + compare + aggregate + enqueue record", count: diskCount) { n in
    let pair = diskSink.makePair(requestID: ids[n & 4095], model: "digits", layout: layout)
    pair.completePrimary(ComparisonSide(version: "1", latencyNanoseconds: 400_000, result: .success(primary)))
    pair.completeShadow(ComparisonSide(version: "2", latencyNanoseconds: 600_000, result: .success(shadow)))
}
diskSink.close()
let stats = diskSink.statistics
print(
    "    records: \(stats.recorded) recorded, \(stats.written) written, \(stats.droppedQueueFull) dropped (queue full), "
        + "\(stats.bytesWritten / max(stats.written, 1)) bytes each"
)
let record = ComparisonRecord(
    timestampMilliseconds: 1,
    requestID: "req-1",
    model: "digits",
    primaryVersion: "1",
    shadowVersion: "2",
    primaryLatencyNanoseconds: 400_000,
    shadowLatencyNanoseconds: 600_000,
    primaryError: nil,
    shadowError: nil,
    outputs: [
        OutputComparison(name: "logits", argmaxAgreement: 1, maxAbsDelta: 0.0123, meanAbsDelta: 0.00456),
        OutputComparison(name: "probabilities", argmaxAgreement: 1, maxAbsDelta: 0.000123, meanAbsDelta: 0.0000456),
    ]
)
print("Writer thread (off the request path):")
measure("encode one JSON line", count: iterations / 4) { _ in sink &+= RecordCoding.jsonLine(record).count }
try? FileManager.default.removeItem(atPath: directory)

// Bandit regret: Bernoulli rewards with known rates, mean over seeds.
print("Bandit regret, Σ(best rate − chosen rate), mean over 20 seeds [min … max]:")
func regret(
    _ algorithm: BanditAlgorithm,
    memory: BanditMemory,
    steps: Int,
    seed: UInt64,
    rates: (Int) -> [Double]
) -> (regret: Double, bestShareAtEnd: Double) {
    var bandit = Bandit(arms: rates(0).count, algorithm: algorithm, epsilon: 0.1, memory: memory)
    var generator = SplitMix64(seed: seed)
    var coin = SplitMix64(seed: seed &* 31 &+ 7)
    var total = 0.0
    var bestPulls = 0
    for step in 0..<steps {
        let p = rates(step)
        let arm = bandit.choose(using: &generator)
        let u = Double(coin.next() >> 11) * 0x1.0p-53
        bandit.record(arm: arm, reward: u < p[arm] ? 1 : 0)
        total += p.max()! - p[arm]
        if step >= steps - steps / 10 && p[arm] == p.max()! { bestPulls += 1 }
    }
    return (total, Double(bestPulls) / Double(steps / 10))
}
let scenarios: [(String, Int, BanditMemory, (Int) -> [Double])] = [
    ("rates 0.2/0.5/0.8, 10k calls", 10_000, .unlimited, { _ in [0.2, 0.5, 0.8] }),
    ("rates 0.2/0.5/0.8, 100k calls", quick ? 20_000 : 100_000, .unlimited, { _ in [0.2, 0.5, 0.8] }),
    ("rates 0.45/0.50/0.55, 100k calls", quick ? 20_000 : 100_000, .unlimited, { _ in [0.45, 0.5, 0.55] }),
    (
        "swap at 5k of 10k, discount 0.99", 10_000, .discount(0.99),
        { $0 < 5_000 ? [0.2, 0.5, 0.8] : [0.8, 0.5, 0.2] }
    ),
    ("swap at 5k of 10k, window 300", 10_000, .window(300), { $0 < 5_000 ? [0.2, 0.5, 0.8] : [0.8, 0.5, 0.2] }),
    ("swap at 5k of 10k, no forgetting", 10_000, .unlimited, { $0 < 5_000 ? [0.2, 0.5, 0.8] : [0.8, 0.5, 0.2] }),
]
for (name, steps, memory, rates) in scenarios {
    print("  \(name):")
    for algorithm in BanditAlgorithm.allCases {
        let runs = (1...20).map { regret(algorithm, memory: memory, steps: steps, seed: UInt64($0), rates: rates) }
        let values = runs.map(\.regret)
        let share = runs.map(\.bestShareAtEnd).reduce(0, +) / 20
        print(
            String(
                format: "    %@ regret %8.1f [%7.1f … %7.1f]   best-arm share in the last 10%%: %.3f",
                algorithm.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0),
                values.reduce(0, +) / 20,
                values.min()!,
                values.max()!,
                share
            )
        )
    }
}
if sink == 42 { print("") }
