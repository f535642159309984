// The routes' fallback family on /metrics: what became of the calls a chosen version failed and a route's fallback
// looked at, by model, failed version, fallback version, failure code and outcome.

import SwitchyardRouting

extension MetricsRenderer {
    /// The fallback families, appended after the others; only the header when no call has fallen back yet.
    func renderFallbacks(_ routing: RoutingTable) -> String {
        var out = PrometheusText()
        out.family(
            "switchyard_fallback_calls_total",
            "counter",
            "Calls the routed version failed that its route's fallback looked at, by outcome (answered, failed, "
                + "no_time, unavailable)."
        )
        let counters = routing.fallbackCounters
        for (key, count) in counters.snapshot {
            out.sample(
                "switchyard_fallback_calls_total",
                [
                    ("model", key.model), ("from", key.from), ("to", key.to), ("code", key.code),
                    ("outcome", key.outcome.rawValue),
                ],
                count
            )
        }
        out.family(
            "switchyard_fallback_counts_dropped_total",
            "counter",
            "Fallback counts not kept because their label sets reached the limit.",
            counters.dropped
        )
        return out.text
    }
}
