// `switchyard fleet status`: the replicas of a fleet as etcd knows them (each one's presence key), the routing
// generation each runs and whether they all run the same one; then the calls per model version and the shadow
// agreement every replica published, per replica and summed.

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The replicas of a fleet-mode gateway (cluster: in switchyard.yaml).",
        subcommands: [Status.self]
    )

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every replica present, its routing generation, readiness and loaded versions."
        )
        @OptionGroup var options: AdminOptions

        func run() async throws {
            guard
                let fleet = try await options.call({ client async throws(AdminCallError) in try await client.fleet() })
            else { return }
            print(
                "\(fleet.replicas.count) replicas, generation \(fleet.generation): "
                    + (fleet.converged ? "converged" : "not converged")
            )
            for replica in fleet.replicas {
                let models = replica.models.sorted { $0.key < $1.key }
                    .map { "\($0.key)@\($0.value.joined(separator: ","))" }.joined(separator: " ")
                print(
                    "  \(replica.replica)  \(replica.address)  "
                        + "generation=\(replica.routeGeneration)  "
                        + "\(replica.ready ? "ready" : "not ready")  \(models)"
                )
            }
            let versions = (fleet.versions ?? []).filter { $0.calls > 0 }
            if !versions.isEmpty { print("calls since each replica started (fleet = sum):") }
            for entry in versions {
                let p99 = entry.p99Milliseconds.map { String(format: "p99 %.2f ms", $0) } ?? "p99 n/a"
                let parts = entry.replicas.map { "\($0.replica) \($0.calls)/\($0.failures) failed" }
                print(
                    "  \(entry.model)@\(entry.version)  fleet \(entry.calls) calls, \(entry.failures) failed, \(p99)  "
                        + parts.joined(separator: ", ")
                )
            }
            let pairs = (fleet.shadow ?? []).filter { $0.compared > 0 }
            if !pairs.isEmpty { print("shadow agreement (fleet = sum):") }
            for pair in pairs {
                let share = pair.agreement.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a"
                let parts = pair.replicas.map { "\($0.replica) \($0.agreed)/\($0.compared)" }
                print(
                    "  \(pair.model) \(pair.primaryVersion)→\(pair.shadowVersion)  fleet \(pair.agreed)/\(pair.compared) "
                        + "(\(share))  " + parts.joined(separator: ", ")
                )
            }
        }
    }
}

/// The fleet views of `models list --fleet` and `shadow report --fleet`, from `GET /v1/fleet`: what each replica
/// publishes (its presence key: loaded versions; its leased aggregates: calls, failures, latency histograms, shadow
/// pairs), per replica and summed.
enum FleetReport {
    /// Per model and version: the replicas that have it loaded, and its calls per replica and summed.
    static func models(_ fleet: FleetStatus) -> [String] {
        var lines = [header(fleet)]
        var loaded: [String: [String: [String]]] = [:]  // model → version → replicas
        for replica in fleet.replicas {
            for (model, versions) in replica.models {
                for version in versions { loaded[model, default: [:]][version, default: []].append(replica.replica) }
            }
        }
        let traffic = fleet.versions ?? []
        let models = Swift.Set(loaded.keys).union(traffic.map(\.model)).sorted()
        if models.isEmpty { lines.append("no models published") }
        for model in models {
            lines.append(model)
            let versions = Swift.Set(loaded[model, default: [:]].keys).union(
                traffic.filter { $0.model == model }.map(\.version)
            ).sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }
            for version in versions {
                let on = loaded[model]?[version]?.sorted() ?? []
                var line = "  version \(version)  loaded on \(on.count)/\(fleet.replicas.count)"
                if on.count < fleet.replicas.count { line += " (\(on.joined(separator: ", ")))" }
                if let entry = traffic.first(where: { $0.model == model && $0.version == version }) {
                    let p99 = entry.p99Milliseconds.map { String(format: "p99 %.2f ms", $0) } ?? "p99 n/a"
                    line += "  fleet succeeded=\(entry.calls - entry.failures) failed=\(entry.failures) \(p99)"
                    let parts = entry.replicas.map { "\($0.replica) \($0.calls - $0.failures)/\($0.failures)" }
                    if !parts.isEmpty { line += "  per replica (succeeded/failed): " + parts.joined(separator: ", ") }
                }
                lines.append(line)
            }
        }
        return lines
    }

    /// Per shadow pair: the agreement summed over the fleet, and each replica's part.
    static func shadow(_ fleet: FleetStatus) -> [String] {
        var lines = [header(fleet)]
        let pairs = fleet.shadow ?? []
        if pairs.isEmpty { lines.append("no shadow comparisons published") }
        for pair in pairs {
            let share = pair.agreement.map { String(format: "%.4f", $0) } ?? "n/a"
            let parts = pair.replicas.map { part in
                let own =
                    part.compared > 0 ? String(format: " (%.4f)", Double(part.agreed) / Double(part.compared)) : ""
                return "\(part.replica) \(part.agreed)/\(part.compared)\(own)"
            }
            lines.append(
                "\(pair.model) \(pair.primaryVersion)→\(pair.shadowVersion)  fleet pairs=\(pair.compared) "
                    + "agreed=\(pair.agreed) agreement=\(share)  per replica (agreed/pairs): "
                    + (parts.isEmpty ? "none" : parts.joined(separator: ", "))
            )
        }
        return lines
    }

    private static func header(_ fleet: FleetStatus) -> String {
        "fleet: \(fleet.replicas.count) replicas (\(fleet.replicas.map(\.replica).joined(separator: ", "))), "
            + "generation \(fleet.generation), \(fleet.converged ? "converged" : "not converged"); "
            + "counts since each replica started"
    }
}
