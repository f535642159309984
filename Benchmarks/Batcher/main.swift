// Drives a worker pool with open-loop Poisson arrivals against a synthetic engine whose batch time is
// a·rows + b, and prints latency (p50/p99 from the scheduled arrival, so a stalled generator cannot
// hide queueing), goodput, shed share and mean batch size for the adaptive batcher, a fixed 2 ms
// window and no batching. Each figure is the median of several runs.
//
//   swift run -c release --scratch-path .build-x switchyard-batcher-bench [--runs 3] [--seconds 2]
//       [--per-row-us 50] [--per-batch-us 500] [--slo-ms 10] [--max-batch 64] [--workers 1]
//       [--rates 500,1000,...] [--modes adaptive,adaptive-noshed,window,none] [--engine-clock wall|cpu]
//
// With `--engine-clock wall` (the default) a batch takes a·n + b of wall time whatever share of a core
// the worker gets, like an accelerator, so the batching policies are compared on the same service
// times even on a busy machine; with `cpu` it takes a·n + b of the worker's CPU time, like a CPU
// kernel, and slows down when the core is shared.

import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardWorkers
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: Options

struct Options {
    var runs = 3
    var seconds = 2.0
    var perRowMicroseconds = 50.0
    var perBatchMicroseconds = 500.0
    var sloMilliseconds = 10.0
    var maxBatch = 64
    var workers = 1
    var windowMicroseconds = 2_000.0
    var rates: [Double] = [200, 1_000, 1_600, 2_500, 5_000, 10_000, 14_000, 17_000, 25_000]
    var modes = ["adaptive", "adaptive-noshed", "window", "none"]
    var serialRequests = 2_000
    var cpuClock = false

    init(arguments: [String]) {
        var index = 1
        func value() -> String {
            index += 1
            guard index < arguments.count else { fail("\(arguments[index - 1]) needs a value") }
            return arguments[index]
        }
        func number(_ text: String) -> Double {
            guard let number = Double(text) else { fail("expected a number, got '\(text)'") }
            return number
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--runs": runs = Int(number(value()))
            case "--seconds": seconds = number(value())
            case "--per-row-us": perRowMicroseconds = number(value())
            case "--per-batch-us": perBatchMicroseconds = number(value())
            case "--slo-ms": sloMilliseconds = number(value())
            case "--max-batch": maxBatch = Int(number(value()))
            case "--workers": workers = Int(number(value()))
            case "--window-us": windowMicroseconds = number(value())
            case "--rates": rates = value().split(separator: ",").map { number(String($0)) }
            case "--modes": modes = value().split(separator: ",").map(String.init)
            case "--serial": serialRequests = Int(number(value()))
            case "--engine-clock":
                switch value() {
                case "wall": cpuClock = false
                case "cpu": cpuClock = true
                case let other: fail("--engine-clock: expected wall or cpu, got '\(other)'")
                }
            default: fail("unknown option '\(arguments[index])'")
            }
            index += 1
        }
    }
}

enum ProcessInfoLike {
    static let verbose = getenv("BENCH_VERBOSE") != nil
}

func fail(_ message: String) -> Never {
    print("switchyard-batcher-bench: \(message)")
    exit(2)
}

// MARK: Synthetic engine

/// An MLP-shaped engine (784 inputs, 10 outputs) whose batch takes a·rows + b of busy CPU time.
final class SyntheticEngine: InferenceEngine {
    let signature = ModelSignature(
        inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 784])],
        outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 10])]
    )
    let perRow: UInt64
    let perBatch: UInt64
    let cpuClock: Bool

    init(perRow: UInt64, perBatch: UInt64, cpuClock: Bool = false) {
        self.perRow = perRow
        self.perBatch = perBatch
        self.cpuClock = cpuClock
    }

    func makeExecutor() -> any EngineExecutor { Executor(perRow: perRow, perBatch: perBatch, cpuClock: cpuClock) }

    final class Executor: EngineExecutor {
        let perRow: UInt64
        let perBatch: UInt64
        let clock: () -> UInt64
        init(perRow: UInt64, perBatch: UInt64, cpuClock: Bool) {
            self.perRow = perRow
            self.perBatch = perBatch
            if cpuClock {
                clock = { threadCPUNanoseconds() }
            } else {
                clock = { MonotonicInstant.now().nanoseconds }
            }
        }

        func run(
            inputs: [UnsafeBufferPointer<Float>],
            rows: Int,
            outputs: [UnsafeMutableBufferPointer<Float>]
        ) throws(SwitchyardError) {
            let start = clock()
            let cost = perBatch + UInt64(rows) * perRow
            for row in 0..<rows {
                for column in 0..<10 { outputs[0][row * 10 + column] = inputs[0][row * 784 + column] }
            }
            while clock() - start < cost {}
        }
    }
}

func threadCPUNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

// MARK: Load

/// Per-request results written once by the completing thread, read after all have completed.
final class Results: @unchecked Sendable {
    let latency: UnsafeMutablePointer<UInt64>
    let status: UnsafeMutablePointer<UInt8>
    let completedAt: UnsafeMutablePointer<UInt64>
    let done = Atomic<Int>(0)
    let count: Int

    init(count: Int) {
        self.count = count
        latency = .allocate(capacity: count)
        status = .allocate(capacity: count)
        completedAt = .allocate(capacity: count)
    }

    deinit {
        latency.deallocate()
        status.deallocate()
        completedAt.deallocate()
    }
}

struct RunFigures {
    var p50: Double
    var p99: Double
    var goodput: Double
    var shedShare: Double
    var meanBatch: Double
}

func makePool(mode: String, options: Options, engine: SyntheticEngine) -> WorkerPool {
    var configuration = ModelConfiguration(
        maxBatchSize: options.maxBatch,
        workers: options.workers,
        sloMilliseconds: options.sloMilliseconds,
        maxQueueSize: 4096
    )
    let batching: BatchingMode
    let shedding: Bool
    switch mode {
    case "adaptive":
        (batching, shedding) = (.adaptive, true)
    case "adaptive-noshed":
        (batching, shedding) = (.adaptive, false)
    case "window":
        (batching, shedding) = (.fixedWindow(nanoseconds: UInt64(options.windowMicroseconds * 1_000)), false)
    case "none":
        configuration.maxBatchSize = 1
        (batching, shedding) = (.adaptive, false)
    default:
        fail("unknown mode '\(mode)'; expected adaptive, adaptive-noshed, window or none")
    }
    let pool = WorkerPool(
        name: "bench",
        engine: engine,
        configuration: configuration,
        logger: Logger(label: "bench"),
        batching: batching,
        shedding: shedding
    )
    do { try pool.start() } catch { fail("\(error)") }
    return pool
}

/// A seeded exponential stream: arrival offsets in nanoseconds.
func poissonOffsets(rate: Double, seconds: Double, seed: UInt64) -> [UInt64] {
    var state = seed
    var time = 0.0
    var offsets: [UInt64] = []
    while true {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let uniform = (Double(state >> 11) + 0.5) / Double(1 << 53)
        time += -log(uniform) / rate * 1e9
        if time > seconds * 1e9 { break }
        offsets.append(UInt64(time))
    }
    return offsets
}

func sleep(until instant: MonotonicInstant) {
    var time = timespec()
    time.tv_sec = Int(instant.nanoseconds / 1_000_000_000)
    time.tv_nsec = Int(instant.nanoseconds % 1_000_000_000)
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &time, nil)
}

func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))])
}

let input = [Float](repeating: 0.5, count: 784)

func openLoopRun(mode: String, rate: Double, options: Options, engine: SyntheticEngine, seed: UInt64) -> RunFigures {
    let pool = makePool(mode: mode, options: options, engine: engine)
    let offsets = poissonOffsets(rate: rate, seconds: options.seconds, seed: seed)
    let results = Results(count: offsets.count)
    let start = MonotonicInstant.now().advanced(byNanoseconds: 20_000_000)
    var next = 0
    while next < offsets.count {
        let now = MonotonicInstant.now()
        let due = start.advanced(byNanoseconds: offsets[next])
        if due > now {
            // Sleep rather than spin: on a small machine a spinning generator would take the core the
            // worker needs. Late wake-ups only bunch arrivals; latency still counts from the schedule.
            sleep(until: due)
            continue
        }
        // Submit everything due; latency counts from the scheduled arrival.
        while next < offsets.count && start.advanced(byNanoseconds: offsets[next]) <= now {
            let id = next
            let scheduled = start.advanced(byNanoseconds: offsets[id])
            pool.submit(
                InferenceJob(
                    inputs: [input],
                    rows: 1,
                    deadline: nil,
                    completion: { result in
                        let end = MonotonicInstant.now()
                        results.latency[id] = end.nanoseconds(since: scheduled)
                        results.completedAt[id] = end.nanoseconds
                        switch result {
                        case .success: results.status[id] = 0
                        case .failure(let error): results.status[id] = error.code == .unavailable ? 1 : 2
                        }
                        results.done.add(1, ordering: .releasing)
                    }
                )
            )
            next += 1
        }
    }
    while results.done.load(ordering: .acquiring) < offsets.count { usleep(1_000) }
    let stats = pool.statistics
    pool.shutdown()

    // Skip the first 10 % of the run (the cost model warms up in its first batches).
    let warm = UInt64(options.seconds * 0.1 * 1e9)
    var latencies: [UInt64] = []
    var measured = 0
    var shed = 0
    var lastCompletion: UInt64 = 0
    for id in 0..<offsets.count where offsets[id] >= warm {
        measured += 1
        if results.status[id] == 0 {
            latencies.append(results.latency[id])
            lastCompletion = max(lastCompletion, results.completedAt[id])
        } else {
            shed += 1
        }
    }
    latencies.sort()
    let window = Double(lastCompletion - (start.nanoseconds + warm)) / 1e9
    return RunFigures(
        p50: percentile(latencies, 0.5) / 1e6,
        p99: percentile(latencies, 0.99) / 1e6,
        goodput: Double(latencies.count) / max(window, 1e-9),
        shedShare: Double(shed) / Double(max(1, measured)),
        meanBatch: stats.meanBatchRows
    )
}

/// One request in flight at a time: the low-load latency floor of each mode.
func serialRun(mode: String, options: Options, engine: SyntheticEngine) -> RunFigures {
    let pool = makePool(mode: mode, options: options, engine: engine)
    var latencies: [UInt64] = []
    let done = Atomic<Bool>(false)
    for _ in 0..<options.serialRequests {
        done.store(false, ordering: .relaxed)
        let start = MonotonicInstant.now()
        pool.submit(
            InferenceJob(
                inputs: [input],
                rows: 1,
                deadline: nil,
                completion: { _ in done.store(true, ordering: .releasing) }
            )
        )
        while !done.load(ordering: .acquiring) { sched_yield() }
        latencies.append(MonotonicInstant.now().nanoseconds(since: start))
        // A short think time, as a lone client would have.
        usleep(200)
    }
    let stats = pool.statistics
    pool.shutdown()
    latencies.sort()
    return RunFigures(
        p50: percentile(latencies, 0.5) / 1e6,
        p99: percentile(latencies, 0.99) / 1e6,
        goodput: 0,
        shedShare: 0,
        meanBatch: stats.meanBatchRows
    )
}

/// Jobs whose deadline passes while a 50 ms batch runs: how late after its deadline each is answered.
func expiryRun(options: Options) -> (p50: Double, p99: Double, max: Double) {
    let slow = SyntheticEngine(perRow: 0, perBatch: 50_000_000)
    // One worker, so that nothing runs the queued jobs before they expire.
    var single = options
    single.workers = 1
    let pool = makePool(mode: "adaptive", options: single, engine: slow)
    let count = 200
    let results = Results(count: count)
    var deadlines: [MonotonicInstant] = []
    for round in 0..<4 {
        // One job occupies the worker (once the previous one is done); the rest expire behind it.
        while pool.statistics.busyWorkers > 0 || pool.statistics.queued > 0 { usleep(1_000) }
        pool.submit(InferenceJob(inputs: [input], rows: 1, deadline: nil, completion: { _ in }))
        while pool.statistics.busyWorkers == 0 { usleep(100) }
        for index in 0..<(count / 4) {
            let id = round * (count / 4) + index
            let deadline = MonotonicInstant.now().advanced(byNanoseconds: UInt64(1_000_000 + index * 700_000))
            deadlines.append(deadline)
            pool.submit(
                InferenceJob(
                    inputs: [input],
                    rows: 1,
                    deadline: deadline,
                    completion: { result in
                        if case .failure(let error) = result, error.code == .deadlineExceeded {
                            results.status[id] = 0
                        } else {
                            results.status[id] = 1
                        }
                        results.completedAt[id] = MonotonicInstant.now().nanoseconds
                        results.done.add(1, ordering: .releasing)
                    }
                )
            )
        }
        while results.done.load(ordering: .acquiring) < (round + 1) * (count / 4) { usleep(1_000) }
    }
    pool.shutdown()
    let late = (0..<count).map { Double(results.completedAt[$0] &- deadlines[$0].nanoseconds) / 1e6 }
    if ProcessInfoLike.verbose {
        for id in 0..<count { print(id, results.status[id], late[id]) }
    }
    let sorted = late.sorted()
    return (sorted[count / 2], sorted[count * 99 / 100], sorted[count - 1])
}

/// Nanoseconds per batching decision and per submission into a pool whose worker is busy, the two
/// costs paid per request on the hot path.
func decisionCost(options: Options) -> (decide: Double, submit: Double) {
    var scheduler = BatchScheduler(
        settings: .init(maxBatchRows: options.maxBatch, sloNanoseconds: 10_000_000, workers: 1)
    )
    for rows in [1, 2, 4, 8, 16, 32, 64, 3, 12, 48] {
        scheduler.recordBatch(rows: rows, nanoseconds: UInt64(rows) * 50_000 + 500_000)
    }
    var time: UInt64 = 1_000_000_000
    for _ in 0..<2_000 {
        time += 100_000
        scheduler.recordArrival(rows: 1, at: MonotonicInstant(nanoseconds: time))
    }
    let calls = 1_000_000
    var dispatched = 0
    let start = MonotonicInstant.now()
    for index in 0..<calls {
        let now = MonotonicInstant(nanoseconds: time + UInt64(index % 1_000))
        let queue = BatchScheduler.QueueState(jobs: 1 + index % 8, rows: 1 + index % 8, oldestEnqueuedAt: now)
        if case .dispatch = scheduler.decide(now: now, queue: queue, workers: .init(idle: 1)) { dispatched += 1 }
    }
    let decide = Double(MonotonicInstant.now().nanoseconds(since: start)) / Double(calls)
    precondition(dispatched >= 0)

    let busy = SyntheticEngine(perRow: 0, perBatch: 1_000_000_000)
    var configuration = options
    configuration.workers = 1
    let pool = makePool(mode: "adaptive-noshed", options: configuration, engine: busy)
    pool.submit(InferenceJob(inputs: [input], rows: 1, deadline: nil, completion: { _ in }))
    while pool.statistics.busyWorkers == 0 { usleep(100) }
    let jobs = 4_000
    let submitStart = MonotonicInstant.now()
    for _ in 0..<jobs { pool.submit(InferenceJob(inputs: [input], rows: 1, deadline: nil, completion: { _ in })) }
    let submit = Double(MonotonicInstant.now().nanoseconds(since: submitStart)) / Double(jobs)
    pool.shutdown()
    return (decide, submit)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted[sorted.count / 2]
}

func medianFigures(_ runs: [RunFigures]) -> RunFigures {
    RunFigures(
        p50: median(runs.map(\.p50)),
        p99: median(runs.map(\.p99)),
        goodput: median(runs.map(\.goodput)),
        shedShare: median(runs.map(\.shedShare)),
        meanBatch: median(runs.map(\.meanBatch))
    )
}

func format(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}

// MARK: Main

let options = Options(arguments: CommandLine.arguments)
let engine = SyntheticEngine(
    perRow: UInt64(options.perRowMicroseconds * 1_000),
    perBatch: UInt64(options.perBatchMicroseconds * 1_000),
    cpuClock: options.cpuClock
)
let batchOne = options.perRowMicroseconds + options.perBatchMicroseconds
let batchFull = options.perRowMicroseconds * Double(options.maxBatch) + options.perBatchMicroseconds
print(
    "synthetic engine: \(options.perRowMicroseconds) µs/row + \(options.perBatchMicroseconds) µs/batch; "
        + "capacity \(format(1e6 * Double(options.workers) / batchOne, 0))/s unbatched, "
        + "\(format(1e6 * Double(options.workers * options.maxBatch) / batchFull, 0))/s at batch \(options.maxBatch); "
        + "workers \(options.workers), slo_ms \(options.sloMilliseconds), runs \(options.runs) × \(options.seconds) s, "
        + "engine clock \(options.cpuClock ? "cpu" : "wall"), median shown"
)
print("")
print("one request in flight (closed loop, \(options.serialRequests) requests):")
print("| mode | p50 ms | p99 ms | mean batch |")
print("|---|---|---|---|")
for mode in options.modes {
    let figures = medianFigures((0..<options.runs).map { _ in serialRun(mode: mode, options: options, engine: engine) })
    print("| \(mode) | \(format(figures.p50, 3)) | \(format(figures.p99, 3)) | \(format(figures.meanBatch, 2)) |")
}
print("")
let cost = decisionCost(options: options)
print(
    "hot-path cost: \(format(cost.decide, 0)) ns per batching decision (warm, 10 000 rows/s), "
        + "\(format(cost.submit, 0)) ns per accepted submission (job creation included)"
)
print("")
let expiry = expiryRun(options: options)
print(
    "deadline expiry while a 50 ms batch runs (200 jobs): answered \(format(expiry.p50, 3)) ms (p50), "
        + "\(format(expiry.p99, 3)) ms (p99), \(format(expiry.max, 3)) ms (max) after the deadline"
)
print("")
print("open-loop Poisson arrivals (latency from scheduled arrival; goodput = successful requests/s):")
print("| mode | offered /s | p50 ms | p99 ms | goodput /s | rejected | mean batch |")
print("|---|---|---|---|---|---|---|")
for mode in options.modes {
    for rate in options.rates {
        let runs = (0..<options.runs).map { run in
            openLoopRun(mode: mode, rate: rate, options: options, engine: engine, seed: UInt64(run + 1) * 7_919)
        }
        let figures = medianFigures(runs)
        print(
            "| \(mode) | \(format(rate, 0)) | \(format(figures.p50, 2)) | \(format(figures.p99, 2)) | "
                + "\(format(figures.goodput, 0)) | \(format(figures.shedShare * 100, 1)) % | "
                + "\(format(figures.meanBatch, 1)) |"
        )
        fflush(nil)
    }
}
