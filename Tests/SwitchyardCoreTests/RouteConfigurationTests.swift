import Testing

@testable import SwitchyardCore

@Suite struct RouteConfigurationTests {
    @Test func aValidCanaryHasNoProblems() {
        let route = RouteConfiguration(
            model: "digits",
            policy: .canary,
            versions: [.init(version: "1", weight: 90), .init(version: "2", weight: 10)],
            sticky: .init(header: "X-User-Id"),
            shadow: .init(version: "2", fraction: 0.5)
        )
        #expect(route.validate(path: "routes[0]").isEmpty)
        #expect(route.sticky?.header == "x-user-id")
    }

    @Test func reportsEveryStructuralProblemWithItsKeyPath() {
        var route = RouteConfiguration(
            model: "",
            policy: .canary,
            versions: [.init(version: "1", weight: -1), .init(version: "1", weight: .nan)],
            sticky: .init(header: "a", parameter: "b"),
            bandit: .init(algorithm: "greedy", epsilon: 2, discount: 0.9, window: 10, reward: "clicks"),
            shadow: .init(version: "", fraction: -0.1)
        )
        route.unknownPolicy = "weighted"
        let problems = route.validate(path: "routes[3]")
        let expected = [
            "routes[3].model: expected a model name, got ''",
            "routes[3].policy: unknown policy 'weighted'; expected one of fixed, canary, bandit",
            "routes[3].versions[0].weight: expected a finite number ≥ 0, got -1.0",
            "routes[3].versions[1].version: version '1' is listed more than once",
            "routes[3].versions[1].weight: expected a finite number ≥ 0, got nan",
            "routes[3].versions: canary weights must sum to more than 0",
            "routes[3].sticky: expected exactly one of 'header' or 'parameter'",
            "routes[3].bandit: applies to policy bandit only, got canary",
            "routes[3].bandit.algorithm: unknown algorithm 'greedy'; expected one of epsilon_greedy, ucb1, thompson",
            "routes[3].bandit.epsilon: expected 0…1, got 2.0",
            "routes[3].bandit: set either 'discount' or 'window', not both",
            "routes[3].bandit.reward: unknown reward 'clicks'; expected one of latency, feedback",
            "routes[3].shadow.fraction: expected 0…1, got -0.1",
            "routes[3].shadow.version: expected a version name, got ''",
        ]
        for message in expected { #expect(problems.contains(message), "missing: \(message)\nin: \(problems)") }
        #expect(problems.count == expected.count, "\(problems)")
    }

    @Test func serverConfigurationValidatesRoutesAndSink() {
        let route = RouteConfiguration(model: "digits", policy: .fixed, versions: [.init(version: "1")])
        let config = ServerConfiguration(
            routes: [route, route],
            sink: SinkConfiguration(
                directory: "",
                maxFileBytes: 10,
                maxFiles: 0,
                queueCapacity: 0,
                shadowMaxHostCPU: 1.5
            )
        )
        #expect(
            config.validate() == [
                "routes[1].model: model 'digits' already has a route (routes[0])",
                "sink.directory: expected a directory path, got ''",
                "sink.max_file_bytes: expected at least 4096, got 10",
                "sink.max_files: expected at least 1, got 0",
                "sink.queue_capacity: expected at least 1, got 0",
                "sink.shadow_max_host_cpu: expected a share of the CPUs in (0, 1], got 1.5",
            ]
        )
    }
}
