// Per-thread accumulation of a run's outcomes into HDR histograms (microsecond resolution) and
// per-interval counters; each generator thread owns one recorder, and the run merges them at the end.
// Open-loop latency is measured from the intended send time, so time a request spent waiting — in the
// server's queue or in the generator's backlog — is never hidden (no coordinated omission).

public import Histogram

/// The outcome of a request that is not a gRPC status from the server.
public enum ClientOutcome {
    /// The stream was reset (RST_STREAM) without a gRPC status.
    public static let streamReset = "RST_STREAM"
    /// The connection failed or closed with the request in flight.
    public static let connectionLost = "CONNECTION_LOST"
    /// The response ended without a `grpc-status`.
    public static let missingStatus = "NO_GRPC_STATUS"
    /// The generator's backlog was full, so the request was never sent.
    public static let dropped = "DROPPED_BY_CLIENT"
    /// No answer before the run ended.
    public static let unfinished = "UNFINISHED"

    /// gRPC status names by code.
    public static let statusNames = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The name of a gRPC status code.
    public static func name(ofStatus code: Int) -> String {
        code >= 0 && code < statusNames.count ? statusNames[code] : "STATUS_\(code)"
    }
}

/// Makes a latency histogram in microseconds, up to 1000 s.
func makeHistogram(digits: SignificantDigits = .three) -> Histogram<UInt64> {
    Histogram<UInt64>(
        lowestDiscernibleValue: 1,
        highestTrackableValue: 1_000_000_000,
        numberOfSignificantValueDigits: digits
    )
}

extension Histogram where Count == UInt64 {
    /// Records nanoseconds as microseconds, clamped into the trackable range.
    mutating func recordNanoseconds(_ ns: UInt64) {
        _ = record(Swift.min(Swift.max(ns / 1000, 1), highestTrackableValue))
    }

    /// Percentiles in milliseconds.
    var summary: LatencySummary {
        guard totalCount > 0 else {
            return LatencySummary(count: 0, mean: 0, min: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0)
        }
        func ms(_ us: UInt64) -> Double { Double(us) / 1000 }
        return LatencySummary(
            count: totalCount,
            mean: mean / 1000,
            min: ms(self.min),
            p50: ms(valueAtPercentile(50)),
            p90: ms(valueAtPercentile(90)),
            p99: ms(valueAtPercentile(99)),
            p999: ms(valueAtPercentile(99.9)),
            max: ms(self.max)
        )
    }
}

/// One interval's counters.
struct IntervalRecord {
    var offered = 0
    var completed = 0
    var ok = 0
    var byStatus: [String: Int] = [:]
    var byVersion: [String: Int] = [:]
    var latency = makeHistogram(digits: .two)

    mutating func merge(_ other: IntervalRecord) {
        offered += other.offered
        completed += other.completed
        ok += other.ok
        byStatus.merge(other.byStatus, uniquingKeysWith: +)
        byVersion.merge(other.byVersion, uniquingKeysWith: +)
        latency.add(other.latency)
    }
}

/// Accumulates one thread's outcomes. Times are nanoseconds since the run's start.
public struct RunRecorder: Sendable {
    /// Where the measured phase starts (the end of warm-up).
    public let measureStart: UInt64
    /// Reporting interval length.
    public let intervalNanoseconds: UInt64
    var intervals: [IntervalRecord] = []
    /// All completions, from intended send time.
    public internal(set) var latency = makeHistogram()
    /// OK completions, from intended send time.
    public internal(set) var okLatency = makeHistogram()
    /// All completions, from actual send time.
    public internal(set) var serviceLatency = makeHistogram()
    /// Intended send → handled by the generator.
    public internal(set) var schedulingLag = makeHistogram()
    /// Intended send → actually sent.
    public internal(set) var sendDelay = makeHistogram()
    /// Completions by outcome.
    public internal(set) var byStatus: [String: Int] = [:]
    /// OK completions by version.
    public internal(set) var byVersion: [String: Int] = [:]
    /// First message per non-OK outcome.
    public internal(set) var errorMessages: [String: String] = [:]
    /// Requests meant to be sent in the measured phase.
    public internal(set) var offered = 0
    /// Completions in the measured phase.
    public internal(set) var completed = 0
    /// OK completions in the measured phase.
    public internal(set) var ok = 0
    /// Completions of warm-up requests (not in any figure above).
    public internal(set) var warmupCompleted = 0
    /// The last completion time seen.
    public internal(set) var lastCompletion: UInt64 = 0
    /// Most requests waiting for a stream at once.
    public internal(set) var maxBacklog = 0
    /// Requests dropped because the backlog was full.
    public internal(set) var dropped = 0

    /// Creates a recorder.
    public init(measureStart: UInt64, intervalNanoseconds: UInt64) {
        self.measureStart = measureStart
        self.intervalNanoseconds = max(intervalNanoseconds, 1_000_000)
    }

    private mutating func interval(at time: UInt64) -> Int {
        let index = Int((time &- measureStart) / intervalNanoseconds)
        if index >= intervals.count {
            intervals.reserveCapacity(index + 1)
            while intervals.count <= index { intervals.append(IntervalRecord()) }
        }
        return index
    }

    /// Notes a request meant to be sent at `intended`, handled by the generator at `handled`.
    public mutating func offered(intended: UInt64, handled: UInt64) {
        guard intended >= measureStart else { return }
        offered += 1
        intervals[interval(at: intended)].offered += 1
        schedulingLag.recordNanoseconds(handled &- Swift.min(handled, intended))
    }

    /// Notes a request that went out on the wire.
    public mutating func sent(intended: UInt64, at time: UInt64) {
        guard intended >= measureStart else { return }
        sendDelay.recordNanoseconds(time &- Swift.min(time, intended))
    }

    /// Notes the backlog size.
    public mutating func backlog(_ size: Int) { if size > maxBacklog { maxBacklog = size } }

    /// Notes a finished request.
    /// - Parameters:
    ///   - intended: intended send time (closed loop: the actual one).
    ///   - sent: actual send time (nil when it never went out).
    ///   - done: completion time.
    ///   - outcome: gRPC status name or a `ClientOutcome`.
    ///   - version: the served model version of an OK response.
    ///   - message: the error message, for non-OK outcomes.
    public mutating func completed(
        intended: UInt64,
        sent: UInt64?,
        done: UInt64,
        outcome: String,
        version: String?,
        message: String? = nil
    ) {
        guard intended >= measureStart else {
            warmupCompleted += 1
            return
        }
        if outcome == ClientOutcome.dropped { dropped += 1 }
        completed += 1
        if done > lastCompletion { lastCompletion = done }
        let latencyNs = done &- Swift.min(done, intended)
        latency.recordNanoseconds(latencyNs)
        if let sent { serviceLatency.recordNanoseconds(done &- Swift.min(done, sent)) }
        let i = interval(at: Swift.max(done, measureStart))
        intervals[i].completed += 1
        intervals[i].latency.recordNanoseconds(latencyNs)
        intervals[i].byStatus[outcome, default: 0] += 1
        byStatus[outcome, default: 0] += 1
        if outcome == "OK" {
            ok += 1
            intervals[i].ok += 1
            okLatency.recordNanoseconds(latencyNs)
            let v = version ?? ""
            intervals[i].byVersion[v, default: 0] += 1
            byVersion[v, default: 0] += 1
        } else if let message, !message.isEmpty, errorMessages[outcome] == nil {
            errorMessages[outcome] = message
        }
    }

    /// The p99 latency in µs of one interval, if anything completed in it.
    public func intervalP99(_ index: Int) -> UInt64? {
        guard index >= 0, index < intervals.count, intervals[index].completed > 0 else { return nil }
        return intervals[index].latency.valueAtPercentile(99)
    }

    /// Adds another thread's figures.
    public mutating func merge(_ other: RunRecorder) {
        while intervals.count < other.intervals.count { intervals.append(IntervalRecord()) }
        for (i, record) in other.intervals.enumerated() { intervals[i].merge(record) }
        latency.add(other.latency)
        okLatency.add(other.okLatency)
        serviceLatency.add(other.serviceLatency)
        schedulingLag.add(other.schedulingLag)
        sendDelay.add(other.sendDelay)
        byStatus.merge(other.byStatus, uniquingKeysWith: +)
        byVersion.merge(other.byVersion, uniquingKeysWith: +)
        errorMessages.merge(other.errorMessages) { a, _ in a }
        offered += other.offered
        completed += other.completed
        ok += other.ok
        warmupCompleted += other.warmupCompleted
        lastCompletion = Swift.max(lastCompletion, other.lastCompletion)
        maxBacklog += other.maxBacklog
        dropped += other.dropped
    }

    /// Per-interval results.
    public var intervalResults: [IntervalResult] {
        intervals.enumerated().map { i, r in
            IntervalResult(
                t: Double(UInt64(i) * intervalNanoseconds) / 1e9,
                offered: r.offered,
                completed: r.completed,
                ok: r.ok,
                errors: r.completed - r.ok,
                byStatus: r.byStatus,
                byVersion: r.byVersion,
                latencyMs: r.completed > 0 ? r.latency.summary : nil
            )
        }
    }

    /// The latency CDF of all completions.
    public var cdf: [CDFPoint] {
        guard latency.totalCount > 0 else { return [] }
        var points: [CDFPoint] = []
        for step in latency.percentiles(ticksPerHalfDistance: 5) {
            points.append(CDFPoint(percentile: step.percentileLevelIteratedTo, latencyMs: Double(step.value) / 1000))
            if points.count > 400 { break }
        }
        return points
    }
}
