// The monitor on the admin plane: `GET /v1/drift/{model}` (per version: status, thresholds' verdict, every
// feature's scores and histograms, most drifting first) and the drift and capture metric families.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardModels
import SwitchyardMonitor

extension AdminServer {
    /// `GET /v1/drift/:model` (`?top=N` keeps the N most drifting features of each version).
    func driftEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/drift/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            guard server.registry.model(named: model) != nil else {
                throw AdminHTTPError(.notFound, "model '\(model)' is not in the repository")
            }
            let top = request.uri.queryParameters.get("top").flatMap { Int($0) }
            let reports = server.monitor?.driftReports(model: model) ?? []
            return Self.json(DriftReport(model: model, versions: reports.map { DriftVersion($0, top: top) }))
        }
        return routes
    }
}

extension DriftVersion {
    /// A version's drift report, its features most drifting first (the first `top` of them).
    init(_ report: VersionDriftReport, top: Int?) {
        let scores = report.scores
        var features = zip(scores.features, report.histograms).map { feature, histogram in
            DriftFeature(
                name: feature.name,
                kind: feature.isOutput ? "output" : "input",
                test: feature.test.rawValue,
                psi: feature.psi,
                statistic: feature.statistic,
                pValue: feature.pValue,
                flagged: feature.flagged,
                bins: histogram.bins,
                reference: histogram.reference,
                current: histogram.current
            )
        }
        // Most drifting first: flagged, then the smallest p-value, then the largest PSI.
        features.sort { ($0.flagged ? 0 : 1, $0.pValue, -$0.psi) < ($1.flagged ? 0 : 1, $1.pValue, -$1.psi) }
        if let top { features = Array(features.prefix(top)) }
        self.init(
            version: report.version,
            status: scores.status.rawValue,
            reference: report.referenceSource,
            rowsObserved: scores.rowsObserved,
            windowRows: scores.windowRows,
            referenceRows: scores.referenceRows,
            maxInputPSI: scores.maxInputPSI,
            maxOutputPSI: scores.maxOutputPSI,
            inputsFlagged: scores.inputsFlagged,
            outputsFlagged: scores.outputsFlagged,
            error: report.error,
            observedFraction: report.observedFraction,
            features: features
        )
    }
}

extension MetricsRenderer {
    /// The drift and capture families, appended after the others.
    func renderMonitor(_ monitor: ModelMonitor?) -> String {
        guard let monitor else { return "" }
        var out = PrometheusText()
        let reports = monitor.driftReports
        out.family(
            "switchyard_feature_drift",
            "gauge",
            "Drift of a feature over the current window against the reference, by test (psi, ks, chi2)."
        )
        for report in reports {
            for feature in report.scores.features {
                let labels = [("model", report.model), ("version", report.version), ("feature", feature.name)]
                out.sample("switchyard_feature_drift", labels + [("test", "psi")], feature.psi)
                out.sample("switchyard_feature_drift", labels + [("test", feature.test.rawValue)], feature.statistic)
            }
        }
        out.family("switchyard_drift_status", "gauge", "1 while a version drifts (a feature flagged), else 0.")
        for report in reports {
            out.sample(
                "switchyard_drift_status",
                [("model", report.model), ("version", report.version)],
                report.scores.status == .drifting ? 1 : 0
            )
        }
        out.family(
            "switchyard_drift_observed_fraction",
            "gauge",
            "Share of calls the drift detector observes (drift.fraction, or less within drift.max_cpu_share)."
        )
        for report in reports {
            out.sample(
                "switchyard_drift_observed_fraction",
                [("model", report.model), ("version", report.version)],
                report.observedFraction
            )
        }
        out.family("switchyard_drift_features_flagged", "gauge", "Features flagged in the current window, by kind.")
        out.family("switchyard_drift_max_psi", "gauge", "Largest PSI of a version's features, by kind.")
        for report in reports {
            for (kind, flagged, psi) in [
                ("input", report.scores.inputsFlagged, report.scores.maxInputPSI),
                ("output", report.scores.outputsFlagged, report.scores.maxOutputPSI),
            ] {
                let labels = [("model", report.model), ("version", report.version), ("kind", kind)]
                out.sample("switchyard_drift_features_flagged", labels, flagged)
                out.sample("switchyard_drift_max_psi", labels, psi)
            }
        }
        let statistics = monitor.statistics
        out.family(
            "switchyard_monitor_calls_total",
            "counter",
            "Sampled calls handed to the monitor thread.",
            statistics.accepted
        )
        out.family(
            "switchyard_monitor_dropped_total",
            "counter",
            "Sampled calls or records dropped, by reason.",
            by: "reason",
            [("queue_full", statistics.droppedQueueFull), ("write_failed", statistics.capture.droppedWriteFailed)]
        )
        out.family(
            "switchyard_monitor_queue_depth",
            "gauge",
            "Sampled calls waiting for the monitor thread.",
            statistics.queued
        )
        out.family(
            "switchyard_drift_rows_total",
            "counter",
            "Rows the drift detectors observed.",
            statistics.driftRowsObserved
        )
        out.family(
            "switchyard_capture_records_total",
            "counter",
            "Captured calls written to JSON Lines.",
            statistics.capture.written
        )
        out.family(
            "switchyard_capture_written_bytes_total",
            "counter",
            "Bytes of captured payloads written.",
            statistics.capture.bytesWritten
        )
        out.family(
            "switchyard_capture_write_errors_total",
            "counter",
            "Failed capture writes, opens or removals.",
            statistics.capture.writeErrors
        )
        return out.text
    }
}
