// `switchyard models [check]`: load every model of a repository and print what it serves, without serving;
// `switchyard models list` asks a running gateway's admin API instead.

import ArgumentParser
import SwitchyardCore
import SwitchyardEngine
import SwitchyardModels

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a model repository, or list a running gateway's models.",
        subcommands: [ModelsCheck.self, ModelsList.self, ModelsLoad.self, ModelsUnload.self],
        defaultSubcommand: ModelsCheck.self
    )
}

struct ModelsCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a model repository: load every version and print its inputs and outputs."
    )

    @Option(name: .long, help: "Model repository directory.")
    var modelRepository: String = "models"

    func run() throws {
        var failures = 0
        for model in try ModelRepository(root: modelRepository).scan() {
            let c = model.configuration
            print(
                "\(model.name)  max_batch_size=\(c.maxBatchSize) workers=\(c.workers) slo_ms=\(c.sloMilliseconds) "
                    + "max_queue_size=\(c.maxQueueSize)"
            )
            for version in model.versions {
                do {
                    let model = try ONNXModel(contentsOf: version.path)
                    let signature = model.signature
                    let inputs = signature.inputs.map { "\($0.name) \($0)" }.joined(separator: ", ")
                    let outputs = signature.outputs.map { "\($0.name) \($0)" }.joined(separator: ", ")
                    print("  version \(version.version): \(inputs) -> \(outputs)")
                    let ml = model.mlOpsetVersion.map { ", ai.onnx.ml \($0)" } ?? ""
                    let producer = model.producerName.isEmpty ? "" : ", from \(model.producerName)"
                    let folded = model.foldedNodeCount > 0 ? "; \(model.foldedNodeCount) nodes evaluated at load" : ""
                    print("    opset \(model.opsetVersion)\(ml)\(producer)\(folded)")
                    let engine = try applyingPrecision(c, modelPath: version.path, to: makeEngine(for: model))
                    if let reason = FusedEngine.unsupportedReason(for: model) {
                        print("    engine: reference (the fused engine declines it: \(reason))")
                    } else {
                        print("    engine: \(engine)")
                    }
                } catch {
                    failures += 1
                    print("  version \(version.version): FAILED: \(error.message)")
                }
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}
