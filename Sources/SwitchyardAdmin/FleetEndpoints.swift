// Fleet mode: `GET /v1/fleet`, every replica present in the fleet, whether they all run the same routes, and the
// calls and shadow comparisons every replica published (its leased aggregates), per replica and summed; and
// `POST /v1/fleet/feedback`, where another replica delivers a Feedback/Report for a call this one routed.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCluster
import SwitchyardCore
import SwitchyardModels
import SwitchyardRouting

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
            let replicas: [FleetReplica]
            let aggregates: [String: ReplicaAggregates]
            do throws(SwitchyardError) {
                replicas = try await fleet.replicas()
                aggregates = try await fleet.aggregates()
            } catch {
                throw AdminHTTPError(error)
            }
            let generation = replicas.map(\.routeGeneration).max() ?? 0
            return Self.json(
                FleetStatus(
                    replica: fleet.replicaID,
                    generation: generation,
                    converged: replicas.allSatisfy { $0.routeGeneration == generation },
                    replicas: replicas,
                    versions: Self.fleetVersions(aggregates),
                    shadow: Self.fleetShadow(aggregates)
                )
            )
        }
        routes.post("/v1/fleet/feedback") { request, _ -> Response in
            guard server.control.fleet != nil else {
                throw AdminHTTPError(.notFound, "fleet mode is off: feedback is reported over gRPC (Feedback/Report)")
            }
            let body = try await server.decode(FleetFeedback.self, from: request, path: "feedback")
            let outcome = try server.perform { () throws(SwitchyardError) in
                try server.control.routing.report(requestID: body.requestID, reward: body.reward)
            }
            return Self.json(FleetFeedbackOutcome(outcome: outcome.rawValue))
        }
        return routes
    }
}

extension AdminServer {
    /// Every model version any replica published, with its calls per replica and summed.
    static func fleetVersions(_ aggregates: [String: ReplicaAggregates]) -> [FleetVersionTraffic] {
        var keys = Set<[String]>()
        for published in aggregates.values {
            for (model, versions) in published.versions {
                for version in versions.keys { keys.insert([model, version]) }
            }
        }
        return keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
            var total = FleetVersionCounters()
            var parts: [FleetVersionTraffic.Replica] = []
            for name in aggregates.keys.sorted() {
                guard let counters = aggregates[name]?.versions[key[0]]?[key[1]] else { continue }
                total = total + counters
                parts.append(.init(replica: name, calls: counters.calls, failures: counters.failures))
            }
            return FleetVersionTraffic(
                model: key[0],
                version: key[1],
                calls: total.calls,
                failures: total.failures,
                p99Milliseconds: LatencyHistogram.quantile(0.99, of: total.latency).map { $0 / 1e6 },
                replicas: parts
            )
        }
    }

    /// Every shadow pair any replica published, with its comparisons per replica and summed.
    static func fleetShadow(_ aggregates: [String: ReplicaAggregates]) -> [FleetShadowPair] {
        var keys = Set<[String]>()
        for published in aggregates.values {
            for pair in published.pairs { keys.insert([pair.model, pair.primary, pair.shadow]) }
        }
        return keys.sorted { $0.lexicographicallyPrecedes($1) }.map { key in
            var parts: [FleetShadowPair.Replica] = []
            for name in aggregates.keys.sorted() {
                guard let pair = aggregates[name]?.pairs.first(where: { [$0.model, $0.primary, $0.shadow] == key })
                else { continue }
                parts.append(.init(replica: name, compared: pair.compared, agreed: pair.agreed))
            }
            return FleetShadowPair(
                model: key[0],
                primaryVersion: key[1],
                shadowVersion: key[2],
                compared: parts.reduce(0) { $0 + $1.compared },
                agreed: parts.reduce(0) { $0 + $1.agreed },
                replicas: parts
            )
        }
    }
}
