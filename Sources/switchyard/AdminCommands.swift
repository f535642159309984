// `switchyard routes get|set|weights|delete`, `switchyard models list`, `switchyard shadow report`: clients of
// a running gateway's admin API. Human-readable by default, `--json` prints the API's answer for scripts.

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient
import SwitchyardCore

/// Options shared by the admin API clients.
struct AdminOptions: ParsableArguments {
    @Option(name: .long, help: "Admin API base URL.")
    var admin: String = "http://127.0.0.1:8002"

    @Flag(name: .long, help: "Print the API's JSON answer.")
    var json = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Route changes: apply only if the route has not changed since this generation (as `routes get` showed "
                + "it); otherwise the API answers 409 with the route in force.",
            valueName: "generation"
        )
    )
    var ifGeneration: UInt64?

    /// Makes one typed call. Returns its answer, or `nil` after printing it as JSON (`--json`); an error answer is
    /// printed as `error (HTTP status): message` and exits 1.
    func call<Value: Sendable>(
        _ send: (AdminClient) async throws(AdminCallError) -> AdminReply<Value>
    ) async throws -> Value? {
        let client: AdminClient
        do { client = try AdminClient(baseURL: admin) } catch { throw ValidationError(error.message) }
        let reply: AdminReply<Value>
        do {
            reply = try await send(client)
        } catch {
            switch error.kind {
            case .refused(let status):
                FileHandle.standardError.write(Data("error (HTTP \(status)): \(error.message)\n".utf8))
                throw ExitCode(1)
            case .noAnswer, .undecodable:
                throw ValidationError(error.message)
            }
        }
        if json {
            try printJSON(reply.body)
            return nil
        }
        return reply.value
    }

    /// Prints an answer's JSON as it came, indented with sorted keys: every field, whether this build knows it
    /// or not.
    func printJSON(_ body: Data) throws {
        let object = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// One route as a few human-readable lines.
func describeRoute(_ route: RouteConfiguration) -> String {
    let policy = route.policy.rawValue
    var lines = ["\(route.model)  policy=\(policy)"]
    let total = route.versions.reduce(0.0) { $0 + $1.weight }
    for version in route.versions {
        let weight = version.weight
        let share = route.policy == .canary && total > 0 ? String(format: " (%.1f%%)", 100 * weight / total) : ""
        lines.append("  version \(version.version)  weight=\(format(weight))\(share)")
    }
    if let sticky = route.sticky {
        let sources = [("header", sticky.header), ("parameter", sticky.parameter)]
        lines.append(
            "  sticky: " + sources.compactMap { key, value in value.map { "\(key)=\($0)" } }.joined(separator: " ")
        )
    }
    if let shadow = route.shadow {
        let version = shadow.version ?? "the other version"
        lines.append("  shadow: \(version)  fraction=\(format(shadow.fraction))")
    }
    if let bandit = route.bandit {
        lines.append("  bandit: \(bandit.algorithm)  reward=\(bandit.reward)")
    }
    if let fallback = route.fallback {
        let version = fallback.version(in: route.versions.map(\.version)) ?? fallback.to
        lines.append(
            "  fallback: \(version)\(fallback.to == RouteConfiguration.FallbackSettings.baseline ? " (baseline)" : "")"
                + "  on=\(fallback.on.joined(separator: ","))  deadline_margin_ms=\(format(fallback.deadlineMarginMilliseconds))"
        )
    }
    return lines.joined(separator: "\n")
}

/// A route change's answer: the generation, then the route.
func printChange(_ answer: RouteResponse) {
    print("generation \(answer.generation)")
    if let route = answer.route { print(describeRoute(route)) }
}

private func format(_ value: Double) -> String {
    value.compactDescription
}

/// `version=weight` pairs from the command line.
func parseWeights(_ pairs: [String]) throws -> [String: Double] {
    var weights: [String: Double] = [:]
    for pair in pairs {
        let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, let weight = Double(parts[1]) else {
            throw ValidationError("expected VERSION=WEIGHT (e.g. 2=10), got '\(pair)'")
        }
        weights[parts[0]] = weight
    }
    return weights
}

/// Whether `data` is a JSON object (a route file's shape), without reading its fields.
struct JSONObjectProbe: Decodable {
    @MemberwiseInit(.internal)
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws { _ = try decoder.container(keyedBy: Key.self) }
}

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read or change a running gateway's routes through its admin API.",
        subcommands: [Get.self, Set.self, Weights.self, ShadowSet.self, Delete.self]
    )

    struct ShadowSet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "shadow",
            abstract:
                "Mirror a share of a model's calls to a version: switchyard routes shadow digits 2 --fraction 0.25."
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Argument(help: "The shadow version (default: the route's other version).")
        var version: String?
        @Option(name: .long, help: "Share of calls mirrored, 0…1; 0 stops mirroring.")
        var fraction: Double = 1
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            let shadow = RouteConfiguration.ShadowSettings(version: version, fraction: fraction)
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.setShadow(model: model, shadow, reason: reason, ifGeneration: options.ifGeneration)
                })
            else { return }
            printChange(answer)
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every route, or one model's.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model (default: every routed model).")
        var model: String?

        func run() async throws {
            let generation: UInt64
            let routes: [RouteConfiguration]
            if let model {
                guard
                    let answer = try await options.call({ client async throws(AdminCallError) in
                        try await client.route(model: model)
                    })
                else { return }
                (generation, routes) = (answer.generation, answer.route.map { [$0] } ?? [])
            } else {
                guard
                    let answer = try await options.call({ client async throws(AdminCallError) in
                        try await client.routes()
                    })
                else { return }
                (generation, routes) = (answer.generation, answer.routes)
            }
            print("generation \(generation)")
            if routes.isEmpty && model == nil { print("no routes: every model serves its default version") }
            for route in routes { print(describeRoute(route)) }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or replace a model's route, from a JSON file or from flags.",
            discussion: """
                switchyard routes set digits --policy canary --version 1=90 --version 2=10 --reason "canary 10%"
                switchyard routes set digits --file route.json      (- reads standard input)
                """
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Option(name: .long, help: "A JSON route object (as in GET /v1/routes/MODEL's 'route'); - for stdin.")
        var file: String?
        @Option(name: .long, help: "Policy: fixed, canary or bandit (with --version).")
        var policy: String?
        @Option(name: .customLong("version"), help: "VERSION=WEIGHT, repeatable, in allocation order.")
        var versions: [String] = []
        @Option(name: .long, help: "Shadow version receiving mirrored calls.")
        var shadow: String?
        @Option(name: .long, help: "Share of calls mirrored to --shadow, 0…1.")
        var shadowFraction: Double = 1
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            let answer: RouteResponse?
            if let file {
                // The file goes as it is: the API names any field it refuses.
                let data =
                    file == "-"
                    ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
                guard let data, (try? JSONDecoder().decode(JSONObjectProbe.self, from: data)) != nil else {
                    throw ValidationError("--file \(file): expected a readable JSON object")
                }
                answer = try await options.call { client async throws(AdminCallError) in
                    try await client.putRoute(
                        model: model,
                        json: data,
                        reason: reason,
                        ifGeneration: options.ifGeneration
                    )
                }
            } else {
                guard let policy, !versions.isEmpty else {
                    throw ValidationError("give --file, or --policy with at least one --version VERSION=WEIGHT")
                }
                let request = RouteRequest(
                    policy: policy,
                    versions: try versions.map { pair in
                        let weight = try parseWeights([pair])
                        return RouteConfiguration.VersionWeight(
                            version: weight.keys.first!,
                            weight: weight.values.first!
                        )
                    },
                    shadow: shadow.map { RouteConfiguration.ShadowSettings(version: $0, fraction: shadowFraction) }
                )
                answer = try await options.call { client async throws(AdminCallError) in
                    try await client.putRoute(model: model, request, reason: reason, ifGeneration: options.ifGeneration)
                }
            }
            if let answer { printChange(answer) }
        }
    }

    struct Weights: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the weights of a route's versions: switchyard routes weights digits 1=50 2=50."
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Argument(help: "VERSION=WEIGHT pairs; versions not named keep their weight.")
        var weights: [String]
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            let parsed = try parseWeights(weights)
            guard !parsed.isEmpty else { throw ValidationError("expected at least one VERSION=WEIGHT") }
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.setWeights(
                        model: model,
                        parsed,
                        reason: reason,
                        ifGeneration: options.ifGeneration
                    )
                })
            else { return }
            printChange(answer)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a model's route: its calls go to its default version again."
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.deleteRoute(model: model, reason: reason, ifGeneration: options.ifGeneration)
                })
            else { return }
            print("generation \(answer.generation): route of \(model) removed")
        }
    }
}

struct ModelsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a running gateway's models: versions, readiness, failures."
    )
    @OptionGroup var options: AdminOptions
    @Flag(
        name: .long,
        help: ArgumentHelp(
            "Fleet mode: every replica's loaded versions and calls (from the aggregates each publishes), per replica "
                + "and summed."
        )
    )
    var fleet = false

    func run() async throws {
        if fleet {
            guard let view = try await options.call({ client async throws(AdminCallError) in try await client.fleet() })
            else { return }
            for line in FleetReport.models(view) { print(line) }
            return
        }
        guard let answer = try await options.call({ client async throws(AdminCallError) in try await client.models() })
        else { return }
        for model in answer.models {
            let ready = model.ready ? "ready" : "NOT READY"
            print("\(model.name)  \(ready)  default_version=\(model.defaultVersion ?? "-")")
            for version in model.versions {
                print(
                    "  version \(version.version)  succeeded=\(version.requestsSucceeded) "
                        + "failed=\(version.requestsFailed) queued=\(version.queueDepth)"
                )
            }
            for (version, reason) in model.failures.sorted(by: { $0.key < $1.key }) {
                print("  version \(version)  FAILED: \(reason)")
            }
        }
    }
}

struct Shadow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shadow traffic of a running gateway.",
        subcommands: [Report.self]
    )

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Agreement, divergence and latency of each shadow version against its primary."
        )
        @OptionGroup var options: AdminOptions
        @Flag(
            name: .long,
            help: ArgumentHelp(
                "Fleet mode: the agreement every replica published, per replica and summed (pairs since each "
                    + "replica started)."
            )
        )
        var fleet = false

        func run() async throws {
            if fleet {
                guard
                    let view = try await options.call({ client async throws(AdminCallError) in try await client.fleet()
                    })
                else { return }
                for line in FleetReport.shadow(view) { print(line) }
                return
            }
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.shadowReport()
                })
            else { return }
            if answer.pairs.isEmpty { print("no shadow comparisons yet") }
            for pair in answer.pairs {
                let agreement = pair.agreementRate.map { String(format: "%.4f", $0) } ?? "n/a"
                let p99 = pair.divergenceP99.map { String(format: "%.3g", $0) } ?? "n/a"
                let delta = pair.meanLatencyDeltaMilliseconds.map { String(format: "%+.3f ms", $0) } ?? "n/a"
                print(
                    "\(pair.model) \(pair.primaryVersion)→\(pair.shadowVersion)  "
                        + "pairs=\(pair.pairs) agreement=\(agreement) max|Δ|p99=\(p99) latency Δ=\(delta) "
                        + "errors primary=\(pair.primaryErrors) shadow=\(pair.shadowErrors)"
                )
            }
            if let sink = answer.sink {
                print(
                    "sink: recorded=\(sink.recorded) written=\(sink.written) "
                        + "dropped=\(sink.droppedQueueFull + sink.droppedWriteFailed)"
                )
            }
        }
    }
}

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A running gateway's configuration file.",
        subcommands: [Reload.self]
    )

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read routes from the gateway's --config file; an invalid file keeps the running routes."
        )
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.reloadConfiguration(reason: reason)
                })
            else { return }
            print("generation \(answer.generation)")
            for route in answer.routes { print(describeRoute(route)) }
        }
    }
}
