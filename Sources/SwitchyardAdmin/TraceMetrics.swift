// The tracer's families on /metrics: calls traced, spans exported, and spans dropped by reason.

import SwitchyardCore

extension MetricsRenderer {
    /// The tracing families, appended after the others; nothing while tracing is off.
    func renderTracing(_ counters: TraceCounters?) -> String {
        guard let counters else { return "" }
        var out = PrometheusText()
        out.family(
            "switchyard_trace_calls_total",
            "counter",
            "Calls that head sampling chose to trace.",
            counters.callsTraced
        )
        out.family(
            "switchyard_trace_spans_exported_total",
            "counter",
            "Spans the OTLP exporter delivered.",
            counters.spansExported
        )
        out.family(
            "switchyard_trace_dropped_total",
            "counter",
            "Traced calls (queue_full) or spans (processor_full, export_failed) dropped before reaching the collector.",
            by: "reason",
            [
                ("queue_full", counters.droppedQueueFull), ("processor_full", counters.droppedProcessorFull),
                ("export_failed", counters.droppedExportFailed),
            ]
        )
        return out.text
    }
}
