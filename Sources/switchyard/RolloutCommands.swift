// `switchyard rollout start|status|pause|resume|abort` and `switchyard models load|unload`: the live-operations
// calls of the admin API that move traffic to a new version step by step, or change what is loaded.

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient
import SwitchyardCore

struct Rollout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Progressive rollouts of a running gateway: weight steps gated on live metrics.",
        subcommands: [Start.self, Status.self, Pause.self, Resume.self, Abort.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a model's traffic from its baseline version to a canary in steps.",
            discussion: """
                switchyard rollout start digits --baseline 1 --canary 2 --steps 10,25,50,100 --step-seconds 60 \\
                    --max-error-rate 0.01 --max-p99-ms 25 --min-shadow-agreement 0.95 --reason "v2 to everyone"
                Each step lasts --step-seconds once it has --min-requests canary calls; a failing gate gives the
                baseline all traffic back at once.
                """
        )
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model.")
        var model: String
        @Option(name: .long, help: "The version serving now.")
        var baseline: String
        @Option(name: .long, help: "The version rolled out.")
        var canary: String
        @Option(name: .long, help: "Canary weights in percent, comma-separated and ascending.")
        var steps: String = "10,25,50,100"
        @Option(name: .long, help: "Seconds per step.")
        var stepSeconds: Double = 60
        @Option(name: .long, help: "Gate: highest share of failed canary calls (0…1).")
        var maxErrorRate: Double?
        @Option(name: .long, help: "Gate: highest canary p99 in milliseconds.")
        var maxP99Ms: Double?
        @Option(
            name: .long,
            help: "Gate: lowest argmax agreement with the baseline (0…1); mirrors calls to the canary."
        )
        var minShadowAgreement: Double?
        @Option(
            name: .long,
            help: "Gate: highest PSI of any canary input against its drift reference (needs drift: on the canary)."
        )
        var maxInputDrift: Double?
        @Option(name: .long, help: "Gate: highest PSI of any canary output against its drift reference.")
        var maxOutputDrift: Double?
        @Option(
            name: .long,
            help: ArgumentHelp(
                "Gate: the canary's error rate against the baseline's, at this confidence (e.g. 0.95): rolls back "
                    + "when worse, advances when less than --max-error-increase higher."
            )
        )
        var errorRateVsBaseline: Double?
        @Option(name: .long, help: "With --error-rate-vs-baseline: the increase tolerated (a share, default 0.02).")
        var maxErrorIncrease: Double = 0.02
        @Option(
            name: .long,
            help: "Gate: how often a canary call is slower than a baseline call, at this confidence (e.g. 0.95)."
        )
        var latencyVsBaseline: Double?
        @Option(name: .long, help: "With --latency-vs-baseline: the highest such probability (default 0.6).")
        var maxSlowerProbability: Double = 0.6
        @Option(name: .long, help: "Canary calls a step needs before its gates are judged.")
        var minRequests: Int = 20
        @Option(name: .long, help: "Share of calls mirrored for the agreement gate (0…1, default 1).")
        var shadowFraction: Double?
        @Option(name: .long, help: "Why: recorded in the audit log.")
        var reason: String?

        func run() async throws {
            let weights = try steps.split(separator: ",").map { part -> Double in
                guard let weight = Double(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--steps: expected percentages like 10,25,50,100, got '\(steps)'")
                }
                return weight
            }
            let request = RolloutRequest(
                baseline: baseline,
                canary: canary,
                steps: weights,
                stepSeconds: stepSeconds,
                gates: RolloutGates(
                    maxErrorRate: maxErrorRate,
                    maxP99Milliseconds: maxP99Ms,
                    minShadowAgreement: minShadowAgreement,
                    maxInputDrift: maxInputDrift,
                    maxOutputDrift: maxOutputDrift,
                    errorRateVsBaseline: errorRateVsBaseline.map {
                        .init(confidence: $0, maxIncrease: maxErrorIncrease)
                    },
                    latencyVsBaseline: latencyVsBaseline.map {
                        .init(confidence: $0, maxSlowerProbability: maxSlowerProbability)
                    },
                    minRequests: minRequests
                ),
                shadowFraction: shadowFraction
            )
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.startRollout(model: model, request, reason: reason)
                })
            else { return }
            print(describeRollout(answer))
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every rollout, or one model's.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The model (default: every rollout).")
        var model: String?

        func run() async throws {
            let rollouts: [RolloutStatus]
            if let model {
                guard
                    let answer = try await options.call({ client async throws(AdminCallError) in
                        try await client.rollout(model: model)
                    })
                else { return }
                rollouts = [answer]
            } else {
                guard
                    let answer = try await options.call({ client async throws(AdminCallError) in
                        try await client.rollouts()
                    })
                else { return }
                rollouts = answer.rollouts
            }
            if rollouts.isEmpty { print("no rollouts") }
            for rollout in rollouts { print(describeRollout(rollout, events: model != nil)) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold a rollout's weights (a failing gate still rolls it back)."
        )
        @OptionGroup var action: RolloutAction
        func run() async throws { try await action.send(.pause) }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Continue a paused rollout; its step restarts.")
        @OptionGroup var action: RolloutAction
        func run() async throws { try await action.send(.resume) }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a rollout and give the baseline all traffic back."
        )
        @OptionGroup var action: RolloutAction
        func run() async throws { try await action.send(.abort) }
    }
}

/// The arguments of pause, resume and abort.
struct RolloutAction: ParsableArguments {
    @OptionGroup var options: AdminOptions
    @Argument(help: "The model.")
    var model: String
    @Option(name: .long, help: "Why: recorded in the audit log.")
    var reason: String?

    func send(_ action: AdminClient.RolloutAction) async throws {
        guard
            let answer = try await options.call({ client async throws(AdminCallError) in
                try await client.rollout(model: model, action, reason: reason)
            })
        else { return }
        print(describeRollout(answer))
    }
}

/// A rollout as a few human-readable lines.
func describeRollout(_ rollout: RolloutStatus, events: Bool = false) -> String {
    let steps = rollout.steps.map { $0 == $0.rounded() ? String(Int($0)) : String($0) }
    var lines = [
        "\(rollout.model)  \(rollout.baseline) → \(rollout.canary)  "
            + "\(rollout.phase.rawValue)  step \(rollout.step)/\(steps.count) "
            + "[\(steps.joined(separator: ", "))]%  canary weight \(rollout.canaryWeight.compactDescription)%",
        "  \(rollout.detail)",
    ]
    let window = rollout.window
    if window.calls > 0 {
        let rate = window.errorRate.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a"
        let p99 = window.p99Milliseconds.map { String(format: "%.2f ms", $0) } ?? "n/a"
        let agreement = window.agreement.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a"
        lines.append(
            "  this step: \(window.calls) canary calls, error rate \(rate), p99 \(p99), agreement \(agreement)"
        )
        if let input = window.inputDrift, let output = window.outputDrift {
            lines.append(String(format: "  drift: input PSI %.3f, output PSI %.3f", input, output))
        }
    }
    if let fleet = rollout.fleet {
        let parts = fleet.replicas.map { replica in
            "\(replica.replica) \(replica.calls) canary (\(replica.failures) failed) / \(replica.baselineCalls) baseline"
        }
        lines.append(
            "  fleet: leader \(fleet.leader ?? "none (no replica reaches the store)"); this step by replica: "
                + (parts.isEmpty ? "no replica publishing" : parts.joined(separator: ", "))
        )
    }
    if events {
        for event in rollout.events {
            lines.append("  \(event.time)  \(event.event)  \(event.detail)")
        }
    }
    return lines.joined(separator: "\n")
}

/// The arguments of `models load` and `models unload`.
struct ModelVersionArguments: ParsableArguments {
    @OptionGroup var options: AdminOptions
    @Argument(help: "The model (a directory of the repository).")
    var model: String
    @Argument(help: "The version (a numbered directory holding model.onnx).")
    var version: String
    @Option(name: .long, help: "Why: recorded in the audit log.")
    var reason: String?

    /// Makes `call` (`AdminClient.loadVersion` or `.unloadVersion`) with this model, version and reason; the answer,
    /// or nil after printing it as JSON.
    func send<Value: Sendable>(
        _ call: (AdminClient) -> (String, String, String?) async throws(AdminCallError) -> AdminReply<Value>
    ) async throws -> Value? {
        try await options.call { client async throws(AdminCallError) in try await call(client)(model, version, reason) }
    }
}

struct ModelsLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load a version from a running gateway's repository: switchyard models load digits 3."
    )
    @OptionGroup var arguments: ModelVersionArguments

    func run() async throws {
        guard let answer = try await arguments.send(AdminClient.loadVersion) else { return }
        let loaded = answer.versions.map(\.version)
        print(
            "loaded \(arguments.model) version \(arguments.version); loaded versions: "
                + loaded.joined(separator: ", ")
        )
    }
}

struct ModelsUnload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unload",
        abstract: "Unload a version no route uses; its queued calls finish first."
    )
    @OptionGroup var arguments: ModelVersionArguments

    func run() async throws {
        guard let answer = try await arguments.send(AdminClient.unloadVersion) else { return }
        print("unloaded \(arguments.model) version \(arguments.version)")
        if let note = answer.note { print("note: \(note)") }
    }
}
