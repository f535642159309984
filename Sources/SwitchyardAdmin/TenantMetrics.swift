// The tenants' families on /metrics: calls admitted and refused per tenant, by reason, and calls in flight.

import SwitchyardRouting

extension MetricsRenderer {
    /// The tenant families, appended after the others; nothing without a `tenants:` section.
    func renderTenants(_ tenants: TenantAdmission?) -> String {
        guard let tenants else { return "" }
        var out = PrometheusText()
        let snapshots = tenants.snapshots
        out.family(
            "switchyard_tenant_calls_total",
            "counter",
            "Calls by tenant and admission outcome (admitted, rate_limited, concurrency_limited, denied)."
        )
        for snapshot in snapshots {
            for (outcome, count) in [
                ("admitted", snapshot.admitted), ("rate_limited", snapshot.rateLimited),
                ("concurrency_limited", snapshot.concurrencyLimited), ("denied", snapshot.denied),
            ] {
                out.sample("switchyard_tenant_calls_total", [("tenant", snapshot.tenant), ("outcome", outcome)], count)
            }
        }
        out.family("switchyard_tenant_in_flight", "gauge", "Admitted calls of a tenant not yet answered.")
        for snapshot in snapshots {
            out.sample("switchyard_tenant_in_flight", [("tenant", snapshot.tenant)], snapshot.inFlight)
        }
        return out.text
    }
}
