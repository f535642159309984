// One ONNX node at a time: its inputs resolved to activations or constants, checked against the operator's
// definition at the model's opset, and turned into row-wise operations (or evaluated at load when every input
// is a constant). Refusals name the node, the operator and, where one exists, the export option that avoids it.

internal import SwitchyardCore
internal import SwitchyardProto

/// Why an operator outside the accepted set is refused, and what the user can do, by operator.
private let refusalHints: [String: String] = {
    var hints: [String: String] = [:]
    for op in [
        "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool", "GlobalAveragePool",
        "GlobalMaxPool", "LpPool", "MaxUnpool", "Resize", "Upsample", "DepthToSpace", "SpaceToDepth",
    ] {
        hints[op] = "convolutional and pooling layers are not MLP-class; Switchyard serves dense networks"
    }
    for op in ["LSTM", "GRU", "RNN"] {
        hints[op] = "recurrent layers are not MLP-class; Switchyard serves dense networks"
    }
    for op in ["Loop", "If", "Scan"] {
        hints[op] =
            "control flow is not supported; export a graph without data-dependent branches or loops (for torch, "
            + "trace it with torch.onnx.export)"
    }
    for op in [
        "SequenceConstruct", "SequenceAt", "SequenceInsert", "SequenceEmpty", "SplitToSequence",
        "ConcatFromSequence", "SequenceLength",
    ] {
        hints[op] = "sequences are not Open Inference Protocol tensors"
    }
    for op in ["StringNormalizer", "TfIdfVectorizer", "RegexFullMatch", "StringConcat", "StringSplit"] {
        hints[op] = "string tensors are not supported"
    }
    hints["ai.onnx.ml.ZipMap"] =
        "ZipMap turns probabilities into a sequence of maps, which is not an Open Inference Protocol tensor; "
        + "export the classifier with options={'zipmap': False} (skl2onnx) to get a probability tensor"
    for op in ["TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble", "SVMClassifier", "SVMRegressor"] {
        hints["ai.onnx.ml." + op] = "tree ensembles and support vector machines are not MLP-class models"
    }
    for op in ["LabelEncoder", "CategoryMapper", "DictVectorizer", "OneHotEncoder", "Imputer"] {
        hints["ai.onnx.ml." + op] =
            "encoders of categorical or missing values are not supported; encode features before calling the model"
    }
    return hints
}()

struct NodeImporter {
    let importer: Importer
    let node: Onnx__NodeProto
    let index: Int
    var symbols: [String: Symbol]
    var values: [Graph.Value]
    let name: String
    let opType: String
    let bareOp: String
    let domain: String
    let label: String
    var opset: Int { importer.opset }

    init(importer: Importer, node: Onnx__NodeProto, index: Int, symbols: [String: Symbol], values: [Graph.Value]) {
        self.importer = importer
        self.node = node
        self.index = index
        self.symbols = symbols
        self.values = values
        self.name = string(node.name)
        let domain = string(node.domain)
        self.domain = domain == "ai.onnx" ? "" : domain
        self.bareOp = string(node.op_type)
        self.opType = self.domain.isEmpty ? bareOp : "\(self.domain).\(bareOp)"
        self.label = name.isEmpty ? "node \(index)" : "node \(index) '\(name)'"
    }

    func fail(_ message: String) -> SwitchyardError {
        .invalidArgument("\(label) (\(opType)): \(message)")
    }

    // MARK: Inputs and attributes

    var inputNames: [String] { (0..<node.n_input).map { string(node.input[$0]) } }

    func input(_ position: Int) throws(SwitchyardError) -> Symbol? {
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

    func requiredInput(_ position: Int) throws(SwitchyardError) -> Symbol {
        guard let symbol = try input(position) else {
            throw fail("expected input \(position + 1), got \(inputNames.count) inputs")
        }
        return symbol
    }

    func activation(_ position: Int, role: String) throws(SwitchyardError) -> Int {
        switch try requiredInput(position) {
        case .activation(let id): return id
        case .constant(let constant):
            throw fail("\(role) '\(constant.name)' is a constant; expected a value computed from the graph inputs")
        }
    }

    func floats(_ constant: Constant, role: String) throws(SwitchyardError) -> [Float] {
        guard let values = constant.floats else {
            throw fail(
                "\(role) '\(constant.name)' has data type \(ElementType.name(constant.elementType)); expected a "
                    + "numeric tensor"
            )
        }
        return values
    }

    func integers(_ constant: Constant, role: String) throws(SwitchyardError) -> [Int64] {
        guard constant.batchIndex == nil else {
            throw fail("\(role) '\(constant.name)' depends on the batch size, which is not known at load")
        }
        guard let values = constant.integers else {
            throw fail("\(role) '\(constant.name)' has data type \(ElementType.name(constant.elementType))")
        }
        return values
    }

    func constantInput(_ position: Int, role: String) throws(SwitchyardError) -> Constant {
        switch try requiredInput(position) {
        case .constant(let constant): return constant
        case .activation(let id):
            throw fail(
                "\(role) '\(values[id].name)' is computed from the inputs; expected a constant (initializer)"
            )
        }
    }

    /// An optional constant input given as an integer list (axes, shapes, pads).
    func integerList(_ position: Int, role: String) throws(SwitchyardError) -> [Int64]? {
        guard let symbol = try input(position) else { return nil }
        guard case .constant(let constant) = symbol else {
            throw fail("\(role) is computed from the inputs; expected a constant")
        }
        return try integers(constant, role: role)
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

    func intsAttribute(_ name: String) -> [Int64]? {
        guard let attribute = attribute(name), attribute.n_ints > 0 else { return nil }
        return (0..<attribute.n_ints).map { attribute.ints[$0] }
    }

    func floatsAttribute(_ name: String) -> [Float]? {
        guard let attribute = attribute(name), attribute.n_floats > 0 else { return nil }
        return (0..<attribute.n_floats).map { attribute.floats[$0] }
    }

    func hasStringsAttribute(_ name: String) -> Bool { (attribute(name)?.n_strings ?? 0) > 0 }

    // MARK: Defining values

    func outputName(_ position: Int) throws(SwitchyardError) -> String {
        guard position < node.n_output else { throw fail("node has no output \(position + 1)") }
        return string(node.output[position])
    }

    mutating func define(_ rowShape: [Int], _ dataType: DataType, output position: Int = 0) throws(SwitchyardError)
        -> Int
    {
        let outputName = try outputName(position)
        guard symbols[outputName] == nil else {
            throw fail("output '\(outputName)' is already defined; expected each value to be defined once")
        }
        let id = try fresh(rowShape, dataType, name: outputName)
        symbols[outputName] = .activation(id)
        return id
    }

    /// A value for an intermediate result of a node that becomes several operations; no name refers to it.
    mutating func fresh(_ rowShape: [Int], _ dataType: DataType, name: String) throws(SwitchyardError) -> Int {
        let width = try checkedCount(rowShape) { "\(label) (\(opType)): output '\(name)'" }
        // A weight with a zero dimension (B of shape [K, 0]) would give rows of no values, which executors
        // divide by (Softmax groups) and the signature cannot describe.
        guard width > 0 else {
            throw fail(
                "output '\(name)' would have shape \(Shape.format([-1] + rowShape)), no values per row; "
                    + "expected every dimension after the batch to be positive"
            )
        }
        values.append(Graph.Value(name: name, rowShape: rowShape, width: width, dataType: dataType))
        return values.count - 1
    }

    mutating func defineConstant(_ constant: Constant, output position: Int = 0) throws(SwitchyardError) {
        let outputName = try outputName(position)
        guard symbols[outputName] == nil else {
            throw fail("output '\(outputName)' is already defined; expected each value to be defined once")
        }
        var renamed = constant
        renamed.name = outputName
        symbols[outputName] = .constant(renamed)
    }

    /// The row axis (1-based over the full shape) of an ONNX axis, which must not be the batch axis.
    func rowAxis(_ axis: Int, rank: Int, what: String) throws(SwitchyardError) -> Int {
        let normalized = axis < 0 ? axis + rank : axis
        guard normalized >= 1 && normalized < rank else {
            throw fail(
                "\(what) axis \(axis) of a rank-\(rank) tensor is the batch axis or out of range; expected an axis "
                    + "after the batch dimension"
            )
        }
        return normalized
    }

    // MARK: Operators

    /// The refusal for an operator the importer does not support, or nil when it supports it.
    func unsupportedOperator() -> SwitchyardError? {
        guard domain.isEmpty || domain == "ai.onnx.ml" else {
            return fail("op '\(opType)' is not supported: operators of domain '\(domain)' are not supported")
        }
        let supported = domain.isEmpty ? ONNXModel.supportedOperators : ONNXModel.supportedMLOperators
        guard !supported.contains(bareOp) else { return nil }
        let hint = refusalHints[opType].map { ": \($0)" } ?? ""
        let list = domain.isEmpty ? "supported" : "supported ai.onnx.ml"
        return fail("op '\(opType)' is not supported\(hint); \(list): " + supported.joined(separator: ", "))
    }

    /// Imports the node: the operations it runs on the inputs, none when it was evaluated at load.
    mutating func importNode() throws(SwitchyardError) -> [Operation] {
        if let refusal = unsupportedOperator() { throw refusal }
        if domain == "ai.onnx.ml" { return try importMLNode() }
        if let folded = try foldIfConstant() {
            try defineConstant(folded)
            return []
        }
        switch bareOp {
        case "Gemm": return [try gemm()]
        case "MatMul": return [try matMul()]
        case "Add": return [try binary(.add)]
        case "Sub": return [try binary(.sub)]
        case "Mul": return [try binary(.mul)]
        case "Div": return [try binary(.div)]
        case "Pow": return [try pow()]
        case "Relu": return [try unary(.relu)]
        case "LeakyRelu": return [try unary(.leakyRelu(alpha: floatAttribute("alpha", default: 0.01)))]
        case "Sigmoid": return [try unary(.sigmoid)]
        case "Tanh": return [try unary(.tanh)]
        case "Erf": return [try unary(.erf)]
        case "Exp": return [try unary(.exp)]
        case "Log": return [try unary(.log)]
        case "Neg": return [try unary(.neg)]
        case "Abs": return [try unary(.abs)]
        case "Sqrt": return [try unary(.sqrt)]
        case "Reciprocal": return [try unary(.reciprocal)]
        case "Floor": return [try unary(.floor)]
        case "Ceil": return [try unary(.ceil)]
        case "Round": return [try unary(.round)]
        case "Sign": return [try unary(.sign)]
        case "Softplus": return [try unary(.softplus)]
        case "Softsign": return [try unary(.softsign)]
        case "Elu": return [try unary(.elu(alpha: floatAttribute("alpha", default: 1)))]
        case "Celu": return [try unary(.celu(alpha: floatAttribute("alpha", default: 1)))]
        case "Selu":
            return [
                try unary(
                    .selu(
                        alpha: floatAttribute("alpha", default: 1.673_263_2),
                        gamma: floatAttribute("gamma", default: 1.050_701)
                    )
                )
            ]
        case "HardSigmoid":
            return [
                try unary(
                    .hardSigmoid(
                        alpha: floatAttribute("alpha", default: 0.2),
                        beta: floatAttribute("beta", default: 0.5)
                    )
                )
            ]
        case "HardSwish": return [try unary(.hardSwish)]
        case "Mish": return [try unary(.mish)]
        case "Clip": return [try clip()]
        case "PRelu": return [try prelu()]
        case "Gelu":
            guard opset >= 20 else {
                throw fail("Gelu needs opset 20 or later; the model imports opset \(opset)")
            }
            switch stringAttribute("approximate", default: "none") {
            case "none": return [try unary(.gelu)]
            case "tanh": return [try unary(.geluTanh)]
            case let other: throw fail("approximate='\(other)' is not supported; expected 'none' or 'tanh'")
            }
        case "Identity": return try passThrough().map { [$0] } ?? []
        case "Dropout": return try dropout().map { [$0] } ?? []
        case "Cast", "CastLike": return [try cast()]
        case "Softmax": return [try softmax(log: false)]
        case "LogSoftmax": return [try softmax(log: true)]
        case "Flatten": return [try flatten()]
        case "Reshape": return [try reshape()]
        case "Squeeze", "Unsqueeze": return [try squeezeOrUnsqueeze()]
        case "Shape":
            try shape()
            return []
        case "Gather": return [try gather()]
        case "Concat": return [try concat()]
        case "Slice": return [try slice()]
        case "Transpose": return [try transpose()]
        case "Expand": return [try expand()]
        case "Where": return [try whereNode()]
        case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare":
            return [try reduce(ReduceOperator(rawValue: bareOp)!)]
        case "ArgMax", "ArgMin": return [try argExtreme(largest: bareOp == "ArgMax")]
        case "BatchNormalization": return try batchNormalization()
        case "LayerNormalization": return [try layerNormalization()]
        case "Constant":
            try constantNode()
            return []
        case "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual":
            return [try binary(BinaryOperator(rawValue: bareOp)!)]
        case "Range", "ConstantOfShape":
            throw fail("expected constant inputs: \(bareOp) is evaluated at load and not run on the inputs")
        default:
            throw fail("internal: no importer for a supported op")
        }
    }

    // MARK: Dense layers

    mutating func gemm() throws(SwitchyardError) -> Operation {
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
        let output = try define([n], values[a].dataType)
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

    mutating func matMul() throws(SwitchyardError) -> Operation {
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
        let output = try define(Array(rowShape.dropLast()) + [n], values[a].dataType)
        return .matMul(MatMulOperation(input: a, output: output, k: k, n: n, b: b))
    }

    // MARK: Elementwise

    /// The operands of an elementwise operation over the broadcast of its inputs' shapes, and that row shape.
    /// Constants may not broadcast along the batch axis beyond 1.
    func elementwiseOperands(_ symbols: [Symbol], roles: [String]) throws(SwitchyardError) -> (
        [Operand], rowShape: [Int]
    ) {
        // Full shapes: activations lead with the batch (1 here, since every row is alike).
        var fullShapes: [[Int]] = []
        for (symbol, role) in zip(symbols, roles) {
            switch symbol {
            case .activation(let id): fullShapes.append([1] + values[id].rowShape)
            case .constant(let constant):
                guard constant.batchIndex == nil else {
                    throw fail("\(role) '\(constant.name)' depends on the batch size, which is not known at load")
                }
                fullShapes.append(constant.dims)
            }
        }
        let activationRanks = zip(symbols, fullShapes).compactMap { pair -> Int? in
            if case .activation = pair.0 { return pair.1.count }
            return nil
        }
        guard let rank = activationRanks.max() else { throw fail("expected a value computed from the inputs") }
        var shape: [Int]? = Array(repeating: 1, count: rank)
        for full in fullShapes { shape = shape.flatMap { broadcastShapes($0, full) } }
        let described = fullShapes.map { Shape.format($0) }.joined(separator: " and ")
        guard let shape, shape.count == rank, shape[0] == 1,
            activationRanks.allSatisfy({ $0 == rank })
        else {
            throw fail(
                "operands of shapes \(described) (batch as 1) do not broadcast without changing the batch layout"
            )
        }
        let rowShape = Array(shape.dropFirst())
        var operands: [Operand] = []
        for (symbol, role) in zip(symbols, roles) {
            switch symbol {
            case .activation(let id):
                if values[id].rowShape == rowShape {
                    operands.append(.value(id))
                } else {
                    let indices = broadcastIndices(from: values[id].rowShape, to: rowShape).map { Int32($0) }
                    operands.append(.broadcast(id, indices: indices))
                }
            case .constant(let constant):
                operands.append(.constant(try broadcastRow(constant, to: rowShape, role: role)))
            }
        }
        return (operands, rowShape)
    }

    mutating func binary(_ op: BinaryOperator) throws(SwitchyardError) -> Operation {
        let lhs = try requiredInput(0)
        let rhs = try requiredInput(1)
        let (operands, rowShape) = try elementwiseOperands([lhs, rhs], roles: ["A", "B"])
        let types: [DataType] = [lhs, rhs].compactMap {
            if case .activation(let id) = $0 { return values[id].dataType }
            return nil
        }
        let dataType = op.isComparison ? .bool : types.first ?? .fp32
        if op == .div, types.allSatisfy({ ElementType.isFloatingPoint(ElementType.code($0)) == false }) {
            throw fail(
                "integer division of \(dataType.rawValue) values is not supported; expected a Cast to FLOAT first"
            )
        }
        let output = try define(rowShape, dataType)
        return .binary(op, lhs: operands[0], rhs: operands[1], output: output)
    }

    mutating func pow() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "X")
        if case .constant(let exponent) = try requiredInput(1), let values = exponent.floats, let first = values.first,
            values.allSatisfy({ $0 == first })
        {
            let output = try define(self.values[x].rowShape, self.values[x].dataType)
            return .unary(.pow(first), input: x, output: output)
        }
        return try binary(.pow)
    }

    mutating func unary(_ op: UnaryOperator) throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "X")
        let output = try define(values[x].rowShape, values[x].dataType)
        return .unary(op, input: x, output: output)
    }

    mutating func clip() throws(SwitchyardError) -> Operation {
        var low = -Float.greatestFiniteMagnitude
        var high = Float.greatestFiniteMagnitude
        if opset < 11 {
            low = floatAttribute("min", default: low)
            high = floatAttribute("max", default: high)
        } else {
            for (position, role) in [(1, "min"), (2, "max")] {
                guard let symbol = try input(position) else { continue }
                guard case .constant(let constant) = symbol, let values = try? floats(constant, role: role),
                    values.count == 1
                else { throw fail("\(role) must be a constant scalar") }
                if position == 1 { low = values[0] } else { high = values[0] }
            }
        }
        return try unary(.clip(min: low, max: high))
    }

    mutating func prelu() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "X")
        guard case .constant(let slope) = try requiredInput(1) else {
            throw fail("slope is computed from the inputs; expected a constant")
        }
        let row = try broadcastRow(slope, to: values[x].rowShape, role: "slope")
        let output = try define(values[x].rowShape, values[x].dataType)
        return .prelu(input: x, slope: row, output: output)
    }

    /// Identity: constants stay constants, values get a copy.
    mutating func passThrough() throws(SwitchyardError) -> Operation? {
        switch try requiredInput(0) {
        case .constant(let constant):
            try defineConstant(constant)
            return nil
        case .activation(let x):
            let output = try define(values[x].rowShape, values[x].dataType)
            return .unary(.identity, input: x, output: output)
        }
    }

    mutating func dropout() throws(SwitchyardError) -> Operation? {
        if opset >= 12, let symbol = try input(2) {
            guard case .constant(let mode) = symbol, let flags = mode.integers, flags.allSatisfy({ $0 == 0 }) else {
                throw fail("training_mode is true or computed; expected an inference export (training_mode false)")
            }
        }
        if intAttribute("is_test", default: 1) == 0 {
            throw fail("is_test=0 marks a training graph; expected an inference export")
        }
        return try passThrough()
    }

    mutating func cast() throws(SwitchyardError) -> Operation {
        let target: Int32
        if bareOp == "CastLike" {
            switch try requiredInput(1) {
            case .constant(let like): target = like.elementType
            case .activation(let id): target = ElementType.code(values[id].dataType)
            }
        } else {
            target = Int32(truncatingIfNeeded: intAttribute("to", default: 0))
        }
        guard let dataType = ElementType.dataType(target) else {
            throw fail("Cast to \(ElementType.name(target)) is not supported; expected a numeric type")
        }
        let x = try activation(0, role: "input")
        let fromFloat = ElementType.isFloatingPoint(ElementType.code(values[x].dataType))
        let op: UnaryOperator =
            dataType == .bool
            ? .nonZero : (fromFloat && !ElementType.isFloatingPoint(target) ? .truncate : .identity)
        let output = try define(values[x].rowShape, dataType)
        return .unary(op, input: x, output: output)
    }

    // MARK: Softmax, reductions, normalisation

    mutating func softmax(log: Bool) throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "input")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let defaultAxis = opset >= 13 ? -1 : 1
        let axis = try rowAxis(intAttribute("axis", default: defaultAxis), rank: rank, what: "softmax")
        let group: Int
        if opset < 13 {
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
        let output = try define(rowShape, values[x].dataType)
        return .softmax(input: x, output: output, group: group, log: log)
    }

    mutating func reduce(_ op: ReduceOperator) throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let axesFromInput = op == .sum ? opset >= 13 : opset >= 18
        let axes = axesFromInput ? try integerList(1, role: "axes") : intsAttribute("axes")
        let keep = intAttribute("keepdims", default: 1) != 0
        var reduced: [Int]
        if let axes, !axes.isEmpty {
            reduced = try axes.map { (axis) throws(SwitchyardError) in
                try rowAxis(Int(axis), rank: rank, what: "reduction")
            }.sorted()
        } else if axesFromInput && intAttribute("noop_with_empty_axes", default: 0) != 0 {
            let output = try define(rowShape, values[x].dataType)
            return .unary(.identity, input: x, output: output)
        } else {
            throw fail("no axes: the reduction would run over the batch axis; expected axes after the batch")
        }
        reduced = Array(Set(reduced)).sorted()
        guard let first = reduced.first, reduced == Array(first..<rank) else {
            throw fail(
                "reducing axes \(reduced) of \(Shape.format([-1] + rowShape)) is not supported; expected the "
                    + "trailing axes (the feature axis)"
            )
        }
        let group = rowShape[(first - 1)...].reduce(1, *)
        let kept = Array(rowShape[..<(first - 1)])
        let outputShape = keep ? kept + Array(repeating: 1, count: rank - first) : kept
        let output = try define(outputShape, values[x].dataType)
        return .reduce(op, input: x, output: output, group: group)
    }

    mutating func argExtreme(largest: Bool) throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let axis = try rowAxis(intAttribute("axis", default: 0), rank: rank, what: bareOp)
        guard axis == rank - 1 || rowShape[axis...].allSatisfy({ $0 == 1 }) else {
            throw fail(
                "\(bareOp) over axis \(axis) of \(Shape.format([-1] + rowShape)) is not supported; expected the last axis"
            )
        }
        let keep = intAttribute("keepdims", default: 1) != 0
        var outputShape = rowShape
        if keep { outputShape[axis - 1] = 1 } else { outputShape.remove(at: axis - 1) }
        let output = try define(outputShape, .int64)
        return .argExtreme(
            largest: largest,
            selectLast: intAttribute("select_last_index", default: 0) != 0,
            input: x,
            output: output,
            group: rowShape[axis - 1]
        )
    }

    /// Inference-mode batch normalisation: a per-channel scale and shift (which the fused engine folds into a
    /// neighbouring dense layer).
    mutating func batchNormalization() throws(SwitchyardError) -> [Operation] {
        if opset >= 14, intAttribute("training_mode", default: 0) != 0 {
            throw fail("training_mode=1 computes batch statistics; expected an inference export")
        }
        if opset < 9, intAttribute("spatial", default: 1) == 0 {
            throw fail("spatial=0 is not supported; expected per-channel statistics")
        }
        let x = try activation(0, role: "X")
        let rowShape = values[x].rowShape
        guard let channels = rowShape.first else {
            throw fail("X has shape \(Shape.format([-1])); expected [batch, C, ...]")
        }
        var parameters: [[Float]] = []
        for (position, role) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
            let constant = try constantInput(position, role: role)
            let data = try floats(constant, role: role)
            guard data.count == channels else {
                throw fail("\(role) '\(constant.name)' has \(data.count) values; expected \(channels), one per channel")
            }
            parameters.append(data)
        }
        let epsilon = floatAttribute("epsilon", default: 1e-5)
        let inner = rowShape.dropFirst().reduce(1, *)
        var scale = [Float](repeating: 0, count: channels * inner)
        var shift = [Float](repeating: 0, count: channels * inner)
        for channel in 0..<channels {
            let s = Float(
                Double(parameters[0][channel]) / (Double(parameters[3][channel]) + Double(epsilon)).squareRoot()
            )
            let b = parameters[1][channel] - parameters[2][channel] * s
            for position in 0..<inner {
                scale[channel * inner + position] = s
                shift[channel * inner + position] = b
            }
        }
        let scaled = try fresh(rowShape, values[x].dataType, name: "\(try outputName(0))/scaled")
        let output = try define(rowShape, values[x].dataType)
        return [
            .binary(.mul, lhs: .value(x), rhs: .constant(scale), output: scaled),
            .binary(.add, lhs: .value(scaled), rhs: .constant(shift), output: output),
        ]
    }

    mutating func layerNormalization() throws(SwitchyardError) -> Operation {
        guard opset >= 17 else {
            throw fail("LayerNormalization needs opset 17 or later; the model imports opset \(opset)")
        }
        let x = try activation(0, role: "X")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let axis = try rowAxis(intAttribute("axis", default: -1), rank: rank, what: "normalization")
        let normalized = Array(rowShape[(axis - 1)...])
        let group = normalized.reduce(1, *)
        let scaleConstant = try constantInput(1, role: "Scale")
        let scale = try broadcastRow(scaleConstant, to: normalized, role: "Scale")
        var bias = [Float](repeating: 0, count: group)
        if let symbol = try input(2) {
            guard case .constant(let constant) = symbol else {
                throw fail("B is computed from the inputs; expected a constant")
            }
            bias = try broadcastRow(constant, to: normalized, role: "B")
        }
        let output = try define(rowShape, values[x].dataType)
        return .layerNorm(
            LayerNormOperation(
                input: x,
                output: output,
                group: group,
                epsilon: floatAttribute("epsilon", default: 1e-5),
                scale: scale,
                bias: bias
            )
        )
    }

    // MARK: Shapes

    mutating func flatten() throws(SwitchyardError) -> Operation {
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
        let output = try define([values[x].width], values[x].dataType)
        return .reshape(input: x, output: output)
    }

    mutating func reshape() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let shapeConstant = try constantInput(1, role: "shape")
        guard case .integers(var requested) = shapeConstant.payload, shapeConstant.dims.count == 1 else {
            throw fail("shape '\(shapeConstant.name)' must be a 1-D INT64 constant")
        }
        let inputShape = values[x].rowShape
        let width = values[x].width
        let allowZero = intAttribute("allowzero", default: 0) != 0
        if let batch = shapeConstant.batchIndex {
            guard batch == 0 else {
                throw fail("shape '\(shapeConstant.name)' moves the batch size to position \(batch); expected it first")
            }
            requested[0] = -1
        }
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
                guard inferred == nil, first == 0 || shapeConstant.batchIndex == 0 else {
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
        let output = try define(dims, values[x].dataType)
        return .reshape(input: x, output: output)
    }

    /// The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input from it.
    func squeezeAxes() throws(SwitchyardError) -> [Int64]? {
        opset >= 13 ? try integerList(1, role: "axes") : intsAttribute("axes")
    }

    mutating func squeezeOrUnsqueeze() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let axes = try squeezeAxes()
        var full = [1] + rowShape
        if bareOp == "Squeeze" {
            let rank = full.count
            let positions = try (axes ?? (1..<rank).filter { full[$0] == 1 }.map { Int64($0) })
                .map { (axis) throws(SwitchyardError) in try rowAxis(Int(axis), rank: rank, what: "squeeze") }
            for position in positions where full[position] != 1 {
                throw fail(
                    "axis \(position) of \(Shape.format([-1] + rowShape)) has size \(full[position]); expected 1"
                )
            }
            full = full.enumerated().filter { !positions.contains($0.offset) }.map(\.element)
        } else {
            guard let axes, !axes.isEmpty else { throw fail("expected axes to insert") }
            let rank = full.count + axes.count
            let positions = try axes.map { (axis) throws(SwitchyardError) in
                try rowAxis(Int(axis), rank: rank, what: "unsqueeze")
            }.sorted()
            for position in positions { full.insert(1, at: position) }
        }
        let output = try define(Array(full.dropFirst()), values[x].dataType)
        return .reshape(input: x, output: output)
    }

    /// Shape's `start` and `end` (opset 15): the part of `dims` it returns, and where that part starts.
    func shapeRange(_ dims: [Int64]) -> (dims: [Int64], start: Int) {
        guard opset >= 15 else { return (dims, 0) }
        let rank = dims.count
        func clamp(_ value: Int) -> Int { max(0, min(rank, value < 0 ? value + rank : value)) }
        let start = clamp(intAttribute("start", default: 0))
        let end = clamp(intAttribute("end", default: rank))
        return (start < end ? Array(dims[start..<end]) : [], start)
    }

    /// The flat indices Gather reads along `axis` of a tensor of shape `dims` for the indices `picked` (negative
    /// ones count from the end).
    func gatherIndices(dims: [Int], axis: Int, picked: [Int64]) throws(SwitchyardError) -> [Int] {
        let size = dims[axis]
        let resolved = try picked.map { (raw) throws(SwitchyardError) -> Int in
            let index = raw < 0 ? Int(raw) + size : Int(raw)
            guard index >= 0 && index < size else {
                throw fail("index \(raw) is out of range for an axis of size \(size)")
            }
            return index
        }
        let outer = dims[..<axis].reduce(1, *)
        let inner = dims[(axis + 1)...].reduce(1, *)
        var indices: [Int] = []
        indices.reserveCapacity(outer * resolved.count * inner)
        for o in 0..<outer {
            for index in resolved {
                for i in 0..<inner { indices.append((o * size + index) * inner + i) }
            }
        }
        return indices
    }

    /// Shape of an activation: a constant whose first element is the batch size, not known at load.
    mutating func shape() throws(SwitchyardError) {
        let x = try activation(0, role: "data")
        let (dims, start) = shapeRange([0] + values[x].rowShape.map { Int64($0) })
        let batchIndex: Int? = start == 0 && !dims.isEmpty ? 0 : nil
        try defineConstant(
            Constant(
                name: "",
                dims: [dims.count],
                elementType: ElementType.int64,
                payload: .integers(dims),
                batchIndex: batchIndex
            )
        )
    }

    /// An assembled row: each output element read from one part.
    mutating func assemble(_ parts: [Operand], _ map: [SourceElement], rowShape: [Int], dataType: DataType)
        throws(SwitchyardError)
        -> Operation
    {
        let output = try define(rowShape, dataType)
        return .assemble(parts: parts, map: map, output: output)
    }

    mutating func gather() throws(SwitchyardError) -> Operation {
        let indicesConstant: Constant
        switch try requiredInput(1) {
        case .constant(let constant): indicesConstant = constant
        case .activation(let id):
            // A lookup of constant values by computed indices (a class-label table).
            guard case .constant(let table) = try requiredInput(0), table.dims.count == 1,
                intAttribute("axis", default: 0) == 0
            else {
                throw fail("indices computed from the inputs are supported only into a 1-D constant table")
            }
            return try lookup(table: table, indices: id)
        }
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let axis = try rowAxis(intAttribute("axis", default: 0), rank: rank, what: "gather")
        let indices = try gatherIndices(
            dims: rowShape,
            axis: axis - 1,
            picked: try integers(indicesConstant, role: "indices")
        )
        let map = indices.map { SourceElement(part: 0, index: Int32($0)) }
        let outShape = Array(rowShape[..<(axis - 1)]) + indicesConstant.dims + Array(rowShape[axis...])
        return try assemble([.value(x)], map, rowShape: outShape, dataType: values[x].dataType)
    }

    mutating func lookup(table: Constant, indices: Int) throws(SwitchyardError) -> Operation {
        let entries = try floats(table, role: "table")
        if !ElementType.isFloatingPoint(table.elementType), let integers = table.integers {
            for value in integers where Int64(exactly: Float(value)) != value {
                throw fail("table value \(value) is not exactly representable in FP32; expected labels below 2^24")
            }
        }
        guard let dataType = ElementType.dataType(table.elementType) else {
            throw fail(
                "table '\(table.name)' holds \(ElementType.name(table.elementType)) values; string labels are not an "
                    + "Open Inference Protocol numeric tensor (train with integer class labels)"
            )
        }
        let output = try define(values[indices].rowShape, dataType)
        return .lookup(table: entries, input: indices, output: output)
    }

    mutating func concat() throws(SwitchyardError) -> Operation {
        var parts: [Operand] = []
        var shapes: [[Int]] = []
        var dataType: DataType?
        for position in 0..<inputNames.count {
            switch try requiredInput(position) {
            case .activation(let id):
                parts.append(.value(id))
                shapes.append(values[id].rowShape)
                dataType = dataType ?? values[id].dataType
            case .constant(let constant):
                guard constant.dims.first == 1, let data = constant.floats else {
                    throw fail(
                        "constant '\(constant.name)' of shape \(Shape.format(constant.dims)) cannot be concatenated "
                            + "with batched values; expected a leading dimension of 1"
                    )
                }
                parts.append(.constant(data))
                shapes.append(Array(constant.dims.dropFirst()))
            }
        }
        guard let first = shapes.first else { throw fail("expected at least one input") }
        let rank = first.count + 1
        let axis = try rowAxis(intAttribute("axis", default: 1), rank: rank, what: "concat")
        for shape in shapes {
            guard shape.count == first.count,
                shape.enumerated().allSatisfy({ $0.offset == axis - 1 || $0.element == first[$0.offset] })
            else {
                throw fail(
                    "inputs of shapes \(shapes.map { Shape.format([-1] + $0) }.joined(separator: ", ")) differ "
                        + "outside axis \(axis)"
                )
            }
        }
        let outer = first[..<(axis - 1)].reduce(1, *)
        let inner = first[axis...].reduce(1, *)
        var map: [SourceElement] = []
        for o in 0..<outer {
            for (part, shape) in shapes.enumerated() {
                let block = shape[axis - 1] * inner
                for i in 0..<block { map.append(SourceElement(part: Int32(part), index: Int32(o * block + i))) }
            }
        }
        var outShape = first
        outShape[axis - 1] = shapes.reduce(0) { $0 + $1[axis - 1] }
        return try assemble(parts, map, rowShape: outShape, dataType: dataType ?? .fp32)
    }

    /// Slice's starts, ends, axes and steps: attributes before opset 10, inputs from it.
    func sliceParameters(rank: Int) throws(SwitchyardError) -> (
        starts: [Int64], ends: [Int64], axes: [Int], steps: [Int64]
    ) {
        let starts: [Int64]
        let ends: [Int64]
        var axes: [Int64]?
        var steps: [Int64]?
        if opset < 10 {
            starts = intsAttribute("starts") ?? []
            ends = intsAttribute("ends") ?? []
            axes = intsAttribute("axes")
        } else {
            starts = try integerList(1, role: "starts") ?? []
            ends = try integerList(2, role: "ends") ?? []
            axes = try integerList(3, role: "axes")
            steps = try integerList(4, role: "steps")
        }
        guard starts.count == ends.count else { throw fail("starts and ends differ in length") }
        let resolvedAxes = (axes ?? (0..<Int64(starts.count)).map { $0 }).map { Int($0) < 0 ? Int($0) + rank : Int($0) }
        guard resolvedAxes.count == starts.count, resolvedAxes.allSatisfy({ $0 >= 0 && $0 < rank }) else {
            throw fail("axes do not match starts, or are out of range for rank \(rank)")
        }
        let resolvedSteps = steps ?? Array(repeating: 1, count: starts.count)
        guard resolvedSteps.count == starts.count, !resolvedSteps.contains(0) else {
            throw fail("steps must match starts and be non-zero")
        }
        return (starts, ends, resolvedAxes, resolvedSteps)
    }

    mutating func slice() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let full = [Int(Int32.max)] + rowShape
        let (starts, ends, axes, steps) = try sliceParameters(rank: full.count)
        var first = [Int](repeating: 0, count: rowShape.count)
        var stepList = [Int](repeating: 1, count: rowShape.count)
        var counts = rowShape
        for (position, axis) in axes.enumerated() {
            if axis == 0 {
                guard starts[position] == 0, steps[position] == 1, ends[position] >= Int64(Int32.max) else {
                    throw fail("slicing the batch axis is not supported; expected slices of the row axes")
                }
                continue
            }
            let range = sliceRange(
                start: starts[position],
                end: ends[position],
                step: steps[position],
                size: rowShape[axis - 1]
            )
            first[axis - 1] = range.start
            stepList[axis - 1] = range.step
            counts[axis - 1] = range.count
        }
        let indices = sliceIndices(dims: rowShape, starts: first, steps: stepList, counts: counts)
        let map = indices.map { SourceElement(part: 0, index: Int32($0)) }
        return try assemble([.value(x)], map, rowShape: counts, dataType: values[x].dataType)
    }

    mutating func transpose() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "data")
        let rowShape = values[x].rowShape
        let rank = rowShape.count + 1
        let perm = (intsAttribute("perm") ?? (0..<Int64(rank)).reversed().map { $0 }).map { Int($0) }
        guard perm.count == rank, Set(perm) == Set(0..<rank), perm[0] == 0 else {
            throw fail("perm \(perm) moves the batch axis; expected a permutation that keeps axis 0 first")
        }
        let rowPerm = perm.dropFirst().map { $0 - 1 }
        let (indices, dims) = transposeIndices(dims: rowShape, perm: rowPerm)
        let map = indices.map { SourceElement(part: 0, index: Int32($0)) }
        return try assemble([.value(x)], map, rowShape: dims, dataType: values[x].dataType)
    }

    mutating func expand() throws(SwitchyardError) -> Operation {
        let x = try activation(0, role: "input")
        let shapeConstant = try constantInput(1, role: "shape")
        var requested = shapeConstant.integers ?? []
        if let batch = shapeConstant.batchIndex { requested[batch] = 1 }
        let full = [1] + values[x].rowShape
        guard let target = broadcastShapes(full, requested.map { Int($0) }), target.count == full.count,
            target[0] == 1
        else {
            throw fail("shape \(requested) does not expand \(Shape.format([-1] + values[x].rowShape)) row by row")
        }
        let rowShape = Array(target.dropFirst())
        let map = broadcastIndices(from: values[x].rowShape, to: rowShape).map {
            SourceElement(part: 0, index: Int32($0))
        }
        return try assemble([.value(x)], map, rowShape: rowShape, dataType: values[x].dataType)
    }

    mutating func whereNode() throws(SwitchyardError) -> Operation {
        let a = try requiredInput(1)
        let b = try requiredInput(2)
        guard case .constant(let condition) = try requiredInput(0) else {
            let (operands, rowShape) = try elementwiseOperands(
                [try requiredInput(0), a, b],
                roles: ["condition", "X", "Y"]
            )
            let types: [DataType] = [a, b].compactMap {
                if case .activation(let id) = $0 { return values[id].dataType }
                return nil
            }
            let output = try define(rowShape, types.first ?? .fp32)
            return .select(condition: operands[0], lhs: operands[1], rhs: operands[2], output: output)
        }
        let (operands, rowShape) = try elementwiseOperands([a, b], roles: ["X", "Y"])
        let flags = try broadcastRow(condition, to: rowShape, role: "condition")
        // Broadcast activations are read through their index maps below, so each part is the plain value.
        let parts: [Operand] = operands.map { operand in
            if case .broadcast(let id, _) = operand { return .value(id) }
            return operand
        }
        var map: [SourceElement] = []
        for position in 0..<flags.count {
            let part = flags[position] != 0 ? 0 : 1
            let index: Int32 =
                if case .broadcast(_, let indices) = operands[part] { indices[position] } else { Int32(position) }
            map.append(SourceElement(part: Int32(part), index: index))
        }
        let types: [DataType] = [a, b].compactMap {
            if case .activation(let id) = $0 { return values[id].dataType }
            return nil
        }
        return try assemble(parts, map, rowShape: rowShape, dataType: types.first ?? .fp32)
    }

    mutating func constantNode() throws(SwitchyardError) {
        if let attribute = attribute("value"), let tensor = attribute.t {
            try defineConstant(try importer.constant(from: tensor.pointee, fallbackName: "\(label) value"))
        } else if let attribute = attribute("value_float"), attribute.has_f != 0 {
            try defineConstant(
                Constant(name: "", dims: [], elementType: ElementType.float, payload: .floats([attribute.f]))
            )
        } else if let attribute = attribute("value_floats") {
            let values = (0..<attribute.n_floats).map { attribute.floats[$0] }
            try defineConstant(
                Constant(name: "", dims: [values.count], elementType: ElementType.float, payload: .floats(values))
            )
        } else if let attribute = attribute("value_int"), attribute.has_i != 0 {
            try defineConstant(
                Constant(name: "", dims: [], elementType: ElementType.int64, payload: .integers([attribute.i]))
            )
        } else if let attribute = attribute("value_ints") {
            let values = (0..<attribute.n_ints).map { attribute.ints[$0] }
            try defineConstant(
                Constant(name: "", dims: [values.count], elementType: ElementType.int64, payload: .integers(values))
            )
        } else {
            throw fail("expected a value, value_float(s) or value_int(s) attribute")
        }
    }

    /// Expands a constant to one row of `rowShape` under ONNX (numpy) broadcasting. The constant may not
    /// enlarge the row's shape, and a dimension aligned with the batch must be 1.
    func broadcastRow(_ constant: Constant, to rowShape: [Int], role: String) throws(SwitchyardError) -> [Float] {
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
        let aligned =
            Array(repeating: 1, count: rowShape.count - min(dims.count, rowShape.count))
            + dims.suffix(min(dims.count, rowShape.count))
        for (have, want) in zip(aligned, rowShape) where have != 1 && have != want { throw mismatch() }
        let width = try checkedCount(rowShape) { label }
        if data.isEmpty { return [Float](repeating: 0, count: width) }
        return broadcastIndices(from: aligned, to: rowShape).map { data[$0] }
    }
}

/// A comparison operator applied to two values.
func compare(_ op: BinaryOperator, _ x: Float, _ y: Float) -> Bool {
    switch op {
    case .greater: x > y
    case .less: x < y
    case .greaterOrEqual: x >= y
    case .lessOrEqual: x <= y
    case .equal: x == y
    case .add, .sub, .mul, .div, .pow: false
    }
}
