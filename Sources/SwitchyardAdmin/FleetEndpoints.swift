// Fleet mode: `GET /v1/fleet`, every replica present in the fleet and whether they all run the same routes.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCluster
import SwitchyardCore

extension AdminServer {
    /// `GET /v1/fleet` (fleet mode only; a 404 otherwise).
    func fleetEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/fleet") { _, _ -> Response in
            guard let fleet = server.control.fleet else {
                throw AdminHTTPError(
                    .notFound,
                    "fleet mode is off: this replica has no cluster: section, so it is the whole deployment"
                )
            }
            let replicas: [ReplicaStatus]
            do throws(SwitchyardError) {
                replicas = try await fleet.replicas()
            } catch {
                throw AdminHTTPError(error)
            }
            let generation = replicas.map(\.routeGeneration).max() ?? 0
            return Self.json(
                FleetStatus(
                    replica: fleet.replicaID,
                    generation: generation,
                    converged: replicas.allSatisfy { $0.routeGeneration == generation },
                    replicas: replicas.map(FleetReplica.init)
                )
            )
        }
        return routes
    }
}

extension FleetReplica {
    /// What a replica published about itself.
    init(_ status: ReplicaStatus) {
        self.init(
            replica: status.replica,
            address: status.address,
            build: status.build,
            startedAt: status.startedAt,
            ready: status.ready,
            routeGeneration: status.routeGeneration,
            models: status.models
        )
    }
}
