// `switchyard fleet status`: the replicas of a fleet as etcd knows them (each one's presence key), the routing
// generation each runs and whether they all run the same one.

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
        }
    }
}
