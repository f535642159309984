// Probes and metrics: `GET /healthz`, `GET /readyz` (with the reasons when the caller may see them) and
// `GET /metrics` (Prometheus text format).

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCluster
import SwitchyardModels

extension AdminServer {
    /// Liveness, readiness and metrics.
    func probeEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        // Liveness and readiness need no token, so that an HTTP probe needs no secret; without one, beyond
        // loopback, they say only the status (a wrong token is still refused: see AdminAuth).
        routes.get("/healthz") { _, _ -> Response in
            Self.json(HealthResponse())
        }
        routes.get("/readyz") { _, context -> Response in
            if server.isReady() { return Self.json(ReadinessResponse(status: "ready", reasons: [])) }
            if !context.seesDetails {
                return Self.json(ReadinessResponse(status: "not ready", reasons: []), status: .serviceUnavailable)
            }
            // Say why: the versions that failed to load (with the loader's reason), models left without a
            // version; otherwise the gateway is draining.
            var reasons: [String] = []
            for entry in server.registry.models {
                for (version, reason) in entry.failures.sorted(by: { $0.key < $1.key }) {
                    reasons.append("model '\(entry.name)' version \(version) failed to load: \(reason)")
                }
                if entry.versions.isEmpty { reasons.append("model '\(entry.name)' has no loaded version") }
            }
            if reasons.isEmpty { reasons.append("draining: the gateway is shutting down") }
            return Self.json(ReadinessResponse(status: "not ready", reasons: reasons), status: .serviceUnavailable)
        }
        routes.get("/metrics") { _, _ -> Response in
            var text = server.metrics.render(
                registry: server.registry,
                routing: server.control.routing,
                sink: server.sink,
                frontEnd: server.frontEnd(),
                ready: server.isReady(),
                cluster: server.control.fleet?.connection,
                feedback: server.control.fleet?.feedbackCounters
            )
            text += server.metrics.renderMonitor(server.monitor)
            text += server.metrics.renderTenants(server.tenants)
            text += server.metrics.renderFallbacks(server.control.routing)
            text += server.metrics.renderTracing(server.tracing?())
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text))
            )
        }
        return routes
    }
}
