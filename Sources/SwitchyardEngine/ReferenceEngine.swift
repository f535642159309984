// The reference engine: runs an imported graph node by node, exactly as the ONNX operators define them, with
// double-precision accumulation and no fusion. It is the yardstick the fast engine is tested against.

import Foundation
public import SwitchyardCore

/// Runs an `ONNXModel` node by node on `[rows × width]` buffers. Simple and exact rather than fast.
public final class ReferenceEngine: InferenceEngine, CustomStringConvertible {
    /// The model's inputs and outputs.
    public let signature: ModelSignature
    let graph: Graph

    /// Creates an engine for an imported model.
    public init(model: ONNXModel) {
        self.signature = model.signature
        self.graph = model.graph
    }

    /// Creates an executor with its own value buffers.
    public func makeExecutor() -> any EngineExecutor { ReferenceExecutor(graph: graph) }

    /// A short name for logs.
    public var description: String { "reference engine (\(graph.nodes.count) nodes)" }
}

/// Checks the buffers handed to `run` against a signature; shared by every executor.
func validateRunArguments(
    signature: ModelSignature,
    inputs: [UnsafeBufferPointer<Float>],
    rows: Int,
    outputs: [UnsafeMutableBufferPointer<Float>]
) throws {
    guard rows >= 1 else { throw SwitchyardError.invalidArgument("batch of \(rows) rows; expected at least 1") }
    guard inputs.count == signature.inputs.count else {
        throw SwitchyardError.invalidArgument("got \(inputs.count) input buffers; expected \(signature.inputs.count)")
    }
    guard outputs.count == signature.outputs.count else {
        throw SwitchyardError.invalidArgument(
            "got \(outputs.count) output buffers; expected \(signature.outputs.count)"
        )
    }
    for (buffer, spec) in zip(inputs, signature.inputs) {
        let (needed, overflow) = rows.multipliedReportingOverflow(by: spec.elementsPerRow)
        guard !overflow, buffer.count >= needed else {
            throw SwitchyardError.invalidArgument(
                "input '\(spec.name)': buffer holds \(buffer.count) values; expected \(rows) × \(spec.elementsPerRow)"
            )
        }
    }
    for (buffer, spec) in zip(outputs, signature.outputs) {
        let (needed, overflow) = rows.multipliedReportingOverflow(by: spec.elementsPerRow)
        guard !overflow, buffer.count >= needed else {
            throw SwitchyardError.invalidArgument(
                "output '\(spec.name)': buffer holds \(buffer.count) values; expected \(rows) × \(spec.elementsPerRow)"
            )
        }
    }
}

/// One worker's state for the reference engine: a buffer per graph value, grown as batches need.
final class ReferenceExecutor: EngineExecutor {
    private let graph: Graph
    private var buffers: [[Float]]

    init(graph: Graph) {
        self.graph = graph
        self.buffers = Array(repeating: [], count: graph.values.count)
    }

    func run(inputs: [UnsafeBufferPointer<Float>], rows: Int, outputs: [UnsafeMutableBufferPointer<Float>]) throws {
        try validateRunArguments(signature: graph.signature, inputs: inputs, rows: rows, outputs: outputs)
        for (id, value) in graph.values.enumerated() {
            let count = rows * value.width
            if buffers[id].count != count { buffers[id] = [Float](repeating: 0, count: count) }
        }
        for (position, id) in graph.inputs.enumerated() {
            let count = rows * graph.values[id].width
            for index in 0..<count { buffers[id][index] = inputs[position][index] }
        }
        for node in graph.nodes { execute(node.operation, rows: rows) }
        for (position, id) in graph.outputs.enumerated() {
            let count = rows * graph.values[id].width
            for index in 0..<count { outputs[position][index] = buffers[id][index] }
        }
    }

    private func execute(_ operation: Operation, rows: Int) {
        switch operation {
        case .gemm(let gemm):
            let a = buffers[gemm.input]
            var y = buffers[gemm.output]
            for row in 0..<rows {
                for column in 0..<gemm.n {
                    var sum = 0.0
                    for inner in 0..<gemm.k {
                        let b = gemm.transB ? gemm.b[column * gemm.k + inner] : gemm.b[inner * gemm.n + column]
                        sum += Double(a[row * gemm.k + inner]) * Double(b)
                    }
                    var result = Double(gemm.alpha) * sum
                    if let c = gemm.c { result += Double(gemm.beta) * Double(c[column]) }
                    y[row * gemm.n + column] = Float(result)
                }
            }
            buffers[gemm.output] = y
        case .matMul(let matMul):
            let a = buffers[matMul.input]
            var y = buffers[matMul.output]
            let vectors = rows * graph.values[matMul.input].width / matMul.k
            for vector in 0..<vectors {
                for column in 0..<matMul.n {
                    var sum = 0.0
                    for inner in 0..<matMul.k {
                        sum += Double(a[vector * matMul.k + inner]) * Double(matMul.b[inner * matMul.n + column])
                    }
                    y[vector * matMul.n + column] = Float(sum)
                }
            }
            buffers[matMul.output] = y
        case .binary(let op, let lhs, let rhs, let output):
            let width = graph.values[output].width
            var y = buffers[output]
            for row in 0..<rows {
                for column in 0..<width {
                    let index = row * width + column
                    let left = operandValue(lhs, index: index, column: column)
                    let right = operandValue(rhs, index: index, column: column)
                    switch op {
                    case .add: y[index] = left + right
                    case .sub: y[index] = left - right
                    case .mul: y[index] = left * right
                    case .div: y[index] = left / right
                    }
                }
            }
            buffers[output] = y
        case .unary(let op, let input, let output):
            let x = buffers[input]
            var y = buffers[output]
            for index in 0..<(rows * graph.values[output].width) {
                y[index] = Self.apply(op, x[index])
            }
            buffers[output] = y
        case .softmax(let input, let output, let group):
            let x = buffers[input]
            var y = buffers[output]
            let total = rows * graph.values[output].width
            for start in stride(from: 0, to: total, by: group) {
                var maximum = -Double.infinity
                for index in start..<(start + group) { maximum = max(maximum, Double(x[index])) }
                var sum = 0.0
                for index in start..<(start + group) { sum += exp(Double(x[index]) - maximum) }
                for index in start..<(start + group) { y[index] = Float(exp(Double(x[index]) - maximum) / sum) }
            }
            buffers[output] = y
        case .reshape(let input, let output):
            buffers[output] = buffers[input]
        }
    }

    private func operandValue(_ operand: Operand, index: Int, column: Int) -> Float {
        switch operand {
        case .value(let id): buffers[id][index]
        case .constant(let row): row[column]
        }
    }

    /// One elementwise activation, computed in double precision.
    static func apply(_ op: UnaryOperator, _ value: Float) -> Float {
        let x = Double(value)
        switch op {
        case .relu: return value > 0 ? value : 0
        case .leakyRelu(let alpha): return value >= 0 ? value : Float(x * Double(alpha))
        case .sigmoid: return Float(1 / (1 + exp(-x)))
        case .tanh: return Float(Foundation.tanh(x))
        case .erf: return Float(Foundation.erf(x))
        case .gelu: return Float(0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())))
        case .geluTanh:
            let inner = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            return Float(0.5 * x * (1 + Foundation.tanh(inner)))
        case .identity: return value
        }
    }
}
