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
