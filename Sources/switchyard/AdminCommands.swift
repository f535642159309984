// `switchyard routes get|set|weights|delete`, `switchyard models list`, `switchyard shadow report`: clients of
// a running gateway's admin API. Human-readable by default, `--json` prints the API's answer for scripts.

import ArgumentParser
import Foundation
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

    /// Sends one request; returns the decoded JSON object, or exits with the API's error message.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil, reason: String? = nil) throws -> Any {
        let answer: AdminClient.Answer
        do {
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
            let guarded = method != "GET" && path.hasPrefix("/v1/routes")
            let headers = guarded ? ifGeneration.map { [(name: "If-Match", value: "\"\($0)\"")] } ?? [] : []
            answer = try AdminClient(baseURL: admin).send(method, path, body: data, reason: reason, headers: headers)
        } catch let error as SwitchyardError {
            throw ValidationError(error.message)
        }
        guard (200..<300).contains(answer.status) else {
            let message = answer.body.isEmpty ? "no answer" : answer.errorMessage
            FileHandle.standardError.write(Data("error (HTTP \(answer.status)): \(message)\n".utf8))
            throw ExitCode(1)
        }
        guard let object = try? JSONSerialization.jsonObject(with: answer.body, options: [.fragmentsAllowed]) else {
            throw ValidationError("\(method) \(admin)\(path): the answer is not JSON")
        }
        return object
    }

    /// Prints `object` as JSON.
    func printJSON(_ object: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}

/// One route as a few human-readable lines.
func describeRoute(_ route: [String: Any]) -> String {
    let model = route["model"] as? String ?? "?"
    let policy = route["policy"] as? String ?? "?"
    var lines = ["\(model)  policy=\(policy)"]
    let versions = route["versions"] as? [[String: Any]] ?? []
    let total = versions.reduce(0.0) { $0 + (($1["weight"] as? Double) ?? 0) }
    for version in versions {
        let weight = version["weight"] as? Double ?? 0
        let share = policy == "canary" && total > 0 ? String(format: " (%.1f%%)", 100 * weight / total) : ""
        lines.append("  version \(version["version"] as? String ?? "?")  weight=\(format(weight))\(share)")
    }
    if let sticky = route["sticky"] as? [String: Any] {
        lines.append("  sticky: " + sticky.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))
    }
    if let shadow = route["shadow"] as? [String: Any] {
        let version = shadow["version"] as? String ?? "the other version"
        lines.append("  shadow: \(version)  fraction=\(format(shadow["fraction"] as? Double ?? 0))")
    }
    if let bandit = route["bandit"] as? [String: Any] {
        lines.append("  bandit: \(bandit["algorithm"] as? String ?? "?")  reward=\(bandit["reward"] as? String ?? "?")")
    }
    return lines.joined(separator: "\n")
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

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read or change a running gateway's routes through its admin API.",
        subcommands: [Get.self, Set.self, Weights.self, ShadowSet.self, Delete.self]
    )

    struct ShadowSet: ParsableCommand {
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

        func run() throws {
            var body: [String: Any] = ["fraction": fraction]
            if let version { body["version"] = version }
            let answer = try options.call("PUT", "/v1/routes/\(model)/shadow", body: body, reason: reason)
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            print("generation \(object["generation"] ?? "?")")
            if let route = object["route"] as? [String: Any] { print(describeRoute(route)) }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every route, or one model's.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model (default: every routed model).")
        var model: String?

        func run() throws {
            let answer = try options.call("GET", model.map { "/v1/routes/\($0)" } ?? "/v1/routes")
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            print("generation \(object["generation"] ?? "?")")
            let routes = (object["routes"] as? [[String: Any]]) ?? [(object["route"] as? [String: Any]) ?? [:]]
            if routes.isEmpty { print("no routes: every model serves its default version") }
            for route in routes { print(describeRoute(route)) }
        }
    }

    struct Set: ParsableCommand {
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

        func run() throws {
            var body: [String: Any]
            if let file {
                let data =
                    file == "-"
                    ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: file)
                guard let data, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw ValidationError("--file \(file): expected a readable JSON object")
                }
                body = object
            } else {
                guard let policy, !versions.isEmpty else {
                    throw ValidationError("give --file, or --policy with at least one --version VERSION=WEIGHT")
                }
                body = ["policy": policy]
                body["versions"] = try versions.map { pair -> [String: Any] in
                    let weight = try parseWeights([pair])
                    return ["version": weight.keys.first!, "weight": weight.values.first!]
                }
                if let shadow { body["shadow"] = ["version": shadow, "fraction": shadowFraction] }
            }
            let answer = try options.call("PUT", "/v1/routes/\(model)", body: body, reason: reason)
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            print("generation \(object["generation"] ?? "?")")
            if let route = object["route"] as? [String: Any] { print(describeRoute(route)) }
        }
    }

    struct Weights: ParsableCommand {
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

        func run() throws {
            let parsed = try parseWeights(weights)
            guard !parsed.isEmpty else { throw ValidationError("expected at least one VERSION=WEIGHT") }
            let answer = try options.call(
                "PATCH",
                "/v1/routes/\(model)/weights",
                body: ["weights": parsed],
                reason: reason
            )
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            print("generation \(object["generation"] ?? "?")")
            if let route = object["route"] as? [String: Any] { print(describeRoute(route)) }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a model's route: its calls go to its default version again."
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() throws {
            let answer = try options.call("DELETE", "/v1/routes/\(model)", reason: reason)
            if options.json { return try options.printJSON(answer) }
            print("generation \((answer as? [String: Any])?["generation"] ?? "?"): route of \(model) removed")
        }
    }
}

struct ModelsList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List a running gateway's models: versions, readiness, failures."
    )
    @OptionGroup var options: AdminOptions

    func run() throws {
        let answer = try options.call("GET", "/v1/models")
        if options.json { return try options.printJSON(answer) }
        for model in (answer as? [String: Any])?["models"] as? [[String: Any]] ?? [] {
            let ready = model["ready"] as? Bool == true ? "ready" : "NOT READY"
            print("\(model["name"] as? String ?? "?")  \(ready)  default_version=\(model["default_version"] ?? "-")")
            for version in model["versions"] as? [[String: Any]] ?? [] {
                print(
                    "  version \(version["version"] ?? "?")  succeeded=\(version["requests_succeeded"] ?? 0) "
                        + "failed=\(version["requests_failed"] ?? 0) queued=\(version["queue_depth"] ?? 0)"
                )
            }
            for (version, reason) in (model["failures"] as? [String: String] ?? [:]).sorted(by: { $0.key < $1.key }) {
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

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Agreement, divergence and latency of each shadow version against its primary."
        )
        @OptionGroup var options: AdminOptions

        func run() throws {
            let answer = try options.call("GET", "/v1/shadow/report")
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            let pairs = object["pairs"] as? [[String: Any]] ?? []
            if pairs.isEmpty { print("no shadow comparisons yet") }
            for pair in pairs {
                let agreement = (pair["agreement_rate"] as? Double).map { String(format: "%.4f", $0) } ?? "n/a"
                let p99 = (pair["divergence_p99"] as? Double).map { String(format: "%.3g", $0) } ?? "n/a"
                let delta = (pair["mean_latency_delta_ms"] as? Double).map { String(format: "%+.3f ms", $0) } ?? "n/a"
                print(
                    "\(pair["model"] ?? "?") \(pair["primary_version"] ?? "?")→\(pair["shadow_version"] ?? "?")  "
                        + "pairs=\(pair["pairs"] ?? 0) agreement=\(agreement) max|Δ|p99=\(p99) latency Δ=\(delta) "
                        + "errors primary=\(pair["primary_errors"] ?? 0) shadow=\(pair["shadow_errors"] ?? 0)"
                )
            }
            if let sink = object["sink"] as? [String: Any] {
                print(
                    "sink: recorded=\(sink["recorded"] ?? 0) written=\(sink["written"] ?? 0) "
                        + "dropped=\((sink["dropped_queue_full"] as? Int ?? 0) + (sink["dropped_write_failed"] as? Int ?? 0))"
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

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read routes from the gateway's --config file; an invalid file keeps the running routes."
        )
        @OptionGroup var options: AdminOptions
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() throws {
            let answer = try options.call("POST", "/v1/config/reload", reason: reason)
            if options.json { return try options.printJSON(answer) }
            let object = answer as? [String: Any] ?? [:]
            print("generation \(object["generation"] ?? "?")")
            for route in object["routes"] as? [[String: Any]] ?? [] { print(describeRoute(route)) }
        }
    }
}
