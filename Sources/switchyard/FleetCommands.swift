// `switchyard fleet status`: the replicas of a fleet as etcd knows them (each one's presence key), the routing
// generation each runs and whether they all run the same one.

import ArgumentParser
import Foundation

struct Fleet: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The replicas of a fleet-mode gateway (cluster: in switchyard.yaml).",
        subcommands: [Status.self]
    )

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every replica present, its routing generation, readiness and loaded versions."
        )
        @OptionGroup var options: AdminOptions

        func run() throws {
            let answer = try options.call("GET", "/v1/fleet")
            if options.json { return try options.printJSON(answer) }
            let fleet = answer as? [String: Any] ?? [:]
            let replicas = fleet["replicas"] as? [[String: Any]] ?? []
            let converged = fleet["converged"] as? Bool ?? false
            print(
                "\(replicas.count) replicas, generation \(fleet["generation"] ?? "?"): "
                    + (converged ? "converged" : "not converged")
            )
            for replica in replicas {
                let models = (replica["models"] as? [String: [String]] ?? [:]).sorted { $0.key < $1.key }
                    .map { "\($0.key)@\($0.value.joined(separator: ","))" }.joined(separator: " ")
                print(
                    "  \(replica["replica"] ?? "?")  \(replica["address"] ?? "")  "
                        + "generation=\(replica["route_generation"] ?? "?")  "
                        + "\((replica["ready"] as? Bool ?? false) ? "ready" : "not ready")  \(models)"
                )
            }
        }
    }
}
