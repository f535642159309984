// An ONNX model as Switchyard runs it: the public face of the importer (ONNXImporter.swift reads the file,
// ONNXOperators.swift turns each node into row-wise operations) and the small graph of row-wise operations
// that both engines execute. Everything a graph needs is checked at load, so that executors never meet a
// shape, type or operator they cannot run.

public import SwitchyardCore

/// A multilayer-perceptron-class graph read from an ONNX model file: dense layers, elementwise operations,
/// normalisation and the small heads (argmax labels, class lookups) that exporters add around them.
///
/// Every operation treats batch rows independently, so a model's leading input dimension is its batch: a
/// symbolic, empty or -1 leading dimension and also a fixed leading dimension of 1 (as exporters write when
/// traced with one example) become -1 in the signature. A graph that would mix rows (a Reshape or Flatten that
/// folds other dimensions into the batch, a Gemm with `transA`, a reduction over the batch) is refused.
///
/// Constant subgraphs (shape arithmetic such as torch.onnx's Shape→Gather→Unsqueeze→Concat→Reshape, transposed
/// or cast initializers) are evaluated at load, so the graph that runs holds only work on the inputs.
public struct ONNXModel: Sendable {
    /// The model's inputs and outputs, each with its declared datatype and a leading batch dimension of -1.
    public let signature: ModelSignature
    /// The default-domain opset the model imports.
    public let opsetVersion: Int
    /// The `ai.onnx.ml` opset the model imports, or nil when it imports none.
    public let mlOpsetVersion: Int?
    /// The producer named in the file, e.g. `skl2onnx` or `pytorch`; empty when absent.
    public let producerName: String
    /// The operator type of every node that does work on the inputs, in graph order (nodes evaluated at load,
    /// such as Constant or shape arithmetic, are left out). `ai.onnx.ml` operators carry their domain.
    public var operatorTypes: [String] {
        var seen = Set<Int>()
        return graph.nodes.compactMap { seen.insert($0.index).inserted ? $0.opType : nil }
    }
    /// How many nodes were evaluated at load because all their inputs were constants.
    public let foldedNodeCount: Int

    let graph: Graph

    /// The operators the importer accepts in the default domain, in the order error messages list them.
    public static let supportedOperators = [
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh",
        "Erf", "Gelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Clip",
        "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Softmax",
        "LogSoftmax", "BatchNormalization", "LayerNormalization", "ReduceSum", "ReduceMean", "ReduceMax",
        "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ArgMax", "ArgMin", "Dropout", "Identity", "Cast",
        "CastLike", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Shape", "Gather", "Concat", "Slice", "Expand",
        "Transpose", "Where", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Range", "ConstantOfShape",
        "Constant",
    ]
    /// The operators the importer accepts in the `ai.onnx.ml` domain.
    public static let supportedMLOperators = [
        "Scaler", "Normalizer", "LinearClassifier", "LinearRegressor", "ArrayFeatureExtractor", "Binarizer",
        "FeatureVectorizer",
    ]
    /// The range of default-domain opsets the importer accepts: up to the newest onnxruntime executes.
    public static let supportedOpsets = 7...23
    /// The range of `ai.onnx.ml` opsets the importer accepts.
    public static let supportedMLOpsets = 1...5
    /// The largest number of elements accepted in one row of any tensor, and in one weight tensor. Limits the
    /// memory a hostile file can make the server allocate.
    public static let maxElements = 1 << 26

    /// Wraps a graph built in code (tests build random networks this way).
    init(graph: Graph, opsetVersion: Int = 17, producerName: String = "") {
        self.graph = graph
        self.signature = graph.signature
        self.opsetVersion = opsetVersion
        self.mlOpsetVersion = nil
        self.producerName = producerName
        self.foldedNodeCount = 0
    }

    /// Reads a model file. Tensors stored as external data are read from files in the model file's directory.
    /// - Throws: `SwitchyardError.notFound` if the file cannot be read, `invalidArgument` if it is not a
    ///   model this importer can run (the message names the node and operator, tensor or field at fault).
    public init(contentsOf path: String) throws(SwitchyardError) {
        let bytes = try readModelFile(path)
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
            .joined(separator: "/")
        do {
            try self.init(bytes: bytes, externalDataDirectory: directory.isEmpty ? "." : directory)
        } catch {
            throw SwitchyardError(error.code, "\(path): \(error.message)")
        }
    }

    /// Reads a model from the bytes of an ONNX file.
    /// - Parameters:
    ///   - bytes: the file's contents.
    ///   - externalDataDirectory: where tensors stored as external data are read from; nil refuses them.
    /// - Throws: `SwitchyardError.invalidArgument` naming what is wrong if the bytes are not a valid model or
    ///   the graph uses something this importer cannot run.
    public init(bytes: [UInt8], externalDataDirectory: String? = nil) throws(SwitchyardError) {
        let imported = try importONNX(bytes: bytes, externalDataDirectory: externalDataDirectory)
        self.opsetVersion = imported.opset
        self.mlOpsetVersion = imported.mlOpset
        self.producerName = imported.producerName
        self.graph = imported.graph
        self.foldedNodeCount = imported.foldedNodeCount
        self.signature = imported.graph.signature
    }
}

// MARK: - Graph representation

/// An imported graph: activations are `[rows × width]` FP32 buffers, one per value, computed node by node.
struct Graph: Sendable {
    /// One activation value: its name, the shape of one batch row (the dimensions after the batch) and the
    /// datatype the model gives it. Values are held as FP32 whatever their datatype; integer values hold
    /// integers.
    struct Value: Sendable {
        var name: String
        var rowShape: [Int]
        var width: Int
        var dataType: DataType
    }

    /// One operation and the ONNX node it came from (a node may give several operations).
    struct Node: Sendable {
        var index: Int
        var name: String
        var opType: String
        var operation: Operation

        /// How error messages name this node: `node 3 'Gemm_0'`.
        var label: String { name.isEmpty ? "node \(index)" : "node \(index) '\(name)'" }
    }

    var values: [Value]
    var nodes: [Node]
    /// Value ids of the graph inputs, in signature order.
    var inputs: [Int]
    /// Value ids of the graph outputs, in signature order.
    var outputs: [Int]
    var signature: ModelSignature
}

/// An operand of an elementwise operation.
enum Operand: Sendable {
    /// An activation value of the operation's own row shape.
    case value(Int)
    /// A constant broadcast to one row of the operation's output: one value per element of a row.
    case constant([Float])
    /// An activation value broadcast to the operation's row shape: element `i` of the output reads element
    /// `indices[i]` of the value's row.
    case broadcast(Int, indices: [Int32])
}

/// Elementwise binary operators.
enum BinaryOperator: String, Sendable {
    case add = "Add"
    case sub = "Sub"
    case mul = "Mul"
    case div = "Div"
    case pow = "Pow"
    case greater = "Greater"
    case less = "Less"
    case greaterOrEqual = "GreaterOrEqual"
    case lessOrEqual = "LessOrEqual"
    case equal = "Equal"

    /// Whether the operator compares, giving BOOL values (1 or 0).
    var isComparison: Bool { ![.add, .sub, .mul, .div, .pow].contains(self) }
}

/// Elementwise unary operators.
enum UnaryOperator: Sendable, Equatable {
    case relu
    case leakyRelu(alpha: Float)
    case sigmoid
    case tanh
    case erf
    /// GELU with the exact (erf) form.
    case gelu
    /// GELU with the tanh approximation.
    case geluTanh
    /// Identity, Dropout at inference, and a Cast between floating-point types.
    case identity
    case exp
    case log
    case neg
    case abs
    case sqrt
    case reciprocal
    case floor
    case ceil
    /// Round half to even, as ONNX's Round.
    case round
    case sign
    case softplus
    case softsign
    case elu(alpha: Float)
    case selu(alpha: Float, gamma: Float)
    case celu(alpha: Float)
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case mish
    case clip(min: Float, max: Float)
    /// `x ** exponent` with a constant exponent.
    case pow(Float)
    /// Cast from a floating-point type to an integer type: truncation toward zero.
    case truncate
    /// Cast to BOOL: 1 where the value is not zero.
    case nonZero
    /// ai.onnx.ml Binarizer: 1 where the value is above the threshold, else 0.
    case binarize(threshold: Float)

    /// Whether the fused engine's kernels apply this activation in a dense layer's epilogue.
    var isKernelActivation: Bool {
        switch self {
        case .relu, .leakyRelu, .sigmoid, .tanh, .erf, .gelu, .geluTanh, .identity: true
        default: false
        }
    }
}

/// Reductions over consecutive groups of a row's elements.
enum ReduceOperator: String, Sendable {
    case sum = "ReduceSum"
    case mean = "ReduceMean"
    case max = "ReduceMax"
    case min = "ReduceMin"
    case l1 = "ReduceL1"
    case l2 = "ReduceL2"
    case sumSquare = "ReduceSumSquare"
}

/// ai.onnx.ml Normalizer's norms, over each row.
enum NormKind: String, Sendable {
    case l1 = "L1"
    case l2 = "L2"
    case max = "MAX"
}

/// `Y = alpha · A · op(B) + beta · C` on rows of A; B and C constant.
struct GemmOperation: Sendable {
    var input: Int
    var output: Int
    var k: Int
    var n: Int
    /// B as stored in the file: `[k, n]`, or `[n, k]` when `transB`.
    var b: [Float]
    var transB: Bool
    var alpha: Float
    var beta: Float
    /// C broadcast to one output row (`n` values), or nil when absent.
    var c: [Float]?
}

/// `Y = A · B` with A's last dimension `k` and a constant `[k, n]` B; other dimensions of A are kept.
struct MatMulOperation: Sendable {
    var input: Int
    var output: Int
    var k: Int
    var n: Int
    /// `[k, n]`, row-major.
    var b: [Float]
}

/// Layer normalisation over consecutive groups of `group` elements: `(x - mean) / sqrt(var + epsilon)`, then
/// `· scale + bias` elementwise within the group.
struct LayerNormOperation: Sendable {
    var input: Int
    var output: Int
    var group: Int
    var epsilon: Float
    var scale: [Float]
    var bias: [Float]
}

/// Where an element of an assembled row comes from: part `part`, element `index` of its row.
struct SourceElement: Sendable, Equatable {
    var part: Int32
    var index: Int32
}

/// One row-wise operation of the graph.
enum Operation: Sendable {
    case gemm(GemmOperation)
    case matMul(MatMulOperation)
    case binary(BinaryOperator, lhs: Operand, rhs: Operand, output: Int)
    case unary(UnaryOperator, input: Int, output: Int)
    /// Softmax (or log-softmax) over consecutive groups of `group` elements of each row.
    case softmax(input: Int, output: Int, group: Int, log: Bool)
    /// A reshape that keeps every row's values in order (Flatten, Reshape, Squeeze, Unsqueeze).
    case reshape(input: Int, output: Int)
    /// One value per consecutive group of `group` elements.
    case reduce(ReduceOperator, input: Int, output: Int, group: Int)
    /// The index of the largest (or smallest) element of each group of `group` elements.
    case argExtreme(largest: Bool, selectLast: Bool, input: Int, output: Int, group: Int)
    case layerNorm(LayerNormOperation)
    /// Each row divided by its norm.
    case normalize(NormKind, input: Int, output: Int)
    /// A row built element by element from parts (Concat, Gather and Slice along a row axis, Transpose within a
    /// row, Where with a constant condition, FeatureVectorizer).
    case assemble(parts: [Operand], map: [SourceElement], output: Int)
    /// `y = table[x]` for each element: a class-label lookup (ArrayFeatureExtractor or Gather on a constant).
    case lookup(table: [Float], input: Int, output: Int)
    /// PRelu: `x < 0 ? slope · x : x` with a slope per row element.
    case prelu(input: Int, slope: [Float], output: Int)
    /// Where with a computed condition: `condition ≠ 0 ? lhs : rhs` elementwise.
    case select(condition: Operand, lhs: Operand, rhs: Operand, output: Int)

    /// The activation values the operation reads.
    var operands: [Int] {
        func ids(_ operand: Operand) -> Int? {
            switch operand {
            case .value(let id), .broadcast(let id, _): id
            case .constant: nil
            }
        }
        switch self {
        case .gemm(let gemm): return [gemm.input]
        case .matMul(let matMul): return [matMul.input]
        case .binary(_, let lhs, let rhs, _): return [lhs, rhs].compactMap(ids)
        case .unary(_, let input, _), .softmax(let input, _, _, _), .reshape(let input, _),
            .reduce(_, let input, _, _), .argExtreme(_, _, let input, _, _), .normalize(_, let input, _),
            .lookup(_, let input, _), .prelu(let input, _, _):
            return [input]
        case .layerNorm(let norm): return [norm.input]
        case .assemble(let parts, _, _): return parts.compactMap(ids)
        case .select(let condition, let lhs, let rhs, _): return [condition, lhs, rhs].compactMap(ids)
        }
    }

    /// The value the operation writes.
    var output: Int {
        switch self {
        case .gemm(let gemm): gemm.output
        case .matMul(let matMul): matMul.output
        case .binary(_, _, _, let output), .unary(_, _, let output), .softmax(_, let output, _, _),
            .reshape(_, let output), .reduce(_, _, let output, _), .argExtreme(_, _, _, let output, _),
            .normalize(_, _, let output), .assemble(_, _, let output), .lookup(_, _, let output),
            .prelu(_, _, let output), .select(_, _, _, let output):
            output
        case .layerNorm(let norm): norm.output
        }
    }
}
