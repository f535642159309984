// The fused engine: an imported graph compiled into a chain of dense layers (GEMM + bias + activation, softmax
// after the last), weights packed once into the panel layout of the chosen micro-kernel, and executors that
// run batches through preallocated, aligned scratch without touching the heap.

internal import CSwitchyardKernels
public import SwitchyardCore

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// An instruction-set path of the fused engine's micro-kernels.
public enum KernelPath: String, Sendable, CaseIterable, CustomStringConvertible {
    /// 16-lane AVX-512 kernels, 8 × 32 register tiles.
    case avx512
    /// 8-lane AVX2 + FMA kernels, 6 × 16 register tiles.
    case avx2
    /// 4-lane kernels in portable C (SSE2 on x86-64, NEON on aarch64).
    case portable

    /// The environment variable that forces a path: `avx512`, `avx2` or `portable`.
    public static let environmentVariable = "SWITCHYARD_KERNEL"

    var code: Int32 {
        switch self {
        case .avx512: Int32(SY_KERNEL_AVX512)
        case .avx2: Int32(SY_KERNEL_AVX2)
        case .portable: Int32(SY_KERNEL_PORTABLE)
        }
    }

    /// Whether this CPU can run the path.
    public var isAvailable: Bool { sy_kernel_available(code) != 0 }

    /// Columns per packed weight panel.
    public var panelWidth: Int { Int(sy_kernel_panel_width(code)) }

    /// The fastest path this CPU runs.
    public static var best: KernelPath { [.avx512, .avx2].first { $0.isAvailable } ?? .portable }

    /// The path `SWITCHYARD_KERNEL` names, or nil when it is unset or empty.
    /// - Throws: `SwitchyardError.invalidArgument` if it names no path, or a path this CPU cannot run.
    public static func fromEnvironment() throws(SwitchyardError) -> KernelPath? {
        try parse(getenv(environmentVariable).map { String(cString: $0) })
    }

    /// The path a `SWITCHYARD_KERNEL` value names, or nil for nil or an empty value.
    /// - Throws: `SwitchyardError.invalidArgument` if it names no path, or a path this CPU cannot run.
    public static func parse(_ value: String?) throws(SwitchyardError) -> KernelPath? {
        guard let value, !value.isEmpty else { return nil }
        guard let path = KernelPath(rawValue: value.lowercased()) else {
            throw SwitchyardError.invalidArgument(
                "\(environmentVariable)=\(value): expected one of "
                    + KernelPath.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        guard path.isAvailable else {
            throw SwitchyardError.invalidArgument(
                "\(environmentVariable)=\(value): this CPU cannot run the \(value) kernels; available: "
                    + KernelPath.allCases.filter(\.isAvailable).map(\.rawValue).joined(separator: ", ")
            )
        }
        return path
    }

    /// A short name for logs.
    public var description: String { rawValue }
}

/// How the fused engine stores weights and multiplies.
public enum WeightPrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// FP32 weights and products (the default).
    case fp32
    /// Weights and each layer's inputs rounded to bfloat16, products summed in FP32 (AVX-512 BF16 only): about
    /// twice the arithmetic rate, about three significant digits per product.
    case bf16
    /// INT8 weights, symmetric per output column, and each layer's inputs quantized per row at run time to 7-bit
    /// unsigned values with their own scale and zero point; int32 sums, dequantized in the fused epilogue (bias,
    /// activation and softmax stay FP32). Runs on every kernel path (AVX2 `vpmaddubsw`, AVX-512 VNNI `vpdpbusd`
    /// where the CPU has it, portable C elsewhere).
    case int8

    /// Whether this CPU runs the precision's kernels.
    public var isAvailable: Bool {
        switch self {
        case .fp32, .int8: true
        case .bf16: sy_bf16_available() != 0
        }
    }

    /// The CPU feature the precision needs and this CPU lacks, or nil when it runs here.
    public var missingFeature: String? { isAvailable ? nil : "AVX-512 BF16" }

    /// The precision a model's `precision:` setting names.
    public init(_ setting: ModelConfiguration.Precision) {
        switch setting {
        case .fp32: self = .fp32
        case .bf16: self = .bf16
        case .int8: self = .int8
        }
    }

    /// A short name for logs.
    public var description: String { rawValue }
}

// MARK: - Compiling a graph into dense layers

/// A graph reduced to what the fused engine runs: steps that are either a chain of dense layers (GEMM + bias +
/// activation per layer, packed and run by the SIMD kernels, an optional softmax after the last) or row-wise
/// operations run by the reference interpreter between them (a layer norm, a residual addition, a classifier's
/// argmax and label lookup). An affine prologue before the first layer (a scaler, a cast) is folded into it.
struct FusedPlan {
    /// One dense layer: `y = activation(x · weights + bias)`.
    struct Layer {
        var k: Int
        var n: Int
        /// `[k, n]`, row-major, with Gemm's alpha and any folded constant scaling applied.
        var weights: [Float]
        var bias: [Float]
        var activation: UnaryOperator?
    }

    /// Consecutive dense layers that run chunk by chunk with their activations in cache.
    struct Chain {
        /// Indices into `layers`.
        var layers: Range<Int>
        /// The value the first layer reads, and the value the chain's result is.
        var input: Int
        var output: Int
        /// Softmax over each row of the last layer's output.
        var softmax: Bool
    }

    /// One step of a batch.
    enum Step {
        case chain(Int)
        case interpret([Graph.Node])
    }

    /// Where a graph output's values come from.
    enum Tap: Equatable {
        /// The first chain's input, a graph input.
        case input
        case layer(Int)
        /// The softmax after chain `i`.
        case softmax(Int)
        /// A value the interpreter holds: a graph input, an interpreted node's result or a chain's result.
        case value(Int)
    }

    var layers: [Layer]
    var chains: [Chain]
    var steps: [Step]
    var outputs: [Tap]
    /// What was folded into the dense layers at load, for `switchyard models`: `Scaler into layer 1`.
    var folded: [String] = []

    /// The interpreted operations, all steps together.
    var interpreted: [Graph.Node] {
        steps.flatMap { step -> [Graph.Node] in
            if case .interpret(let nodes) = step { return nodes }
            return []
        }
    }

    /// Compiles a graph, or throws `unimplemented` with the reason it has no dense layer the kernels can run.
    static func compile(_ graph: Graph) throws(SwitchyardError) -> FusedPlan {
        var compiler = Compiler(graph: graph)
        return try compiler.compile()
    }
}

private struct Compiler {
    let graph: Graph
    var uses: [Int]
    var layers: [FusedPlan.Layer] = []
    var stages: [Int] = []
    var taps: [Int: (tap: FusedPlan.Tap, stage: Int)] = [:]
    var current: Int
    var softmax = false
    var folded: [String] = []
    var chains: [FusedPlan.Chain] = []
    /// A per-column affine `x · scale + shift` waiting to be folded into the first layer's input side.
    var prologue: (scale: [Float], shift: [Float])?

    init(graph: Graph) {
        self.graph = graph
        var uses = [Int](repeating: 0, count: graph.values.count)
        for node in graph.nodes {
            for id in node.operation.operands { uses[id] += 1 }
        }
        for id in graph.outputs { uses[id] += 1 }
        self.uses = uses
        self.current = graph.inputs.first ?? 0
    }

    func decline(_ node: Graph.Node, _ reason: String) -> SwitchyardError {
        SwitchyardError(.unimplemented, "\(node.label) (\(node.opType)): \(reason)")
    }

    /// The last layer, if `current` is its latest stage and nothing else needs that stage: it may be extended.
    func extensibleLayer(_ node: Graph.Node) throws(SwitchyardError) -> Int {
        guard !softmax else { throw decline(node, "only Identity, Flatten or Reshape may follow the softmax") }
        guard let (tap, stage) = taps[current], case .layer(let index) = tap, index == layers.count - 1,
            stage == stages[index]
        else { throw decline(node, "expected a dense layer (Gemm or MatMul) before it") }
        guard uses[current] == 1 else {
            throw decline(node, "its input '\(graph.values[current].name)' is also used elsewhere")
        }
        return index
    }

    mutating func advance(_ index: Int, to output: Int) {
        stages[index] += 1
        taps[output] = (.layer(index), stages[index])
        current = output
    }

    /// Folds the nodes before the first dense layer into a per-column affine of the input when they are a chain of
    /// constant additions, subtractions, multiplications and divisions (a scaler, a batch norm, casts) on the one
    /// graph input. Returns false, changing nothing, when they are not.
    mutating func foldPrologue(_ head: ArraySlice<Graph.Node>) -> Bool {
        guard graph.inputs.count == 1 else { return false }
        var value = graph.inputs[0]
        let width = graph.values[value].width
        var scale = [Float](repeating: 1, count: width)
        var shift = [Float](repeating: 0, count: width)
        for node in head {
            guard graph.values[value].rowShape.count <= 1, uses[value] == 1 else { return false }
            switch node.operation {
            case .unary(.identity, let input, let output), .reshape(let input, let output):
                guard input == value else { return false }
                value = output
            case .binary(let op, let lhs, let rhs, let output):
                switch (op, lhs, rhs) {
                case (.add, .value(value), .constant(let c)), (.add, .constant(let c), .value(value)):
                    for i in 0..<width { shift[i] += c[i] }
                case (.sub, .value(value), .constant(let c)):
                    for i in 0..<width { shift[i] -= c[i] }
                case (.sub, .constant(let c), .value(value)):
                    for i in 0..<width { (scale[i], shift[i]) = (-scale[i], c[i] - shift[i]) }
                case (.mul, .value(value), .constant(let c)), (.mul, .constant(let c), .value(value)):
                    for i in 0..<width { (scale[i], shift[i]) = (scale[i] * c[i], shift[i] * c[i]) }
                case (.div, .value(value), .constant(let c)):
                    guard c.allSatisfy({ $0 != 0 }) else { return false }
                    for i in 0..<width { (scale[i], shift[i]) = (scale[i] / c[i], shift[i] / c[i]) }
                default:
                    return false
                }
                value = output
            default:
                return false
            }
        }
        if !head.isEmpty {
            prologue = (scale, shift)
            let kinds = Set(head.map(\.opType)).sorted().joined(separator: ", ")
            folded.append("\(kinds) into layer 1")
        }
        current = value
        return true
    }

    /// Whether a node starts a dense layer on a `[batch, K]` value.
    func isDense(_ node: Graph.Node) -> Bool {
        switch node.operation {
        case .gemm(let gemm): graph.values[gemm.input].rowShape.count == 1
        case .matMul(let matMul): graph.values[matMul.input].rowShape.count == 1
        default: false
        }
    }

    mutating func closeChain(input: Int, from start: Int) {
        chains.append(FusedPlan.Chain(layers: start..<layers.count, input: input, output: current, softmax: softmax))
    }

    mutating func compile() throws(SwitchyardError) -> FusedPlan {
        guard let firstDense = graph.nodes.firstIndex(where: isDense) else {
            throw SwitchyardError(.unimplemented, "the graph has no dense layer on a [batch, K] input")
        }
        var steps: [FusedPlan.Step] = []
        var pending: [Graph.Node] = []
        var position = 0
        var chain: (input: Int, start: Int)?
        if foldPrologue(graph.nodes[..<firstDense]) {
            // The first chain reads the graph input; the folded prologue's result is what its first layer takes.
            position = firstDense
            if firstDense == 0 { taps[current] = (.input, 0) }
            chain = (graph.inputs[0], 0)
        }
        while position < graph.nodes.count {
            let node = graph.nodes[position]
            if chain == nil {
                guard isDense(node) else {
                    pending.append(node)
                    position += 1
                    continue
                }
                if !pending.isEmpty { steps.append(.interpret(pending)) }
                pending = []
                current = node.operation.operands[0]
                softmax = false
                chain = (current, layers.count)
            }
            do {
                if let consumed = try erfGelu(at: position) {
                    position += consumed
                    continue
                }
                try step(node)
                position += 1
            } catch  where error.code == .unimplemented {
                guard let open = chain, layers.count > open.start else {
                    // The chain could not even start here: the node runs on the interpreter.
                    chain = nil
                    pending.append(node)
                    position += 1
                    continue
                }
                closeChain(input: open.input, from: open.start)
                steps.append(.chain(chains.count - 1))
                chain = nil
            }
        }
        if let open = chain, layers.count > open.start {
            closeChain(input: open.input, from: open.start)
            steps.append(.chain(chains.count - 1))
        }
        if !pending.isEmpty { steps.append(.interpret(pending)) }
        guard !layers.isEmpty else { throw SwitchyardError(.unimplemented, "the graph has no dense layer") }
        let interpreterValues = try checkInterpreterReads(steps)
        var outputs: [FusedPlan.Tap] = []
        for id in graph.outputs {
            if let (tap, stage) = taps[id] {
                if case .layer(let index) = tap, stage != stages[index] {
                    throw SwitchyardError(
                        .unimplemented,
                        "output '\(graph.values[id].name)' is an intermediate value inside a layer"
                    )
                }
                outputs.append(tap)
            } else if interpreterValues.contains(id) {
                outputs.append(.value(id))
            } else {
                throw SwitchyardError(.unimplemented, "output '\(graph.values[id].name)' is not computed")
            }
        }
        if let prologue { foldIntoFirstLayer(prologue) }
        return FusedPlan(layers: layers, chains: chains, steps: steps, outputs: outputs, folded: folded)
    }

    /// Checks that every value a step reads is one the interpreter holds when it runs: graph inputs, interpreted
    /// results and chain results, never a value inside a chain. Returns the values the interpreter holds.
    func checkInterpreterReads(_ steps: [FusedPlan.Step]) throws(SwitchyardError) -> Set<Int> {
        var held = Set(graph.inputs)
        for step in steps {
            switch step {
            case .chain(let index):
                let chain = chains[index]
                guard held.contains(chain.input) else {
                    throw SwitchyardError(
                        .unimplemented,
                        "a chain of dense layers reads '\(graph.values[chain.input].name)', which nothing before it holds"
                    )
                }
                held.insert(chain.output)
            case .interpret(let nodes):
                for node in nodes {
                    for operand in node.operation.operands where !held.contains(operand) {
                        throw decline(
                            node,
                            "it reads '\(graph.values[operand].name)' from inside a chain of dense layers"
                        )
                    }
                    held.insert(node.operation.output)
                }
            }
        }
        return held
    }

    /// `(x · s + t) · W + b = x · (diag(s) · W) + (t · W + b)`.
    mutating func foldIntoFirstLayer(_ affine: (scale: [Float], shift: [Float])) {
        let n = layers[0].n
        for inner in 0..<layers[0].k {
            let shift = Double(affine.shift[inner])
            for column in 0..<n {
                let weight = layers[0].weights[inner * n + column]
                layers[0].bias[column] = Float(Double(layers[0].bias[column]) + shift * Double(weight))
                layers[0].weights[inner * n + column] = weight * affine.scale[inner]
            }
        }
    }

    mutating func step(_ node: Graph.Node) throws(SwitchyardError) {
        switch node.operation {
        case .reshape(let input, let output), .unary(.identity, let input, let output):
            guard input == current else { throw decline(node, "expected it to take the previous layer's output") }
            taps[output] = taps[input]
            current = output
        case .gemm(let gemm):
            try startLayer(node, input: gemm.input)
            var weights = [Float](repeating: 0, count: gemm.k * gemm.n)
            for inner in 0..<gemm.k {
                for column in 0..<gemm.n {
                    let b = gemm.transB ? gemm.b[column * gemm.k + inner] : gemm.b[inner * gemm.n + column]
                    weights[inner * gemm.n + column] = gemm.alpha * b
                }
            }
            let bias = gemm.c.map { $0.map { gemm.beta * $0 } } ?? [Float](repeating: 0, count: gemm.n)
            addLayer(FusedPlan.Layer(k: gemm.k, n: gemm.n, weights: weights, bias: bias), output: gemm.output)
        case .matMul(let matMul):
            try startLayer(node, input: matMul.input)
            addLayer(
                FusedPlan.Layer(
                    k: matMul.k,
                    n: matMul.n,
                    weights: matMul.b,
                    bias: [Float](repeating: 0, count: matMul.n)
                ),
                output: matMul.output
            )
        case .binary(let op, let lhs, let rhs, let output):
            try foldConstant(node, op: op, lhs: lhs, rhs: rhs, output: output)
        case .unary(let op, let input, let output):
            guard input == current else { throw decline(node, "expected it to take the previous layer's output") }
            guard op.isKernelActivation else { throw decline(node, "the kernels have no such activation") }
            let index = try extensibleLayer(node)
            guard layers[index].activation == nil else {
                throw decline(node, "a second activation in one layer is not fused")
            }
            layers[index].activation = op
            advance(index, to: output)
        case .softmax(let input, let output, let group, let log):
            guard !log else { throw decline(node, "log-softmax is not fused") }
            guard input == current, !softmax else {
                throw decline(node, "expected a softmax on the last layer's output")
            }
            guard let (tap, _) = taps[input], case .layer(let index) = tap, index == layers.count - 1 else {
                throw decline(node, "expected a softmax after a dense layer")
            }
            guard group == graph.values[input].width else {
                throw decline(node, "softmax over part of a row is not fused")
            }
            // A graph output may read the logits too (the chain taps them); another node may not.
            guard uses[input] - graph.outputs.filter({ $0 == input }).count == 1 else {
                throw decline(node, "its input '\(graph.values[input].name)' is also used elsewhere")
            }
            softmax = true
            taps[output] = (.softmax(chains.count), 0)
            current = output
        case .reduce, .argExtreme, .layerNorm, .normalize, .assemble, .lookup, .prelu, .select:
            throw decline(node, "the dense chain ends here")
        }
    }

    mutating func startLayer(_ node: Graph.Node, input: Int) throws(SwitchyardError) {
        guard !softmax else { throw decline(node, "a dense layer after the softmax is not fused") }
        guard input == current else { throw decline(node, "expected it to take the previous layer's output") }
        guard graph.values[input].rowShape.count == 1 else {
            throw decline(
                node,
                "input of shape \(Shape.format([-1] + graph.values[input].rowShape)) is not a [batch, K] matrix"
            )
        }
    }

    mutating func addLayer(_ layer: FusedPlan.Layer, output: Int) {
        layers.append(layer)
        stages.append(0)
        taps[output] = (.layer(layers.count - 1), 0)
        current = output
    }

    /// Folds `x ± c`, `x · c` and `x / c` with a per-column constant into the layer's bias and weights.
    mutating func foldConstant(
        _ node: Graph.Node,
        op: BinaryOperator,
        lhs: Operand,
        rhs: Operand,
        output: Int
    ) throws(SwitchyardError) {
        let row: [Float]
        let valueFirst: Bool
        switch (lhs, rhs) {
        case _ where ![.add, .sub, .mul, .div].contains(op):
            throw decline(node, "\(op.rawValue) is not fused")
        case (.value(let id), .constant(let constant)) where id == current:
            (row, valueFirst) = (constant, true)
        case (.constant(let constant), .value(let id)) where id == current: (row, valueFirst) = (constant, false)
        default: throw decline(node, "only a constant applied to the previous layer's output is fused")
        }
        let index = try extensibleLayer(node)
        guard layers[index].activation == nil else {
            throw decline(node, "a constant applied after the activation is not fused")
        }
        let n = layers[index].n
        switch (op, valueFirst) {
        case (.add, _):
            for column in 0..<n { layers[index].bias[column] += row[column] }
        case (.sub, true):
            for column in 0..<n { layers[index].bias[column] -= row[column] }
        case (.mul, _), (.div, true):
            var scale = row
            if op == .div {
                guard row.allSatisfy({ $0 != 0 }) else { throw decline(node, "division by a zero constant") }
                scale = row.map { 1 / $0 }
            }
            for inner in 0..<layers[index].k {
                for column in 0..<n { layers[index].weights[inner * n + column] *= scale[column] }
            }
            for column in 0..<n { layers[index].bias[column] *= scale[column] }
        case (.sub, false), (.div, false):
            throw decline(node, "a constant on the left of \(op.rawValue) is not fused")
        default:
            throw decline(node, "\(op.rawValue) is not fused")
        }
        advance(index, to: output)
    }

    /// torch.onnx's GELU before opset 20: `y = x · (erf(x / √2) + 1) · 0.5` over five nodes. Returns the node
    /// count when the pattern starts at `position` on the current layer's output.
    mutating func erfGelu(at position: Int) throws(SwitchyardError) -> Int? {
        let nodes = graph.nodes
        guard position + 4 < nodes.count else { return nil }
        func constant(_ operand: Operand, is expected: Float) -> Bool {
            guard case .constant(let row) = operand else { return false }
            return row.allSatisfy { abs($0 - expected) <= 1e-6 * abs(expected) }
        }
        func binary(_ node: Graph.Node, _ op: BinaryOperator, value: Int, constant expected: Float) -> Int? {
            guard case .binary(let kind, let lhs, let rhs, let output) = node.operation, kind == op else { return nil }
            if case .value(value) = lhs, constant(rhs, is: expected) { return output }
            if op != .div, case .value(value) = rhs, constant(lhs, is: expected) { return output }
            return nil
        }
        func product(_ node: Graph.Node, _ a: Int, _ b: Int) -> Int? {
            guard case .binary(.mul, .value(let lhs), .value(let rhs), let output) = node.operation,
                (lhs == a && rhs == b) || (lhs == b && rhs == a)
            else { return nil }
            return output
        }
        let x = current
        guard
            let scaled = binary(nodes[position], .div, value: x, constant: Float(2).squareRoot())
                ?? binary(nodes[position], .mul, value: x, constant: Float(0.5).squareRoot()),
            case .unary(.erf, scaled, let erf) = nodes[position + 1].operation,
            let plusOne = binary(nodes[position + 2], .add, value: erf, constant: 1),
            [scaled, erf, plusOne].allSatisfy({ uses[$0] == 1 }), uses[x] == 2
        else { return nil }
        let y: Int
        if let xTimes = product(nodes[position + 3], x, plusOne),
            let result = binary(nodes[position + 4], .mul, value: xTimes, constant: 0.5), uses[xTimes] == 1
        {
            y = result
        } else if let half = binary(nodes[position + 3], .mul, value: x, constant: 0.5),
            let result = product(nodes[position + 4], half, plusOne), uses[half] == 1
        {
            y = result
        } else {
            return nil
        }
        uses[x] = 1  // the pattern's two uses of x become the one fused activation
        let index = try extensibleLayer(nodes[position])
        guard layers[index].activation == nil else { return nil }
        layers[index].activation = .gelu
        advance(index, to: y)
        return 5
    }
}

// MARK: - The engine

/// Packed weights and the per-layer kernel descriptors, shared read-only by every executor of an engine.
final class FusedProgram: @unchecked Sendable {
    let kernel: KernelPath
    let precision: WeightPrecision
    let signature: ModelSignature
    /// The widest layer input: the kernels' workspace holds a chunk of rows this wide.
    var maxInputWidth: Int { (0..<layers.count).map { Int(layers[$0].k) }.max() ?? 0 }
    /// Kernel descriptors; their pointers point into `allocations`.
    let layers: UnsafeMutableBufferPointer<sy_layer>
    /// Row stride of each layer's output in scratch: its packed column count.
    let strides: [Int]
    let widths: [Int]
    let chains: [FusedPlan.Chain]
    /// For each chain, the position of its input among the graph inputs, or nil when the interpreter holds it.
    let chainInputPositions: [Int?]
    /// The values the interpreter holds: those its steps read or write, chain inputs and outputs it passes
    /// between steps, and outputs it answers. Chain-internal values never take interpreter memory.
    let interpreterValues: Set<Int>
    let steps: [FusedPlan.Step]
    let outputs: [FusedPlan.Tap]
    /// The imported graph, for the interpreter that runs the plan's row-wise steps.
    let graph: Graph
    /// Whether any work runs on the interpreter: interpreted steps, several chains, or outputs it holds.
    var interprets: Bool {
        steps.count > 1 || outputs.contains { if case .value = $0 { true } else { false } }
    }
    /// The widest output of a chain that ends in a softmax (0 when none does).
    var maxSoftmaxWidth: Int {
        chains.filter(\.softmax).map { widths[$0.layers.upperBound - 1] }.max() ?? 0
    }
    /// For each layer, the outputs that copy its result.
    let layerOutputs: [[Int]]
    let maxStride: Int
    private var allocations: [UnsafeMutableRawPointer] = []

    init(plan: FusedPlan, graph: Graph, kernel: KernelPath, precision: WeightPrecision) {
        self.kernel = kernel
        self.precision = precision
        self.signature = graph.signature
        self.graph = graph
        self.chains = plan.chains
        self.chainInputPositions = plan.chains.map { graph.inputs.firstIndex(of: $0.input) }
        var held = Set<Int>()
        for node in plan.interpreted { held.formUnion(node.operation.operands + [node.operation.output]) }
        for chain in plan.chains where graph.inputs.firstIndex(of: chain.input) == nil { held.insert(chain.input) }
        for tap in plan.outputs { if case .value(let id) = tap { held.insert(id) } }
        self.interpreterValues = held
        self.steps = plan.steps
        self.outputs = plan.outputs
        let nr = kernel.panelWidth
        let vector = nr / 2
        layers = .allocate(capacity: plan.layers.count)
        var strides: [Int] = []
        for (index, layer) in plan.layers.enumerated() {
            let (code, alpha) = FusedProgram.activationCode(layer.activation)
            if precision == .bf16 {
                let (packed, panels) = FusedProgram.packBF16(layer)
                let bias = FusedProgram.allocateFloats(panels * 32)
                for column in 0..<layer.n { bias[column] = layer.bias[column] }
                allocations.append(UnsafeMutableRawPointer(packed))
                allocations.append(UnsafeMutableRawPointer(bias))
                layers[index] = sy_layer(
                    k: Int32(layer.k),
                    n: Int32(layer.n),
                    panels: Int32(panels),
                    narrow_last: 0,
                    packed: UnsafeRawPointer(packed).assumingMemoryBound(to: Float.self),
                    bias: bias,
                    activation: code,
                    alpha: alpha,
                    bf16: 1,
                    int8: 0,
                    scales: nil,
                    column_sums: nil
                )
                strides.append(panels * 32)
                continue
            }
            if precision == .int8 {
                let int8 = FusedProgram.packInt8(layer)
                allocations += int8.allocations
                layers[index] = sy_layer(
                    k: Int32(layer.k),
                    n: Int32(layer.n),
                    panels: Int32(int8.panels),
                    narrow_last: 0,
                    packed: UnsafeRawPointer(int8.packed).assumingMemoryBound(to: Float.self),
                    bias: int8.bias,
                    activation: code,
                    alpha: alpha,
                    bf16: 0,
                    int8: 1,
                    scales: int8.scales,
                    column_sums: int8.columnSums
                )
                strides.append(int8.panels * Int(SY_I8_NR))
                continue
            }
            // Whole panels of nr columns; a tail that fits one vector gets a narrow panel instead of a padded one.
            let remainder = layer.n % nr
            let narrow = remainder > 0 && remainder <= vector
            let panels = (layer.n + nr - 1) / nr
            let columns = layer.n - remainder + (remainder == 0 ? 0 : narrow ? vector : nr)
            let packed = FusedProgram.allocateFloats(panels * layer.k * nr)
            let bias = FusedProgram.allocateFloats(columns)
            for panel in 0..<panels {
                let width = narrow && panel == panels - 1 ? vector : nr
                let base = panel * layer.k * nr
                for inner in 0..<layer.k {
                    for lane in 0..<width {
                        let column = panel * nr + lane
                        packed[base + inner * width + lane] =
                            column < layer.n ? layer.weights[inner * layer.n + column] : 0
                    }
                }
            }
            for column in 0..<columns { bias[column] = column < layer.n ? layer.bias[column] : 0 }
            allocations.append(UnsafeMutableRawPointer(packed))
            allocations.append(UnsafeMutableRawPointer(bias))
            layers[index] = sy_layer(
                k: Int32(layer.k),
                n: Int32(layer.n),
                panels: Int32(panels),
                narrow_last: narrow ? 1 : 0,
                packed: packed,
                bias: bias,
                activation: code,
                alpha: alpha,
                bf16: 0,
                int8: 0,
                scales: nil,
                column_sums: nil
            )
            strides.append(columns)
        }
        self.strides = strides
        self.widths = plan.layers.map(\.n)
        self.maxStride = strides.max() ?? 0
        var layerOutputs = [[Int]](repeating: [], count: plan.layers.count)
        for (position, tap) in plan.outputs.enumerated() {
            if case .layer(let index) = tap { layerOutputs[index].append(position) }
        }
        self.layerOutputs = layerOutputs
    }

    deinit {
        layers.deallocate()
        for pointer in allocations { pointer.deallocate() }
    }

    /// BF16 panels of 32 columns: for each k-pair q, each column's couple (W[2q][j], W[2q+1][j]).
    static func packBF16(_ layer: FusedPlan.Layer) -> (UnsafeMutablePointer<UInt16>, panels: Int) {
        let panels = (layer.n + 31) / 32
        let pairs = (layer.k + 1) / 2
        let count = max(panels * pairs * 64, 32)
        let packed = UnsafeMutableRawPointer.allocate(byteCount: count * 2, alignment: 64)
            .initializeMemory(as: UInt16.self, repeating: 0, count: count)
        for panel in 0..<panels {
            for pair in 0..<pairs {
                for lane in 0..<32 {
                    let column = panel * 32 + lane
                    guard column < layer.n else { continue }
                    let base = (panel * pairs + pair) * 64 + (lane / 16) * 32 + (lane % 16) * 2
                    for half in 0..<2 where 2 * pair + half < layer.k {
                        packed[base + half] = sy_bf16_from_float(layer.weights[(2 * pair + half) * layer.n + column])
                    }
                }
            }
        }
        return (packed, panels)
    }

    /// The INT8 layout (see `sy_dense_i8`): each column's weights scaled to -127…127 by its largest magnitude and
    /// rounded to nearest (ties to even), in panels of 16 columns holding groups of four inputs; the scales, the
    /// columns' sums of quantized weights and the bias, zero-padded to whole panels.
    static func packInt8(_ layer: FusedPlan.Layer) -> (
        packed: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
        columnSums: UnsafeMutablePointer<Int32>, bias: UnsafeMutablePointer<Float>, panels: Int,
        allocations: [UnsafeMutableRawPointer]
    ) {
        let width = Int(SY_I8_NR)
        let group = Int(SY_I8_KG)
        let panels = (layer.n + width - 1) / width
        let groups = (layer.k + group - 1) / group
        let count = max(panels * groups * group * width, 64)
        let packed = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 64)
            .initializeMemory(as: Int8.self, repeating: 0, count: count)
        let scales = allocateFloats(panels * width)
        let bias = allocateFloats(panels * width)
        let columnSums = UnsafeMutableRawPointer.allocate(byteCount: max(panels * width, 16) * 4, alignment: 64)
            .initializeMemory(as: Int32.self, repeating: 0, count: max(panels * width, 16))
        for column in 0..<layer.n {
            var largest: Float = 0
            for inner in 0..<layer.k { largest = max(largest, abs(layer.weights[inner * layer.n + column])) }
            // A column of zeros (or of non-finite weights) quantizes to zeros.
            let scale = largest.isFinite && largest > 0 ? largest / 127 : 0
            scales[column] = scale
            bias[column] = layer.bias[column]
            var sum: Int32 = 0
            let base = (column / width) * groups * group * width + (column % width) * group
            for inner in 0..<layer.k {
                let scaled = scale > 0 ? layer.weights[inner * layer.n + column] / scale : 0
                let value = scaled.isNaN ? 0 : Int8(min(max(scaled.rounded(.toNearestOrEven), -127), 127))
                packed[base + (inner / group) * group * width + inner % group] = value
                sum += Int32(value)
            }
            columnSums[column] = sum
        }
        let raw = [
            UnsafeMutableRawPointer(packed), UnsafeMutableRawPointer(scales), UnsafeMutableRawPointer(bias),
            UnsafeMutableRawPointer(columnSums),
        ]
        return (packed, scales, columnSums, bias, panels, raw)
    }

    static func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 16) * 4, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 16))
    }

    static func activationCode(_ activation: UnaryOperator?) -> (Int32, Float) {
        switch activation {
        case nil, .identity?: (Int32(SY_ACT_NONE), 0)
        case .relu?: (Int32(SY_ACT_RELU), 0)
        case .leakyRelu(let alpha)?: (Int32(SY_ACT_LEAKY_RELU), alpha)
        case .sigmoid?: (Int32(SY_ACT_SIGMOID), 0)
        case .tanh?: (Int32(SY_ACT_TANH), 0)
        case .gelu?: (Int32(SY_ACT_GELU), 0)
        case .geluTanh?: (Int32(SY_ACT_GELU_TANH), 0)
        case .erf?: (Int32(SY_ACT_ERF), 0)
        case .some(let other):
            // The compiler fuses only `isKernelActivation` operators; anything else stays on the interpreter.
            preconditionFailure("no kernel activation for \(other)")
        }
    }
}

/// Runs graphs that reduce to a chain of dense layers (GEMM + bias + activation per layer, an optional softmax
/// after the last) with packed weights and SIMD micro-kernels.
///
/// Numerics: FP32 throughout, products accumulated in k order with fused multiply-adds (on the AVX paths), so
/// results differ from the double-accumulating `ReferenceEngine` by float rounding (well within 1e-4
/// relative). A row's outputs are bit-for-bit the same whatever batch it is in and wherever it sits in it;
/// different kernel paths may differ from each other in the last bits.
public final class FusedEngine: InferenceEngine, CustomStringConvertible {
    /// Rows run through the whole network at a time: their activations stay in L2 between layers.
    public static let chunkRows = 64

    /// The model's inputs and outputs.
    public let signature: ModelSignature
    /// The kernel path this engine runs.
    public var kernel: KernelPath { program.kernel }
    /// The dense layers' widths, input first: `[64, 256, 128, 10]` (each chain's, one after the other, when
    /// interpreted operations split the layers into several chains).
    public let layerWidths: [Int]
    /// Each chain's widths, input first.
    public let chainWidths: [[Int]]
    /// What was folded into the dense layers at load, e.g. `Scaler into layer 1`.
    public let folded: [String]
    /// How many operations run on the interpreter before and after the dense layers (argmax heads, lookups).
    public let interpretedNodes: Int
    /// How many of those are dense layers (after a normalisation the chain cannot take in).
    public let interpretedDenseNodes: Int
    let program: FusedProgram

    /// Compiles and packs a model.
    /// - Parameters:
    ///   - model: an imported model.
    ///   - kernel: the kernel path; nil takes `SWITCHYARD_KERNEL` if set, else the best this CPU runs.
    ///   - precision: FP32 (default), BF16 weights (the AVX-512 path on a CPU with AVX-512 BF16) or INT8 (any
    ///     path; measure it on the model's samples before serving it, see `applyingPrecision`).
    /// - Throws: `SwitchyardError.unimplemented` naming the node when the graph is not a chain of dense
    ///   layers (run it with `ReferenceEngine`); `invalidArgument` for a kernel path this CPU cannot run.
    public convenience init(model: ONNXModel, kernel: KernelPath? = nil, precision: WeightPrecision = .fp32)
        throws(SwitchyardError)
    {
        try self.init(graph: model.graph, kernel: kernel, precision: precision)
    }

    init(graph: Graph, kernel: KernelPath?, precision: WeightPrecision) throws(SwitchyardError) {
        let path: KernelPath
        if let kernel { path = kernel } else { path = try KernelPath.fromEnvironment() ?? KernelPath.best }
        guard path.isAvailable else {
            throw SwitchyardError.invalidArgument("this CPU cannot run the \(path) kernels")
        }
        if precision == .bf16 {
            guard path == .avx512, precision.isAvailable else {
                throw SwitchyardError.invalidArgument(
                    "bf16 weights need the avx512 kernel path on a CPU with AVX-512 BF16; got \(path)"
                        + (precision.isAvailable ? "" : " on a CPU without AVX-512 BF16")
                )
            }
        }
        let plan = try FusedPlan.compile(graph)
        self.signature = graph.signature
        self.layerWidths = plan.chains.flatMap { chain in
            [plan.layers[chain.layers.lowerBound].k] + plan.layers[chain.layers].map(\.n)
        }
        self.chainWidths = plan.chains.map { chain in
            [plan.layers[chain.layers.lowerBound].k] + plan.layers[chain.layers].map(\.n)
        }
        self.program = FusedProgram(plan: plan, graph: graph, kernel: path, precision: precision)
        self.folded = plan.folded
        self.interpretedNodes = plan.interpreted.count
        self.interpretedDenseNodes =
            plan.interpreted.filter { node in
                switch node.operation {
                case .gemm, .matMul: true
                default: false
                }
            }.count
        self.precisionCheck = nil
    }

    /// The same engine (sharing its packed weights) with the outcome of its precision check.
    init(_ engine: FusedEngine, precisionCheck: PrecisionCheckResult) {
        signature = engine.signature
        layerWidths = engine.layerWidths
        chainWidths = engine.chainWidths
        folded = engine.folded
        interpretedNodes = engine.interpretedNodes
        interpretedDenseNodes = engine.interpretedDenseNodes
        program = engine.program
        self.precisionCheck = precisionCheck
    }

    /// How the precision measured against FP32 on the model's samples at load, when it was checked.
    public let precisionCheck: PrecisionCheckResult?

    /// Which INT8 kernel an INT8 engine runs: `avx512-vnni`, `avx2` or `portable`.
    public var int8Kernel: String {
        switch kernel {
        case .avx512: sy_i8_vnni_available() != 0 ? "avx512-vnni" : "avx2"
        case .avx2: "avx2"
        case .portable: "portable"
        }
    }

    /// How this engine stores weights.
    public var precision: WeightPrecision { program.precision }

    /// Whether the fused engine can run the model, or the reason it cannot.
    public static func unsupportedReason(for model: ONNXModel) -> String? {
        do {
            _ = try FusedPlan.compile(model.graph)
            return nil
        } catch {
            return error.message
        }
    }

    /// Creates an executor with its own scratch memory.
    public func makeExecutor() -> any EngineExecutor { FusedExecutor(program: program) }

    /// A short name for logs.
    public var description: String {
        var text =
            "fused engine (\(kernel), \(precision == .int8 ? "int8 on the \(int8Kernel) kernel" : "\(precision)"), layers "
            + chainWidths.map { $0.map(String.init).joined(separator: "→") }.joined(separator: " | ")
        if !folded.isEmpty { text += "; folded \(folded.joined(separator: ", "))" }
        if interpretedNodes > 0 {
            let dense = interpretedDenseNodes > 0 ? ", \(interpretedDenseNodes) of them dense" : ""
            text += "; \(interpretedNodes) operation\(interpretedNodes == 1 ? "" : "s") interpreted\(dense)"
        }
        if let precisionCheck { text += "; \(precisionCheck)" }
        return text + ")"
    }
}

/// One worker's scratch: two activation buffers of `chunkRows` rows and the kernels' workspace, allocated
/// once, 64-byte aligned, reused by every batch; and, for plans with a head or tail, an interpreter whose
/// buffers grow to the largest batch seen and are then reused.
final class FusedExecutor: EngineExecutor {
    private let program: FusedProgram
    private let buffers: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
    private let workspace: UnsafeMutablePointer<Float>
    private let interpreter: ReferenceExecutor?
    /// The chain's input when the head computes it, and the softmax rows the tail reads.
    private var staging: (input: [Float], softmax: UnsafeMutablePointer<Float>)

    init(program: FusedProgram) {
        self.program = program
        let rows = FusedEngine.chunkRows
        buffers = (
            FusedProgram.allocateFloats(rows * program.maxStride),
            FusedProgram.allocateFloats(rows * program.maxStride)
        )
        workspace = FusedProgram.allocateFloats(
            Int(sy_dense_workspace(program.kernel.code, Int32(rows), Int32(program.maxInputWidth)))
        )
        interpreter = program.interprets ? ReferenceExecutor(graph: program.graph) : nil
        staging = ([], FusedProgram.allocateFloats(rows * max(program.maxSoftmaxWidth, 1)))
    }

    deinit {
        buffers.0.deallocate()
        buffers.1.deallocate()
        workspace.deallocate()
        staging.softmax.deallocate()
    }

    func run(inputs: [UnsafeBufferPointer<Float>], rows: Int, outputs: [UnsafeMutableBufferPointer<Float>])
        throws(SwitchyardError)
    {
        try validateRunArguments(signature: program.signature, inputs: inputs, rows: rows, outputs: outputs)
        interpreter?.prepare(rows: rows, inputs: inputs, values: program.interpreterValues)
        for step in program.steps {
            switch step {
            case .interpret(let nodes):
                for node in nodes { try interpreter?.execute(node, rows: rows) }
            case .chain(let index):
                if let position = program.chainInputPositions[index] {
                    guard let input = inputs[position].baseAddress else { return }
                    runChain(index, input: input, rows: rows, outputs: outputs)
                } else if let interpreter {
                    let chain = program.chains[index]
                    let count = rows * program.graph.values[chain.input].width
                    if staging.input.count < count { staging.input = [Float](repeating: 0, count: count) }
                    staging.input.withUnsafeMutableBufferPointer { interpreter.copy(chain.input, rows: rows, into: $0) }
                    staging.input.withUnsafeBufferPointer {
                        runChain(index, input: $0.baseAddress!, rows: rows, outputs: outputs)
                    }
                }
            }
        }
        guard let interpreter else { return }
        for (position, tap) in program.outputs.enumerated() {
            guard case .value(let id) = tap else { continue }
            interpreter.copy(id, rows: rows, into: outputs[position])
        }
    }

    /// Runs one chain's dense layers over every row, in chunks, writing the outputs they tap and, when the
    /// interpreter runs other steps, the chain's result into it.
    private func runChain(
        _ chainIndex: Int,
        input: UnsafePointer<Float>,
        rows: Int,
        outputs: [UnsafeMutableBufferPointer<Float>]
    ) {
        let chain = program.chains[chainIndex]
        let kernel = program.kernel.code
        let inputWidth = Int(program.layers[chain.layers.lowerBound].k)
        let lastWidth = program.widths[chain.layers.upperBound - 1]
        var start = 0
        while start < rows {
            let count = min(FusedEngine.chunkRows, rows - start)
            var source = input + start * inputWidth
            var sourceStride = inputWidth
            var target = buffers.0
            for index in chain.layers {
                let stride = program.strides[index]
                sy_dense(
                    kernel,
                    program.layers.baseAddress! + index,
                    source,
                    sourceStride,
                    Int32(count),
                    target,
                    stride,
                    workspace
                )
                for position in program.layerOutputs[index] {
                    copyRows(
                        from: target,
                        stride: stride,
                        width: program.widths[index],
                        rows: count,
                        to: outputs[position].baseAddress! + start * program.widths[index]
                    )
                }
                source = UnsafePointer(target)
                sourceStride = stride
                target = target == buffers.0 ? buffers.1 : buffers.0
            }
            // With an interpreter the softmax rows are kept for it as well; without one they go straight out.
            if chain.softmax && interpreter != nil {
                sy_softmax(kernel, source, sourceStride, Int32(count), Int32(lastWidth), staging.softmax, lastWidth)
            }
            for (position, tap) in program.outputs.enumerated() {
                switch tap {
                case .softmax(chainIndex):
                    let target = outputs[position].baseAddress! + start * lastWidth
                    if interpreter != nil {
                        target.update(from: staging.softmax, count: count * lastWidth)
                    } else {
                        sy_softmax(kernel, source, sourceStride, Int32(count), Int32(lastWidth), target, lastWidth)
                    }
                case .input where chainIndex == 0:
                    copyRows(
                        from: input + start * inputWidth,
                        stride: inputWidth,
                        width: inputWidth,
                        rows: count,
                        to: outputs[position].baseAddress! + start * inputWidth
                    )
                default:
                    break
                }
            }
            if let interpreter, program.interpreterValues.contains(chain.output) {
                let (result, stride) =
                    chain.softmax ? (UnsafePointer(staging.softmax), lastWidth) : (source, sourceStride)
                interpreter.store(chain.output, rows: count, at: start) { row in result + row * stride }
            }
            start += count
        }
    }

    private func copyRows(
        from source: UnsafePointer<Float>,
        stride: Int,
        width: Int,
        rows: Int,
        to target: UnsafeMutablePointer<Float>
    ) {
        for row in 0..<rows {
            (target + row * width).update(from: source + row * stride, count: width)
        }
    }
}

// MARK: - Choosing an engine

/// Which engine `makeEngine(for:selection:)` builds.
public enum EngineSelection: String, Sendable, CaseIterable {
    /// The fused engine when it accepts the graph, else the reference engine.
    case automatic
    /// Always the reference engine (the exact, slow oracle).
    case reference
}

/// Builds the engine that serves a model: the fused engine when the graph is a chain of dense layers, else the
/// reference engine. The fused engine's kernel path follows `SWITCHYARD_KERNEL` when set.
/// - Parameters:
///   - model: the imported model.
///   - selection: `.automatic` (default) or `.reference` to force the reference engine.
///   - precision: the fused engine's weights: `.fp32` (default) or `.bf16` (opt-in; needs AVX-512 BF16 and the
///     avx512 kernel path). A graph the fused engine cannot run falls back to the FP32 reference engine.
/// - Throws: `SwitchyardError.invalidArgument` if `SWITCHYARD_KERNEL` names no path or one this CPU cannot run,
///   or if `.bf16` is asked for on a CPU or kernel path without AVX-512 BF16.
public func makeEngine(
    for model: ONNXModel,
    selection: EngineSelection = .automatic,
    precision: WeightPrecision = .fp32
) throws(SwitchyardError) -> any InferenceEngine {
    switch selection {
    case .reference:
        return ReferenceEngine(model: model)
    case .automatic:
        let kernel = try KernelPath.fromEnvironment() ?? (precision == .bf16 ? .avx512 : KernelPath.best)
        do {
            return try FusedEngine(model: model, kernel: kernel, precision: precision)
        } catch  where error.code == .unimplemented {
            return ReferenceEngine(model: model)
        }
    }
}

// MARK: - INT8 kernels, one layer at a time

extension FusedEngine {
    /// Whether this CPU runs the AVX-512 VNNI INT8 kernel (`vpdpbusd`), which the avx512 path uses for INT8.
    public static var int8VNNIAvailable: Bool { sy_i8_vnni_available() != 0 }

    /// Runs INT8 layer `index` alone on `rows` rows of `input` with the given kernel path: its int32 sums before
    /// dequantization (`raw`), which every path computes exactly alike, or its dequantized, activated outputs.
    /// Each result row has the layer's packed width (whole panels of 16 columns).
    func runInt8Layer(_ index: Int, input: [Float], rows: Int, kernel: KernelPath, raw: Bool) -> [Float] {
        precondition(precision == .int8 && kernel.isAvailable)
        let layer = program.layers.baseAddress! + index
        let k = Int(layer.pointee.k)
        let stride = program.strides[index]
        let workspace = FusedProgram.allocateFloats(Int(sy_dense_workspace(kernel.code, Int32(rows), Int32(k))))
        defer { workspace.deallocate() }
        var output = [Float](repeating: 0, count: rows * stride)
        input.withUnsafeBufferPointer { a in
            output.withUnsafeMutableBufferPointer { c in
                sy_dense_i8(
                    kernel.code,
                    layer,
                    a.baseAddress!,
                    k,
                    Int32(rows),
                    c.baseAddress!,
                    stride,
                    workspace,
                    raw ? 1 : 0
                )
            }
        }
        return output
    }
}
