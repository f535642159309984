// The importer on real ONNX files: signatures of accepted graphs, and refusals that name the node and op.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardEngine

@Suite struct ONNXModelTests {
    @Test(arguments: Fixtures.cases)
    func signatureMatchesTheFixture(fixture: FixtureCase) throws {
        let model = try ONNXModel(contentsOf: Fixtures.path(fixture.model))
        #expect(model.signature.inputs.map(\.name) == fixture.inputs.map(\.name))
        #expect(model.signature.outputs.map(\.name) == fixture.outputs.map(\.name))
        for (spec, tensor) in zip(model.signature.inputs, fixture.inputs) {
            #expect(spec.dataType == .fp32)
            #expect(spec.shape == [-1] + tensor.shape.dropFirst())
        }
        for (spec, tensor) in zip(model.signature.outputs, fixture.outputs) {
            #expect(spec.shape == [-1] + tensor.shape.dropFirst())
        }
        // operatorTypes names ai.onnx.ml operators with their domain and leaves out the nodes evaluated at load
        // (shape arithmetic); the fixture lists every node's bare op type.
        let bare = model.operatorTypes.map { $0.hasPrefix("ai.onnx.ml.") ? String($0.dropFirst(11)) : $0 }
        let listed = fixture.ops.filter { $0 != "Constant" }
        #expect(bare.count + model.foldedNodeCount == listed.count)
        var remaining = listed[...]
        for op in bare {
            guard let found = remaining.firstIndex(of: op) else {
                Issue.record("\(fixture.name): \(op) is not among the fixture's nodes \(listed) in order")
                break
            }
            remaining = remaining[(found + 1)...]
        }
    }

    @Test(arguments: Fixtures.refusals)
    func refusesWithAClearMessage(fixture: FixtureRefusal) throws {
        let error = try #require(throws: SwitchyardError.self) {
            _ = try ONNXModel(bytes: Fixtures.bytes(fixture.model))
        }
        #expect(error.code == .invalidArgument)
        for words in fixture.contains {
            #expect(error.message.contains(words), "\(error.message) should contain \(words)")
        }
    }

    @Test func fileErrorsNameThePath() throws {
        let missing = try #require(throws: SwitchyardError.self) {
            _ = try ONNXModel(contentsOf: "/nonexistent/model.onnx")
        }
        #expect(missing.code == .notFound)
        #expect(missing.message.contains("/nonexistent/model.onnx"))
        let path = Fixtures.path("refuse_conv.onnx")
        let refused = try #require(throws: SwitchyardError.self) { _ = try ONNXModel(contentsOf: path) }
        #expect(refused.message.hasPrefix(path))
    }

    @Test func emptyBytesAreRefused() {
        #expect(throws: SwitchyardError.self) { _ = try ONNXModel(bytes: []) }
    }

    @Test func fixedBatchOfOneBecomesVariable() throws {
        let model = try ONNXModel(contentsOf: Fixtures.path("torch_flatten_linear.onnx"))
        #expect(model.signature.inputs[0].shape == [-1, 3, 4, 4])
        #expect(model.signature.outputs[0].shape == [-1, 10])
        #expect(model.opsetVersion == 20)
        #expect(model.producerName == "switchyard-fixtures")
    }

    @Test func initializerListedAsInputIsNotAnInput() throws {
        let model = try ONNXModel(contentsOf: Fixtures.path("initializer_input.onnx"))
        #expect(model.signature.inputs.map(\.name) == ["x"])
    }
}
