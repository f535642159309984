// The tenants' families on /metrics: calls admitted and refused per tenant, by reason, calls in flight, and what the
// admitted calls used per model version (calls by outcome, rows, and compute time apportioned from their batches).

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
            out.samples(
                "switchyard_tenant_calls_total",
                [("tenant", snapshot.tenant)],
                by: "outcome",
                [
                    ("admitted", snapshot.admitted), ("rate_limited", snapshot.rateLimited),
                    ("concurrency_limited", snapshot.concurrencyLimited), ("denied", snapshot.denied),
                ]
            )
        }
        out.family(
            "switchyard_tenant_unidentified_total",
            "counter",
            "Calls refused because they named no listed tenant and there is no default, or sent an unlisted bearer token.",
            tenants.unidentified
        )
        out.family("switchyard_tenant_in_flight", "gauge", "Admitted calls of a tenant not yet answered.")
        for snapshot in snapshots {
            out.sample("switchyard_tenant_in_flight", [("tenant", snapshot.tenant)], snapshot.inFlight)
        }
        func perVersion(_ name: String, _ help: String, _ value: (TenantAdmission.Usage) -> Double) {
            out.family(name, "counter", help)
            for snapshot in snapshots {
                for entry in snapshot.usage {
                    out.sample(name, Self.usageLabels(snapshot.tenant, entry.key), value(entry.usage))
                }
            }
        }
        perVersion(
            "switchyard_tenant_compute_seconds_total",
            "Compute time charged to a tenant's answered calls: each call's rows × its batch's time / the batch's rows."
        ) { Double($0.computeNanoseconds) / 1e9 }
        out.family(
            "switchyard_tenant_model_calls_total",
            "counter",
            "A tenant's admitted calls by model version and outcome (answered, shed, failed)."
        )
        for snapshot in snapshots {
            for entry in snapshot.usage {
                out.samples(
                    "switchyard_tenant_model_calls_total",
                    Self.usageLabels(snapshot.tenant, entry.key),
                    by: "outcome",
                    [("answered", entry.usage.calls), ("shed", entry.usage.shed), ("failed", entry.usage.failed)]
                )
            }
        }
        perVersion("switchyard_tenant_rows_total", "Rows of a tenant's answered calls by model version.") {
            Double($0.rows)
        }
        out.family(
            "switchyard_tenant_usage_dropped_total",
            "counter",
            "Calls not accounted because the tenant's usage reached its limit of model versions."
        )
        for snapshot in snapshots {
            out.sample("switchyard_tenant_usage_dropped_total", [("tenant", snapshot.tenant)], snapshot.usageDropped)
        }
        return out.text
    }

    private static func usageLabels(_ tenant: String, _ key: TenantAdmission.UsageKey) -> [(String, String)] {
        [("tenant", tenant), ("model", key.model), ("version", key.version)]
    }
}
