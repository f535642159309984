// The bundled demo repository's digits models load and classify their sample images.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardEngine

/// The repository's `models/` folder, found from this file's location.
let demoModelsDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("models")

struct DigitSamples: Decodable {
    var pixels: [[Float]]
    var labels: [Int]

    static func load() throws -> DigitSamples {
        let data = try Data(contentsOf: demoModelsDirectory.appendingPathComponent("digits/samples.json"))
        return try JSONDecoder().decode(DigitSamples.self, from: data)
    }
}

func argmax(_ row: ArraySlice<Float>) -> Int {
    var best = row.startIndex
    for index in row.indices where row[index] > row[best] { best = index }
    return best - row.startIndex
}

@Suite struct DemoModelTests {
    @Test(arguments: [1, 2])
    func classifiesTheSamples(version: Int) throws {
        let path = demoModelsDirectory.appendingPathComponent("digits/\(version)/model.onnx").path
        let model = try ONNXModel(contentsOf: path)
        #expect(model.signature.inputs == [TensorSpec(name: "pixels", dataType: .fp32, shape: [-1, 64])])
        #expect(model.signature.outputs.map(\.name) == ["logits", "probabilities"])
        #expect(model.signature.outputs.allSatisfy { $0.shape == [-1, 10] })
        let samples = try DigitSamples.load()
        let rows = samples.labels.count
        let outputs = try runEngine(ReferenceEngine(model: model), inputs: [samples.pixels.flatMap { $0 }], rows: rows)
        for row in 0..<rows {
            let logits = outputs[0][(row * 10)..<((row + 1) * 10)]
            let probabilities = outputs[1][(row * 10)..<((row + 1) * 10)]
            #expect(argmax(logits) == samples.labels[row], "sample \(row)")
            #expect(argmax(probabilities) == samples.labels[row])
            #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
        }
    }
}
