// The v2 REST infer call ↔ the Open Inference Protocol request the gRPC path takes. A JSON request (with the
// binary tensor data extension: `Inference-Header-Content-Length`, `binary_data_size` per input) is built straight
// into the structure protobuf-c decodes a ModelInferRequest into, its inputs in raw_input_contents (binary data read
// in place from the body), so every REST call takes exactly the gRPC call's path through InferenceService (routing,
// shadow, batching, deadlines, shedding, statistics) with no protobuf in between. The answer is written from the
// result as JSON, each output as `data` or, when asked, as binary data after the JSON header.

import FoundationEssentials
import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardProto

/// The JSON request body (v2 REST `$inference_request`), read from a parsed document by `init(_:fields:)` with the
/// rules (and messages) a Decodable reading with JSONDecoder had: required fields, optional ones that may be null,
/// unknown ones ignored, fields read in declaration order so that the first error is the same.
struct RESTInferRequest {
    struct Input {
        var name: String
        var shape: [Int64]
        var datatype: String
        var parameters: InputParameters?
        var data: InputData?
    }

    /// An input's `data`: a flat array of numbers (what tritonclient and perf_analyzer send) reads straight into
    /// `[Double]`; anything else (nested arrays, booleans, strings) as JSON values.
    enum InputData {
        case numbers([Double])
        case values(JSONValue)
    }

    struct Output {
        var name: String
        var parameters: OutputParameters?
    }

    /// The input parameters this binding reads; others are ignored, as the gRPC path ignores them.
    struct InputParameters {
        var binaryDataSize: Int64?
        var sharedMemory: SharedMemoryParameters?
    }

    struct OutputParameters {
        var binaryData: Bool?
        var classification: JSONValue?
        var sharedMemory: SharedMemoryParameters?
    }

    /// Where a tensor lies in a registered system shared-memory region (the `shared_memory_*` parameters), passed
    /// to the gRPC path's tensor parameters, which check the region, its size and the offset.
    struct SharedMemoryParameters {
        var region: String
        var byteSize: Int64
        var offset: Int64?
    }

    var id: String?
    var parameters: [String: JSONValue]?
    var inputs: [Input]
    var outputs: [Output]?
}

extension RESTInferRequest {
    /// Reads the request from the document's root.
    init(_ root: JSONNode, fields: JSONFields) throws(SwitchyardError) {
        let top = { "" }
        _ = try fields.check(root, .object, at: top)
        id = try fields.field(root, "id", .string, optional: true, in: top)?.string
        parameters = try fields.field(root, "parameters", .object, optional: true, in: top).map { node in
            guard case .object(let members) = node.value else { return [:] }
            return members
        }
        let inputList = try fields.field(root, "inputs", .array, in: top)!
        var inputs: [Input] = []
        inputs.reserveCapacity(inputList.count)
        for index in 0..<inputList.count {
            let path = { "inputs[\(index)]" }
            inputs.append(try Input(fields.check(inputList[index], .object, at: path), fields: fields, path: path))
        }
        self.inputs = inputs
        if let outputList = try fields.field(root, "outputs", .array, optional: true, in: top) {
            var outputs: [Output] = []
            outputs.reserveCapacity(outputList.count)
            for index in 0..<outputList.count {
                let path = { "outputs[\(index)]" }
                let node = try fields.check(outputList[index], .object, at: path)
                let name = try fields.string(node, "name", in: path)
                var parameters: OutputParameters?
                let parametersPath = { JSONFields.join(path(), "parameters") }
                if let object = try fields.field(node, "parameters", .object, optional: true, in: path) {
                    parameters = OutputParameters(
                        binaryData: try fields.field(
                            object,
                            "binary_data",
                            .boolean,
                            optional: true,
                            in: parametersPath
                        )
                        .map { $0.type == .true },
                        classification: try fields.field(
                            object,
                            "classification",
                            .any,
                            optional: true,
                            in: parametersPath
                        )?.value,
                        sharedMemory: try SharedMemoryParameters(object, fields: fields, path: parametersPath)
                    )
                }
                outputs.append(Output(name: name, parameters: parameters))
            }
            self.outputs = outputs
        } else {
            outputs = nil
        }
    }
}

extension RESTInferRequest.Input {
    init(_ node: JSONNode, fields: JSONFields, path: () -> String) throws(SwitchyardError) {
        name = try fields.string(node, "name", in: path)
        func shapePath() -> String { JSONFields.join(path(), "shape") }
        let shapeList = try fields.field(node, "shape", .integers, in: path)!
        var shape: [Int64] = []
        shape.reserveCapacity(shapeList.count)
        for index in 0..<shapeList.count {
            shape.append(try fields.integer(shapeList[index], at: { "\(shapePath())[\(index)]" }))
        }
        self.shape = shape
        datatype = try fields.string(node, "datatype", in: path)
        parameters = nil
        if let object = try fields.field(node, "parameters", .object, optional: true, in: path) {
            func parametersPath() -> String { JSONFields.join(path(), "parameters") }
            parameters = RESTInferRequest.InputParameters(
                binaryDataSize: try fields.optionalInteger(object, "binary_data_size", in: parametersPath),
                sharedMemory: try RESTInferRequest.SharedMemoryParameters(object, fields: fields, path: parametersPath)
            )
        }
        data = nil
        if let values = node["data"], !values.isNull {
            if let numbers = values.numbers {
                data = .numbers(numbers)
            } else {
                data = .values(values.value)
            }
        }
    }
}

extension RESTInferRequest.SharedMemoryParameters {
    /// The parameters when `shared_memory_region` is present (then `shared_memory_byte_size` must be too).
    init?(_ object: JSONNode, fields: JSONFields, path: () -> String) throws(SwitchyardError) {
        guard object["shared_memory_region"] != nil else { return nil }
        region = try fields.string(object, "shared_memory_region", in: path)
        byteSize = try fields.integer(
            try fields.field(object, "shared_memory_byte_size", .number, in: path)!,
            at: { JSONFields.join(path(), "shared_memory_byte_size") }
        )
        offset = try fields.optionalInteger(object, "shared_memory_offset", in: path)
    }
}

/// How a REST infer call's outputs are to be returned.
struct RESTInferCall {
    /// Outputs returned as binary data (by name); the rest as JSON `data`.
    var binaryOutputs: Set<String>
    /// Every output returned as binary data (`binary_data_output` set and no per-output choice).
    var binaryByDefault: Bool
    var explicitOutputs: Set<String>
}

/// A translated request: the parsed request with each input's bytes, ready to be built into the inference
/// request structure (`build`), and how its outputs are to be returned.
struct RESTInferTranslation {
    /// An input's raw little-endian bytes.
    enum RawInput {
        /// Converted from JSON `data`.
        case converted([UInt8])
        /// Binary tensor data: this range of the request body, read in place.
        case body(Range<Int>)
    }

    var request: RESTInferRequest
    /// Per input, in request order; `nil` for an input in system shared memory.
    var rawInputs: [RawInput?]
    var call: RESTInferCall
}

enum RESTInfer {
    /// Reads a REST infer request (JSON, and binary tensor data after it) and checks it as far as the request alone
    /// allows; the model's signature is checked by the gRPC path's validation.
    /// - Parameters:
    ///   - body: the whole request body.
    ///   - headerLength: `Inference-Header-Content-Length`, when present: the JSON's length, binary data after it.
    /// - Throws: `invalidArgument` naming the field, what was wrong and what was expected.
    static func translate(
        model: String,
        version: String,
        body: UnsafeRawBufferPointer,
        headerLength: String?
    ) throws(SwitchyardError) -> RESTInferTranslation {
        var jsonLength = body.count
        if let headerLength {
            guard let length = Int(headerLength.filter { $0 != " " && $0 != "\t" }), length >= 0 else {
                throw .invalidArgument(
                    "Inference-Header-Content-Length: expected a byte count, got '\(headerLength)'"
                )
            }
            guard length <= body.count else {
                throw .invalidArgument(
                    "Inference-Header-Content-Length \(length) exceeds the request body's \(body.count) bytes; "
                        + "expected the JSON header's length, at most the body's"
                )
            }
            jsonLength = length
        }
        let request = try JSONDocument.parse(
            UnsafeRawBufferPointer(rebasing: body[0..<jsonLength]),
            what: "inference request"
        ) { root throws(SwitchyardError) in
            try RESTInferRequest(root, fields: JSONFields(what: "inference request"))
        }
        let binary = UnsafeRawBufferPointer(rebasing: body[jsonLength...])

        // Inputs as raw little-endian bytes of their datatype.
        try checkName(model, "model_name")
        try checkName(version, "model_version")
        try checkText(request.id ?? "", "id")
        var rawInputs: [RESTInferTranslation.RawInput?] = []
        var binaryOffset = 0
        for (index, input) in request.inputs.enumerated() {
            try checkName(input.name, "inputs[\(index)].name")
            guard let dataType = DataType(rawValue: input.datatype) else {
                let known = DataType.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidArgument(
                    "input '\(input.name)': unknown datatype '\(input.datatype)'; expected one of \(known)"
                )
            }
            var count: Int64 = 1
            for dimension in input.shape {
                guard dimension >= 0 else {
                    throw .invalidArgument(
                        "input '\(input.name)': shape \(Shape.format(input.shape.map(Int.init))) has a negative dimension"
                    )
                }
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                guard !overflow, product <= Int64(Int32.max) else {
                    throw .invalidArgument("input '\(input.name)': shape \(input.shape) is too large")
                }
                count = product
            }
            let shapeText = Shape.format(input.shape.map(Int.init))
            if input.parameters?.sharedMemory != nil {
                guard input.data == nil, input.parameters?.binaryDataSize == nil else {
                    throw .invalidArgument(
                        "input '\(input.name)': has shared_memory_region and also "
                            + (input.data != nil ? "data" : "binary_data_size") + "; expected one source"
                    )
                }
                rawInputs.append(nil)
            } else if let size = input.parameters?.binaryDataSize {
                guard size >= 0 else {
                    throw .invalidArgument(
                        "input '\(input.name)': parameters.binary_data_size: expected a byte count ≥ 0, got \(size)"
                    )
                }
                guard size <= binary.count - binaryOffset else {
                    throw .invalidArgument(
                        "input '\(input.name)': binary_data_size \(size) overruns the request body: "
                            + "\(binary.count - binaryOffset) bytes of binary data are left after the JSON header"
                    )
                }
                if input.data != nil {
                    throw .invalidArgument("input '\(input.name)': has both binary_data_size and data; expected one")
                }
                let start = binaryOffset
                binaryOffset += Int(size)
                rawInputs.append(.body(jsonLength + start..<jsonLength + binaryOffset))
            } else {
                guard let data = input.data else {
                    throw .invalidArgument(
                        "input '\(input.name)': no data; expected 'data' or parameters.binary_data_size"
                    )
                }
                func checkCount(_ got: Int) throws(SwitchyardError) {
                    guard got == Int(count) else {
                        throw .invalidArgument(
                            "input '\(input.name)': expected \(count) values in data for shape \(shapeText), got \(got)"
                        )
                    }
                }
                switch data {
                case .numbers(let numbers) where dataType != .bytes:
                    try checkCount(numbers.count)
                    rawInputs.append(.converted(try raw(numbers: numbers, dataType: dataType, input: input.name)))
                case .numbers(let numbers):
                    try checkCount(numbers.count)
                    rawInputs.append(
                        .converted(try raw(numbers.map(JSONValue.number), dataType: dataType, input: input.name))
                    )
                case .values(let value):
                    var flat: [JSONValue] = []
                    // The shape is the client's claim, checked against the values only after flattening: a small body
                    // must not reserve room for 2^31 values.
                    flat.reserveCapacity(min(Int(count), 1 << 16))
                    flatten(value, into: &flat)
                    try checkCount(flat.count)
                    rawInputs.append(.converted(try raw(flat, dataType: dataType, input: input.name)))
                }
            }
        }
        guard binaryOffset == binary.count else {
            throw .invalidArgument(
                "\(binary.count - binaryOffset) bytes of binary data after the JSON header are claimed by no "
                    + "input's binary_data_size; expected the sizes to add up to \(binary.count)"
            )
        }

        // Outputs: which come back as binary data.
        var binaryByDefault = false
        if let value = request.parameters?["binary_data_output"] {
            guard case .bool(let flag) = value else {
                throw .invalidArgument("parameters.binary_data_output: expected a boolean, got \(value.kind)")
            }
            binaryByDefault = flag
        }
        var binaryOutputs = Set<String>()
        var explicitOutputs = Set<String>()
        for (index, output) in (request.outputs ?? []).enumerated() {
            try checkName(output.name, "outputs[\(index)].name")
            explicitOutputs.insert(output.name)
            var wantsBinary = binaryByDefault
            if let flag = output.parameters?.binaryData { wantsBinary = flag }
            if output.parameters?.classification != nil {
                throw .invalidArgument(
                    "output '\(output.name)': the classification extension is not supported; expected no "
                        + "'classification' parameter"
                )
            }
            if wantsBinary { binaryOutputs.insert(output.name) }
        }

        for (key, value) in request.parameters ?? [:] {
            try checkText(key, "parameters key")
            switch value {
            case .string(let text): try checkText(text, "parameters.\(key)")
            case .null, .array, .object:
                throw .invalidArgument("parameters.\(key): expected a boolean, number or string, got \(value.kind)")
            default: break
            }
        }
        return RESTInferTranslation(
            request: request,
            rawInputs: rawInputs,
            call: RESTInferCall(
                binaryOutputs: binaryOutputs,
                binaryByDefault: binaryByDefault && explicitOutputs.isEmpty,
                explicitOutputs: explicitOutputs
            )
        )
    }

    /// A name the gRPC path would refuse on the wire (StringFieldCheck): longer than a name may be, or holding a NUL
    /// byte, which the request structure's C strings would cut short.
    private static func checkName(_ text: String, _ field: @autoclosure () -> String) throws(SwitchyardError) {
        let length = text.utf8.count
        guard length <= StringFieldCheck.maxNameBytes else {
            throw .invalidArgument(
                "\(field()): is \(length) bytes long; expected a name of at most \(StringFieldCheck.maxNameBytes) bytes"
            )
        }
        try checkText(text, field())
    }

    /// A string the request structure carries as a C string: no NUL byte.
    private static func checkText(_ text: String, _ field: @autoclosure () -> String) throws(SwitchyardError) {
        guard let nul = text.utf8.firstIndex(of: 0) else { return }
        let offset = text.utf8.distance(from: text.utf8.startIndex, to: nul)
        throw .invalidArgument("\(field()): contains a NUL byte at offset \(offset); expected a name without NUL")
    }

    private static func integer(_ value: JSONValue) -> Int64? {
        switch value {
        case .number(let number):
            guard number.rounded() == number, abs(number) < 9.2e18 else { return nil }
            return Int64(number)
        case .integer(let number): return number
        case .unsigned(let number): return Int64(exactly: number)
        case .float(let number): return Int64(exactly: number)
        default: return nil
        }
    }

    private static func flatten(_ value: JSONValue, into flat: inout [JSONValue]) {
        if case .array(let items) = value {
            for item in items { flatten(item, into: &flat) }
        } else {
            flat.append(value)
        }
    }

    /// JSON values as little-endian bytes of `dataType`, each checked against the datatype's range.
    private static func raw(_ values: [JSONValue], dataType: DataType, input: String) throws(SwitchyardError)
        -> [UInt8]
    {
        func number(_ index: Int) throws(SwitchyardError) -> Double {
            switch values[index] {
            case .number(let value): return value
            case .integer(let value): return Double(value)
            case .unsigned(let value): return Double(value)
            case .float(let value): return Double(value)
            case .bool(let value) where dataType == .bool: return value ? 1 : 0
            case .string(let text)
            where dataType == .fp32 || dataType == .fp64 || dataType == .fp16 || dataType == .bf16:
                // Non-finite values travel as strings in JSON.
                switch text {
                case "NaN", "nan": return .nan
                case "Infinity", "inf": return .infinity
                case "-Infinity", "-inf": return -.infinity
                default: break
                }
                fallthrough
            default:
                throw .invalidArgument(
                    "input '\(input)': data[\(index)] is \(values[index].kind); expected a \(dataType.rawValue) value"
                )
            }
        }
        let count = values.count
        switch dataType {
        case .bytes:
            var bytes: [UInt8] = []
            for index in 0..<count {
                guard case .string(let text) = values[index] else {
                    throw .invalidArgument(
                        "input '\(input)': data[\(index)] is \(values[index].kind); expected a BYTES string"
                    )
                }
                withUnsafeBytes(of: UInt32(text.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
                bytes.append(contentsOf: text.utf8)
            }
            return bytes
        default:
            var numbers = [Double](repeating: 0, count: count)
            for index in 0..<count { numbers[index] = try number(index) }
            return try raw(numbers: numbers, dataType: dataType, input: input)
        }
    }

    /// Numbers as little-endian bytes of `dataType` (never BYTES), each checked against the datatype's range.
    private static func raw(numbers: [Double], dataType: DataType, input: String) throws(SwitchyardError) -> [UInt8] {
        let count = numbers.count
        switch dataType {
        case .fp16, .bf16:
            let floats = numbers.map { Float($0) }
            var bytes = [UInt8](repeating: 0, count: count * 2)
            floats.withUnsafeBufferPointer { source in
                bytes.withUnsafeMutableBytes { TensorConversion.fromFloat(dataType, source, into: $0.baseAddress!) }
            }
            return bytes
        default:
            if let range = integerRange(dataType) {
                for (index, value) in numbers.enumerated() where !(value.rounded() == value && range.contains(value)) {
                    throw .invalidArgument(
                        "input '\(input)': data[\(index)] = \(value) is not a \(dataType.rawValue) value; expected an "
                            + "integer in \(Int64(range.lowerBound))…\(UInt64(range.upperBound))"
                    )
                }
            }
            let size = dataType.elementSize ?? 4
            var bytes = [UInt8](repeating: 0, count: count * size)
            bytes.withUnsafeMutableBytes { buffer in
                for (index, value) in numbers.enumerated() {
                    let offset = index * size
                    switch dataType {
                    case .fp32:
                        buffer.storeBytes(
                            of: Float(value).bitPattern.littleEndian,
                            toByteOffset: offset,
                            as: UInt32.self
                        )
                    case .fp64:
                        buffer.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: offset, as: UInt64.self)
                    case .bool, .uint8: buffer.storeBytes(of: UInt8(value), toByteOffset: offset, as: UInt8.self)
                    case .int8: buffer.storeBytes(of: Int8(value), toByteOffset: offset, as: Int8.self)
                    case .uint16:
                        buffer.storeBytes(of: UInt16(value).littleEndian, toByteOffset: offset, as: UInt16.self)
                    case .int16: buffer.storeBytes(of: Int16(value).littleEndian, toByteOffset: offset, as: Int16.self)
                    case .uint32:
                        buffer.storeBytes(of: UInt32(value).littleEndian, toByteOffset: offset, as: UInt32.self)
                    case .int32: buffer.storeBytes(of: Int32(value).littleEndian, toByteOffset: offset, as: Int32.self)
                    case .uint64:
                        buffer.storeBytes(of: UInt64(value).littleEndian, toByteOffset: offset, as: UInt64.self)
                    case .int64: buffer.storeBytes(of: Int64(value).littleEndian, toByteOffset: offset, as: Int64.self)
                    case .fp16, .bf16, .bytes: break
                    }
                }
            }
            return bytes
        }
    }

    /// The values an integer datatype holds (as doubles that convert back exactly); `nil` for floating point.
    private static func integerRange(_ dataType: DataType) -> ClosedRange<Double>? {
        switch dataType {
        case .bool: 0...1
        case .uint8: 0...255
        case .int8: -128...127
        case .uint16: 0...65535
        case .int16: -32768...32767
        case .uint32: 0...4_294_967_295
        case .int32: -2_147_483_648...2_147_483_647
        // The largest doubles below 2^64 and 2^63: larger ones would not convert.
        case .uint64: 0...18_446_744_073_709_549_568
        case .int64: -9_223_372_036_854_775_808...9_223_372_036_854_774_784
        case .fp16, .fp32, .fp64, .bf16, .bytes: nil
        }
    }

    /// The request as the structure protobuf-c decodes a gRPC ModelInferRequest into, in `arena`; binary tensor data
    /// is read in place from `body`, which must outlive the structure.
    static func build(
        _ translation: RESTInferTranslation,
        model: String,
        version: String,
        body: UnsafeRawBufferPointer,
        arena: inout BumpAllocator
    ) -> Inference__ModelInferRequest {
        let request = translation.request
        let rawInputs = translation.rawInputs
        var message = Inference__ModelInferRequest()
        inference__model_infer_request__init(&message)
        message.model_name = arena.string(model)
        message.model_version = arena.string(version)
        message.id = arena.string(request.id ?? "")
        let inputs = request.inputs
        let tensors = arena.allocate(Inference__ModelInferRequest__InferInputTensor.self, count: inputs.count)
        let tensorPointers = arena.allocate(
            UnsafeMutablePointer<Inference__ModelInferRequest__InferInputTensor>?.self,
            count: inputs.count
        )
        // Inputs in shared memory have no raw entry (the gRPC path's layout): raw holds the others, in order.
        let raw = arena.allocate(ProtobufCBinaryData.self, count: inputs.count)
        var rawCount = 0
        for (index, input) in inputs.enumerated() {
            let tensor = tensors + index
            inference__model_infer_request__infer_input_tensor__init(tensor)
            tensor.pointee.name = arena.string(input.name)
            tensor.pointee.datatype = arena.string(input.datatype)
            tensor.pointee.n_shape = input.shape.count
            tensor.pointee.shape = arena.array(input.shape)
            tensorPointers[index] = tensor
            if let placement = input.parameters?.sharedMemory {
                (tensor.pointee.n_parameters, tensor.pointee.parameters) = sharedMemoryMap(
                    placement,
                    inference__model_infer_request__infer_input_tensor__parameters_entry__init,
                    key: \.key,
                    value: \.value,
                    arena: &arena
                )
            }
            switch rawInputs[index] {
            case .converted(let bytes)?:
                raw[rawCount] = bytes.withUnsafeBytes { arena.binary($0) }
                rawCount += 1
            case .body(let range)?:
                let bytes = UnsafeRawBufferPointer(rebasing: body[range])
                raw[rawCount] = ProtobufCBinaryData(
                    len: bytes.count,
                    data: UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
                )
                rawCount += 1
            case nil:
                break
            }
        }
        message.n_inputs = inputs.count
        message.inputs = tensorPointers
        message.n_raw_input_contents = rawCount
        message.raw_input_contents = raw

        let outputs = request.outputs ?? []
        let outputItems = arena.allocate(
            Inference__ModelInferRequest__InferRequestedOutputTensor.self,
            count: outputs.count
        )
        let outputPointers = arena.allocate(
            UnsafeMutablePointer<Inference__ModelInferRequest__InferRequestedOutputTensor>?.self,
            count: outputs.count
        )
        for (index, output) in outputs.enumerated() {
            inference__model_infer_request__infer_requested_output_tensor__init(outputItems + index)
            outputItems[index].name = arena.string(output.name)
            outputPointers[index] = outputItems + index
            if let placement = output.parameters?.sharedMemory {
                (outputItems[index].n_parameters, outputItems[index].parameters) = sharedMemoryMap(
                    placement,
                    inference__model_infer_request__infer_requested_output_tensor__parameters_entry__init,
                    key: \.key,
                    value: \.value,
                    arena: &arena
                )
            }
        }
        message.n_outputs = outputs.count
        message.outputs = outputPointers

        // Request parameters other than the REST-only binary_data_output go through as typed parameters.
        let parameters = (request.parameters ?? [:]).filter { $0.key != "binary_data_output" }.sorted {
            $0.key < $1.key
        }
        let (entries, entryPointers) = arena.mapEntries(
            parameters.count,
            inference__model_infer_request__parameters_entry__init
        )
        let values = arena.allocate(Inference__InferParameter.self, count: parameters.count)
        for (index, (key, value)) in parameters.enumerated() {
            inference__infer_parameter__init(values + index)
            switch value {
            case .bool(let flag):
                values[index].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM
                values[index].bool_param = flag ? 1 : 0
            case .string(let text):
                values[index].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM
                values[index].string_param = arena.string(text)
            case .number, .float, .integer, .unsigned:
                if let integer = integer(value) {
                    values[index].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
                    values[index].int64_param = integer
                } else if case .unsigned(let number) = value {
                    values[index].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM
                    values[index].uint64_param = number
                } else {
                    values[index].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_DOUBLE_PARAM
                    switch value {
                    case .float(let number): values[index].double_param = Double(number)
                    case .number(let number): values[index].double_param = number
                    default: break
                    }
                }
            case .null, .array, .object:
                break  // refused by `translate`
            }
            entries[index].key = arena.string(key)
            entries[index].value = values + index
        }
        message.n_parameters = parameters.count
        message.parameters = entryPointers
        return message
    }

    /// A tensor's parameter map holding its `shared_memory_*` parameters, for input and requested-output tensors
    /// alike (protobuf-c gives each its own entry type): the entry count and the pointer array.
    private static func sharedMemoryMap<Entry>(
        _ placement: RESTInferRequest.SharedMemoryParameters,
        _ initialize: (UnsafeMutablePointer<Entry>) -> Void,
        key: WritableKeyPath<Entry, UnsafeMutablePointer<CChar>?>,
        value: WritableKeyPath<Entry, UnsafeMutablePointer<Inference__InferParameter>?>,
        arena: inout BumpAllocator
    ) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>) {
        let pairs = sharedMemoryParameters(placement, arena: &arena)
        let map = arena.mapEntries(pairs.count, initialize)
        for (slot, pair) in pairs.enumerated() {
            map.entries[slot][keyPath: key] = pair.key
            map.entries[slot][keyPath: value] = pair.value
        }
        return (pairs.count, map.pointers)
    }

    /// A tensor's `shared_memory_*` parameters as keys and values in the arena, for its parameter map.
    private static func sharedMemoryParameters(
        _ placement: RESTInferRequest.SharedMemoryParameters,
        arena: inout BumpAllocator
    ) -> [(key: UnsafeMutablePointer<CChar>?, value: UnsafeMutablePointer<Inference__InferParameter>)] {
        var pairs: [(key: UnsafeMutablePointer<CChar>?, value: UnsafeMutablePointer<Inference__InferParameter>)] = []
        func add(_ key: String, _ fill: (UnsafeMutablePointer<Inference__InferParameter>) -> Void) {
            let value = arena.allocate(Inference__InferParameter.self, count: 1)
            inference__infer_parameter__init(value)
            fill(value)
            pairs.append((arena.string(key), value))
        }
        add("shared_memory_region") {
            $0.pointee.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM
            $0.pointee.string_param = arena.string(placement.region)
        }
        add("shared_memory_byte_size") {
            $0.pointee.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
            $0.pointee.int64_param = placement.byteSize
        }
        if let offset = placement.offset {
            add("shared_memory_offset") {
                $0.pointee.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
                $0.pointee.int64_param = offset
            }
        }
        return pairs
    }

    // MARK: Response

    /// The REST answer straight from the inference result, with no protobuf in between: each output converted
    /// once to the datatype the model declares, and written into the client's region where the request placed it.
    static func response(
        _ result: InferResult,
        call: RESTInferCall,
        metadata: [(name: String, value: String)]
    ) -> HTTPResponse {
        var outputs: [RESTInferResponse.Output] = []
        outputs.reserveCapacity(result.outputs.count)
        var binary: [UInt8] = []
        for (index, output) in result.outputs.enumerated() {
            let spec = output.spec
            var shape = spec.shape.map(Int64.init)
            if !shape.isEmpty { shape[0] = Int64(result.rows) }
            var entry = RESTInferResponse.Output(name: spec.name, datatype: spec.dataType.rawValue, shape: shape)
            if let placement = result.placements.isEmpty ? nil : result.placements[index] {
                let byteCount = placement.write(output.values, as: spec.dataType)
                entry.parameters = .init(
                    sharedMemoryRegion: placement.region.name,
                    sharedMemoryByteSize: Int64(byteCount),
                    sharedMemoryOffset: Int64(placement.offset)
                )
            } else if call.binaryByDefault || call.binaryOutputs.contains(spec.name) {
                let byteCount = output.values.count * (spec.dataType.elementSize ?? 4)
                let start = binary.count
                binary.append(contentsOf: repeatElement(0, count: byteCount))
                binary.withUnsafeMutableBytes { raw in
                    output.values.withUnsafeBufferPointer {
                        TensorConversion.fromFloat(spec.dataType, $0, into: raw.baseAddress! + start)
                    }
                }
                entry.parameters = .init(binaryDataSize: byteCount)
            } else if spec.dataType == .fp32 {
                entry.data = .floats(Array(output.values))
            } else {
                // Other datatypes as the client would read them from binary data: converted, then loaded as typed.
                let byteCount = output.values.count * (spec.dataType.elementSize ?? 4)
                var raw = [UInt8](repeating: 0, count: byteCount)
                raw.withUnsafeMutableBytes { raw in
                    output.values.withUnsafeBufferPointer {
                        TensorConversion.fromFloat(spec.dataType, $0, into: raw.baseAddress!)
                    }
                }
                entry.data = raw.withUnsafeBytes { values($0, datatype: spec.dataType) }
            }
            outputs.append(entry)
        }
        return answer(
            RESTInferResponse(
                modelName: result.modelName,
                modelVersion: result.modelVersion,
                id: result.id.isEmpty ? nil : result.id,
                outputs: outputs
            ),
            binary: binary,
            metadata: metadata
        )
    }

    /// The JSON answer, followed by the binary outputs (with `Inference-Header-Content-Length`) when there are any.
    private static func answer(
        _ response: RESTInferResponse,
        binary: [UInt8],
        metadata: [(name: String, value: String)]
    ) -> HTTPResponse {
        var json = response.json()
        var headers = metadata
        if binary.isEmpty {
            headers.append(("content-type", "application/json"))
        } else {
            headers.append(("content-type", "application/octet-stream"))
            headers.append(("inference-header-content-length", String(json.count)))
            json.append(contentsOf: binary)
        }
        return HTTPResponse(status: 200, headers: headers, body: json)
    }

    /// Raw little-endian output bytes as typed JSON arrays.
    private static func values(_ raw: UnsafeRawBufferPointer, datatype: DataType) -> RESTInferResponse.OutputData {
        guard let size = datatype.elementSize, size > 0 else { return .integers([]) }
        let count = raw.count / size
        func load<T: FixedWidthInteger>(_: T.Type, _ index: Int) -> T {
            T(littleEndian: raw.loadUnaligned(fromByteOffset: index * size, as: T.self))
        }
        switch datatype {
        case .fp32: return .floats((0..<count).map { Float(bitPattern: load(UInt32.self, $0)) })
        case .fp64: return .doubles((0..<count).map { Double(bitPattern: load(UInt64.self, $0)) })
        case .fp16, .bf16:
            var floats = [Float](repeating: 0, count: count)
            floats.withUnsafeMutableBufferPointer { buffer in
                if let base = raw.baseAddress { TensorConversion.toFloat(datatype, from: base, into: buffer) }
            }
            return .floats(floats)
        case .bool: return .bools((0..<count).map { load(UInt8.self, $0) != 0 })
        case .uint8: return .integers((0..<count).map { Int64(load(UInt8.self, $0)) })
        case .uint16: return .integers((0..<count).map { Int64(load(UInt16.self, $0)) })
        case .uint32: return .integers((0..<count).map { Int64(load(UInt32.self, $0)) })
        case .uint64: return .unsigned((0..<count).map { load(UInt64.self, $0) })
        case .int8: return .integers((0..<count).map { Int64(load(Int8.self, $0)) })
        case .int16: return .integers((0..<count).map { Int64(load(Int16.self, $0)) })
        case .int32: return .integers((0..<count).map { Int64(load(Int32.self, $0)) })
        case .int64: return .integers((0..<count).map { load(Int64.self, $0) })
        case .bytes: return .integers([])
        }
    }
}

/// The JSON response body (v2 REST `$inference_response`), written by `json()` with the keys and numbers JSONEncoder
/// wrote for it: fields in declaration order, absent optionals left out.
struct RESTInferResponse {
    struct Output {
        var name: String
        var datatype: String
        var shape: [Int64]
        var parameters: Parameters?
        var data: OutputData?
    }

    struct Parameters {
        var binaryDataSize: Int?
        var sharedMemoryRegion: String?
        var sharedMemoryByteSize: Int64?
        var sharedMemoryOffset: Int64?
    }

    enum OutputData {
        case floats([Float])
        case doubles([Double])
        case integers([Int64])
        case unsigned([UInt64])
        case bools([Bool])
    }

    var modelName: String
    var modelVersion: String
    var id: String?
    var outputs: [Output]

    /// The answer as JSON text.
    func json() -> [UInt8] {
        var writer = JSONWriter(capacity: 256 + outputs.count * 128)
        writer.raw("{")
        writer.key("model_name")
        writer.string(modelName)
        writer.raw(",")
        writer.key("model_version")
        writer.string(modelVersion)
        if let id {
            writer.raw(",")
            writer.key("id")
            writer.string(id)
        }
        writer.raw(",")
        writer.key("outputs")
        writer.array(outputs) { writer, output in
            writer.raw("{")
            writer.key("name")
            writer.string(output.name)
            writer.raw(",")
            writer.key("datatype")
            writer.string(output.datatype)
            writer.raw(",")
            writer.key("shape")
            writer.array(output.shape) { $0.number($1) }
            if let parameters = output.parameters {
                writer.raw(",")
                writer.key("parameters")
                writer.raw("{")
                var separator = false
                func next(_ writer: inout JSONWriter, _ key: StaticString) {
                    if separator { writer.raw(",") }
                    separator = true
                    writer.key(key)
                }
                if let size = parameters.binaryDataSize {
                    next(&writer, "binary_data_size")
                    writer.number(size)
                }
                if let region = parameters.sharedMemoryRegion {
                    next(&writer, "shared_memory_region")
                    writer.string(region)
                }
                if let size = parameters.sharedMemoryByteSize {
                    next(&writer, "shared_memory_byte_size")
                    writer.number(size)
                }
                if let offset = parameters.sharedMemoryOffset {
                    next(&writer, "shared_memory_offset")
                    writer.number(offset)
                }
                writer.raw("}")
            }
            if let data = output.data {
                writer.raw(",")
                writer.key("data")
                switch data {
                case .floats(let values): writer.array(values) { $0.number($1) }
                case .doubles(let values): writer.array(values) { $0.number($1) }
                case .integers(let values): writer.array(values) { $0.number($1) }
                case .unsigned(let values): writer.array(values) { $0.number($1) }
                case .bools(let values): writer.array(values) { $0.bool($1) }
                }
            }
            writer.raw("}")
        }
        writer.raw("}")
        return writer.bytes
    }
}

/// Answers a REST infer call: the answer written from the result as JSON (and binary tensor data), on the thread that
/// answers (a worker), so the encoding stays off the event loop.
@MemberwiseInit(.internal)
final class RESTInferResponder: InferResponder {
    let http: any HTTPResponder
    let call: RESTInferCall

    var isCancelled: Bool { http.isCancelled }

    func send(result: InferResult, metadata: [(name: String, value: String)]) {
        http.respond(RESTInfer.response(result, call: call, metadata: metadata))
    }

    /// Only streaming calls answer with a protobuf message, and REST has none: this is never called for a REST call.
    func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        http.respond(
            RESTService.errorResponse(
                status: 500,
                message: "the inference answer came as a protobuf message, which the REST binding does not write",
                metadata: metadata
            )
        )
    }

    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        http.respond(RESTService.errorResponse(status, metadata: metadata))
    }
}
