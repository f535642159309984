// Runs a load test: splits the load over generator threads, starts them together, prints nothing itself
// but hands a progress snapshot to the caller once per interval, then merges the threads' recorders into
// a `LoadResult`. Also the one-off unary call used to fetch a model's metadata before a run.

import Foundation
public import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a run is set up. Defaults are stated per field.
public struct LoadConfiguration: Sendable {
    /// Open loop (arrivals on a schedule) or closed loop (fixed concurrency).
    public enum Mode: Sendable {
        /// Requests are sent at the scheduled times, whatever the server does.
        case open(stages: [LoadStage], arrival: ArrivalProcess)
        /// `concurrency` requests are kept in flight for `duration` seconds (nil: until `requests`).
        case closed(concurrency: Int, duration: Double?)
    }

    /// host:port of the server.
    public var target: String
    /// The RPC path. Default ModelInfer.
    public var path = "/inference.GRPCInferenceService/ModelInfer"
    /// The load shape.
    public var mode: Mode
    /// Seconds of load before measuring (at the first stage's starting rate, or the closed-loop
    /// concurrency); its requests are not in any figure. Default 0.
    public var warmup = 0.0
    /// Most requests to send in the measured phase (nil: no limit).
    public var requests: Int? = nil
    /// TCP connections. Default 4.
    public var connections = 4
    /// Most concurrent streams per connection (also capped by the server's SETTINGS). Default 64.
    public var streamsPerConnection = 64
    /// Generator threads. Default 1.
    public var threads = 1
    /// Per-request deadline in ms, sent as `grpc-timeout`; a request still in the generator's backlog when it
    /// passes ends as DEADLINE_EXCEEDED without being sent. 0 for none. Default 0.
    public var timeoutMs = 0.0
    /// Reporting interval in seconds. Default 1.
    public var interval = 1.0
    /// Seconds to wait for outstanding requests after the last send. Default 5.
    public var drainSeconds = 5.0
    /// Most requests waiting for a free stream per thread before new ones are dropped. Default 100000.
    public var maxBacklog = 100_000
    /// Shortest sleep between open-loop sends, in µs: arrivals due within it are sent together, up to this
    /// late (the lateness counts in their latency). Default 50.
    public var timerResolutionMicroseconds = 50.0
    /// Random seed for Poisson arrivals. Default 1.
    public var seed: UInt64 = 1
    /// Extra request metadata (lower-case names).
    public var metadata: [(String, String)] = []
    /// TLS settings; nil for h2c (cleartext, prior knowledge). Default nil.
    public var tls: ClientTLSOptions? = nil
    /// The server's pid, to report its CPU per request.
    public var serverPID: Int? = nil
    /// What the report calls this run.
    public var label = ""
    /// Model name, version, batch and input source, for the record only.
    public var model = ""
    /// The requested version, for the record.
    public var version = ""
    /// Rows per request, for the record.
    public var batch = 1
    /// Input source, for the record.
    public var inputDescription = ""

    /// Creates a configuration.
    public init(target: String, mode: Mode) {
        self.target = target
        self.mode = mode
    }

    /// Checks every setting, reporting all problems at once.
    public func validate() throws(SwitchyardError) {
        var problems: [String] = []
        switch mode {
        case .open(let stages, _):
            if stages.isEmpty { problems.append("open loop: at least one stage (a rate and a duration) is needed") }
            for (i, stage) in stages.enumerated() {
                do throws(SwitchyardError) { try stage.validate(index: i) } catch { problems.append(error.message) }
            }
        case .closed(let concurrency, let duration):
            if concurrency < 1 { problems.append("concurrency: must be at least 1, got \(concurrency)") }
            if duration == nil && requests == nil {
                problems.append("closed loop: give a duration or a request count")
            }
            if let duration, !(duration > 0) { problems.append("duration: must be positive, got \(duration)") }
            if concurrency > connections * streamsPerConnection {
                problems.append(
                    "concurrency \(concurrency) exceeds connections × streams (\(connections) × \(streamsPerConnection))"
                )
            }
        }
        if connections < 1 { problems.append("connections: must be at least 1, got \(connections)") }
        if streamsPerConnection < 1 { problems.append("streams: must be at least 1, got \(streamsPerConnection)") }
        if threads < 1 { problems.append("threads: must be at least 1, got \(threads)") }
        if warmup < 0 { problems.append("warmup: must not be negative, got \(warmup)") }
        if let requests, requests < 1 { problems.append("requests: must be at least 1, got \(requests)") }
        if timeoutMs < 0 { problems.append("timeout: must not be negative, got \(timeoutMs)") }
        if !(interval >= 0.01) { problems.append("interval: must be at least 0.01 s, got \(interval)") }
        if !problems.isEmpty { throw .invalidArgument(problems.joined(separator: "; ")) }
    }
}

/// A progress snapshot, handed to the caller about once per interval.
public struct LoadProgress: Sendable {
    /// Seconds since the run started (warm-up included).
    public var elapsed: Double
    /// Whether the measured phase has begun.
    public var measuring: Bool
    /// Requests meant to be sent so far.
    public var offered: Int
    /// Requests finished so far.
    public var completed: Int
    /// OK responses so far (measured phase).
    public var ok: Int
    /// Requests in flight.
    public var inFlight: Int
    /// Requests waiting for a free stream.
    public var backlog: Int
    /// Completions per second over the last interval.
    public var rate: Double
    /// p99 latency of the last interval, ms.
    public var p99Ms: Double

    /// A one-line rendering for terminals.
    public var line: String {
        let phase = measuring ? "" : " warm-up"
        return String(
            format: "[%6.1fs%@] %9.0f req/s  done %d  ok %d  in-flight %d  backlog %d  p99 %.2f ms",
            elapsed,
            phase,
            rate,
            completed,
            ok,
            inFlight,
            backlog,
            p99Ms
        )
    }
}

/// Runs one load test.
public final class LoadRunner: Sendable {
    /// The run's settings.
    public let configuration: LoadConfiguration
    private let bodies: [[UInt8]]
    private let stopSignal = StopSignal()

    /// Creates a runner.
    /// - Parameters:
    ///   - configuration: the settings (validated here).
    ///   - bodies: framed request bodies to cycle through.
    public init(configuration: LoadConfiguration, bodies: RequestBodies) throws(SwitchyardError) {
        try configuration.validate()
        guard !bodies.bodies.isEmpty else { throw .invalidArgument("no request bodies to send") }
        self.configuration = configuration
        self.bodies = bodies.bodies
    }

    /// Asks a running test to stop sending (from any thread, e.g. on SIGINT); what was measured is kept.
    public func stop() { stopSignal.request() }

    /// Runs the test on dedicated threads and returns its results.
    /// - Parameters:
    ///   - progress: called on the calling thread about once per interval.
    ///   - started: called once when the load starts (connections are up), with the instant the run's times
    ///     count from; the measured phase begins `warmup` seconds later.
    public func run(
        progress: ((LoadProgress) -> Void)? = nil,
        started: ((MonotonicInstant) -> Void)? = nil
    ) throws(SwitchyardError) -> LoadResult {
        let c = configuration
        let address = try SocketAddress.resolve(c.target)
        let threads = min(c.threads, c.connections)
        var headerList: [(String, String)] = [
            (":method", "POST"), (":scheme", c.tls == nil ? "http" : "https"), (":path", c.path),
            (":authority", c.target),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "switchyard-load"),
        ]
        if c.timeoutMs > 0 { headerList.append(("grpc-timeout", "\(Int((c.timeoutMs * 1000).rounded()))u")) }
        headerList += c.metadata
        let headers = RequestHeaders(headerList)
        let tlsContext = try c.tls.map { options throws(SwitchyardError) in
            try ClientTLSContext(options: options, host: address.host)
        }
        let warmupNs = UInt64(c.warmup * 1e9)
        let intervalNs = UInt64(c.interval * 1e9)

        var plans: [WorkerPlan] = []
        for i in 0..<threads {
            let connections = c.connections / threads + (i < c.connections % threads ? 1 : 0)
            let limit = c.requests.map { $0 / threads + (i < $0 % threads ? 1 : 0) }
            let load: WorkerPlan.Load
            var endTime = UInt64.max
            switch c.mode {
            case .open(let stages, let arrival):
                var share = stages.map {
                    LoadStage(
                        duration: $0.duration,
                        startRate: $0.startRate / Double(threads),
                        endRate: $0.endRate / Double(threads)
                    )
                }
                if c.warmup > 0, let first = share.first {
                    share.insert(.steady(first.startRate, for: c.warmup), at: 0)
                }
                // A request count with warm-up: the warm-up's arrivals come on top of the count.
                let warmupArrivals = c.warmup > 0 ? Int((share[0].expectedRequests).rounded(.up)) : 0
                load = .open(
                    ArrivalSchedule(
                        stages: share,
                        process: arrival,
                        limit: limit.map { $0 + warmupArrivals },
                        seed: c.seed &+ UInt64(i) &* 0x9E37_79B9,
                        phase: Double(i) / Double(threads)
                    )
                )
            case .closed(let concurrency, let duration):
                let mine = concurrency / threads + (i < concurrency % threads ? 1 : 0)
                load = .closed(concurrency: mine, limit: limit)
                if let duration { endTime = warmupNs + UInt64(duration * 1e9) }
            }
            plans.append(
                WorkerPlan(
                    load: load,
                    connections: connections,
                    streamsPerConnection: c.streamsPerConnection,
                    measureStart: warmupNs,
                    endTime: endTime,
                    drainNanoseconds: UInt64(c.drainSeconds * 1e9),
                    intervalNanoseconds: intervalNs,
                    maxBacklog: c.maxBacklog,
                    firstBody: (i * bodies.count) / threads,
                    timerResolutionNanoseconds: UInt64(max(c.timerResolutionMicroseconds, 0) * 1000),
                    deadlineNanoseconds: UInt64(c.timeoutMs * 1e6)
                )
            )
        }

        let lives = plans.map { _ in LiveCounters() }
        let startedAt = ISO8601DateFormatter().string(from: Date())
        var all: [LoadWorker] = []
        let errors = Mutex<[SwitchyardError]>([])
        // Connect everything first, so connection set-up is not part of any latency.
        for (i, plan) in plans.enumerated() {
            let worker = LoadWorker(
                plan: plan,
                address: address,
                headers: headers,
                bodies: bodies,
                live: lives[i],
                stop: stopSignal,
                tls: tlsContext
            )
            try worker.connect()
            all.append(worker)
        }
        let runStart = MonotonicInstant.now()
        started?(runStart)
        let group = DispatchGroup()
        for worker in all {
            group.enter()
            let box = UncheckedBox(worker)
            Thread.detachNewThread {
                do throws(SwitchyardError) { try box.value.run(runStart: runStart) } catch {
                    errors.withLock { $0.append(error) }
                }
                group.leave()
            }
        }

        var cpuAtMeasure: Double? = nil
        var serverAtMeasure: Double? = nil
        var lastCompleted = 0
        var lastTick = runStart
        let tick = min(c.interval, 1.0)
        while group.wait(timeout: .now() + tick) == .timedOut || cpuAtMeasure == nil {
            let now = MonotonicInstant.now()
            let elapsed = Double(now.nanoseconds(since: runStart)) / 1e9
            if cpuAtMeasure == nil && elapsed >= c.warmup {
                cpuAtMeasure = processCPUSeconds()
                serverAtMeasure = c.serverPID.flatMap(serverCPUSeconds)
            }
            if lives.allSatisfy({ $0.finished.load(ordering: .acquiring) }) && cpuAtMeasure != nil { break }
            let completed = lives.reduce(0) { $0 + $1.completed.load(ordering: .relaxed) }
            let dt = Double(now.nanoseconds(since: lastTick)) / 1e9
            progress?(
                LoadProgress(
                    elapsed: elapsed,
                    measuring: elapsed >= c.warmup,
                    offered: lives.reduce(0) { $0 + $1.offered.load(ordering: .relaxed) },
                    completed: completed,
                    ok: lives.reduce(0) { $0 + $1.ok.load(ordering: .relaxed) },
                    inFlight: lives.reduce(0) { $0 + $1.inFlight.load(ordering: .relaxed) },
                    backlog: lives.reduce(0) { $0 + $1.backlog.load(ordering: .relaxed) },
                    rate: dt > 0 ? Double(completed - lastCompleted) / dt : 0,
                    p99Ms: Double(lives.map { $0.lastP99.load(ordering: .relaxed) }.max() ?? 0) / 1000
                )
            )
            lastCompleted = completed
            lastTick = now
        }
        group.wait()
        let cpuEnd = processCPUSeconds()
        let serverEnd = c.serverPID.flatMap(serverCPUSeconds)
        if let error = errors.withLock({ $0.first }) { throw error }

        var recorder = RunRecorder(measureStart: warmupNs, intervalNanoseconds: intervalNs)
        for worker in all { recorder.merge(worker.recorder) }
        return makeResult(
            recorder: recorder,
            threads: threads,
            startedAt: startedAt,
            cpuSeconds: cpuEnd - (cpuAtMeasure ?? 0),
            serverCPU: serverEnd.flatMap { end in serverAtMeasure.map { end - $0 } }
        )
    }

    private func makeResult(
        recorder: RunRecorder,
        threads: Int,
        startedAt: String,
        cpuSeconds: Double,
        serverCPU: Double?
    ) -> LoadResult {
        let c = configuration
        let stages: [LoadStage]
        let mode: String
        let arrival: String
        let concurrency: Int
        var measured: Double
        switch c.mode {
        case .open(let s, let a):
            stages = s
            mode = "open"
            arrival = a.rawValue
            concurrency = 0
            measured = s.reduce(0) { $0 + $1.duration }
        case .closed(let n, let duration):
            stages = []
            mode = "closed"
            arrival = ""
            concurrency = n
            measured = duration ?? 0
        }
        let lastCompletion = Double(recorder.lastCompletion) / 1e9 - c.warmup
        if c.requests != nil || measured == 0 || stopSignal.requested {
            // A count-limited run (or one stopped early) lasts until its last completion.
            measured = max(min(measured == 0 ? .infinity : measured, lastCompletion), 1e-9)
        }
        let completed = recorder.completed
        let unfinished = recorder.byStatus[ClientOutcome.unfinished] ?? 0
        let schedulingP99 = recorder.schedulingLag.summary.p99
        let cpuShare = cpuSeconds / measured
        var notes: [String] = []
        if mode == "open" && schedulingP99 > 5 {
            notes.append(String(format: "sends ran late (p99 scheduling lag %.1f ms)", schedulingP99))
        }
        if cpuShare > 0.9 * Double(threads) {
            notes.append(
                String(
                    format: "generator threads were %.0f%% busy (%d threads)",
                    cpuShare / Double(threads) * 100,
                    threads
                )
            )
        }
        if recorder.dropped > 0 { notes.append("\(recorder.dropped) requests dropped: backlog full") }
        if !notes.isEmpty {
            // Late sends with idle generator threads point at CPU contention (other processes, the server on the
            // same cores) rather than at the generator's own work.
            notes.append(
                String(format: "the generator used %.0f%% of %d CPU(s)", cpuShare * 100, threads)
            )
        }
        let summary = SummaryResult(
            offered: recorder.offered,
            completed: completed,
            ok: recorder.ok,
            errors: completed - recorder.ok,
            unfinished: unfinished,
            offeredRate: Double(recorder.offered) / measured,
            throughput: Double(completed - unfinished - recorder.dropped) / measured,
            okThroughput: Double(recorder.ok) / measured,
            latencyMs: recorder.latency.summary,
            okLatencyMs: recorder.okLatency.summary,
            serviceLatencyMs: recorder.serviceLatency.summary,
            byStatus: recorder.byStatus,
            byVersion: recorder.byVersion,
            errorMessages: recorder.errorMessages
        )
        let settings = RunSettings(
            label: c.label.isEmpty ? "\(mode) \(c.model) \(c.target)" : c.label,
            target: c.target,
            path: c.path,
            model: c.model,
            version: c.version,
            mode: mode,
            arrival: arrival,
            stages: stages,
            warmupSeconds: c.warmup,
            concurrency: concurrency,
            requests: c.requests,
            connections: c.connections,
            streamsPerConnection: c.streamsPerConnection,
            threads: threads,
            batch: c.batch,
            timeoutMs: c.timeoutMs,
            input: c.inputDescription,
            intervalSeconds: c.interval
        )
        let harness = HarnessResult(
            schedulingLagMs: recorder.schedulingLag.summary,
            sendDelayMs: recorder.sendDelay.summary,
            maxBacklog: recorder.maxBacklog,
            dropped: recorder.dropped,
            cpuSeconds: cpuSeconds,
            cpuPerRequestUs: completed > 0 ? cpuSeconds * 1e6 / Double(completed) : 0,
            threads: threads,
            bottleneck: !notes.isEmpty,
            note: notes.joined(separator: "; ")
        )
        return LoadResult(
            settings: settings,
            startedAt: startedAt,
            measuredSeconds: measured,
            summary: summary,
            intervals: recorder.intervalResults,
            cdf: recorder.cdf,
            harness: harness,
            serverCPU: serverCPU.map {
                ServerCPUResult(
                    pid: c.serverPID ?? 0,
                    cpuSeconds: $0,
                    cpuPerRequestUs: completed > 0 ? $0 * 1e6 / Double(completed) : 0
                )
            }
        )
    }
}

/// Moves a thread-confined object to the one thread that will own it.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// CPU seconds (user + system) of this process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
        + Double(usage.ru_stime.tv_usec) / 1e6
}

/// CPU seconds (user + system, all threads) of another process, from /proc/PID/stat.
func serverCPUSeconds(pid: Int) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = text.lastIndex(of: ")")
    else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
