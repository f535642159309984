// `switchyard drift report MODEL`: a running gateway's drift of each version of a model, the most drifting
// features first with their reference and current histograms.

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient

struct Drift: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Input and prediction drift of a running gateway's models.",
        subcommands: [Report.self]
    )

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Status and the most drifting features of each version of MODEL, with their histograms."
        )
        @OptionGroup var options: AdminOptions

        @Argument(help: "The model.")
        var model: String

        @Option(name: .long, help: "Features shown per version, most drifting first.")
        var top: Int = 5

        func run() async throws {
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.drift(model: model, top: top)
                })
            else { return }
            if answer.versions.isEmpty {
                print("model '\(model)': no drift monitoring (no drift: key, or no call yet)")
            }
            for version in answer.versions {
                print(
                    "\(model) version \(version.version): \(version.status)  "
                        + "window=\(version.windowRows) rows, reference=\(version.referenceRows) rows "
                        + "(\(version.reference)), flagged inputs=\(version.inputsFlagged) "
                        + "outputs=\(version.outputsFlagged), max PSI input="
                        + String(format: "%.4f", version.maxInputPSI) + " output="
                        + String(format: "%.4f", version.maxOutputPSI)
                )
                if let fraction = version.observedFraction, fraction < 1 {
                    print("  observing " + String(format: "%.1f", fraction * 100) + " % of calls")
                }
                if let error = version.error { print("  error: \(error)") }
                for feature in version.features {
                    print(
                        "  \(feature.flagged ? "DRIFT" : "ok   ") \(feature.name) "
                            + "(\(feature.kind)): PSI="
                            + String(format: "%.4f", feature.psi)
                            + " \(feature.test)="
                            + String(format: "%.4f", feature.statistic)
                            + " p=" + String(format: "%.3g", feature.pValue)
                    )
                    let bins = feature.bins
                    let reference = feature.reference
                    let current = feature.current
                    for (index, bin) in bins.enumerated() where index < reference.count && index < current.count {
                        guard reference[index] > 0 || current[index] > 0 else { continue }
                        print(
                            "      \(bin.padding(toLength: 28, withPad: " ", startingAt: 0)) reference "
                                + String(format: "%6.2f%%", reference[index] * 100) + "  current "
                                + String(format: "%6.2f%%", current[index] * 100)
                        )
                    }
                }
            }
        }
    }
}
