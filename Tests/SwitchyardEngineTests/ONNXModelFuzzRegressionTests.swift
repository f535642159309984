// Inputs the ONNX importer's fuzz target (Fuzz/, docs/fuzzing.md) found or led to, kept as the bytes it found
// (Fixtures/fuzz-regressions/, not written by scripts/make_engine_fixtures.py) so that each stays fixed whatever the
// exporters do.

import SwitchyardCore
import Testing

@testable import SwitchyardEngine

@Suite struct ONNXModelFuzzRegressionTests {
    /// The bytes of one of the files below.
    static func bytes(_ file: String) throws -> [UInt8] { try Fixtures.bytes("fuzz-regressions/" + file) }

    /// X [N, 4] → MatMul with B of shape [4, 0] → Softmax (opset 13). Imported, it gave rows of no values, and
    /// the reference engine's Softmax then trapped on a zero stride at the first call.
    static let matMulZeroWidthSoftmax = "matmul-zero-width-softmax.onnx"

    /// X [N, 4] → Gemm with transB=1 and B of shape [0, 4]: an output of shape [-1, 0].
    static let gemmZeroWidth = "gemm-zero-width.onnx"

    /// C → Add with no second input, then X + that. The folder read the missing operand and trapped.
    static let addWithOneInput = "add-with-one-input.onnx"

    /// C reshaped to [2^40, 2^40, 0, -1]: the product of the requested shape overflowed and trapped.
    static let reshapeToOverflowingShape = "reshape-to-overflowing-shape.onnx"

    /// INT64 minimum ÷ -1 folded at load, cast to FP32 and added to X: integer division overflowed and trapped.
    static let divideMinimumByMinusOne = "divide-minimum-by-minus-one.onnx"

    @Test(arguments: [
        (matMulZeroWidthSoftmax, "node 0 (MatMul): output 'Y' would have shape [-1, 0]"),
        (gemmZeroWidth, "node 0 (Gemm): output 'Y' would have shape [-1, 0]"),
    ])
    func refusesValuesWithNoElementsPerRow(file: String, message: String) throws {
        let bytes = try Self.bytes(file)
        let error = try #require(throws: SwitchyardError.self) { _ = try ONNXModel(bytes: bytes) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(message), "\(error.message)")
        #expect(error.message.contains("expected every dimension after the batch to be positive"))
    }

    @Test(arguments: [
        (addWithOneInput, "node 0 (Add): expected input 2, got 1 inputs"),
        (reshapeToOverflowingShape, "has more than 67108864 elements"),
    ])
    func refusesConstantSubgraphsItCannotFold(file: String, message: String) throws {
        let bytes = try Self.bytes(file)
        let error = try #require(throws: SwitchyardError.self) { _ = try ONNXModel(bytes: bytes) }
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(message), "\(error.message)")
    }

    @Test func foldsIntegerDivisionThatOverflowsByWrapping() throws {
        let model = try ONNXModel(bytes: try Self.bytes(Self.divideMinimumByMinusOne))
        #expect(model.signature.inputs.map(\.name) == ["X"])
    }
}
