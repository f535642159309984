// Shared fixtures: a routing table over a catalog of two models (no engines needed), with an admin control
// writing its audit log and state file into a fresh temporary directory.

import Foundation
import Logging
import SwitchyardAdmin
import SwitchyardCore
import SwitchyardModels
import SwitchyardRouting

let testCatalog: @Sendable (String) -> ModelCatalogEntry? = { name in
    switch name {
    case "digits": ModelCatalogEntry(versions: ["1", "2"], latencyTargetMilliseconds: 50)
    case "ranker": ModelCatalogEntry(versions: ["1", "2", "3"], latencyTargetMilliseconds: 20)
    default: nil
    }
}

let canary = RouteConfiguration(
    model: "digits",
    policy: .canary,
    versions: [.init(version: "1", weight: 90), .init(version: "2", weight: 10)]
)

/// A plan from version 1 to version 2 in steps of 30 s through `steps` percent, judged by `gates`.
func rolloutPlan(steps: [Double] = [10, 100], gates: RolloutPlan.Gates) -> RolloutPlan {
    RolloutPlan(baseline: "1", canary: "2", steps: steps, stepSeconds: 30, gates: gates)
}

extension RolloutDecision {
    /// What a hold says, or `nil` for any other decision.
    var holdReason: String? {
        if case .hold(let why) = self { return why }
        return nil
    }

    /// What a rollback says, or `nil` for any other decision.
    var rollBackReason: String? {
        if case .rollBack(let why) = self { return why }
        return nil
    }
}

/// A temporary directory with the admin plane's files.
struct Workspace {
    let directory: URL
    var auditPath: String { directory.appendingPathComponent("audit.jsonl").path }
    var statePath: String { directory.appendingPathComponent("state.json").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-admin-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func makeControl(routes: [RouteConfiguration] = [canary]) throws -> AdminControl {
        AdminControl(
            routing: try RoutingTable(routes: routes, catalog: testCatalog),
            catalog: testCatalog,
            modelNames: { ["digits", "ranker"] },
            audit: try AuditLog(path: auditPath),
            state: RouteStateFile(path: statePath)
        )
    }

    func auditEntries() throws -> [AuditEntry] {
        let text = try String(contentsOfFile: auditPath, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(AuditEntry.self, from: Data($0.utf8)) }
    }

    func makeServer(control: AdminControl, token: String? = nil, listen: String = "127.0.0.1:0") -> AdminServer {
        AdminServer(
            configuration: AdminConfiguration(listen: listen, token: token, tokenName: "ops", maxBodyBytes: 4096),
            control: control,
            registry: ModelRegistry(entries: [], logger: Logger(label: "test")),
            sink: nil,
            isReady: { true },
            frontEnd: {
                var counters = FrontEndCounters()
                counters.callsByCode = [0: 5, 3: 1]
                counters.connectionsOpen = 1
                return counters
            },
            version: "test",
            logger: Logger(label: "test")
        )
    }
}
