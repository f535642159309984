// /metrics in the Prometheus text format (0.0.4), rendered at scrape time from the counters the gateway
// already keeps (per-version statistics, pool snapshots, sink aggregates, front-end counters, bandit state),
// so that serving a call pays nothing for metrics.

import Foundation
public import SwitchyardCluster
import SwitchyardCore
public import SwitchyardModels
public import SwitchyardRouting
public import SwitchyardSink
import SwitchyardWorkers
import Synchronization

/// Front-end counters as the admin API sees them (the HTTP/2 front end's statistics, mapped by the caller).
public struct FrontEndCounters: Sendable, Hashable {
    /// Connections open now.
    public var connectionsOpen: Int = 0
    /// Connections accepted since start.
    public var connectionsAccepted: Int = 0
    /// Connections refused at the connection limit.
    public var connectionsRejected: Int = 0
    /// Connections closed with GOAWAY ENHANCE_YOUR_CALM for exceeding a reset or control-frame budget, or stalling.
    public var connectionsThrottled: Int = 0
    /// Connections closed by the handshake or idle timeout.
    public var connectionsTimedOut: Int = 0
    /// Finished gRPC calls by numeric `grpc-status`.
    public var callsByCode: [Int: Int] = [:]
    /// HTTP/2 or TLS protocol errors.
    public var protocolErrors: Int = 0
    /// Responses that arrived after their call had ended.
    public var responsesDropped: Int = 0
    /// Times the listener paused because the process was out of file descriptors.
    public var acceptPauses: Int = 0
    /// Bytes reserved now for request messages still arriving.
    public var bufferedRequestBytes: Int = 0

    /// Creates zeroed counters; the caller sets those it keeps.
    public init() {}
}

/// Writes metric families in the Prometheus text format.
struct PrometheusText {
    private(set) var text = ""

    /// Starts a family with its HELP and TYPE lines.
    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// One sample.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " "
        text += Self.format(value)
        text += "\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        sample(name, labels, Double(value))
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int) {
        sample(name, labels, Double(value))
    }

    /// A family of one sample without labels.
    mutating func family(_ name: String, _ type: String, _ help: String, _ value: Double) {
        family(name, type, help)
        sample(name, [], value)
    }

    mutating func family(_ name: String, _ type: String, _ help: String, _ value: some BinaryInteger) {
        family(name, type, help, Double(value))
    }

    /// A family of one sample per count, `label` naming each count (a counter by outcome, reason or stage).
    mutating func family(
        _ name: String,
        _ type: String,
        _ help: String,
        by label: String,
        _ counts: [(String, some BinaryInteger)]
    ) {
        family(name, type, help)
        samples(name, by: label, counts)
    }

    /// One sample per count, with `labels` and `label` naming the count.
    mutating func samples(
        _ name: String,
        _ labels: [(String, String)] = [],
        by label: String,
        _ counts: [(String, some BinaryInteger)]
    ) {
        for (value, count) in counts { sample(name, labels + [(label, value)], Double(count)) }
    }

    /// A latency histogram's `_bucket`, `_sum` and `_count` samples from `LatencyHistogram` bucket counts.
    mutating func histogram(_ name: String, _ labels: [(String, String)], buckets: [UInt64], sumNanoseconds: UInt64) {
        var cumulative: UInt64 = 0
        for (index, count) in buckets.enumerated() {
            cumulative += count
            let bounds = LatencyHistogram.upperBoundsNanoseconds
            let le = index < bounds.count ? Self.format(Double(bounds[index]) / 1e9) : "+Inf"
            sample(name + "_bucket", labels + [("le", le)], cumulative)
        }
        sample(name + "_sum", labels, Double(sumNanoseconds) / 1e9)
        sample(name + "_count", labels, cumulative)
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        return value.compactDescription
    }
}

/// Renders every metric family of the gateway.
@MemberwiseInit
public struct MetricsRenderer: Sendable {
    /// The build version reported by `switchyard_build_info`.
    public var version: String

    /// The exposition of the current state.
    public func render(
        registry: ModelRegistry,
        routing: RoutingTable,
        sink: ComparisonSink?,
        frontEnd: FrontEndCounters?,
        ready: Bool,
        cluster: FleetConnection? = nil,
        feedback: FleetFeedbackCounters? = nil
    ) -> String {
        var out = PrometheusText()
        out.family("switchyard_build_info", "gauge", "Build information; always 1.")
        out.sample("switchyard_build_info", [("version", version)], 1)
        out.family(
            "switchyard_ready",
            "gauge",
            "1 when every model loaded and the gateway is not draining.",
            ready ? 1 : 0
        )
        out.family(
            "switchyard_route_generation",
            "gauge",
            "Generation of the routing table in force.",
            routing.generation
        )
        if let cluster {
            out.family(
                "switchyard_cluster_connected",
                "gauge",
                "Fleet mode: 1 while the fleet's etcd is reachable and watched; 0: last routes kept, changes refused.",
                cluster.connected ? 1 : 0
            )
        }
        if let feedback { renderFleetFeedback(feedback, into: &out) }
        renderModels(registry, into: &out)
        renderFrontEnd(frontEnd, into: &out)
        renderShadow(sink, into: &out)
        renderBandits(routing, into: &out)
        return out.text
    }

    /// Fleet mode: what became of the `Feedback/Report`s forwarded to peers, and of the peers asked.
    private func renderFleetFeedback(_ feedback: FleetFeedbackCounters, into out: inout PrometheusText) {
        out.family(
            "switchyard_fleet_feedback_forwarded_total",
            "counter",
            "Fleet mode: Feedback/Reports for calls this replica did not route, forwarded to peers, by outcome "
                + "(shed: not forwarded, too many forwards under way).",
            by: "outcome",
            [
                ("applied", feedback.applied), ("late", feedback.late), ("unknown", feedback.unknown),
                ("shed", feedback.shed),
            ]
        )
        out.family(
            "switchyard_fleet_feedback_peers_total",
            "counter",
            "Fleet mode: peers of forwarded Feedback/Reports: asked, skipped (over the per-report cap), failed "
                + "(refused, unreachable or silent past the report's time).",
            by: "result",
            [("asked", feedback.peersAsked), ("skipped", feedback.peersSkipped), ("failed", feedback.peerErrors)]
        )
    }

    private func renderModels(_ registry: ModelRegistry, into out: inout PrometheusText) {
        let versions = registry.models.flatMap { entry in entry.versions.map { (entry, $0, $0.pool.statistics) } }
        func labels(_ version: ModelVersion) -> [(String, String)] {
            [("model", version.model), ("version", version.version)]
        }

        out.family("switchyard_model_version_loaded", "gauge", "1 per loaded version, 0 per version that failed.")
        for entry in registry.models {
            for version in entry.versions {
                out.sample("switchyard_model_version_loaded", labels(version), 1)
            }
            for failed in entry.failures.keys.sorted() {
                out.sample("switchyard_model_version_loaded", [("model", entry.name), ("version", failed)], 0)
            }
        }

        out.family(
            "switchyard_requests_total",
            "counter",
            "Inference calls that reached a model version, by model, version, route (how the version was chosen: "
                + "default, explicit, fixed, canary, bandit) and grpc_code (0 = OK)."
        )
        for (_, version, _) in versions {
            let statistics = version.statistics
            for route in RouteReason.allCases {
                for code in 0...16 {
                    let count = statistics.calls(route: route, code: code)
                    // Only series that counted something (and OK of `default`, so every version has one): 85
                    // zero series per version would bury the ones that matter.
                    guard count > 0 || (code == 0 && route == .default) else { continue }
                    out.sample(
                        "switchyard_requests_total",
                        labels(version) + [("route", route.rawValue), ("grpc_code", String(code))],
                        count
                    )
                }
            }
        }

        // Per version: every call's duration, and the time successful calls waited in the pool's queue. Each family
        // is declared by name here (scripts/check_deploy.py reads the declarations to check the dashboard's queries).
        func histogramSamples(_ name: String, _ read: (VersionStatistics) -> (LatencyHistogram, UInt64)) {
            for (_, version, _) in versions {
                let (counts, sum) = read(version.statistics)
                out.histogram(name, labels(version), buckets: counts.bucketCounts, sumNanoseconds: sum)
            }
        }
        out.family(
            "switchyard_request_duration_seconds",
            "histogram",
            "Time from decode to response of inference calls that reached a pool, successful or failed."
        )
        histogramSamples("switchyard_request_duration_seconds") {
            ($0.latency, $0.counters.successNanoseconds &+ $0.counters.failureNanoseconds)
        }
        out.family(
            "switchyard_queue_wait_seconds",
            "histogram",
            "Time successful calls waited in the pool's queue before their batch ran."
        )
        histogramSamples("switchyard_queue_wait_seconds") { ($0.queueWait, $0.counters.queueNanoseconds) }

        out.family("switchyard_compute_seconds_total", "counter", "Engine time of executed batches, by work class.")
        for (_, version, pool) in versions {
            out.sample(
                "switchyard_compute_seconds_total",
                labels(version) + [("class", "primary")],
                Double(pool.computeNanoseconds) / 1e9
            )
            out.sample(
                "switchyard_compute_seconds_total",
                labels(version) + [("class", "shadow")],
                Double(pool.shadowComputeNanoseconds) / 1e9
            )
        }

        out.family("switchyard_batch_size_rows", "histogram", "Rows per executed primary batch.")
        for (_, version, pool) in versions {
            var bounds: [Int] = []
            var bound = 1
            while bound < pool.batchCounts.count - 1 {
                bounds.append(bound)
                bound *= 2
            }
            if pool.batchCounts.count > 1 { bounds.append(pool.batchCounts.count - 1) }
            var cumulative: UInt64 = 0
            var rows = 0.0
            var next = 0
            for (size, count) in pool.batchCounts.enumerated() {
                rows += Double(size) * Double(count)
                while next < bounds.count && bounds[next] < size {
                    out.sample(
                        "switchyard_batch_size_rows_bucket",
                        labels(version) + [("le", String(bounds[next]))],
                        cumulative
                    )
                    next += 1
                }
                cumulative += count
            }
            while next < bounds.count {
                out.sample(
                    "switchyard_batch_size_rows_bucket",
                    labels(version) + [("le", String(bounds[next]))],
                    cumulative
                )
                next += 1
            }
            out.sample("switchyard_batch_size_rows_bucket", labels(version) + [("le", "+Inf")], cumulative)
            out.sample("switchyard_batch_size_rows_sum", labels(version), rows)
            out.sample("switchyard_batch_size_rows_count", labels(version), cumulative)
        }

        out.family("switchyard_queue_depth", "gauge", "Jobs waiting in the pool's queue now, by work class.")
        for (_, version, pool) in versions {
            out.samples(
                "switchyard_queue_depth",
                labels(version),
                by: "class",
                [("primary", pool.queued), ("shadow", pool.shadowQueued)]
            )
        }

        out.family("switchyard_workers_busy", "gauge", "Workers running a batch now.")
        for (_, version, pool) in versions { out.sample("switchyard_workers_busy", labels(version), pool.busyWorkers) }

        out.family(
            "switchyard_rejected_total",
            "counter",
            "Primary jobs refused or dropped before running, by reason (shed = latency target unreachable, "
                + "expired = deadline passed)."
        )
        for (_, version, pool) in versions {
            out.samples(
                "switchyard_rejected_total",
                labels(version),
                by: "reason",
                [
                    ("queue_full", pool.rejectedQueueFull), ("shed", pool.shed), ("expired", pool.deadlineExceeded),
                    ("cancelled", pool.cancelled), ("shutting_down", pool.rejectedShuttingDown),
                ]
            )
        }

        out.family(
            "switchyard_batches_isolated_total",
            "counter",
            "Failed batches of several jobs re-run one job at a time, so that only the job the engine cannot run fails."
        )
        for (_, version, pool) in versions {
            out.sample("switchyard_batches_isolated_total", labels(version), pool.batchesIsolated)
        }

        out.family("switchyard_shadow_jobs_total", "counter", "Mirrored (shadow) jobs by outcome.")
        for (_, version, pool) in versions {
            out.samples(
                "switchyard_shadow_jobs_total",
                labels(version),
                by: "outcome",
                [("succeeded", pool.shadowSucceeded), ("failed", pool.shadowFailed), ("dropped", pool.shadowDropped)]
            )
        }
    }

    private func renderFrontEnd(_ frontEnd: FrontEndCounters?, into out: inout PrometheusText) {
        guard let frontEnd else { return }
        out.family("switchyard_grpc_calls_total", "counter", "Finished gRPC calls by grpc-status code.")
        for code in frontEnd.callsByCode.keys.sorted() {
            out.sample("switchyard_grpc_calls_total", [("grpc_code", String(code))], frontEnd.callsByCode[code] ?? 0)
        }
        out.family("switchyard_connections_open", "gauge", "HTTP/2 connections open now.", frontEnd.connectionsOpen)
        out.family(
            "switchyard_connections_total",
            "counter",
            "HTTP/2 connections by outcome.",
            by: "outcome",
            [("accepted", frontEnd.connectionsAccepted), ("rejected", frontEnd.connectionsRejected)]
        )
        out.family(
            "switchyard_connections_closed_total",
            "counter",
            "Connections the gateway closed by reason: throttled (a reset or control-frame budget ran out, or the "
                + "client stopped reading), timed_out (handshake or idle timeout).",
            by: "reason",
            [("throttled", frontEnd.connectionsThrottled), ("timed_out", frontEnd.connectionsTimedOut)]
        )
        out.family(
            "switchyard_accept_pauses_total",
            "counter",
            "Listener pauses at the file-descriptor limit.",
            frontEnd.acceptPauses
        )
        out.family(
            "switchyard_buffered_request_bytes",
            "gauge",
            "Bytes reserved for request messages still arriving (limits.max_buffered_request_bytes).",
            frontEnd.bufferedRequestBytes
        )
        out.family(
            "switchyard_protocol_errors_total",
            "counter",
            "HTTP/2 or TLS protocol errors.",
            frontEnd.protocolErrors
        )
        out.family(
            "switchyard_responses_dropped_total",
            "counter",
            "Responses that arrived after their call ended.",
            frontEnd.responsesDropped
        )
    }

    private func renderShadow(_ sink: ComparisonSink?, into out: inout PrometheusText) {
        guard let sink else { return }
        let aggregates = sink.aggregates.sorted { $0.key.description < $1.key.description }
        func labels(_ key: ComparisonKey) -> [(String, String)] {
            [("model", key.model), ("primary_version", key.primaryVersion), ("shadow_version", key.shadowVersion)]
        }
        func perPair(_ name: String, _ type: String, _ help: String, _ count: (ComparisonAggregate) -> UInt64) {
            out.family(name, type, help)
            for (key, aggregate) in aggregates { out.sample(name, labels(key), count(aggregate)) }
        }
        perPair("switchyard_shadow_pairs_total", "counter", "Shadow/primary pairs compared by the sink.", \.pairs)
        perPair(
            "switchyard_shadow_classified_total",
            "counter",
            "Compared pairs with a classification output (the denominator of agreement).",
            \.classified
        )
        perPair(
            "switchyard_shadow_agreements_total",
            "counter",
            "Classified pairs whose argmax agreed on every row.",
            \.agreed
        )
        out.family("switchyard_shadow_errors_total", "counter", "Pairs where one side failed, by side.")
        for (key, aggregate) in aggregates {
            out.samples(
                "switchyard_shadow_errors_total",
                labels(key),
                by: "side",
                [("primary", aggregate.primaryErrors), ("shadow", aggregate.shadowErrors)]
            )
        }
        out.family(
            "switchyard_shadow_divergence",
            "summary",
            "Max |primary − shadow| output difference per compared pair (quantiles within 9%)."
        )
        for (key, aggregate) in aggregates {
            for q in [0.5, 0.9, 0.99] {
                if let value = aggregate.divergence.quantile(q) {
                    out.sample("switchyard_shadow_divergence", labels(key) + [("quantile", "\(q)")], value)
                }
            }
            out.sample("switchyard_shadow_divergence_sum", labels(key), aggregate.divergence.sum)
            out.sample("switchyard_shadow_divergence_count", labels(key), aggregate.divergence.count)
        }
        let statistics = sink.statistics
        out.family(
            "switchyard_sink_records_total",
            "counter",
            "Comparison records by stage.",
            by: "stage",
            [("recorded", statistics.recorded), ("written", statistics.written)]
        )
        out.family(
            "switchyard_sink_dropped_total",
            "counter",
            "Comparison records dropped, by reason.",
            by: "reason",
            [("queue_full", statistics.droppedQueueFull), ("write_failed", statistics.droppedWriteFailed)]
        )
        out.family(
            "switchyard_shadow_mirrors_skipped_total",
            "counter",
            "Calls not mirrored because the host's CPUs were busier than sink.shadow_max_host_cpu.",
            by: "reason",
            [("host_cpu", statistics.mirrorsSkippedHostBusy)]
        )
        out.family(
            "switchyard_sink_queue_depth",
            "gauge",
            "Comparison records waiting for the writer.",
            statistics.queued
        )
        out.family(
            "switchyard_sink_written_bytes_total",
            "counter",
            "Bytes of comparison records written.",
            statistics.bytesWritten
        )
    }

    private func renderBandits(_ routing: RoutingTable, into out: inout PrometheusText) {
        let bandits = routing.routes.compactMap { route in
            routing.banditState(model: route.model).map { (route.model, $0) }
        }
        func perArm(_ name: String, _ type: String, _ help: String, _ value: (BanditArmState) -> Double) {
            out.family(name, type, help)
            for (model, report) in bandits {
                for (version, arm) in zip(report.versions, report.arms) {
                    out.sample(name, [("model", model), ("version", version)], value(arm))
                }
            }
        }
        perArm("switchyard_bandit_pulls_total", "counter", "Times a bandit chose each version.") { Double($0.pulls) }
        perArm("switchyard_bandit_rewards_total", "counter", "Rewards received by each bandit arm.") {
            Double($0.rewards)
        }
        perArm("switchyard_bandit_reward_sum", "gauge", "Effective reward sum of each arm after discounting.") {
            $0.rewardSum
        }
        let feedback = routing.feedbackCounters
        out.family(
            "switchyard_feedback_reports_total",
            "counter",
            "Explicit bandit feedback reports by outcome.",
            by: "outcome",
            [("applied", feedback.applied), ("late", feedback.late), ("unknown", feedback.unknown)]
        )
        out.family(
            "switchyard_feedback_expired_total",
            "counter",
            "Decisions whose feedback never came in time.",
            feedback.expired
        )
    }
}
