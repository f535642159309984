// Test support for datatype tests: a model version with any signature, ModelInferRequest bytes with raw or typed
// tensors of any datatype, and little-endian encodings written independently of the gateway's conversion code.

import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardModels
import SwitchyardProto
import SwitchyardWorkers

@testable import SwitchyardInference

/// An engine with a given signature whose executor leaves its outputs alone: the edges are under test.
struct SignatureEngine: InferenceEngine {
    let signature: ModelSignature

    final class Executor: EngineExecutor {
        func run(inputs: [UnsafeBufferPointer<Float>], rows: Int, outputs: [UnsafeMutableBufferPointer<Float>]) {}
    }

    func makeExecutor() -> any EngineExecutor { Executor() }
}

/// A model version "typed" version 1 with `signature`; its pool is never started.
func makeVersion(_ signature: ModelSignature, maxBatchSize: Int = 8) -> ModelVersion {
    let configuration = ModelConfiguration(maxBatchSize: maxBatchSize, workers: 1)
    let pool = WorkerPool(
        name: "typed:1",
        engine: SignatureEngine(signature: signature),
        configuration: configuration,
        logger: Logger(label: "test")
    )
    return ModelVersion(model: "typed", version: "1", configuration: configuration, pool: pool)
}

/// A model version with one input "x" of `dataType` and shape [-1, width], and one FP32 output "y".
func makeVersion(input dataType: DataType, width: Int) -> ModelVersion {
    makeVersion(
        ModelSignature(
            inputs: [TensorSpec(name: "x", dataType: dataType, shape: [-1, width])],
            outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 1])]
        )
    )
}

/// Values for one of InferTensorContents' typed fields.
enum TypedContents: Sendable {
    case bool([Bool])
    case int([Int32])
    case int64([Int64])
    case uint([UInt32])
    case uint64([UInt64])
    case fp32([Float])
    case fp64([Double])
    case bytes([[UInt8]])
}

/// A request tensor: raw bytes (sent in raw_input_contents) or typed contents, or neither.
struct RequestTensor: Sendable {
    var name = "x"
    var datatype: String
    var shape: [Int64]
    var raw: [UInt8]? = nil
    var contents: TypedContents? = nil
}

/// Serialized ModelInferRequest bytes for `model` with `tensors`, the request id `id` (none when `nil`), the
/// `outputs` asked for by name and INT64 request `parameters`.
func requestBytes(
    _ tensors: [RequestTensor],
    model: String = "typed",
    id: String? = nil,
    outputs: [String] = [],
    parameters: [(String, Int64)] = []
) -> [UInt8] {
    withBumpAllocator { arena in
        var request = Inference__ModelInferRequest()
        inference__model_infer_request__init(&request)
        request.model_name = arena.string(model)
        if let id { request.id = arena.string(id) }
        let (items, pointers) = messages(
            tensors.count,
            in: &arena,
            initialize: inference__model_infer_request__infer_input_tensor__init
        )
        var raw: [ProtobufCBinaryData] = []
        for (index, tensor) in tensors.enumerated() {
            items[index].name = arena.string(tensor.name)
            items[index].datatype = arena.string(tensor.datatype)
            items[index].n_shape = tensor.shape.count
            items[index].shape = arena.array(tensor.shape)
            if let bytes = tensor.raw { raw.append(bytes.withUnsafeBytes { arena.binary($0) }) }
            if let typed = tensor.contents {
                let contents = arena.allocate(Inference__InferTensorContents.self, count: 1)
                inference__infer_tensor_contents__init(contents)
                switch typed {
                case .bool(let values):
                    contents.pointee.n_bool_contents = values.count
                    contents.pointee.bool_contents = arena.array(values.map { $0 ? 1 : 0 })
                case .int(let values):
                    contents.pointee.n_int_contents = values.count
                    contents.pointee.int_contents = arena.array(values)
                case .int64(let values):
                    contents.pointee.n_int64_contents = values.count
                    contents.pointee.int64_contents = arena.array(values)
                case .uint(let values):
                    contents.pointee.n_uint_contents = values.count
                    contents.pointee.uint_contents = arena.array(values)
                case .uint64(let values):
                    contents.pointee.n_uint64_contents = values.count
                    contents.pointee.uint64_contents = arena.array(values)
                case .fp32(let values):
                    contents.pointee.n_fp32_contents = values.count
                    contents.pointee.fp32_contents = arena.array(values)
                case .fp64(let values):
                    contents.pointee.n_fp64_contents = values.count
                    contents.pointee.fp64_contents = arena.array(values)
                case .bytes(let values):
                    contents.pointee.n_bytes_contents = values.count
                    contents.pointee.bytes_contents = arena.array(
                        values.map { $0.withUnsafeBytes { arena.binary($0) } }
                    )
                }
                items[index].contents = contents
            }
        }
        request.n_inputs = tensors.count
        request.inputs = pointers
        request.n_raw_input_contents = raw.count
        request.raw_input_contents = arena.array(raw)
        let (requested, requestedPointers) = messages(
            outputs.count,
            in: &arena,
            initialize: inference__model_infer_request__infer_requested_output_tensor__init
        )
        for (index, name) in outputs.enumerated() { requested[index].name = arena.string(name) }
        request.n_outputs = outputs.count
        request.outputs = requestedPointers
        let (entries, entryPointers) = messages(
            parameters.count,
            in: &arena,
            initialize: inference__model_infer_request__parameters_entry__init
        )
        for (index, (key, value)) in parameters.enumerated() {
            entries[index].key = arena.string(key)
            let parameter = arena.allocate(Inference__InferParameter.self, count: 1)
            inference__infer_parameter__init(parameter)
            parameter.pointee.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
            parameter.pointee.int64_param = value
            entries[index].value = parameter
        }
        request.n_parameters = parameters.count
        request.parameters = entryPointers
        return packMessage(&request)
    }
}

/// `count` protobuf-c messages in `arena`, each set to its defaults by `initialize`, and the array of pointers to
/// them that a repeated field holds.
func messages<Item>(
    _ count: Int,
    in arena: inout BumpAllocator,
    initialize: (UnsafeMutablePointer<Item>) -> Void
) -> (UnsafeMutablePointer<Item>, UnsafeMutablePointer<UnsafeMutablePointer<Item>?>) {
    let items = arena.allocate(Item.self, count: count)
    let pointers = arena.allocate(UnsafeMutablePointer<Item>?.self, count: count)
    for index in 0..<count {
        initialize(items + index)
        pointers[index] = items + index
    }
    return (items, pointers)
}

/// Decodes and validates request bytes against `version`.
func validateRequest(_ bytes: [UInt8], for version: ModelVersion) throws(SwitchyardError) -> ValidatedInferCall {
    let outcome: Result<ValidatedInferCall, SwitchyardError> = bytes.withUnsafeBytes { raw in
        withBumpAllocator { arena in
            Result { () throws(SwitchyardError) -> ValidatedInferCall in
                let request = try InferRequestDecoder.decode(raw, arena: &arena)
                return try InferRequestValidator.validate(request.pointee, for: version)
            }
        }
    }
    return try outcome.get()
}

/// The error validating `bytes` against `version` throws, or `nil` when it succeeds.
func validationError(_ bytes: [UInt8], for version: ModelVersion) -> SwitchyardError? {
    do {
        _ = try validateRequest(bytes, for: version)
        return nil
    } catch {
        return error
    }
}

/// The error validating one tensor "x" of `dataType` and shape [1, 2], sent as `contents` (or without data), throws
/// against a version that takes that datatype two values wide.
func typedContentsError(_ dataType: DataType, _ contents: TypedContents?) -> SwitchyardError? {
    validationError(
        requestBytes([RequestTensor(datatype: dataType.rawValue, shape: [1, 2], contents: contents)]),
        for: makeVersion(input: dataType, width: 2)
    )
}

/// Little-endian bytes of fixed-width integers.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

/// Whether two float lists are equal element by element, NaN matching any NaN and zeros matching by sign.
func sameFloats(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.isNaN ? $1.isNaN : $0.bitPattern == $1.bitPattern }
}
