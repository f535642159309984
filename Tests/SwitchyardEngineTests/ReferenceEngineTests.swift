// The reference engine against onnxruntime's outputs for every fixture graph.

import SwitchyardCore
import Testing

@testable import SwitchyardEngine

@Suite struct ReferenceEngineTests {
    @Test(arguments: Fixtures.cases)
    func matchesOnnxRuntime(fixture: FixtureCase) throws {
        let engine = ReferenceEngine(model: try ONNXModel(contentsOf: Fixtures.path(fixture.model)))
        let rows = try #require(fixture.inputs.first?.shape.first)
        let outputs = try runEngine(engine, inputs: fixture.inputs.map(\.data), rows: rows)
        for (output, expected) in zip(outputs, fixture.outputs) {
            let mismatch = firstMismatch(output, expected.data, relative: 1e-5, absolute: 1e-5)
            #expect(mismatch == nil, "\(fixture.name) output '\(expected.name)': \(String(describing: mismatch))")
        }
    }

    @Test func rowsAreIndependentOfTheBatch() throws {
        let fixture = try #require(Fixtures.cases.first { $0.name == "erf_gelu_softmax11" })
        let engine = ReferenceEngine(model: try ONNXModel(contentsOf: Fixtures.path(fixture.model)))
        let rows = fixture.inputs[0].shape[0]
        let width = fixture.inputs[0].data.count / rows
        let whole = try runEngine(engine, inputs: [fixture.inputs[0].data], rows: rows)
        let executor = engine.makeExecutor()
        for row in 0..<rows {
            let single = Array(fixture.inputs[0].data[(row * width)..<((row + 1) * width)])
            let outputs = try runExecutor(executor, signature: engine.signature, inputs: [single], rows: 1)
            for (index, output) in outputs.enumerated() {
                let n = output.count
                #expect(output == Array(whole[index][(row * n)..<((row + 1) * n)]))
            }
        }
    }

    @Test func rejectsBuffersOfTheWrongSize() throws {
        let engine = ReferenceEngine(model: try ONNXModel(contentsOf: Fixtures.path("gemm_transb.onnx")))
        let error = try #require(throws: SwitchyardError.self) {
            _ = try runEngine(engine, inputs: [[Float](repeating: 1, count: 12)], rows: 1)
        }
        #expect(error.message.contains("input 'x'"))
        #expect(throws: SwitchyardError.self) { _ = try runEngine(engine, inputs: [], rows: 1) }
        #expect(throws: SwitchyardError.self) { _ = try runEngine(engine, inputs: [[]], rows: 0) }
    }

    @Test(arguments: [
        (UnaryOperator.relu, Float(-1.5), Float(0)), (.relu, 2, 2), (.leakyRelu(alpha: 0.1), -2, -0.2),
        (.sigmoid, 0, 0.5), (.tanh, 0, 0), (.erf, 0, 0), (.gelu, 1, 0.8413447), (.geluTanh, 1, 0.8411920),
        (.identity, -3, -3),
    ])
    func activationValues(op: UnaryOperator, x: Float, expected: Float) {
        #expect(abs(ReferenceExecutor.apply(op, x) - expected) <= 1e-6)
    }
}
