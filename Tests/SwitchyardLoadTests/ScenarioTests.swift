// Scenario files: every committed scenario parses, and the admin actions of a scenario are read and checked
// with messages that name the file and the action.

import Foundation
import SwitchyardCore
import SwitchyardLoad
import Testing

@Suite struct ScenarioTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("loadtest/scenarios")

    static var committed: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".yaml") }
            .sorted()
    }

    @Test func theCommittedScenariosAreFound() {
        // The parameterised test below would pass with no arguments if the directory were not found.
        for name in ["steady", "canary-shift", "shadow-on-off", "rollout", "bad-canary-rollout"] {
            #expect(Self.committed.contains("\(name).yaml"), "\(name).yaml not found in \(Self.directory.path)")
        }
    }

    @Test(arguments: committed)
    func committedScenarioParses(_ name: String) throws {
        let text = try String(contentsOf: Self.directory.appendingPathComponent(name), encoding: .utf8)
        let scenario = try Scenario.parse(yaml: text, source: name)
        #expect(scenario.name == String(name.dropLast(5)))
        // A scenario's gateway configuration and repository exist where run-scenario.sh looks for them.
        let root = Self.directory.deletingLastPathComponent().deletingLastPathComponent()
        for path in [scenario.gateway, scenario.repository].compactMap({ $0 }) {
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "\(path)")
        }
        for action in scenario.actions ?? [] where action.body != nil {
            // Bodies are JSON objects.
            let object = try JSONSerialization.jsonObject(with: Data(action.body!.utf8))
            #expect(object is [String: Any])
        }
    }

    @Test func actionsAreReadInOrderWithDefaults() throws {
        let scenario = try Scenario.parse(
            yaml: """
                actions:
                  - {at: 5, label: canary 10%, method: PATCH, path: /v1/routes/m/weights, body: '{"weights": {"2": 10}}'}
                  - {at: 1.5, path: /v1/rollouts/m/abort}
                """,
            source: "inline"
        )
        let actions = try #require(scenario.actions)
        #expect(actions.map(\.at) == [5, 1.5])
        #expect(actions[0].method == "PATCH" && actions[0].label == "canary 10%")
        #expect(actions[1].method == nil && actions[1].body == nil)
    }

    @Test(arguments: [
        ("actions:\n  - {at: -1, path: /v1/routes}", "actions[0].at: expected seconds ≥ 0"),
        ("actions:\n  - {at: 1, path: v1/routes}", "actions[0].path: expected an admin API path"),
        ("actions:\n  - {at: 1, method: FETCH, path: /v1/routes}", "actions[0].method: expected GET, POST"),
    ])
    func badActionsAreRefusedWithTheirPosition(_ yaml: String, _ message: String) {
        let error = #expect(throws: SwitchyardError.self) { try Scenario.parse(yaml: yaml, source: "bad.yaml") }
        #expect(error?.message.contains("bad.yaml: " + message) == true, "\(error?.message ?? "")")
    }
}
