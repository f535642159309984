// The JSON a run writes (schema "switchyard-load/1"), read by loadtest/report.py and the comparison
// scripts. Latencies are milliseconds; open-loop latency runs from each request's intended send time.

import SwitchyardCore

/// Latency percentiles in milliseconds.
public struct LatencySummary: Sendable, Codable, Hashable {
    /// Number of recorded values.
    public var count: UInt64
    /// Mean.
    public var mean: Double
    /// Minimum.
    public var min: Double
    /// Median.
    public var p50: Double
    /// 90th percentile.
    public var p90: Double
    /// 99th percentile.
    public var p99: Double
    /// 99.9th percentile.
    public var p999: Double
    /// Maximum.
    public var max: Double
}

/// One point of a latency CDF.
public struct CDFPoint: Sendable, Codable, Hashable {
    /// Percentile, 0–100.
    public var percentile: Double
    /// Latency at that percentile in milliseconds.
    public var latencyMs: Double
}

/// What happened in one reporting interval (by completion time; `offered` by intended send time).
public struct IntervalResult: Sendable, Codable, Hashable {
    /// Seconds from the start of the measured phase to the start of the interval.
    public var t: Double
    /// Requests meant to be sent in the interval.
    public var offered: Int
    /// Requests that finished in the interval, whatever their outcome.
    public var completed: Int
    /// Of those, the OK ones.
    public var ok: Int
    /// Of those, the others.
    public var errors: Int
    /// Completions by outcome (gRPC status name, or a transport outcome such as `RST_STREAM`).
    public var byStatus: [String: Int]
    /// OK completions by the `model_version` the response named.
    public var byVersion: [String: Int]
    /// Latency of the interval's completions (nil when none completed).
    public var latencyMs: LatencySummary?
}

/// Figures about the load generator itself, to tell when it rather than the server is the limit.
public struct HarnessResult: Sendable, Codable, Hashable {
    /// Delay between a request's intended send time and the moment the generator handled it (its own
    /// timeliness), in ms.
    public var schedulingLagMs: LatencySummary
    /// Delay between intended and actual send (scheduling lag plus waiting for a free stream), in ms.
    public var sendDelayMs: LatencySummary
    /// Most requests waiting for a free stream at once.
    public var maxBacklog: Int
    /// Requests dropped because the backlog was full (counted as `DROPPED_BY_CLIENT`).
    public var dropped: Int
    /// CPU seconds the generator used during the measured phase (all threads).
    public var cpuSeconds: Double
    /// Generator CPU per completed request in µs.
    public var cpuPerRequestUs: Double
    /// Generator threads.
    public var threads: Int
    /// Whether the generator was (probably) the bottleneck.
    public var bottleneck: Bool
    /// Why, when it was.
    public var note: String
}

/// The server's CPU use during the measured phase, when its pid was given.
public struct ServerCPUResult: Sendable, Codable, Hashable {
    /// The server's process id.
    public var pid: Int
    /// CPU seconds (user + system, all threads, children not included).
    public var cpuSeconds: Double
    /// CPU per completed request in µs.
    public var cpuPerRequestUs: Double
}

/// Totals over the measured phase.
public struct SummaryResult: Sendable, Codable, Hashable {
    /// Requests meant to be sent.
    public var offered: Int
    /// Requests that finished (any outcome).
    public var completed: Int
    /// OK responses.
    public var ok: Int
    /// Non-OK outcomes.
    public var errors: Int
    /// Requests still unanswered when the run ended (counted as `UNFINISHED`).
    public var unfinished: Int
    /// Offered rate, requests/s.
    public var offeredRate: Double
    /// Answered requests per second (any status; requests dropped or left unfinished are not counted).
    public var throughput: Double
    /// OK completions per second.
    public var okThroughput: Double
    /// Latency of all completions (open loop: from intended send time).
    public var latencyMs: LatencySummary
    /// Latency of OK completions only.
    public var okLatencyMs: LatencySummary
    /// Latency from the actual send time (what a closed-loop tool reports).
    public var serviceLatencyMs: LatencySummary
    /// Completions by outcome.
    public var byStatus: [String: Int]
    /// OK completions by served model version.
    public var byVersion: [String: Int]
    /// The first message seen for each non-OK outcome.
    public var errorMessages: [String: String]
}

/// How the run was set up.
public struct RunSettings: Sendable, Codable, Hashable {
    /// A label for reports.
    public var label: String
    /// host:port.
    public var target: String
    /// The RPC path.
    public var path: String
    /// The model (empty for raw bodies).
    public var model: String
    /// Requested version ("" for the server's default).
    public var version: String
    /// "open" or "closed".
    public var mode: String
    /// Arrival process (open loop).
    public var arrival: String
    /// Measured stages (open loop).
    public var stages: [LoadStage]
    /// Warm-up seconds (discarded).
    public var warmupSeconds: Double
    /// In-flight requests (closed loop).
    public var concurrency: Int
    /// Request limit, if any.
    public var requests: Int?
    /// Connections.
    public var connections: Int
    /// Most concurrent streams per connection.
    public var streamsPerConnection: Int
    /// Generator threads.
    public var threads: Int
    /// Rows per request.
    public var batch: Int
    /// Per-request deadline in ms (0: none).
    public var timeoutMs: Double
    /// Where inputs came from.
    public var input: String
    /// Reporting interval in seconds.
    public var intervalSeconds: Double
}

/// A whole run's results.
public struct LoadResult: Sendable, Codable, Hashable {
    /// Format identifier.
    public var schema = "switchyard-load/1"
    /// How the run was set up.
    public var settings: RunSettings
    /// Wall-clock start (ISO 8601, UTC).
    public var startedAt: String
    /// Length of the measured phase in seconds.
    public var measuredSeconds: Double
    /// Totals.
    public var summary: SummaryResult
    /// Per-interval figures.
    public var intervals: [IntervalResult]
    /// Latency CDF of all completions.
    public var cdf: [CDFPoint]
    /// The generator's own figures.
    public var harness: HarnessResult
    /// The server's CPU use, when its pid was given.
    public var serverCPU: ServerCPUResult?
    /// Admin API calls made during the run (a scenario's actions), in time order.
    public var events: [LoadEvent] = []
}

/// An admin API call made during a run, as the report marks it on the time charts.
@MemberwiseInit
public struct LoadEvent: Sendable, Codable, Hashable {
    /// Seconds from the start of the measured phase when the call was answered.
    public var t: Double
    /// What it did.
    public var label: String
    /// `METHOD path`.
    public var request: String
    /// HTTP status (0 when the call failed to connect).
    public var status: Int
    /// The start of the answer (or the connection error).
    public var answer: String
}
