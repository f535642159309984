// The fused engine against the reference engine and onnxruntime: every kernel path this CPU runs, random
// shapes and activations, determinism of a row wherever it lands in a batch, and which graphs it accepts.

import FoundationEssentials
import SwitchyardCore
import Testing

@testable import SwitchyardEngine

/// Builds random dense networks directly as imported graphs.
struct RandomNetwork {
    var values: [Graph.Value] = []
    var nodes: [Graph.Node] = []
    var rng: SplitMix64

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    mutating func value(_ width: Int) -> Int {
        values.append(Graph.Value(name: "v\(values.count)", rowShape: [width], width: width, dataType: .fp32))
        return values.count - 1
    }

    mutating func add(_ operation: Operation, _ opType: String) {
        nodes.append(Graph.Node(index: nodes.count, name: "n\(nodes.count)", opType: opType, operation: operation))
    }

    mutating func floats(_ count: Int, scale: Float) -> [Float] {
        (0..<count).map { _ in Float.random(in: -scale...scale, using: &rng) }
    }

    /// A Gemm (random transB, alpha, beta) or MatMul + Add layer from `input` to a new value of width n.
    mutating func dense(_ input: Int, n: Int) -> Int {
        let k = values[input].width
        let scale = 1.7 / Float(k).squareRoot()
        let output = value(n)
        if Bool.random(using: &rng) {
            let transB = Bool.random(using: &rng)
            let gemm = GemmOperation(
                input: input,
                output: output,
                k: k,
                n: n,
                b: floats(k * n, scale: scale),
                transB: transB,
                alpha: Float.random(in: 0.5...1.5, using: &rng),
                beta: Float.random(in: 0.5...1.5, using: &rng),
                c: Bool.random(using: &rng) ? floats(n, scale: 0.5) : nil
            )
            add(.gemm(gemm), "Gemm")
            return output
        }
        add(
            .matMul(MatMulOperation(input: input, output: output, k: k, n: n, b: floats(k * n, scale: scale))),
            "MatMul"
        )
        let biased = value(n)
        add(.binary(.add, lhs: .value(output), rhs: .constant(floats(n, scale: 0.5)), output: biased), "Add")
        return biased
    }

    mutating func activation(_ op: UnaryOperator, _ input: Int) -> Int {
        let output = value(values[input].width)
        add(.unary(op, input: input, output: output), "act")
        return output
    }

    func model(input: Int, outputs: [Int]) -> ONNXModel {
        let spec = { (id: Int) in TensorSpec(name: values[id].name, dataType: .fp32, shape: [-1, values[id].width]) }
        let graph = Graph(
            values: values,
            nodes: nodes,
            inputs: [input],
            outputs: outputs,
            signature: ModelSignature(inputs: [spec(input)], outputs: outputs.map(spec))
        )
        return ONNXModel(graph: graph)
    }
}

let availablePaths = KernelPath.allCases.filter(\.isAvailable)

let activations: [UnaryOperator] = [
    .relu, .leakyRelu(alpha: 0.07), .sigmoid, .tanh, .gelu, .geluTanh, .erf,
]

/// Input widths, layer widths and batch sizes: odd sizes around the vector widths (4, 8, 16) and panel widths
/// (8, 16, 32), K past the 1024-wide k blocks, and rows 4 KiB apart (1024 and 2048 wide), where A is packed.
let shapeCases: [(seed: UInt64, widths: [Int], rows: Int)] = [
    (1, [1, 1], 1), (2, [3, 5, 2], 2), (3, [17, 33, 9], 3), (4, [15, 31, 7], 4), (5, [33, 65, 10], 5),
    (6, [63, 17, 1], 7), (7, [100, 129, 13], 8), (8, [129, 300, 3], 9), (9, [257, 47, 29], 16),
    (10, [300, 513, 31], 33),
    (11, [64, 256, 128, 10], 64), (12, [7, 250, 19], 65), (13, [40, 97, 5], 100), (14, [513, 23, 40], 129),
    (15, [31, 63, 127, 255], 257), (16, [50, 70, 3], 300), (17, [1024, 33, 7], 20), (18, [20, 1024, 9], 70),
    (19, [1100, 45, 6], 20), (20, [2048, 33, 5], 9),
]

func expectClose(_ actual: [Float], _ expected: [Float], _ context: String) {
    let mismatch = firstMismatch(actual, expected, relative: 1e-4, absolute: 1e-5)
    #expect(mismatch == nil, "\(context): \(String(describing: mismatch))")
}

/// For each activation, a random network of `shape` (the activation after every layer but the last, and after the
/// last too for every other activation) with random input data for `shape.rows` rows.
func randomNetworks(
    _ shape: (seed: UInt64, widths: [Int], rows: Int)
) -> [(activation: UnaryOperator, model: ONNXModel, data: [Float])] {
    activations.enumerated().map { index, op in
        var network = RandomNetwork(seed: shape.seed &* 31 &+ UInt64(index))
        let input = network.value(shape.widths[0])
        var current = input
        for (layer, width) in shape.widths.dropFirst().enumerated() {
            current = network.dense(current, n: width)
            if layer < shape.widths.count - 2 || index % 2 == 0 { current = network.activation(op, current) }
        }
        let model = network.model(input: input, outputs: [current])
        return (op, model, network.floats(shape.rows * shape.widths[0], scale: 2))
    }
}

/// Expects the default fused engine of `model` to run one node on the interpreter and to match the reference engine
/// on `rows` random rows of `network`, output by output (named in `outputs`).
func expectOneInterpretedNodeMatchingTheReference(
    _ model: ONNXModel,
    network: inout RandomNetwork,
    rows: Int,
    outputs: [String]
) throws {
    let engine = try FusedEngine(model: model)
    #expect(engine.interpretedNodes == 1)
    let data = network.floats(rows * engine.signature.inputs[0].elementsPerRow, scale: 2)
    let fused = try runEngine(engine, inputs: [data], rows: rows)
    let reference = try runEngine(ReferenceEngine(model: model), inputs: [data], rows: rows)
    for (index, name) in outputs.enumerated() { expectClose(fused[index], reference[index], name) }
}

/// Expects a random input row to give the same output bits alone as at each `(rows, position)` of `placements`,
/// amid other random rows of `network`, on one executor of `engine`.
func expectTheSameBitsWhereverARowLands(
    _ engine: FusedEngine,
    network: inout RandomNetwork,
    placements: [(rows: Int, position: Int)],
    _ context: String
) throws {
    let width = engine.signature.inputs[0].elementsPerRow
    let outputWidth = engine.signature.outputs[0].elementsPerRow
    let executor = engine.makeExecutor()
    let probe = network.floats(width, scale: 2)
    let alone = try runExecutor(executor, signature: engine.signature, inputs: [probe], rows: 1)[0]
    for (rows, position) in placements {
        var batch = network.floats(rows * width, scale: 2)
        batch.replaceSubrange((position * width)..<((position + 1) * width), with: probe)
        let result = try runExecutor(executor, signature: engine.signature, inputs: [batch], rows: rows)[0]
        #expect(
            Array(result[(position * outputWidth)..<((position + 1) * outputWidth)]) == alone,
            "\(context)rows \(rows) at \(position)"
        )
    }
}

@Suite struct FusedEngineTests {
    @Test(arguments: shapeCases, availablePaths)
    func matchesTheReferenceOnRandomNetworks(shape: (seed: UInt64, widths: [Int], rows: Int), path: KernelPath)
        throws
    {
        for (op, model, data) in randomNetworks(shape) {
            let expected = try runEngine(ReferenceEngine(model: model), inputs: [data], rows: shape.rows)
            let fused = try FusedEngine(model: model, kernel: path)
            let actual = try runEngine(fused, inputs: [data], rows: shape.rows)
            expectClose(actual[0], expected[0], "\(path) \(op) widths \(shape.widths) rows \(shape.rows)")
        }
    }

    @Test(arguments: availablePaths)
    func softmaxAndIntermediateOutputs(path: KernelPath) throws {
        for (widths, rows) in [([9, 20, 3], 5), ([64, 37, 1], 1), ([30, 70, 33], 70), ([5, 8, 16], 4)] {
            var network = RandomNetwork(seed: UInt64(rows))
            let input = network.value(widths[0])
            let hidden = network.activation(.relu, network.dense(input, n: widths[1]))
            let logits = network.dense(hidden, n: widths[2])
            let probabilities = network.value(widths[2])
            network.add(.softmax(input: logits, output: probabilities, group: widths[2], log: false), "Softmax")
            let model = network.model(input: input, outputs: [probabilities, hidden, logits])
            let data = network.floats(rows * widths[0], scale: 3)
            let expected = try runEngine(ReferenceEngine(model: model), inputs: [data], rows: rows)
            let actual = try runEngine(try FusedEngine(model: model, kernel: path), inputs: [data], rows: rows)
            for output in 0..<3 { expectClose(actual[output], expected[output], "\(path) output \(output)") }
        }
    }

    @Test(arguments: availablePaths)
    func aRowGetsTheSameBitsWhereverItLands(path: KernelPath) throws {
        var network = RandomNetwork(seed: 99)
        let input = network.value(300)
        let hidden = network.activation(.gelu, network.dense(input, n: 77))
        let output = network.activation(.tanh, network.dense(hidden, n: 40))
        let model = network.model(input: input, outputs: [output])
        try expectTheSameBitsWhereverARowLands(
            try FusedEngine(model: model, kernel: path),
            network: &network,
            placements: [(2, 1), (3, 0), (4, 3), (5, 2), (8, 7), (9, 8), (64, 33), (65, 64), (130, 100)],
            "\(path) "
        )
    }

    @Test(arguments: Fixtures.cases, availablePaths)
    func matchesOnnxRuntimeOnTheFixtures(fixture: FixtureCase, path: KernelPath) throws {
        let model = try ONNXModel(contentsOf: Fixtures.path(fixture.model))
        let rows = try #require(fixture.inputs.first?.shape.first)
        let outputs = try runEngine(
            try FusedEngine(model: model, kernel: path),
            inputs: fixture.inputs.map(\.data),
            rows: rows
        )
        for (output, expected) in zip(outputs, fixture.outputs) {
            expectClose(output, expected.data, "\(fixture.name) \(path) '\(expected.name)'")
        }
    }

    @Test(arguments: [1, 2], availablePaths)
    func classifiesTheDigitSamples(version: Int, path: KernelPath) throws {
        let model = try ONNXModel(
            contentsOf: demoModelsDirectory.appendingPathComponent("digits/\(version)/model.onnx").path
        )
        let engine = try FusedEngine(model: model, kernel: path)
        #expect(engine.layerWidths == (version == 1 ? [64, 32, 10] : [64, 256, 128, 10]))
        let samples = try DigitSamples.load()
        let data = samples.pixels.flatMap { $0 }
        let fused = try runEngine(engine, inputs: [data], rows: samples.labels.count)
        let reference = try runEngine(ReferenceEngine(model: model), inputs: [data], rows: samples.labels.count)
        for row in samples.labels.indices {
            #expect(argmax(fused[1][(row * 10)..<((row + 1) * 10)]) == samples.labels[row])
        }
        expectClose(fused[0], reference[0], "logits")
        expectClose(fused[1], reference[1], "probabilities")
    }

    @Test func interpretsWhatIsNotADenseLayer() throws {
        // A residual connection (relu(x·W) + x) is not a dense layer: it runs on the interpreter after the layer.
        var network = RandomNetwork(seed: 5)
        let input = network.value(8)
        let hidden = network.dense(input, n: 8)
        let relu = network.activation(.relu, hidden)
        let sum = network.value(8)
        network.add(.binary(.add, lhs: .value(relu), rhs: .value(input), output: sum), "Add")
        let model = network.model(input: input, outputs: [sum])
        try expectOneInterpretedNodeMatchingTheReference(model, network: &network, rows: 5, outputs: ["residual sum"])
    }

    @Test func outputsInsideALayerSplitIt() throws {
        var chain = RandomNetwork(seed: 6)
        let chainInput = chain.value(8)
        let chainHidden = chain.dense(chainInput, n: 8)
        let chainRelu = chain.activation(.relu, chainHidden)
        #expect(FusedEngine.unsupportedReason(for: chain.model(input: chainInput, outputs: [chainRelu])) == nil)
        // An output taken before the layer's activation: the activation runs on the interpreter instead.
        let model = chain.model(input: chainInput, outputs: [chainHidden, chainRelu])
        try expectOneInterpretedNodeMatchingTheReference(
            model,
            network: &chain,
            rows: 3,
            outputs: ["pre-activation", "relu"]
        )
    }

    @Test func factoryPicksTheEngine() throws {
        let digits = try ONNXModel(contentsOf: demoModelsDirectory.appendingPathComponent("digits/2/model.onnx").path)
        #expect(try makeEngine(for: digits) is FusedEngine)
        #expect(try makeEngine(for: digits, selection: .reference) is ReferenceEngine)
        // No dense layer on a [batch, K] value: nothing for the kernels to run.
        var network = RandomNetwork(seed: 7)
        let input = network.value(4)
        let relu = network.activation(.relu, input)
        let other = network.model(input: input, outputs: [relu])
        #expect(try makeEngine(for: other) is ReferenceEngine)
    }

    @Test func kernelPathNames() throws {
        #expect(try KernelPath.parse(nil) == nil)
        #expect(try KernelPath.parse("") == nil)
        #expect(try KernelPath.parse("portable") == .portable)
        #expect(try KernelPath.parse("PORTABLE") == .portable)
        let error = try #require(throws: SwitchyardError.self) { _ = try KernelPath.parse("sse9") }
        #expect(error.message.contains("SWITCHYARD_KERNEL=sse9"))
        #expect(error.message.contains("avx512, avx2, portable"))
        #expect(KernelPath.portable.isAvailable)
        #expect(KernelPath.best.isAvailable)
    }

    @Test func rejectsBadBuffers() throws {
        let model = try ONNXModel(contentsOf: Fixtures.path("gemm_transb.onnx"))
        let engine = try FusedEngine(model: model)
        #expect(throws: SwitchyardError.self) {
            _ = try runEngine(engine, inputs: [[Float](repeating: 0, count: 12)], rows: 1)
        }
        #expect(throws: SwitchyardError.self) { _ = try runEngine(engine, inputs: [[]], rows: 0) }
    }
}

/// BF16 weights: the kernels against an emulation of the same arithmetic (weights and each layer's inputs
/// rounded to bfloat16, exact sums), so that the check stays tight while BF16 itself moves results by up to a
/// few percent.
@Suite(.enabled(if: WeightPrecision.bf16.isAvailable, "needs AVX-512 BF16"))
struct FusedEngineBF16Tests {
    static func bf16(_ value: Float) -> Double {
        var bits = value.bitPattern
        bits &+= 0x7fff &+ ((bits >> 16) & 1)
        return Double(Float(bitPattern: bits & 0xffff_0000))
    }

    /// The compiled layers run with bf16-rounded operands and double sums.
    static func emulate(_ model: ONNXModel, input: [Float], rows: Int) throws -> [Float] {
        let plan = try FusedPlan.compile(model.graph)
        var x = input
        for layer in plan.layers {
            var y = [Float](repeating: 0, count: rows * layer.n)
            let weights = layer.weights.map(bf16)
            for row in 0..<rows {
                let a = (0..<layer.k).map { bf16(x[row * layer.k + $0]) }
                for column in 0..<layer.n {
                    var sum = 0.0
                    for inner in 0..<layer.k { sum += a[inner] * weights[inner * layer.n + column] }
                    let value = Float(sum + Double(layer.bias[column]))
                    y[row * layer.n + column] = layer.activation.map { ReferenceExecutor.apply($0, value) } ?? value
                }
            }
            x = y
        }
        return x
    }

    @Test(arguments: shapeCases)
    func matchesAnEmulationOfTheArithmetic(shape: (seed: UInt64, widths: [Int], rows: Int)) throws {
        for (op, model, data) in randomNetworks(shape) {
            let expected = try Self.emulate(model, input: data, rows: shape.rows)
            let engine = try FusedEngine(model: model, kernel: .avx512, precision: .bf16)
            #expect(engine.precision == .bf16)
            let actual = try runEngine(engine, inputs: [data], rows: shape.rows)[0]
            // A layer input within float noise of a bf16 rounding boundary may round the other way in the
            // kernel (its sums and activations are FP32, the emulation's exact): that term moves by 2⁻⁸ of
            // itself, and such moves compound over layers. Hence 5e-3, not 1e-4; a wrong layout or pairing
            // would be off by far more.
            let rms = (expected.reduce(0) { $0 + $1 * $1 } / Float(max(expected.count, 1))).squareRoot()
            let mismatch = firstMismatch(actual, expected, relative: 5e-3, absolute: 5e-3 * max(rms, 1e-3))
            #expect(
                mismatch == nil,
                "bf16 \(op) widths \(shape.widths) rows \(shape.rows): \(String(describing: mismatch))"
            )
        }
    }

    @Test func aRowGetsTheSameBitsWhereverItLands() throws {
        var network = RandomNetwork(seed: 77)
        let input = network.value(301)
        let hidden = network.activation(.relu, network.dense(input, n: 70))
        let output = network.activation(.sigmoid, network.dense(hidden, n: 33))
        let model = network.model(input: input, outputs: [output])
        try expectTheSameBitsWhereverARowLands(
            try FusedEngine(model: model, kernel: .avx512, precision: .bf16),
            network: &network,
            placements: [(2, 1), (4, 3), (5, 4), (9, 8), (64, 40), (100, 99)],
            ""
        )
    }

    @Test(arguments: [1, 2])
    func classifiesTheDigitSamples(version: Int) throws {
        let path = demoModelsDirectory.appendingPathComponent("digits/\(version)/model.onnx").path
        let model = try ONNXModel(contentsOf: path)
        let samples = try DigitSamples.load()
        let data = samples.pixels.flatMap { $0 }
        let bf16 = try runEngine(
            try FusedEngine(model: model, kernel: .avx512, precision: .bf16),
            inputs: [data],
            rows: samples.labels.count
        )
        let fp32 = try runEngine(
            try FusedEngine(model: model, kernel: .avx512),
            inputs: [data],
            rows: samples.labels.count
        )
        for row in samples.labels.indices {
            #expect(argmax(bf16[1][(row * 10)..<((row + 1) * 10)]) == samples.labels[row])
        }
        let worst = zip(bf16[1], fp32[1]).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 0.05, "largest probability change \(worst)")
    }

    @Test func needsTheAVX512Path() throws {
        let model = try ONNXModel(contentsOf: Fixtures.path("gemm_transb.onnx"))
        let error = try #require(throws: SwitchyardError.self) {
            _ = try FusedEngine(model: model, kernel: .avx2, precision: .bf16)
        }
        #expect(error.message.contains("bf16"))
        let digits = try ONNXModel(contentsOf: demoModelsDirectory.appendingPathComponent("digits/1/model.onnx").path)
        let engine = try #require(try makeEngine(for: digits, precision: .bf16) as? FusedEngine)
        #expect(engine.precision == .bf16)
    }
}
