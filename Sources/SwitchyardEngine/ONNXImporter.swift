// Reading an ONNX file: the model's opsets, its initializers (in the file or as external data beside it), its
// inputs and outputs, and the walk over its nodes that ONNXOperators.swift turns into row-wise operations.

internal import SwitchyardCore
internal import SwitchyardProto

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// What importing a file gives.
struct ImportedGraph {
    var graph: Graph
    var opset: Int
    var mlOpset: Int?
    var producerName: String
    var foldedNodeCount: Int
}

/// Decodes and imports an ONNX file's bytes.
func importONNX(bytes: [UInt8], externalDataDirectory: String?) throws(SwitchyardError) -> ImportedGraph {
    let proto: UnsafeMutablePointer<Onnx__ModelProto>? = bytes.withUnsafeBufferPointer { buffer in
        onnx__model_proto__unpack(nil, buffer.count, buffer.baseAddress)
    }
    guard let proto else {
        throw SwitchyardError.invalidArgument(
            "not an ONNX model: the \(bytes.count) bytes do not decode as an ONNX ModelProto"
        )
    }
    defer { onnx__model_proto__free_unpacked(proto, nil) }
    let importer = try Importer(model: proto.pointee, externalDataDirectory: externalDataDirectory)
    let (graph, folded) = try importer.importGraph()
    return ImportedGraph(
        graph: graph,
        opset: importer.opset,
        mlOpset: importer.mlOpset,
        producerName: importer.producerName,
        foldedNodeCount: folded
    )
}

// MARK: - Constants

/// A constant tensor: an initializer, a Constant node's value, or a node evaluated at load.
struct Constant {
    enum Payload {
        /// FLOAT, FLOAT16, BFLOAT16 and DOUBLE elements, as FP32.
        case floats([Float])
        /// Integer and BOOL elements.
        case integers([Int64])
        /// Elements of a type the importer does not compute with (STRING, complex), named.
        case unsupported(String)
    }
    var name: String
    var dims: [Int]
    /// The element type as the file declares it (ONNX TensorProto.DataType).
    var elementType: Int32
    var payload: Payload
    /// For a shape vector computed from an activation's Shape: the position that holds the batch size, which is
    /// not known at load.
    var batchIndex: Int? = nil

    var count: Int { dims.reduce(1, *) }
    var isFloatingPoint: Bool { [1, 10, 11, 16].contains(elementType) }
}

/// ONNX element type codes and their names.
enum ElementType {
    static let float: Int32 = 1
    static let int64: Int32 = 7
    static let bool: Int32 = 9

    private static let names: [Int32: String] = [
        0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
        8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
        15: "COMPLEX128", 16: "BFLOAT16",
    ]

    static func name(_ type: Int32) -> String { names[type] ?? "type \(type)" }

    /// The Open Inference Protocol datatype of an ONNX element type, or nil for types a tensor on the wire
    /// cannot carry as numbers (STRING, complex, float8).
    static func dataType(_ type: Int32) -> DataType? {
        switch type {
        case 1: .fp32
        case 2: .uint8
        case 3: .int8
        case 4: .uint16
        case 5: .int16
        case 6: .int32
        case 7: .int64
        case 9: .bool
        case 10: .fp16
        case 11: .fp64
        case 12: .uint32
        case 13: .uint64
        case 16: .bf16
        default: nil
        }
    }

    /// The ONNX element type of an OIP datatype.
    static func code(_ dataType: DataType) -> Int32 {
        switch dataType {
        case .fp32: 1
        case .uint8: 2
        case .int8: 3
        case .uint16: 4
        case .int16: 5
        case .int32: 6
        case .int64: 7
        case .bool: 9
        case .fp16: 10
        case .fp64: 11
        case .uint32: 12
        case .uint64: 13
        case .bf16: 16
        case .bytes: 8
        }
    }

    static func isFloatingPoint(_ type: Int32) -> Bool { [1, 10, 11, 16].contains(type) }

    /// Bytes per element in `raw_data`, or nil for variable-size types.
    static func size(_ type: Int32) -> Int? {
        switch type {
        case 2, 3, 9: 1
        case 4, 5, 10, 16: 2
        case 1, 6, 12: 4
        case 7, 11, 13, 14: 8
        case 15: 16
        default: nil
        }
    }
}

/// An IEEE half-precision bit pattern as FP32.
func floatFromHalf(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int((bits >> 10) & 0x1F)
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign == 0 ? magnitude : -magnitude
    }
    return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}

// MARK: - Files

func readModelFile(_ path: String) throws(SwitchyardError) -> [UInt8] {
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

/// Reads `length` bytes at `offset` of a file that must lie inside `directory`.
private func readExternalData(
    directory: String,
    location: String,
    offset: Int,
    length: Int?,
    what: () -> String
) throws(SwitchyardError) -> [UInt8] {
    guard !location.isEmpty, !location.hasPrefix("/") else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data location '\(location)' must be a relative path inside the model's directory"
        )
    }
    guard !location.split(separator: "/").contains("..") else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data location '\(location)' contains '..'; expected a file in the model's directory"
        )
    }
    guard let base = realpath(directory, nil) else {
        throw SwitchyardError.invalidArgument("\(what()): the model's directory cannot be resolved")
    }
    defer { free(base) }
    let path = directory + "/" + location
    guard let resolved = realpath(path, nil) else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data file '\(location)' cannot be opened: \(String(cString: strerror(errno)))"
        )
    }
    defer { free(resolved) }
    let root = String(cString: base)
    let target = String(cString: resolved)
    guard target.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data location '\(location)' leaves the model's directory"
        )
    }
    guard let file = fopen(target, "rb") else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data file '\(location)' cannot be opened: \(String(cString: strerror(errno)))"
        )
    }
    defer { fclose(file) }
    var status = stat()
    guard fstat(fileno(file), &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
        throw SwitchyardError.invalidArgument("\(what()): external data '\(location)' is not a regular file")
    }
    let size = Int(status.st_size)
    let wanted = length ?? (size - offset)
    guard offset >= 0, wanted >= 0, offset <= size, wanted <= size - offset else {
        throw SwitchyardError.invalidArgument(
            "\(what()): external data at offset \(offset) with length \(length.map(String.init) ?? "(rest)") runs "
                + "past the end of '\(location)' (\(size) bytes)"
        )
    }
    var bytes = [UInt8](repeating: 0, count: wanted)
    guard fseek(file, offset, SEEK_SET) == 0 else {
        throw SwitchyardError.invalidArgument("\(what()): cannot seek to offset \(offset) of '\(location)'")
    }
    let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, wanted, file) }
    guard read == wanted else {
        throw SwitchyardError.invalidArgument("\(what()): read \(read) of \(wanted) bytes from '\(location)'")
    }
    return bytes
}

// MARK: - Helpers

func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

/// Overflow-checked product of dimensions, bounded by `ONNXModel.maxElements`.
func checkedCount(_ dims: [Int], what: () -> String) throws(SwitchyardError) -> Int {
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

func dimension(_ value: Int64, what: () -> String) throws(SwitchyardError) -> Int {
    guard let converted = Int(exactly: value), abs(converted) <= Int(Int32.max) else {
        throw SwitchyardError.invalidArgument("\(what()): dimension \(value) is out of range")
    }
    return converted
}

// MARK: - The importer

struct Importer {
    let model: Onnx__ModelProto
    let graphProto: Onnx__GraphProto
    let opset: Int
    let mlOpset: Int?
    let producerName: String
    let externalDataDirectory: String?

    static var opsetRange: String {
        "\(ONNXModel.supportedOpsets.lowerBound)–\(ONNXModel.supportedOpsets.upperBound)"
    }

    init(model: Onnx__ModelProto, externalDataDirectory: String?) throws(SwitchyardError) {
        self.model = model
        self.externalDataDirectory = externalDataDirectory
        guard let graph = model.graph else {
            throw SwitchyardError.invalidArgument("ONNX model has no graph")
        }
        self.graphProto = graph.pointee
        self.producerName = string(model.producer_name)
        var opset: Int?
        var mlOpset: Int?
        for index in 0..<model.n_opset_import {
            guard let entry = model.opset_import[index] else { continue }
            let domain = string(entry.pointee.domain)
            let version = entry.pointee.has_version != 0 ? Int(truncatingIfNeeded: entry.pointee.version) : nil
            if domain.isEmpty || domain == "ai.onnx" {
                opset = version
            } else if domain == "ai.onnx.ml" {
                mlOpset = version
            }
        }
        guard let opset else {
            throw SwitchyardError.invalidArgument(
                "ONNX model imports no default-domain opset; expected opset \(Self.opsetRange)"
            )
        }
        guard ONNXModel.supportedOpsets.contains(opset) else {
            throw SwitchyardError.invalidArgument(
                "ONNX opset \(opset) is not supported; expected opset \(Self.opsetRange)"
            )
        }
        if let mlOpset, !ONNXModel.supportedMLOpsets.contains(mlOpset) {
            throw SwitchyardError.invalidArgument(
                "ai.onnx.ml opset \(mlOpset) is not supported; expected ai.onnx.ml opset "
                    + "\(ONNXModel.supportedMLOpsets.lowerBound)–\(ONNXModel.supportedMLOpsets.upperBound)"
            )
        }
        self.opset = opset
        self.mlOpset = mlOpset
    }

    // MARK: Tensors

    func constant(from tensor: Onnx__TensorProto, fallbackName: String) throws(SwitchyardError) -> Constant {
        let name = tensor.name.map { String(cString: $0) } ?? fallbackName
        let what = { "initializer '\(name)'" }
        var dims: [Int] = []
        for index in 0..<tensor.n_dims { dims.append(try dimension(tensor.dims[index], what: what)) }
        let count = try checkedCount(dims, what: what)
        let type = tensor.has_data_type != 0 ? tensor.data_type : 0
        var external: [UInt8]?
        if tensor.has_data_location != 0 && tensor.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            external = try externalBytes(tensor, what: what)
        }
        guard let size = ElementType.size(type), ![14, 15].contains(type) else {
            return Constant(
                name: name,
                dims: dims,
                elementType: type,
                payload: .unsupported(ElementType.name(type))
            )
        }
        func fromRaw(_ raw: UnsafeRawBufferPointer) throws(SwitchyardError) -> Constant.Payload {
            guard raw.count == count * size else {
                throw SwitchyardError.invalidArgument(
                    "\(what()): \(external == nil ? "raw_data" : "external data") has \(raw.count) bytes; "
                        + "expected \(count * size) for \(ElementType.name(type)) shape \(Shape.format(dims))"
                )
            }
            return Self.decode(raw, type: type, count: count)
        }
        let payload: Constant.Payload
        if let external {
            payload = try external.withUnsafeBytes { raw in Result { () throws(SwitchyardError) in try fromRaw(raw) } }
                .get()
        } else if tensor.has_raw_data != 0, tensor.raw_data.len > 0 || count == 0 || !hasTypedData(tensor) {
            payload = try fromRaw(UnsafeRawBufferPointer(start: tensor.raw_data.data, count: tensor.raw_data.len))
        } else {
            payload = try typedPayload(tensor, type: type, count: count, dims: dims, what: what)
        }
        return Constant(name: name, dims: dims, elementType: type, payload: payload)
    }

    private func hasTypedData(_ tensor: Onnx__TensorProto) -> Bool {
        tensor.n_float_data + tensor.n_int32_data + tensor.n_int64_data + tensor.n_double_data
            + tensor.n_uint64_data > 0
    }

    /// Little-endian elements of `type` from raw bytes.
    static func decode(_ raw: UnsafeRawBufferPointer, type: Int32, count: Int) -> Constant.Payload {
        func load<Word: FixedWidthInteger>(_: Word.Type, _ index: Int) -> Word {
            Word(littleEndian: raw.loadUnaligned(fromByteOffset: index * MemoryLayout<Word>.size, as: Word.self))
        }
        switch type {
        case 1: return .floats((0..<count).map { Float(bitPattern: load(UInt32.self, $0)) })
        case 10: return .floats((0..<count).map { floatFromHalf(load(UInt16.self, $0)) })
        case 16: return .floats((0..<count).map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) })
        case 11: return .floats((0..<count).map { Float(Double(bitPattern: load(UInt64.self, $0))) })
        case 2, 9: return .integers((0..<count).map { Int64(load(UInt8.self, $0)) })
        case 3: return .integers((0..<count).map { Int64(load(Int8.self, $0)) })
        case 4: return .integers((0..<count).map { Int64(load(UInt16.self, $0)) })
        case 5: return .integers((0..<count).map { Int64(load(Int16.self, $0)) })
        case 6: return .integers((0..<count).map { Int64(load(Int32.self, $0)) })
        case 12: return .integers((0..<count).map { Int64(load(UInt32.self, $0)) })
        case 7: return .integers((0..<count).map { load(Int64.self, $0) })
        case 13: return .integers((0..<count).map { Int64(bitPattern: load(UInt64.self, $0)) })
        default: return .unsupported(ElementType.name(type))
        }
    }

    /// Elements from the typed repeated field ONNX stores `type` in.
    private func typedPayload(
        _ tensor: Onnx__TensorProto,
        type: Int32,
        count: Int,
        dims: [Int],
        what: () -> String
    ) throws(SwitchyardError) -> Constant.Payload {
        func check(_ field: String, _ have: Int) throws(SwitchyardError) {
            guard have == count else {
                throw SwitchyardError.invalidArgument(
                    "\(what()): \(field) has \(have) values; expected \(count) for shape \(Shape.format(dims))"
                )
            }
        }
        switch type {
        case 1:
            try check("float_data", tensor.n_float_data)
            return .floats(Array(UnsafeBufferPointer(start: tensor.float_data, count: count)))
        case 11:
            try check("double_data", tensor.n_double_data)
            return .floats(UnsafeBufferPointer(start: tensor.double_data, count: count).map { Float($0) })
        case 10, 16:
            try check("int32_data", tensor.n_int32_data)
            let words = UnsafeBufferPointer(start: tensor.int32_data, count: count)
            return .floats(
                words.map {
                    let bits = UInt16(truncatingIfNeeded: $0)
                    return type == 10 ? floatFromHalf(bits) : Float(bitPattern: UInt32(bits) << 16)
                }
            )
        case 2, 3, 4, 5, 6, 9:
            try check("int32_data", tensor.n_int32_data)
            return .integers(UnsafeBufferPointer(start: tensor.int32_data, count: count).map { Int64($0) })
        case 7:
            try check("int64_data", tensor.n_int64_data)
            return .integers(Array(UnsafeBufferPointer(start: tensor.int64_data, count: count)))
        case 12, 13:
            try check("uint64_data", tensor.n_uint64_data)
            return .integers(
                UnsafeBufferPointer(start: tensor.uint64_data, count: count).map { Int64(bitPattern: $0) }
            )
        default:
            return .unsupported(ElementType.name(type))
        }
    }

    private func externalBytes(_ tensor: Onnx__TensorProto, what: () -> String) throws(SwitchyardError) -> [UInt8] {
        guard let directory = externalDataDirectory else {
            throw SwitchyardError.invalidArgument(
                "\(what()): stored as external data, which needs the model file's directory; load the model "
                    + "from its file"
            )
        }
        var entries: [String: String] = [:]
        for index in 0..<tensor.n_external_data {
            guard let entry = tensor.external_data[index] else { continue }
            entries[string(entry.pointee.key)] = string(entry.pointee.value)
        }
        guard let location = entries["location"] else {
            throw SwitchyardError.invalidArgument("\(what()): external data without a 'location' entry")
        }
        func integer(_ key: String) throws(SwitchyardError) -> Int? {
            guard let text = entries[key] else { return nil }
            guard let value = Int(text), value >= 0 else {
                throw SwitchyardError.invalidArgument(
                    "\(what()): external data \(key) '\(text)' is not a non-negative integer"
                )
            }
            return value
        }
        return try readExternalData(
            directory: directory,
            location: location,
            offset: try integer("offset") ?? 0,
            length: try integer("length"),
            what: what
        )
    }

    // MARK: Graph

    func importGraph() throws(SwitchyardError) -> (Graph, folded: Int) {
        var symbols: [String: Symbol] = [:]
        var values: [Graph.Value] = []
        for index in 0..<graphProto.n_initializer {
            guard let tensor = graphProto.initializer[index] else { continue }
            let constant = try constant(from: tensor.pointee, fallbackName: "initializer \(index)")
            symbols[constant.name] = .constant(constant)
        }

        try refuseUnsupportedOperators()
        var inputSpecs: [TensorSpec] = []
        var inputIDs: [Int] = []
        for index in 0..<graphProto.n_input {
            guard let info = graphProto.input[index] else { continue }
            let name = string(info.pointee.name)
            if symbols[name] != nil { continue }  // an initializer with a default: a constant, not an input
            let (rowShape, dataType) = try inputRowShape(info.pointee, name: name)
            let width = try checkedCount(rowShape) { "input '\(name)'" }
            values.append(Graph.Value(name: name, rowShape: rowShape, width: width, dataType: dataType))
            inputIDs.append(values.count - 1)
            symbols[name] = .activation(values.count - 1)
            inputSpecs.append(TensorSpec(name: name, dataType: dataType, shape: [-1] + rowShape))
        }
        guard !inputIDs.isEmpty else {
            throw SwitchyardError.invalidArgument("the graph has no inputs (every graph input is an initializer)")
        }

        var nodes: [Graph.Node] = []
        var folded = 0
        for index in 0..<graphProto.n_node {
            guard let node = graphProto.node[index] else { continue }
            var builder = NodeImporter(
                importer: self,
                node: node.pointee,
                index: index,
                symbols: symbols,
                values: values
            )
            let operations = try builder.importNode()
            symbols = builder.symbols
            values = builder.values
            if operations.isEmpty && builder.opType != "Constant" { folded += 1 }
            for operation in operations {
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
                try checkDeclaredOutput(info.pointee, name: name, value: value)
                outputIDs.append(id)
                outputSpecs.append(TensorSpec(name: name, dataType: value.dataType, shape: [-1] + value.rowShape))
            case .constant?:
                throw SwitchyardError.invalidArgument(
                    "output '\(name)' is a constant; expected a value computed from the inputs"
                )
            case nil:
                throw SwitchyardError.invalidArgument("output '\(name)' is not produced by any node")
            }
        }
        guard !outputIDs.isEmpty else { throw SwitchyardError.invalidArgument("the graph has no outputs") }
        let graph = Graph(
            values: values,
            nodes: nodes,
            inputs: inputIDs,
            outputs: outputIDs,
            signature: ModelSignature(inputs: inputSpecs, outputs: outputSpecs)
        )
        return (graph, folded)
    }

    /// Refuses the first node whose operator is not supported before importing any: a graph that is not an MLP
    /// (an LSTM behind the Expand that builds its initial state, say) is named by the operator that makes it so,
    /// not by whichever of its helper nodes the import would stumble on first.
    private func refuseUnsupportedOperators() throws(SwitchyardError) {
        for index in 0..<graphProto.n_node {
            guard let node = graphProto.node[index] else { continue }
            let importer = NodeImporter(
                importer: self,
                node: node.pointee,
                index: index,
                symbols: [:],
                values: []
            )
            if let refusal = importer.unsupportedOperator() { throw refusal }
        }
    }

    private func tensorType(_ info: Onnx__ValueInfoProto, what: String) throws(SwitchyardError)
        -> Onnx__TypeProto__Tensor?
    {
        guard let type = info.type else { return nil }
        guard type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, let tensor = type.pointee.tensor_type
        else {
            throw SwitchyardError.invalidArgument(
                "\(what) is not a tensor (a sequence or map); expected a numeric tensor"
            )
        }
        return tensor.pointee
    }

    private func inputRowShape(_ info: Onnx__ValueInfoProto, name: String) throws(SwitchyardError) -> ([Int], DataType)
    {
        let what = "input '\(name)'"
        guard let tensor = try tensorType(info, what: what), tensor.has_elem_type != 0 else {
            throw SwitchyardError.invalidArgument("\(what) declares no element type; expected a numeric tensor")
        }
        guard let dataType = ElementType.dataType(tensor.elem_type) else {
            throw SwitchyardError.invalidArgument(
                "\(what) has data type \(ElementType.name(tensor.elem_type)); expected a numeric type (FLOAT, "
                    + "FLOAT16, DOUBLE, an integer type or BOOL)"
            )
        }
        guard let shape = tensor.shape, shape.pointee.n_dim >= 1 else {
            throw SwitchyardError.invalidArgument(
                "\(what): expected a shape of rank 1 or more with a leading batch dimension"
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
            rowShape.append(try dimension(fixed) { what })
        }
        return (rowShape, dataType)
    }

    private func checkDeclaredOutput(_ info: Onnx__ValueInfoProto, name: String, value: Graph.Value)
        throws(SwitchyardError)
    {
        let what = "output '\(name)'"
        guard let tensor = try tensorType(info, what: what) else { return }
        if tensor.has_elem_type != 0, tensor.elem_type != 0 {
            guard ElementType.dataType(tensor.elem_type) == value.dataType else {
                throw SwitchyardError.invalidArgument(
                    "\(what): declared with data type \(ElementType.name(tensor.elem_type)); the graph computes "
                        + ElementType.name(ElementType.code(value.dataType))
                )
            }
        }
        guard let shape = tensor.shape else { return }
        let declared = shape.pointee
        let rowShape = value.rowShape
        guard declared.n_dim == rowShape.count + 1 else {
            throw SwitchyardError.invalidArgument(
                "\(what): declared with rank \(declared.n_dim); the graph computes \(Shape.format([-1] + rowShape))"
            )
        }
        for index in 1..<max(declared.n_dim, 1) {
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

/// What a name in the graph refers to while importing.
enum Symbol {
    case activation(Int)
    case constant(Constant)
}
