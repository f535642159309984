// Route changes through the admin control: validation naming the field, nothing changed on refusal,
// audit entries with old → new and generation, and the state file's round trip.

import Foundation
import SwitchyardAdmin
import SwitchyardCore
import SwitchyardRouting
import Testing

@Suite struct AdminControlTests {
    @Test func weightChangeIsAuditedPersistedAndPublished() throws {
        let workspace = try Workspace()
        let control = try workspace.makeControl()
        let before = control.routing.generation
        let generation = try control.applyLocally(
            .weights(model: "digits", ["1": 50, "2": 50]),
            actor: "ops",
            reason: "even split"
        )
        #expect(generation == before + 1)
        #expect(control.routing.generation == generation)
        #expect(control.routing.route(for: "digits")?.versions.map(\.weight) == [50, 50])

        let entries = try workspace.auditEntries()
        #expect(entries.count == 1)
        let entry = try #require(entries.first)
        #expect(entry.actor == "ops")
        #expect(entry.action == "route.weights")
        #expect(entry.reason == "even split")
        #expect(entry.generation == generation)
        #expect(entry.old.first?.versions.map(\.weight) == [90, 10])
        #expect(entry.new.first?.versions.map(\.weight) == [50, 50])

        let state = try #require(try RouteStateFile(path: workspace.statePath).load())
        #expect(state.routes == control.routing.routes)
        #expect(state.generation == generation)
    }

    @Test(arguments: [
        (["9": 1.0], "weights.9: version '9' is not in the route of 'digits'"),
        (["1": -1.0], "weights.1: expected a finite number ≥ 0, got -1.0"),
        (["1": 0.0, "2": 0.0], "weights: canary weights must sum to more than 0"),
    ])
    func badWeightsAreRefusedAndChangeNothing(weights: [String: Double], message: String) throws {
        let workspace = try Workspace()
        let control = try workspace.makeControl()
        let before = control.routing.generation
        do {
            try control.applyLocally(.weights(model: "digits", weights), actor: "ops", reason: nil)
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains(message), "\(error.message)")
        }
        #expect(control.routing.generation == before)
        #expect(control.routing.route(for: "digits") == canary)
        #expect(!FileManager.default.fileExists(atPath: workspace.statePath))
        #expect(try workspace.auditEntries().isEmpty)
    }

    @Test func unknownModelAndUnknownVersionAreNamed() throws {
        let workspace = try Workspace()
        let control = try workspace.makeControl()
        do {
            try control.applyLocally(
                .put(RouteConfiguration(model: "nope", policy: .fixed, versions: [.init(version: "1")])),
                actor: "ops",
                reason: nil
            )
            Issue.record("expected notFound")
        } catch {
            #expect(error.code == .notFound)
            #expect(error.message == "unknown model 'nope'; available models: digits, ranker")
        }
        do {
            try control.applyLocally(
                .put(RouteConfiguration(model: "digits", policy: .fixed, versions: [.init(version: "7")])),
                actor: "ops",
                reason: nil
            )
            Issue.record("expected invalidArgument")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("route.versions[0].version: model 'digits' has no loaded version '7'"))
        }
        #expect(control.routing.route(for: "digits") == canary)
    }

    @Test func deleteAndShadowAreAudited() throws {
        let workspace = try Workspace()
        let control = try workspace.makeControl()
        let shadowed = try control.applyLocally(
            .shadow(model: "digits", .init(version: "2", fraction: 0.5)),
            actor: "ops",
            reason: nil
        )
        #expect(control.routing.route(for: "digits")?.shadow?.fraction == 0.5)
        let deleted = try control.applyLocally(.delete(model: "digits"), actor: "anonymous", reason: "rollback")
        #expect(deleted == shadowed + 1)
        #expect(control.routing.route(for: "digits") == nil)
        #expect(throws: SwitchyardError.self) {
            try control.applyLocally(.delete(model: "digits"), actor: "ops", reason: nil)
        }
        let entries = try workspace.auditEntries()
        #expect(entries.map(\.action) == ["route.shadow", "route.delete"])
        #expect(entries.last?.new == [])
        #expect(try RouteStateFile(path: workspace.statePath).load()?.routes == [])
    }

    @Test func stateFileIsReplacedWholeAndReadBack() throws {
        let workspace = try Workspace()
        let file = RouteStateFile(path: workspace.statePath)
        #expect(try file.load() == nil)
        try file.save(RouteState(routes: [canary], generation: 3, savedAt: "t"))
        try file.save(RouteState(routes: [], generation: 4, savedAt: "u"))
        #expect(try file.load() == RouteState(routes: [], generation: 4, savedAt: "u"))
        #expect(!FileManager.default.fileExists(atPath: workspace.statePath + ".tmp"))
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: workspace.statePath))
        #expect(throws: SwitchyardError.self) { try file.load() }
    }

    @Test func aChangeTheStateFileCannotHoldIsTakenBackFromTheAuditLog() throws {
        let workspace = try Workspace()
        let routing = try RoutingTable(routes: [canary], catalog: testCatalog)
        let control = AdminControl(
            routing: routing,
            catalog: testCatalog,
            modelNames: { ["digits", "ranker"] },
            audit: try AuditLog(path: workspace.auditPath),
            // A directory that does not exist: every save fails.
            state: RouteStateFile(path: workspace.directory.appendingPathComponent("missing/state.json").path)
        )
        try control.audit(action: "model.load", model: "digits", version: "2", actor: "ops", reason: nil) {}
        #expect(throws: SwitchyardError.self) {
            try control.applyLocally(.weights(model: "digits", ["2": 50]), actor: "ops", reason: nil)
        }
        // A model change that fails is taken back from the log too.
        #expect(throws: SwitchyardError.self) {
            try control.audit(action: "model.unload", model: "digits", version: "1", actor: "ops", reason: nil) {
                () throws(SwitchyardError) in throw .notFound("no such version")
            }
        }
        // Nothing happened: the table is unchanged and the log holds only the earlier, whole entry.
        #expect(routing.route(for: "digits") == canary)
        #expect(try workspace.auditEntries().map(\.action) == ["model.load"])
        let text = try String(contentsOfFile: workspace.auditPath, encoding: .utf8)
        #expect(text.hasSuffix("}\n") && text.split(separator: "\n").count == 1)
    }

    @Test func configurationRefusesAnOpenAdminPortWithoutToken() {
        #expect(AdminConfiguration(listen: "127.0.0.1:8002").validate().isEmpty)
        #expect(
            AdminConfiguration(listen: "0.0.0.0:8002").validate()
                == [
                    "admin.listen: '0.0.0.0:8002' is reachable beyond loopback; set admin.token or SWITCHYARD_ADMIN_TOKEN"
                ]
        )
        #expect(AdminConfiguration(listen: "0.0.0.0:8002", token: "t").validate().isEmpty)
        #expect(AdminConfiguration(listen: "nonsense").validate().first?.hasPrefix("admin.listen: expected") == true)
    }
}
