// Tenants on the admin plane: `GET /v1/tenants`, each tenant's admission counters and its usage per model version.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardRouting

extension AdminServer {
    /// `GET /v1/tenants`.
    func tenantEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/tenants") { _, _ -> Response in
            Self.json(TenantsReport(server.tenants))
        }
        return routes
    }
}

extension TenantsReport {
    /// The report of `tenants` (`nil`: no `tenants:` section, no tenant).
    init(_ tenants: TenantAdmission?) {
        self.init(
            enabled: tenants != nil,
            tenants: (tenants?.snapshots ?? []).map { snapshot in
                TenantReport(
                    tenant: snapshot.tenant,
                    weight: snapshot.weight,
                    inFlight: snapshot.inFlight,
                    admitted: snapshot.admitted,
                    rateLimited: snapshot.rateLimited,
                    concurrencyLimited: snapshot.concurrencyLimited,
                    denied: snapshot.denied,
                    usage: snapshot.usage.map { entry in
                        TenantUsage(
                            model: entry.key.model,
                            version: entry.key.version,
                            calls: entry.usage.calls,
                            rows: entry.usage.rows,
                            shed: entry.usage.shed,
                            failed: entry.usage.failed,
                            computeSeconds: Double(entry.usage.computeNanoseconds) / 1e9
                        )
                    },
                    usageDropped: snapshot.usageDropped
                )
            }
        )
    }
}
