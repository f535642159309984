// Reads an ONNX file (the subset of the format that FP32 multilayer perceptrons use) into a small graph of
// row-wise operations. Everything a graph needs is checked here, at load, so that executors never meet a
// shape, type or operator they cannot run.

public import SwitchyardCore
internal import SwitchyardProto

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// An FP32 multilayer-perceptron graph read from an ONNX model file.
///
/// Supported operators (default ONNX domain, opsets 11–21): Gemm, MatMul, Add, Sub, Mul, Div, Relu, LeakyRelu,
/// Sigmoid, Tanh, Erf, Gelu (opset 20+), Softmax, Flatten, Reshape, Identity, Cast (to FLOAT only) and Constant.
///
/// Every supported operator treats batch rows independently, so a model's leading input dimension is its
/// batch: a symbolic, empty or -1 leading dimension and also a fixed leading dimension of 1 (as exporters write
/// when traced with one example) become -1 in the signature. A graph that would mix rows (a Reshape or Flatten
/// that folds other dimensions into the batch, a Gemm with `transA`, a constant with a batch dimension larger
/// than 1) is refused.
public struct ONNXModel: Sendable {
    /// The model's inputs and outputs, each FP32 with a leading batch dimension of -1.
    public let signature: ModelSignature
    /// The default-domain opset the model imports.
    public let opsetVersion: Int
    /// The producer named in the file, e.g. `skl2onnx` or `pytorch`; empty when absent.
    public let producerName: String
    /// The operator type of every node, in graph order.
    public var operatorTypes: [String] { graph.nodes.map(\.opType) }

    let graph: Graph

    /// The operators the importer accepts, in the order error messages list them.
    public static let supportedOperators = [
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Erf", "Gelu",
        "Softmax", "Flatten", "Reshape", "Identity", "Cast", "Constant",
    ]
    /// The range of default-domain opsets the importer accepts.
    public static let supportedOpsets = 11...21
    /// The largest number of elements accepted in one row of any tensor, and in one weight tensor. Limits the
    /// memory a hostile file can make the server allocate.
    public static let maxElements = 1 << 26

    /// Wraps a graph built in code (tests build random networks this way).
    init(graph: Graph, opsetVersion: Int = 17, producerName: String = "") {
        self.graph = graph
        self.signature = graph.signature
        self.opsetVersion = opsetVersion
        self.producerName = producerName
    }

    /// Reads a model file.
    /// - Throws: `SwitchyardError.notFound` if the file cannot be read, `invalidArgument` if it is not a
    ///   model this importer can run (the message names the node and operator, tensor or field at fault).
    public init(contentsOf path: String) throws {
        let bytes = try readFile(path)
        do {
            try self.init(bytes: bytes)
        } catch let error as SwitchyardError {
            throw SwitchyardError(error.code, "\(path): \(error.message)")
        }
    }

    /// Reads a model from the bytes of an ONNX file.
    /// - Throws: `SwitchyardError.invalidArgument` naming what is wrong if the bytes are not a valid model or
    ///   the graph uses something this importer cannot run.
    public init(bytes: [UInt8]) throws {
        let proto: UnsafeMutablePointer<Onnx__ModelProto>? = bytes.withUnsafeBufferPointer { buffer in
            onnx__model_proto__unpack(nil, buffer.count, buffer.baseAddress)
        }
        guard let proto else {
            throw SwitchyardError.invalidArgument(
                "not an ONNX model: the \(bytes.count) bytes do not decode as an ONNX ModelProto"
            )
        }
        defer { onnx__model_proto__free_unpacked(proto, nil) }
        let importer = try Importer(model: proto.pointee)
        self.opsetVersion = importer.opset
        self.producerName = importer.producerName
        self.graph = try importer.importGraph()
        self.signature = graph.signature
    }
}

// MARK: - Graph representation

/// An imported graph: activations are `[rows × width]` FP32 buffers, one per value, computed node by node.
struct Graph: Sendable {
    /// One activation value: its name and the shape of one batch row (the dimensions after the batch).
    struct Value: Sendable {
        var name: String
        var rowShape: [Int]
        var width: Int
    }

    /// One imported node with its operation.
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

/// An operand of an elementwise binary operation.
enum Operand: Sendable {
    /// An activation value.
    case value(Int)
    /// A constant broadcast to one row of the other operand: `width` values, applied to every row.
    case constant([Float])
}

/// Elementwise binary operators.
enum BinaryOperator: String, Sendable {
    case add = "Add"
    case sub = "Sub"
    case mul = "Mul"
    case div = "Div"
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
    /// Identity, Cast to FLOAT.
    case identity
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

/// One row-wise operation of the graph.
enum Operation: Sendable {
    case gemm(GemmOperation)
    case matMul(MatMulOperation)
    case binary(BinaryOperator, lhs: Operand, rhs: Operand, output: Int)
    case unary(UnaryOperator, input: Int, output: Int)
    /// Softmax over consecutive groups of `group` elements of each row.
    case softmax(input: Int, output: Int, group: Int)
    /// A reshape that keeps every row's values in order (Flatten, Reshape).
    case reshape(input: Int, output: Int)
}

// MARK: - Import

/// A constant tensor (initializer or Constant output).
private struct Constant {
    enum Payload {
        case float([Float])
        case int64([Int64])
        case unsupported(String)
    }
    var name: String
    var dims: [Int]
    var payload: Payload
}

/// What a name in the graph refers to while importing.
private enum Symbol {
    case activation(Int)
    case constant(Constant)
}

private let tensorTypeNames: [Int32: String] = [
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16",
]

private func typeName(_ type: Int32) -> String { tensorTypeNames[type] ?? "type \(type)" }

private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

private func readFile(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else {
        throw SwitchyardError.notFound("cannot open model file '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count > 0 { bytes.append(contentsOf: chunk[0..<count]) }
        if count < chunk.count {
            if ferror(file) != 0 { throw SwitchyardError.notFound("cannot read model file '\(path)'") }
            break
        }
    }
    return bytes
}

/// Overflow-checked product of dimensions, bounded by `ONNXModel.maxElements`.
private func checkedCount(_ dims: [Int], what: () -> String) throws -> Int {
    var count = 1
    for dim in dims {
        guard dim >= 0 else { throw SwitchyardError.invalidArgument("\(what()): negative dimension \(dim)") }
        let (product, overflow) = count.multipliedReportingOverflow(by: dim)
        guard !overflow, product <= ONNXModel.maxElements else {
            throw SwitchyardError.invalidArgument(
                "\(what()): shape \(Shape.format(dims)) has more than \(ONNXModel.maxElements) elements"
            )
        }
        count = product
    }
    return count
}

private func int(_ value: Int64, what: () -> String) throws -> Int {
    guard let converted = Int(exactly: value), abs(converted) <= Int(Int32.max) else {
        throw SwitchyardError.invalidArgument("\(what()): dimension \(value) is out of range")
    }
    return converted
}

private struct Importer {
    let model: Onnx__ModelProto
    let graphProto: Onnx__GraphProto
    let opset: Int
    let producerName: String

    init(model: Onnx__ModelProto) throws {
        self.model = model
        guard let graph = model.graph else {
            throw SwitchyardError.invalidArgument("ONNX model has no graph")
        }
        self.graphProto = graph.pointee
        self.producerName = string(model.producer_name)
        var opset: Int?
        for index in 0..<model.n_opset_import {
            guard let entry = model.opset_import[index] else { continue }
            let domain = string(entry.pointee.domain)
            if domain.isEmpty || domain == "ai.onnx" {
                opset = entry.pointee.has_version != 0 ? Int(truncatingIfNeeded: entry.pointee.version) : nil
            }
        }
        guard let opset else {
            throw SwitchyardError.invalidArgument(
                "ONNX model imports no default-domain opset; expected opset \(ONNXModel.supportedOpsets.lowerBound)"
                    + "–\(ONNXModel.supportedOpsets.upperBound)"
            )
        }
        guard ONNXModel.supportedOpsets.contains(opset) else {
            throw SwitchyardError.invalidArgument(
                "ONNX opset \(opset) is not supported; expected opset \(ONNXModel.supportedOpsets.lowerBound)"
                    + "–\(ONNXModel.supportedOpsets.upperBound)"
            )
        }
        self.opset = opset
    }

    // MARK: Tensors

    func constant(from tensor: Onnx__TensorProto, fallbackName: String) throws -> Constant {
        let name = tensor.name.map { String(cString: $0) } ?? fallbackName
        let what = { "initializer '\(name)'" }
        if tensor.has_data_location != 0 && tensor.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            throw SwitchyardError.invalidArgument(
                "\(what()): external data is not supported; expected data in the file"
            )
        }
        var dims: [Int] = []
        for index in 0..<tensor.n_dims { dims.append(try int(tensor.dims[index], what: what)) }
        let count = try checkedCount(dims, what: what)
        let type = tensor.has_data_type != 0 ? tensor.data_type : 0
        let raw: UnsafeBufferPointer<UInt8>? =
            tensor.has_raw_data != 0
            ? UnsafeBufferPointer(start: tensor.raw_data.data, count: tensor.raw_data.len) : nil
        switch type {
        case 1:
            let values = try Self.elements(
                count: count,
                dims: dims,
                raw: raw,
                typed: UnsafeBufferPointer(start: tensor.float_data, count: tensor.n_float_data),
                typedField: "float_data",
                what: what,
                fromBits: { (bits: UInt32) in Float(bitPattern: bits) }
            )
            return Constant(name: name, dims: dims, payload: .float(values))
        case 7:
            let values = try Self.elements(
                count: count,
                dims: dims,
                raw: raw,
                typed: UnsafeBufferPointer(start: tensor.int64_data, count: tensor.n_int64_data),
                typedField: "int64_data",
                what: what,
                fromBits: { (bits: UInt64) in Int64(bitPattern: bits) }
            )
            return Constant(name: name, dims: dims, payload: .int64(values))
        default:
            return Constant(name: name, dims: dims, payload: .unsupported(typeName(type)))
        }
    }

    /// An initializer's elements: from `raw_data` (little-endian words) when it is set, else from the typed
    /// repeated field. Either must hold exactly `count` elements.
    private static func elements<Word: FixedWidthInteger & UnsignedInteger, Element>(
        count: Int,
        dims: [Int],
        raw: UnsafeBufferPointer<UInt8>?,
        typed: UnsafeBufferPointer<Element>,
        typedField: String,
        what: () -> String,
        fromBits: (Word) -> Element
    ) throws -> [Element] {
        let width = MemoryLayout<Word>.size
        if let raw, raw.count > 0 || typed.isEmpty {
            guard raw.count == count * width else {
                throw SwitchyardError.invalidArgument(
                    "\(what()): raw_data has \(raw.count) bytes; expected \(count * width) for shape \(Shape.format(dims))"
                )
            }
            return (0..<count).map { index in
                var bits: Word = 0
                for byte in 0..<width { bits |= Word(raw[index * width + byte]) << (8 * byte) }
                return fromBits(bits)
            }
        }
        guard typed.count == count else {
            throw SwitchyardError.invalidArgument(
                "\(what()): \(typedField) has \(typed.count) values; expected \(count) for shape \(Shape.format(dims))"
            )
        }
        return Array(typed)
    }

    // MARK: Graph

    func importGraph() throws -> Graph {
        var symbols: [String: Symbol] = [:]
        var values: [Graph.Value] = []
        for index in 0..<graphProto.n_initializer {
            guard let tensor = graphProto.initializer[index] else { continue }
            let constant = try constant(from: tensor.pointee, fallbackName: "initializer \(index)")
            symbols[constant.name] = .constant(constant)
        }

        var inputSpecs: [TensorSpec] = []
        var inputIDs: [Int] = []
        for index in 0..<graphProto.n_input {
            guard let info = graphProto.input[index] else { continue }
            let name = string(info.pointee.name)
            if symbols[name] != nil { continue }  // an initializer with a default: a constant, not an input
            let rowShape = try inputRowShape(info.pointee, name: name)
            let width = try checkedCount(rowShape) { "input '\(name)'" }
            values.append(Graph.Value(name: name, rowShape: rowShape, width: width))
            inputIDs.append(values.count - 1)
            symbols[name] = .activation(values.count - 1)
            inputSpecs.append(TensorSpec(name: name, dataType: .fp32, shape: [-1] + rowShape))
        }
        guard !inputIDs.isEmpty else {
            throw SwitchyardError.invalidArgument("the graph has no inputs (every graph input is an initializer)")
        }

        var nodes: [Graph.Node] = []
        for index in 0..<graphProto.n_node {
            guard let node = graphProto.node[index] else { continue }
            var builder = NodeImporter(
                importer: self,
                node: node.pointee,
                index: index,
                symbols: symbols,
                values: values
            )
            let operation = try builder.importNode()
            symbols = builder.symbols
            values = builder.values
            if let operation {
                nodes.append(
                    Graph.Node(index: index, name: builder.name, opType: builder.opType, operation: operation)
                )
            }
        }

        var outputSpecs: [TensorSpec] = []
        var outputIDs: [Int] = []
        for index in 0..<graphProto.n_output {
            guard let info = graphProto.output[index] else { continue }
            let name = string(info.pointee.name)
            switch symbols[name] {
            case .activation(let id)?:
                let value = values[id]
                try checkDeclaredOutput(info.pointee, name: name, rowShape: value.rowShape)
                outputIDs.append(id)
                outputSpecs.append(TensorSpec(name: name, dataType: .fp32, shape: [-1] + value.rowShape))
            case .constant?:
                throw SwitchyardError.invalidArgument(
                    "output '\(name)' is a constant; expected a value computed from the inputs"
                )
            case nil:
                throw SwitchyardError.invalidArgument("output '\(name)' is not produced by any node")
            }
        }
        guard !outputIDs.isEmpty else { throw SwitchyardError.invalidArgument("the graph has no outputs") }
        return Graph(
            values: values,
            nodes: nodes,
            inputs: inputIDs,
            outputs: outputIDs,
            signature: ModelSignature(inputs: inputSpecs, outputs: outputSpecs)
        )
    }

    private func tensorType(_ info: Onnx__ValueInfoProto, what: String) throws -> Onnx__TypeProto__Tensor? {
        guard let type = info.type else { return nil }
        guard type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensor = type.pointee.tensor_type
        else {
            throw SwitchyardError.invalidArgument("\(what) is not a tensor; expected an FP32 tensor")
        }
        if tensor.pointee.has_elem_type != 0 && tensor.pointee.elem_type != 1 {
            throw SwitchyardError.invalidArgument(
                "\(what) has data type \(typeName(tensor.pointee.elem_type)); expected FLOAT (FP32)"
            )
        }
        return tensor.pointee
    }

    private func inputRowShape(_ info: Onnx__ValueInfoProto, name: String) throws -> [Int] {
        let what = "input '\(name)'"
        guard let tensor = try tensorType(info, what: what), tensor.has_elem_type != 0 else {
            throw SwitchyardError.invalidArgument("\(what) declares no element type; expected FLOAT (FP32)")
        }
        guard let shape = tensor.shape, shape.pointee.n_dim >= 2 else {
            throw SwitchyardError.invalidArgument(
                "\(what): expected a shape of rank 2 or more with a leading batch dimension"
            )
        }
        var rowShape: [Int] = []
        for index in 0..<shape.pointee.n_dim {
            guard let dim = shape.pointee.dim[index]?.pointee else { continue }
            let fixed: Int64? =
                dim.value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dim.dim_value : nil
            if index == 0 {
                if let fixed, fixed != 1 && fixed != -1 && fixed != 0 {
                    throw SwitchyardError.invalidArgument(
                        "\(what): leading dimension is \(fixed); expected a batch dimension (symbolic, -1 or 1)"
                    )
                }
                continue
            }
            guard let fixed, fixed > 0 else {
                throw SwitchyardError.invalidArgument(
                    "\(what): dimension \(index) is not a fixed positive size; only the leading (batch) dimension "
                        + "may vary"
                )
            }
            rowShape.append(try int(fixed) { what })
        }
        return rowShape
    }

    private func checkDeclaredOutput(_ info: Onnx__ValueInfoProto, name: String, rowShape: [Int]) throws {
        let what = "output '\(name)'"
        guard let tensor = try tensorType(info, what: what), let shape = tensor.shape else { return }
        let declared = shape.pointee
        guard declared.n_dim == rowShape.count + 1 else {
            throw SwitchyardError.invalidArgument(
                "\(what): declared with rank \(declared.n_dim); the graph computes \(Shape.format([-1] + rowShape))"
            )
        }
        for index in 1..<declared.n_dim {
            guard let dim = declared.dim[index]?.pointee,
                dim.value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
            else { continue }
            if dim.dim_value != Int64(rowShape[index - 1]) {
                throw SwitchyardError.invalidArgument(
                    "\(what): declared dimension \(index) is \(dim.dim_value); the graph computes "
                        + Shape.format([-1] + rowShape)
                )
            }
        }
    }
}

// MARK: - Nodes

private struct NodeImporter {
    let importer: Importer
    let node: Onnx__NodeProto
    let index: Int
    var symbols: [String: Symbol]
    var values: [Graph.Value]
    let name: String
    let opType: String
    let label: String

    init(importer: Importer, node: Onnx__NodeProto, index: Int, symbols: [String: Symbol], values: [Graph.Value]) {
        self.importer = importer
        self.node = node
        self.index = index
        self.symbols = symbols
        self.values = values
        self.name = string(node.name)
        let domain = string(node.domain)
        let op = string(node.op_type)
        self.opType = domain.isEmpty || domain == "ai.onnx" ? op : "\(domain).\(op)"
        self.label = name.isEmpty ? "node \(index)" : "node \(index) '\(name)'"
    }

    func fail(_ message: String) -> SwitchyardError {
        .invalidArgument("\(label) (\(opType)): \(message)")
    }

    // MARK: Inputs and attributes

    var inputNames: [String] { (0..<node.n_input).map { string(node.input[$0]) } }

    func input(_ position: Int) throws -> Symbol? {
        let names = inputNames
        guard position < names.count, !names[position].isEmpty else { return nil }
        guard let symbol = symbols[names[position]] else {
            throw fail(
                "input '\(names[position])' is not defined: it is not a graph input, an initializer or the output "
                    + "of an earlier node"
            )
        }
        return symbol
    }

    func requiredInput(_ position: Int) throws -> Symbol {
        guard let symbol = try input(position) else {
            throw fail("expected input \(position + 1), got \(inputNames.count) inputs")
        }
        return symbol
    }

    func activation(_ position: Int, role: String) throws -> Int {
        switch try requiredInput(position) {
        case .activation(let id): return id
        case .constant(let constant):
            throw fail("\(role) '\(constant.name)' is a constant; expected a value computed from the graph inputs")
        }
    }

    func floats(_ constant: Constant, role: String) throws -> [Float] {
        switch constant.payload {
        case .float(let values): return values
        case .int64: throw fail("\(role) '\(constant.name)' has data type INT64; expected FLOAT")
        case .unsupported(let type): throw fail("\(role) '\(constant.name)' has data type \(type); expected FLOAT")
        }
    }

    func constantInput(_ position: Int, role: String) throws -> Constant {
        switch try requiredInput(position) {
        case .constant(let constant): return constant
        case .activation(let id):
            throw fail(
                "\(role) '\(values[id].name)' is computed from the inputs; expected a constant (initializer)"
            )
        }
    }

    func attribute(_ wanted: String) -> Onnx__AttributeProto? {
        for position in 0..<node.n_attribute {
            if let attribute = node.attribute[position], string(attribute.pointee.name) == wanted {
                return attribute.pointee
            }
        }
        return nil
    }

    func intAttribute(_ name: String, default value: Int) -> Int {
        guard let attribute = attribute(name), attribute.has_i != 0 else { return value }
        return Int(truncatingIfNeeded: attribute.i)
    }

    func floatAttribute(_ name: String, default value: Float) -> Float {
        guard let attribute = attribute(name), attribute.has_f != 0 else { return value }
        return attribute.f
    }

    func stringAttribute(_ name: String, default value: String) -> String {
        guard let attribute = attribute(name), attribute.has_s != 0 else { return value }
        let bytes = UnsafeBufferPointer(start: attribute.s.data, count: attribute.s.len)
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func define(_ rowShape: [Int]) throws -> Int {
        guard node.n_output >= 1 else { throw fail("node has no output") }
        let outputName = string(node.output[0])
        guard symbols[outputName] == nil else {
            throw fail("output '\(outputName)' is already defined; expected each value to be defined once")
        }
        let width = try checkedCount(rowShape) { "\(label) (\(opType)): output '\(outputName)'" }
        // A weight with a zero dimension (B of shape [K, 0]) would give rows of no values, which executors
        // divide by (Softmax groups) and the signature cannot describe.
        guard width > 0 else {
            throw fail(
                "output '\(outputName)' would have shape \(Shape.format([-1] + rowShape)), no values per row; "
                    + "expected every dimension after the batch to be positive"
            )
        }
        values.append(Graph.Value(name: outputName, rowShape: rowShape, width: width))
        symbols[outputName] = .activation(values.count - 1)
        return values.count - 1
    }

    mutating func defineConstant(_ constant: Constant) throws {
        guard node.n_output >= 1 else { throw fail("node has no output") }
        let outputName = string(node.output[0])
        guard symbols[outputName] == nil else {
            throw fail("output '\(outputName)' is already defined; expected each value to be defined once")
        }
        var renamed = constant
        renamed.name = outputName
        symbols[outputName] = .constant(renamed)
    }

    // MARK: Operators

    /// Imports the node; returns nil for nodes that only define constants.
    mutating func importNode() throws -> Operation? {
        let bareOp = string(node.op_type)
        let domain = string(node.domain)
        guard domain.isEmpty || domain == "ai.onnx", ONNXModel.supportedOperators.contains(bareOp) else {
            throw SwitchyardError.invalidArgument(
                "\(label): op '\(opType)' is not supported; supported: "
                    + ONNXModel.supportedOperators.joined(separator: ", ")
            )
        }
        switch bareOp {
        case "Gemm": return try gemm()
        case "MatMul": return try matMul()
        case "Add": return try binary(.add)
        case "Sub": return try binary(.sub)
        case "Mul": return try binary(.mul)
        case "Div": return try binary(.div)
        case "Relu": return try unary(.relu)
        case "LeakyRelu": return try unary(.leakyRelu(alpha: floatAttribute("alpha", default: 0.01)))
        case "Sigmoid": return try unary(.sigmoid)
        case "Tanh": return try unary(.tanh)
        case "Erf": return try unary(.erf)
        case "Gelu":
            guard importer.opset >= 20 else {
                throw fail("Gelu needs opset 20 or later; the model imports opset \(importer.opset)")
            }
            switch stringAttribute("approximate", default: "none") {
            case "none": return try unary(.gelu)
            case "tanh": return try unary(.geluTanh)
            case let other: throw fail("approximate='\(other)' is not supported; expected 'none' or 'tanh'")
            }
        case "Identity": return try passThrough()
        case "Cast":
            let to = intAttribute("to", default: 0)
            guard to == 1 else {
                throw fail("Cast to \(typeName(Int32(truncatingIfNeeded: to))) is not supported; expected FLOAT")
            }
            return try passThrough()
        case "Softmax": return try softmax()
        case "Flatten": return try flatten()
        case "Reshape": return try reshape()
        case "Constant":
            try constantNode()
            return nil
        default:
            throw fail("internal: no importer for a supported op")
        }
    }

    mutating func gemm() throws -> Operation {
        guard intAttribute("transA", default: 0) == 0 else {
            throw fail("transA=1 would move the batch dimension of A; expected transA=0")
        }
        let transB = intAttribute("transB", default: 0) != 0
        let alpha = floatAttribute("alpha", default: 1)
        let beta = floatAttribute("beta", default: 1)
        let a = try activation(0, role: "A")
        guard values[a].rowShape.count == 1 else {
            throw fail("A has shape \(Shape.format([-1] + values[a].rowShape)); expected a 2-D [batch, K] input")
        }
        let k = values[a].width
        let bConstant = try constantInput(1, role: "B")
        guard bConstant.dims.count == 2 else {
            throw fail("B '\(bConstant.name)' has shape \(Shape.format(bConstant.dims)); expected a 2-D matrix")
        }
        let bK = transB ? bConstant.dims[1] : bConstant.dims[0]
        let n = transB ? bConstant.dims[0] : bConstant.dims[1]
        guard bK == k else {
            throw fail(
                "B '\(bConstant.name)' has shape \(Shape.format(bConstant.dims)) (transB=\(transB ? 1 : 0)); "
                    + "expected K=\(k) to match A \(Shape.format([-1, k]))"
            )
        }
        let b = try floats(bConstant, role: "B")
        var c: [Float]?
        if let cSymbol = try input(2) {
            guard case .constant(let cConstant) = cSymbol else {
                throw fail("C is computed from the inputs; expected a constant bias")
            }
            c = try broadcastRow(cConstant, to: [n], role: "C")
        }
        let output = try define([n])
        return .gemm(
            GemmOperation(
                input: a,
                output: output,
                k: k,
                n: n,
                b: b,
                transB: transB,
                alpha: alpha,
                beta: beta,
                c: c
            )
        )
    }

    mutating func matMul() throws -> Operation {
        let a = try activation(0, role: "A")
        let rowShape = values[a].rowShape
        guard let k = rowShape.last else {
            throw fail("A has shape \(Shape.format([-1])); expected at least [batch, K]")
        }
        let bConstant = try constantInput(1, role: "B")
        guard bConstant.dims.count == 2, bConstant.dims[0] == k else {
            throw fail(
                "B '\(bConstant.name)' has shape \(Shape.format(bConstant.dims)); expected a [\(k), N] matrix to "
                    + "match A \(Shape.format([-1] + rowShape))"
            )
        }
        let n = bConstant.dims[1]
        let b = try floats(bConstant, role: "B")
        let output = try define(Array(rowShape.dropLast()) + [n])
        return .matMul(MatMulOperation(input: a, output: output, k: k, n: n, b: b))
    }

    mutating func binary(_ op: BinaryOperator) throws -> Operation {
        let lhs = try requiredInput(0)
        let rhs = try requiredInput(1)
        switch (lhs, rhs) {
        case (.activation(let left), .activation(let right)):
            guard values[left].rowShape == values[right].rowShape else {
                throw fail(
                    "operands have shapes \(Shape.format([-1] + values[left].rowShape)) and "
                        + "\(Shape.format([-1] + values[right].rowShape)); expected equal shapes"
                )
            }
            let output = try define(values[left].rowShape)
            return .binary(op, lhs: .value(left), rhs: .value(right), output: output)
        case (.activation(let left), .constant(let constant)):
            let row = try broadcastRow(constant, to: values[left].rowShape, role: "B")
            let output = try define(values[left].rowShape)
            return .binary(op, lhs: .value(left), rhs: .constant(row), output: output)
        case (.constant(let constant), .activation(let right)):
            let row = try broadcastRow(constant, to: values[right].rowShape, role: "A")
            let output = try define(values[right].rowShape)
            return .binary(op, lhs: .constant(row), rhs: .value(right), output: output)
        case (.constant, .constant):
            throw fail("both operands are constants; expected at least one value computed from the inputs")
        }
    }

    mutating func unary(_ op: UnaryOperator) throws -> Operation {
        let x = try activation(0, role: "X")
        let output = try define(values[x].rowShape)
        return .unary(op, input: x, output: output)
    }

    /// Identity and Cast-to-float: constants stay constants, values get a copy.
    mutating func passThrough() throws -> Operation? {
        switch try requiredInput(0) {
        case .constant(let constant):
            if case .float = constant.payload {
            } else if opType == "Cast" {
                throw fail("Cast of constant '\(constant.name)' is not supported; expected a FLOAT constant")
            }
            try defineConstant(constant)
            return nil
        case .activation(let x):
            let output = try define(values[x].rowShape)
            return .unary(.identity, input: x, output: output)
        }
    }

    mutating func softmax() throws -> Operation {
        let x = try activation(0, role: "input")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let defaultAxis = importer.opset >= 13 ? -1 : 1
        var axis = intAttribute("axis", default: defaultAxis)
        if axis < 0 { axis += rank }
        guard axis >= 1 && axis < rank else {
            throw fail(
                "axis \(intAttribute("axis", default: defaultAxis)) is not supported for input "
                    + "\(Shape.format([-1] + rowShape)); expected an axis after the batch dimension"
            )
        }
        let group: Int
        if importer.opset < 13 {
            // Opsets before 13 coerce the input to 2-D at `axis`: one softmax over all dimensions from it on.
            group = rowShape[(axis - 1)...].reduce(1, *)
        } else {
            guard rowShape[axis...].allSatisfy({ $0 == 1 }) else {
                throw fail(
                    "softmax over axis \(axis) of \(Shape.format([-1] + rowShape)) is not supported; expected the "
                        + "last axis"
                )
            }
            group = rowShape[axis - 1]
        }
        let output = try define(rowShape)
        return .softmax(input: x, output: output, group: group)
    }

    mutating func flatten() throws -> Operation {
        let x = try activation(0, role: "input")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        var axis = intAttribute("axis", default: 1)
        if axis < 0 { axis += rank }
        guard axis >= 1 && axis <= rank, rowShape[0..<(axis - 1)].allSatisfy({ $0 == 1 }) else {
            throw fail(
                "axis \(intAttribute("axis", default: 1)) on \(Shape.format([-1] + rowShape)) would fold other "
                    + "dimensions into the batch; expected axis 1"
            )
        }
        let output = try define([values[x].width])
        return .reshape(input: x, output: output)
    }

    mutating func reshape() throws -> Operation {
        let x = try activation(0, role: "data")
        let shapeConstant = try constantInput(1, role: "shape")
        guard case .int64(let requested) = shapeConstant.payload, shapeConstant.dims.count == 1 else {
            throw fail("shape '\(shapeConstant.name)' must be a 1-D INT64 constant")
        }
        let inputShape = values[x].rowShape
        let width = values[x].width
        let allowZero = intAttribute("allowzero", default: 0) != 0
        let formatted = "[" + requested.map(String.init).joined(separator: ", ") + "]"
        guard let first = requested.first, first == -1 || (first == 0 && !allowZero) else {
            throw fail(
                "shape \(formatted) does not keep the batch dimension; expected a shape starting with -1 or 0"
            )
        }
        var dims: [Int] = []
        var inferred: Int?
        for (position, raw) in requested.enumerated().dropFirst() {
            if raw == 0 && !allowZero {
                guard position - 1 < inputShape.count else {
                    throw fail("shape \(formatted): 0 at position \(position) has no input dimension to copy")
                }
                dims.append(inputShape[position - 1])
            } else if raw == -1 {
                guard inferred == nil, first == 0 else {
                    throw fail("shape \(formatted) leaves more than one dimension to infer")
                }
                inferred = dims.count
                dims.append(1)
            } else {
                guard raw > 0, raw <= Int64(ONNXModel.maxElements) else {
                    throw fail("shape \(formatted): dimension \(raw) is out of range")
                }
                dims.append(Int(raw))
            }
        }
        let known = try checkedCount(dims) { "\(label) (\(opType))" }
        if let inferred {
            guard known > 0, width % known == 0 else {
                throw fail("shape \(formatted) cannot hold \(width) values per row")
            }
            dims[inferred] = width / known
        } else if known != width {
            throw fail(
                "shape \(formatted) holds \(known) values per row but the input \(Shape.format([-1] + inputShape)) "
                    + "has \(width); expected a reshape that keeps the batch layout"
            )
        }
        let output = try define(dims)
        return .reshape(input: x, output: output)
    }

    mutating func constantNode() throws {
        if let attribute = attribute("value"), let tensor = attribute.t {
            try defineConstant(try importer.constant(from: tensor.pointee, fallbackName: "\(label) value"))
        } else if let attribute = attribute("value_float"), attribute.has_f != 0 {
            try defineConstant(Constant(name: "", dims: [], payload: .float([attribute.f])))
        } else if let attribute = attribute("value_floats") {
            let values = (0..<attribute.n_floats).map { attribute.floats[$0] }
            try defineConstant(Constant(name: "", dims: [values.count], payload: .float(values)))
        } else if let attribute = attribute("value_int"), attribute.has_i != 0 {
            try defineConstant(Constant(name: "", dims: [], payload: .int64([attribute.i])))
        } else if let attribute = attribute("value_ints") {
            let values = (0..<attribute.n_ints).map { attribute.ints[$0] }
            try defineConstant(Constant(name: "", dims: [values.count], payload: .int64(values)))
        } else {
            throw fail("expected a value, value_float(s) or value_int(s) attribute")
        }
    }

    /// Expands a constant to one row of `rowShape` under ONNX (numpy) broadcasting. The constant may not
    /// enlarge the row's shape, and a dimension aligned with the batch must be 1.
    func broadcastRow(_ constant: Constant, to rowShape: [Int], role: String) throws -> [Float] {
        let data = try floats(constant, role: role)
        let fullRank = rowShape.count + 1
        let dims = constant.dims
        let mismatch = {
            fail(
                "\(role) '\(constant.name)' of shape \(Shape.format(dims)) does not broadcast to "
                    + "\(Shape.format([-1] + rowShape)) without changing it"
            )
        }
        guard dims.count <= fullRank else { throw mismatch() }
        if dims.count == fullRank && dims[0] != 1 { throw mismatch() }
        // The constant's dims aligned to the row's trailing dims (leading ones implied).
        let aligned =
            Array(repeating: 1, count: rowShape.count - min(dims.count, rowShape.count))
            + dims.suffix(min(dims.count, rowShape.count))
        for (have, want) in zip(aligned, rowShape) where have != 1 && have != want { throw mismatch() }
        var strides = [Int](repeating: 0, count: aligned.count)
        var running = 1
        for axis in stride(from: aligned.count - 1, through: 0, by: -1) {
            strides[axis] = aligned[axis] == 1 ? 0 : running
            running *= aligned[axis]
        }
        let width = try checkedCount(rowShape) { label }
        var row = [Float](repeating: 0, count: width)
        var coordinate = [Int](repeating: 0, count: rowShape.count)
        for position in 0..<width {
            var source = 0
            for axis in 0..<coordinate.count { source += coordinate[axis] * strides[axis] }
            row[position] = data.isEmpty ? 0 : data[source]
            var axis = coordinate.count - 1
            while axis >= 0 {
                coordinate[axis] += 1
                if coordinate[axis] < rowShape[axis] { break }
                coordinate[axis] = 0
                axis -= 1
            }
        }
        return row
    }
}
