// `switchyard drift report MODEL`: a running gateway's drift of each version of a model, the most drifting
// features first with their reference and current histograms.

import ArgumentParser
import Foundation

struct Drift: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Input and prediction drift of a running gateway's models.",
        subcommands: [Report.self]
    )

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Status and the most drifting features of each version of MODEL, with their histograms."
        )
        @OptionGroup var options: AdminOptions

        @Argument(help: "The model.")
        var model: String

        @Option(name: .long, help: "Features shown per version, most drifting first.")
        var top: Int = 5

        func run() throws {
            let path = "/v1/drift/\(model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? model)"
            let answer = try options.call("GET", path + "?top=\(max(top, 0))")
            if options.json { return try options.printJSON(answer) }
            let versions = (answer as? [String: Any])?["versions"] as? [[String: Any]] ?? []
            if versions.isEmpty { print("model '\(model)': no drift monitoring (no drift: key, or no call yet)") }
            for version in versions {
                print(
                    "\(model) version \(version["version"] ?? "?"): \(version["status"] ?? "?")  "
                        + "window=\(version["window_rows"] ?? 0) rows, reference=\(version["reference_rows"] ?? 0) rows "
                        + "(\(version["reference"] ?? "?")), flagged inputs=\(version["inputs_flagged"] ?? 0) "
                        + "outputs=\(version["outputs_flagged"] ?? 0), max PSI input="
                        + String(format: "%.4f", version["max_input_psi"] as? Double ?? 0) + " output="
                        + String(format: "%.4f", version["max_output_psi"] as? Double ?? 0)
                )
                if let error = version["error"] as? String { print("  error: \(error)") }
                for feature in version["features"] as? [[String: Any]] ?? [] {
                    print(
                        "  \(feature["flagged"] as? Bool == true ? "DRIFT" : "ok   ") \(feature["name"] ?? "?") "
                            + "(\(feature["kind"] ?? "?")): PSI="
                            + String(format: "%.4f", feature["psi"] as? Double ?? 0)
                            + " \(feature["test"] ?? "?")="
                            + String(format: "%.4f", feature["statistic"] as? Double ?? 0)
                            + " p=" + String(format: "%.3g", feature["p_value"] as? Double ?? 1)
                    )
                    let bins = feature["bins"] as? [String] ?? []
                    let reference = feature["reference"] as? [Double] ?? []
                    let current = feature["current"] as? [Double] ?? []
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
