// ModelMetadata and ModelConfig report each tensor's declared datatype — the strings and Triton's TYPE_* values
// that perf_analyzer and tritonclient build their inputs from.

import Logging
import SwitchyardCore
import SwitchyardProto
import Testing

@testable import SwitchyardInference
@testable import SwitchyardModels

private let signature = ModelSignature(
    inputs: [
        TensorSpec(name: "ids", dataType: .int64, shape: [-1, 4]),
        TensorSpec(name: "features", dataType: .fp16, shape: [-1, 3]),
        TensorSpec(name: "mask", dataType: .bool, shape: [-1, 2]),
        TensorSpec(name: "pixels", dataType: .uint8, shape: [-1, 784]),
    ],
    outputs: [
        TensorSpec(name: "label", dataType: .int64, shape: [-1, 1]),
        TensorSpec(name: "scores", dataType: .bf16, shape: [-1, 10]),
        TensorSpec(name: "logits", dataType: .fp32, shape: [-1, 10]),
        TensorSpec(name: "wide", dataType: .fp64, shape: [-1, 2]),
    ]
)

private func answer(_ rpc: InferenceMethod) throws -> [UInt8] {
    let version = makeVersion(signature)
    let entry = ModelEntry(name: "typed", configuration: version.configuration, versions: [version], failures: [:])
    let service = InferenceService(registry: ModelRegistry(entries: [entry], logger: Logger(label: "test")))
    let request = withBumpAllocator { arena in
        var message = Inference__ModelMetadataRequest()
        inference__model_metadata_request__init(&message)
        message.name = arena.string("typed")
        return packMessage(&message)
    }
    return try request.withUnsafeBytes { try ControlRPCs(service: service).answer(rpc, message: $0) }
}

@Suite struct ControlRPCsDatatypeTests {
    @Test func modelConfigReportsTritonTypeValues() throws {
        let bytes = try answer(.modelConfig)
        let response = try #require(
            bytes.withUnsafeBufferPointer { inference__model_config_response__unpack(nil, $0.count, $0.baseAddress) }
        )
        defer { inference__model_config_response__free_unpacked(response, nil) }
        let config = try #require(response.pointee.config).pointee
        let inputs = (0..<config.n_input).map { config.input[$0]!.pointee }
        let outputs = (0..<config.n_output).map { config.output[$0]!.pointee }
        // TYPE_INT64 = 9, TYPE_FP16 = 10, TYPE_BOOL = 1, TYPE_UINT8 = 2; TYPE_BF16 = 14, TYPE_FP32 = 11, TYPE_FP64 = 12.
        #expect(inputs.map { String(cString: $0.name) } == ["ids", "features", "mask", "pixels"])
        #expect(inputs.map(\.data_type.rawValue) == [9, 10, 1, 2])
        #expect(outputs.map(\.data_type.rawValue) == [9, 14, 11, 12])
    }

    @Test func modelMetadataReportsDatatypeStrings() throws {
        let bytes = try answer(.modelMetadata)
        let response = try #require(
            bytes.withUnsafeBufferPointer { inference__model_metadata_response__unpack(nil, $0.count, $0.baseAddress) }
        )
        defer { inference__model_metadata_response__free_unpacked(response, nil) }
        let inputs = (0..<response.pointee.n_inputs).map {
            String(cString: response.pointee.inputs[$0]!.pointee.datatype)
        }
        let outputs = (0..<response.pointee.n_outputs).map {
            String(cString: response.pointee.outputs[$0]!.pointee.datatype)
        }
        #expect(inputs == ["INT64", "FP16", "BOOL", "UINT8"])
        #expect(outputs == ["INT64", "BF16", "FP32", "FP64"])
    }

    @Test(arguments: DataType.allCases)
    func everyDatatypeHasItsTritonNumber(_ dataType: DataType) {
        let expected: [DataType: Int] = [
            .bool: 1, .uint8: 2, .uint16: 3, .uint32: 4, .uint64: 5, .int8: 6, .int16: 7, .int32: 8, .int64: 9,
            .fp16: 10, .fp32: 11, .fp64: 12, .bytes: 13, .bf16: 14,
        ]
        #expect(dataType.modelConfigNumber == expected[dataType])
    }
}
