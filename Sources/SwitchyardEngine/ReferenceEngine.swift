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
) throws(SwitchyardError) {
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

    func run(inputs: [UnsafeBufferPointer<Float>], rows: Int, outputs: [UnsafeMutableBufferPointer<Float>])
        throws(SwitchyardError)
    {
        try validateRunArguments(signature: graph.signature, inputs: inputs, rows: rows, outputs: outputs)
        prepare(rows: rows, inputs: inputs)
        for node in graph.nodes { try execute(node, rows: rows) }
        for (position, id) in graph.outputs.enumerated() { copy(id, rows: rows, into: outputs[position]) }
    }

    /// Grows every value's buffer to `rows` rows (buffers are never shrunk) and copies the inputs in.
    func prepare(rows: Int, inputs: [UnsafeBufferPointer<Float>]) {
        prepare(rows: rows, inputs: inputs, values: graph.values.indices)
    }

    /// Grows the buffers of `values` to `rows` rows (never shrinking them) and copies in the graph inputs among
    /// them: a fused executor's interpreter holds only the values its interpreted steps read or write.
    func prepare<Values: Collection<Int>>(rows: Int, inputs: [UnsafeBufferPointer<Float>], values: Values) {
        for id in values {
            let count = rows * graph.values[id].width
            if buffers[id].count < count { buffers[id] = [Float](repeating: 0, count: count) }
        }
        for (position, id) in graph.inputs.enumerated() where values.contains(id) {
            let count = rows * graph.values[id].width
            buffers[id].withUnsafeMutableBufferPointer { target in
                for index in 0..<count { target[index] = inputs[position][index] }
            }
        }
    }

    /// Copies `rows` rows of a value out.
    func copy(_ id: Int, rows: Int, into target: UnsafeMutableBufferPointer<Float>) {
        let count = rows * graph.values[id].width
        buffers[id].withUnsafeBufferPointer { source in
            for index in 0..<count { target[index] = source[index] }
        }
    }

    /// Stores `rows` rows of a value starting at row `start`, each read from the pointer `row(i)` gives.
    func store(_ id: Int, rows: Int, at start: Int, row: (Int) -> UnsafePointer<Float>) {
        let width = graph.values[id].width
        buffers[id].withUnsafeMutableBufferPointer { target in
            for index in 0..<rows {
                (target.baseAddress! + (start + index) * width).update(from: row(index), count: width)
            }
        }
    }

    /// Runs one node over `rows` rows, reading and writing this executor's buffers.
    func execute(_ node: Graph.Node, rows: Int) throws(SwitchyardError) {
        let operation = node.operation
        let output = operation.output
        let width = graph.values[output].width
        // Take the output buffer out of the array so that writing it never copies.
        var y = buffers[output]
        buffers[output] = []
        defer { buffers[output] = y }
        switch operation {
        case .gemm(let gemm):
            let a = buffers[gemm.input]
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
        case .matMul(let matMul):
            let a = buffers[matMul.input]
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
        case .binary(let op, let lhs, let rhs, _):
            for row in 0..<rows {
                for column in 0..<width {
                    let left = Double(operandValue(lhs, row: row, column: column, width: width))
                    let right = Double(operandValue(rhs, row: row, column: column, width: width))
                    let result: Double =
                        switch op {
                        case .add: left + right
                        case .sub: left - right
                        case .mul: left * right
                        case .div: left / right
                        case .pow: power(left, right)
                        default: compare(op, Float(left), Float(right)) ? 1 : 0
                        }
                    y[row * width + column] = Float(result)
                }
            }
        case .unary(let op, let input, _):
            let x = buffers[input]
            for index in 0..<(rows * width) { y[index] = Self.apply(op, x[index]) }
        case .select(let condition, let lhs, let rhs, _):
            for row in 0..<rows {
                for column in 0..<width {
                    let flag = operandValue(condition, row: row, column: column, width: width)
                    y[row * width + column] = operandValue(
                        flag != 0 ? lhs : rhs,
                        row: row,
                        column: column,
                        width: width
                    )
                }
            }
        case .prelu(let input, let slope, _):
            let x = buffers[input]
            for row in 0..<rows {
                for column in 0..<width {
                    let value = x[row * width + column]
                    y[row * width + column] = value < 0 ? Float(Double(value) * Double(slope[column])) : value
                }
            }
        case .softmax(let input, _, let group, let log):
            let x = buffers[input]
            for start in stride(from: 0, to: rows * width, by: group) {
                var maximum = -Double.infinity
                for index in start..<(start + group) { maximum = max(maximum, Double(x[index])) }
                var sum = 0.0
                for index in start..<(start + group) { sum += Foundation.exp(Double(x[index]) - maximum) }
                for index in start..<(start + group) {
                    let shifted = Double(x[index]) - maximum
                    y[index] = Float(log ? shifted - Foundation.log(sum) : Foundation.exp(shifted) / sum)
                }
            }
        case .reshape(let input, _):
            let x = buffers[input]
            for index in 0..<(rows * width) { y[index] = x[index] }
        case .reduce(let op, let input, _, let group):
            let x = buffers[input]
            for outputIndex in 0..<(rows * width) {
                let start = outputIndex * group
                var result: Double =
                    switch op {
                    case .max: -.infinity
                    case .min: .infinity
                    default: 0
                    }
                for index in start..<(start + group) {
                    let value = Double(x[index])
                    switch op {
                    case .sum, .mean: result += value
                    case .max: result = Swift.max(result, value)
                    case .min: result = Swift.min(result, value)
                    case .l1: result += Swift.abs(value)
                    case .l2, .sumSquare: result += value * value
                    }
                }
                switch op {
                case .mean: result /= Double(group)
                case .l2: result = result.squareRoot()
                default: break
                }
                y[outputIndex] = Float(result)
            }
        case .argExtreme(let largest, let selectLast, let input, _, let group):
            let x = buffers[input]
            for outputIndex in 0..<(rows * width) {
                var best = 0
                for position in 1..<max(group, 1) {
                    let candidate = x[outputIndex * group + position]
                    let current = x[outputIndex * group + best]
                    let better = largest ? candidate > current : candidate < current
                    if better || (selectLast && candidate == current) { best = position }
                }
                y[outputIndex] = Float(best)
            }
        case .layerNorm(let norm):
            let x = buffers[norm.input]
            for start in stride(from: 0, to: rows * width, by: norm.group) {
                var sum = 0.0
                for index in start..<(start + norm.group) { sum += Double(x[index]) }
                let mean = sum / Double(norm.group)
                var squares = 0.0
                for index in start..<(start + norm.group) {
                    squares += (Double(x[index]) - mean) * (Double(x[index]) - mean)
                }
                let inverse = 1 / (squares / Double(norm.group) + Double(norm.epsilon)).squareRoot()
                for position in 0..<norm.group {
                    let normalized = (Double(x[start + position]) - mean) * inverse
                    y[start + position] = Float(normalized * Double(norm.scale[position]) + Double(norm.bias[position]))
                }
            }
        case .normalize(let kind, let input, _):
            let x = buffers[input]
            for row in 0..<rows {
                let start = row * width
                var norm = kind == .max ? -Double.infinity : 0
                for index in start..<(start + width) {
                    let value = Double(x[index])
                    switch kind {
                    case .l1: norm += Swift.abs(value)
                    case .l2: norm += value * value
                    case .max: norm = Swift.max(norm, value)
                    }
                }
                if kind == .l2 { norm = norm.squareRoot() }
                for index in start..<(start + width) {
                    y[index] = norm == 0 ? x[index] : Float(Double(x[index]) / norm)
                }
            }
        case .assemble(let parts, let map, _):
            for row in 0..<rows {
                for (position, source) in map.enumerated() {
                    let part = parts[Int(source.part)]
                    let index = Int(source.index)
                    y[row * width + position] =
                        switch part {
                        case .constant(let values): values[index]
                        case .value(let id), .broadcast(let id, _): buffers[id][row * graph.values[id].width + index]
                        }
                }
            }
        case .lookup(let table, let input, _):
            let x = buffers[input]
            for index in 0..<(rows * width) {
                let position = x[index]
                guard position >= 0, position < Float(table.count), position == position.rounded(.towardZero) else {
                    throw SwitchyardError.invalidArgument(
                        "\(node.label) (\(node.opType)): index \(position) is outside the table of \(table.count) entries"
                    )
                }
                y[index] = table[Int(position)]
            }
        }
    }

    private func operandValue(_ operand: Operand, row: Int, column: Int, width: Int) -> Float {
        switch operand {
        case .value(let id): buffers[id][row * width + column]
        case .constant(let values): values[column]
        case .broadcast(let id, let indices): buffers[id][row * graph.values[id].width + Int(indices[column])]
        }
    }

    /// One elementwise operation, computed in double precision.
    static func apply(_ op: UnaryOperator, _ value: Float) -> Float {
        let x = Double(value)
        switch op {
        case .relu: return value > 0 ? value : 0
        case .leakyRelu(let alpha): return value >= 0 ? value : Float(x * Double(alpha))
        case .sigmoid: return Float(1 / (1 + Foundation.exp(-x)))
        case .tanh: return Float(Foundation.tanh(x))
        case .erf: return Float(Foundation.erf(x))
        case .gelu: return Float(0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())))
        case .geluTanh:
            let inner = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            return Float(0.5 * x * (1 + Foundation.tanh(inner)))
        case .identity: return value
        case .exp: return Float(Foundation.exp(x))
        case .log: return Float(Foundation.log(x))
        case .neg: return -value
        case .abs: return Swift.abs(value)
        case .sqrt: return Float(x.squareRoot())
        case .reciprocal: return Float(1 / x)
        case .floor: return value.rounded(.down)
        case .ceil: return value.rounded(.up)
        case .round: return value.rounded(.toNearestOrEven)
        case .sign: return value > 0 ? 1 : value < 0 ? -1 : 0
        case .softplus: return Float(x > 30 ? x : Foundation.log1p(Foundation.exp(x)))
        case .softsign: return Float(x / (1 + Swift.abs(x)))
        case .elu(let alpha): return value >= 0 ? value : Float(Double(alpha) * Foundation.expm1(x))
        case .selu(let alpha, let gamma):
            return Float(Double(gamma) * (x > 0 ? x : Double(alpha) * Foundation.expm1(x)))
        case .celu(let alpha):
            let a = Double(alpha)
            return Float(Swift.max(0, x) + Swift.min(0, a * Foundation.expm1(x / a)))
        case .hardSigmoid(let alpha, let beta):
            return Float(Swift.max(0, Swift.min(1, Double(alpha) * x + Double(beta))))
        case .hardSwish: return Float(x * Swift.max(0, Swift.min(1, x / 6 + 0.5)))
        case .mish:
            let softplus = x > 30 ? x : Foundation.log1p(Foundation.exp(x))
            return Float(x * Foundation.tanh(softplus))
        case .clip(let low, let high): return Swift.min(Swift.max(value, low), high)
        case .pow(let exponent): return Float(power(x, Double(exponent)))
        case .truncate: return value.isNaN ? 0 : value.rounded(.towardZero)
        case .nonZero: return value != 0 ? 1 : 0
        case .binarize(let threshold): return value > threshold ? 1 : 0
        }
    }
}
