// `switchyard experiments report MODEL`: each version of a model's route against the route's baseline (its first
// version) on everything each served since it was loaded: error-rate difference and the probability that a call is
// slower, with the always-valid intervals of the rollout gates.

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient

struct Experiments: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Canary and bandit routes as experiments: each version against the baseline.",
        subcommands: [Report.self]
    )

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Effect sizes of each version of MODEL's route against its first version, with always-valid "
                + "intervals."
        )
        @OptionGroup var options: AdminOptions

        @Argument(help: "The routed model.")
        var model: String

        @Option(name: .long, help: "The intervals' confidence, in (0.5, 1).")
        var confidence: Double?

        @Option(name: .long, help: "The error-rate increase that matters (the mixture's scale), in (0, 1).")
        var maxIncrease: Double?

        func run() async throws {
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.experiment(model: model, confidence: confidence, maxIncrease: maxIncrease)
                })
            else { return }
            print(describeExperiment(answer))
        }
    }
}

/// The experiment report as text: a header, then a line per version and its effects.
func describeExperiment(_ report: ExperimentReport) -> String {
    func percent(_ share: Double) -> String { String(format: "%.2f%%", 100 * share) }
    func points(_ share: Double) -> String { String(format: "%+.2f pp", 100 * share) }
    var lines = [
        "\(report.model)  policy=\(report.policy)  baseline=\(report.baseline)  "
            + "confidence=\(percent(report.confidence)) (always valid)"
    ]
    for arm in report.versions {
        let rate = arm.errorRate.map(percent) ?? "-"
        lines.append(
            "  version \(arm.version)  calls=\(arm.calls) failures=\(arm.failures) error_rate=\(rate)  \(arm.verdict)"
        )
        if let effect = arm.errorRateDifference {
            lines.append(
                "    error rate vs baseline: \(points(effect.estimate)) "
                    + "[\(points(effect.lower)), \(points(effect.upper))]"
            )
        }
        if let effect = arm.slowerProbability {
            lines.append(
                "    P(slower than a baseline call): "
                    + String(format: "%.3f [%.3f, %.3f]", effect.estimate, effect.lower, effect.upper)
            )
        }
    }
    return lines.joined(separator: "\n")
}
