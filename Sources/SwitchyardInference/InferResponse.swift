// Encoding ModelInferResponse (and its streaming wrapper) with protobuf-c: outputs always travel in
// raw_output_contents, one entry per returned output, in order — what tritonclient and perf_analyzer read —
// each converted once from the engine's FP32 to the datatype the model declares (see TensorConversion). An output
// the request placed in system shared memory is written there instead; its entry is empty and its tensor carries
// the `shared_memory_*` parameters saying where it went.

import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardModels
import SwitchyardProto

#if canImport(Glibc)
    import Glibc
#endif

/// The parts of a successful inference that go into a response.
struct InferResult {
    var modelName: String
    var modelVersion: String
    var id: String
    var rows: Int
    /// Returned outputs: spec and `rows × elementsPerRow` values.
    var outputs: [(spec: TensorSpec, values: ArraySlice<Float>)]
    /// Where each output goes, parallel to `outputs`: its system shared-memory placement, or `nil` for
    /// raw_output_contents; empty when every output goes in the response.
    var placements: [SharedMemoryPlacement?] = []
}

/// Answers an inference call. How a successful answer is encoded belongs to the protocol the call came in on:
/// a ModelInferResponse for gRPC (the front end's `GRPCCall` itself, below), JSON and binary tensor data for REST
/// (`RESTInferResponder`). Refusals and streaming messages go through `GRPCResponder`'s own methods.
protocol InferResponder: GRPCResponder {
    /// Sends a unary call's answer, built from its result.
    /// - Parameter metadata: the call's extra metadata (the route): trailers on gRPC, headers on REST.
    func send(result: InferResult, metadata: [(name: String, value: String)])
}

/// A gRPC call answers with the ModelInferResponse encoded from the result. The call itself is the responder:
/// nothing is allocated per call to answer it.
extension GRPCCall: InferResponder {
    func send(result: InferResult, metadata: [(name: String, value: String)]) {
        send(message: InferResponseEncoder.encode(result), metadata: metadata)
    }
}

/// Any other gRPC responder (the service driven without the front end: tests, fuzzing) behind the same method.
final class ProtobufInferResponder: InferResponder {
    private let call: any GRPCResponder

    init(_ call: any GRPCResponder) { self.call = call }

    var isCancelled: Bool { call.isCancelled }

    func send(result: InferResult, metadata: [(name: String, value: String)]) {
        call.send(message: InferResponseEncoder.encode(result), metadata: metadata)
    }

    func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        call.send(message: message, metadata: metadata)
    }

    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) { call.fail(status, metadata: metadata) }
}

enum InferResponseEncoder {
    /// Fills a ModelInferResponse in `arena` and returns it.
    private static func build(
        _ result: InferResult,
        in arena: inout BumpAllocator
    ) -> UnsafeMutablePointer<Inference__ModelInferResponse> {
        let response = arena.allocate(Inference__ModelInferResponse.self, count: 1)
        inference__model_infer_response__init(response)
        response.pointee.model_name = arena.string(result.modelName)
        response.pointee.model_version = arena.string(result.modelVersion)
        response.pointee.id = arena.string(result.id)
        let count = result.outputs.count
        let tensors = arena.allocate(Inference__ModelInferResponse__InferOutputTensor.self, count: count)
        let tensorPointers = arena.allocate(
            UnsafeMutablePointer<Inference__ModelInferResponse__InferOutputTensor>?.self,
            count: count
        )
        let raw = arena.allocate(ProtobufCBinaryData.self, count: count)
        for (index, output) in result.outputs.enumerated() {
            let tensor = tensors + index
            inference__model_infer_response__infer_output_tensor__init(tensor)
            tensor.pointee.name = arena.string(output.spec.name)
            tensor.pointee.datatype = arena.string(output.spec.dataType.rawValue)
            // The shape straight into the arena: rows, then the signature's other dimensions.
            let dimensions = output.spec.shape
            let shape = arena.allocate(Int64.self, count: dimensions.count)
            shape[0] = Int64(result.rows)
            for axis in dimensions.indices.dropFirst() { shape[axis] = Int64(dimensions[axis]) }
            tensor.pointee.n_shape = dimensions.count
            tensor.pointee.shape = shape
            tensorPointers[index] = tensor
            if let placement = result.placements.isEmpty ? nil : result.placements[index] {
                // Written into the client's region (validated to be large enough); the response says where.
                let byteCount = placement.write(output.values, as: output.spec.dataType)
                let names = ["shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"]
                let (entries, entryPointers) = arena.mapEntries(
                    names.count,
                    inference__model_infer_response__infer_output_tensor__parameters_entry__init
                )
                let values = arena.allocate(Inference__InferParameter.self, count: names.count)
                for slot in names.indices {
                    inference__infer_parameter__init(values + slot)
                    entries[slot].key = arena.string(names[slot])
                    entries[slot].value = values + slot
                }
                values[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM
                values[0].string_param = arena.string(placement.region.name)
                values[1].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
                values[1].int64_param = Int64(byteCount)
                values[2].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM
                values[2].int64_param = Int64(placement.offset)
                tensor.pointee.n_parameters = names.count
                tensor.pointee.parameters = entryPointers
                // An empty entry keeps raw_output_contents one per output: Triton's C++ client (perf_analyzer)
                // reads it by output index without checking its length.
                raw[index] = ProtobufCBinaryData(len: 0, data: nil)
                continue
            }
            raw[index] = output.values.withUnsafeBufferPointer { values in
                let dataType = output.spec.dataType
                let byteCount = values.count * (dataType.elementSize ?? 4)
                let bytes = arena.allocateRaw(byteCount)
                TensorConversion.fromFloat(dataType, values, into: bytes)
                return ProtobufCBinaryData(len: byteCount, data: bytes.assumingMemoryBound(to: UInt8.self))
            }
        }
        response.pointee.n_outputs = count
        response.pointee.outputs = tensorPointers
        response.pointee.n_raw_output_contents = count
        response.pointee.raw_output_contents = raw
        return response
    }

    /// A serialized ModelInferResponse.
    static func encode(_ result: InferResult) -> [UInt8] {
        withBumpAllocator { arena in packMessage(build(result, in: &arena)) }
    }

    /// A serialized ModelStreamInferResponse carrying either a response or an error message.
    static func encodeStream(_ result: Result<InferResult, SwitchyardError>) -> [UInt8] {
        withBumpAllocator { arena in
            let message = arena.allocate(Inference__ModelStreamInferResponse.self, count: 1)
            inference__model_stream_infer_response__init(message)
            switch result {
            case .success(let result):
                message.pointee.infer_response = build(result, in: &arena)
            case .failure(let error):
                message.pointee.error_message = arena.string("[\(error.code)] \(error.message)")
            }
            return packMessage(message)
        }
    }
}
