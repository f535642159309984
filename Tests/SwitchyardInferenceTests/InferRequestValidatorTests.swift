import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardModels
import SwitchyardProto
import SwitchyardWorkers
import Testing

@testable import SwitchyardInference

/// An engine that doubles its input: the engine boundary is not under test here, the request checks are.
private struct DoublingEngine: InferenceEngine {
    let signature = ModelSignature(
        inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 3])],
        outputs: [
            TensorSpec(name: "y", dataType: .fp32, shape: [-1, 3]),
            TensorSpec(name: "z", dataType: .fp32, shape: [-1, 3]),
        ]
    )

    final class Executor: EngineExecutor {
        func run(inputs: [UnsafeBufferPointer<Float>], rows: Int, outputs: [UnsafeMutableBufferPointer<Float>]) {
            for index in 0..<(rows * 3) {
                outputs[0][index] = inputs[0][index] * 2
                outputs[1][index] = -inputs[0][index]
            }
        }
    }

    func makeExecutor() -> any EngineExecutor { Executor() }
}

private func makeVersion(maxBatchSize: Int = 4) -> ModelVersion {
    let configuration = ModelConfiguration(maxBatchSize: maxBatchSize, workers: 1)
    let pool = WorkerPool(
        name: "double:1",
        engine: DoublingEngine(),
        configuration: configuration,
        logger: Logger(label: "test")
    )
    return ModelVersion(model: "double", version: "1", configuration: configuration, pool: pool)
}

/// A request tensor as a test writes it.
struct TestInput: Sendable {
    var name = "x"
    var datatype = "FP32"
    var shape: [Int64] = [1, 3]
    var raw: [Float]? = [1, 2, 3]
    var typed: [Float]? = nil
    var typedInts: [Int32]? = nil
}

private func encode(_ inputs: [TestInput], outputs: [String] = [], parameters: [(String, Int64)] = []) -> [UInt8] {
    let tensors = inputs.map { input in
        RequestTensor(
            name: input.name,
            datatype: input.datatype,
            shape: input.shape,
            raw: input.raw.map { values in values.withUnsafeBytes { Array($0) } },
            contents: input.typed.map { .fp32($0) } ?? input.typedInts.map { .int($0) }
        )
    }
    return requestBytes(tensors, model: "double", id: "abc", outputs: outputs, parameters: parameters)
}

private func validate(_ bytes: [UInt8]) throws(SwitchyardError) -> ValidatedInferCall {
    try validateRequest(bytes, for: makeVersion())
}

private func rejection(_ bytes: [UInt8]) -> SwitchyardError? {
    validationError(bytes, for: makeVersion())
}

@Suite struct InferRequestValidatorTests {
    @Test func acceptsRawInputsAndDefaultsToEveryOutput() throws {
        let call = try validate(encode([TestInput(shape: [2, 3], raw: [1, 2, 3, 4, 5, 6])]))
        #expect(call.rows == 2)
        #expect(call.id == "abc")
        #expect(call.inputs == [[1, 2, 3, 4, 5, 6]])
        // Every output, in signature order.
        #expect(call.returned(DoublingEngine().signature, ["y values", "z values"]).map(\.spec.name) == ["y", "z"])
        #expect(
            call.returned(DoublingEngine().signature, ["y values", "z values"]).map(\.values) == [
                "y values", "z values",
            ]
        )
    }

    @Test func acceptsTypedContentsAndRequestedOutputs() throws {
        let call = try validate(encode([TestInput(raw: nil, typed: [7, 8, 9])], outputs: ["z"]))
        #expect(call.inputs == [[7, 8, 9]])
        #expect(call.outputIndices == [1])
        #expect(call.returned(DoublingEngine().signature, ["y values", "z values"]).map(\.values) == ["z values"])
    }

    @Test func readsTimeoutAndPriorityParameters() throws {
        let call = try validate(encode([TestInput()], parameters: [("timeout", 1500), ("priority", 1), ("other", 3)]))
        #expect(call.parameters.timeoutMicroseconds == 1500)
        #expect(call.parameters.priority == 999)
    }

    @Test(arguments: [
        ([TestInput(shape: [1, 4], raw: [1, 2, 3, 4])], "input 'x': expected FP32 [-1, 3], got FP32 [1, 4]"),
        ([TestInput(datatype: "FP64")], "input 'x': expected FP32 [-1, 3], got FP64 [1, 3]"),
        ([TestInput(shape: [3])], "input 'x': expected FP32 [-1, 3], got FP32 [3]"),
        ([TestInput(shape: [1, -3])], "input 'x': expected FP32 [-1, 3], got FP32 [1, -3]"),
        ([TestInput(raw: [1, 2])], "input 'x': expected 12 bytes of raw FP32 data for shape [1, 3], got 8"),
        ([TestInput(raw: nil, typed: [1])], "input 'x': expected 3 values in contents.fp32_contents"),
        ([TestInput(raw: nil, typedInts: [1, 2, 3])], "FP32 data belongs in contents.fp32_contents, got int_contents"),
        ([TestInput(raw: nil)], "input 'x': no data"),
        ([TestInput(name: "w")], "unexpected input 'w': model 'double' version 1 takes x"),
        ([TestInput(), TestInput()], "input 'x' appears more than once"),
        ([], "missing input 'x'"),
        ([TestInput(shape: [5, 3], raw: [Float](repeating: 0, count: 15))], "batch of 5 rows exceeds"),
        ([TestInput(shape: [0, 3], raw: [])], "expected at least one row"),
        ([TestInput(shape: [Int64(1) << 62, 3], raw: [])], "input 'x'"),
    ])
    func rejectsWithMessagesNamingTheTensor(inputs: [TestInput], fragment: String) throws {
        let error = try #require(rejection(encode(inputs)))
        #expect(error.code == .invalidArgument)
        #expect(error.message.contains(fragment), "\(error.message)")
    }

    @Test func rejectsUnknownRequestedOutputs() throws {
        let error = try #require(rejection(encode([TestInput()], outputs: ["q"])))
        #expect(error.message == "unknown output 'q': model 'double' version 1 produces y, z")
    }

    @Test func rejectsNegativeTimeouts() throws {
        let error = try #require(rejection(encode([TestInput()], parameters: [("timeout", -1)])))
        #expect(error.message.contains("parameter 'timeout'"))
    }

    @Test(arguments: [[UInt8]([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), [0x2a, 0x03, 0x0a]])
    func rejectsMalformedProtobuf(bytes: [UInt8]) throws {
        let error = try #require(rejection(bytes))
        #expect(error.code == .invalidArgument)
        #expect(error.message.hasPrefix("malformed ModelInferRequest"))
    }
}

@Suite struct InferResponseEncoderTests {
    @Test func encodesOutputsAsRawContentsInOrder() throws {
        let result = InferResult(
            modelName: "m",
            modelVersion: "3",
            id: "r1",
            rows: 2,
            outputs: [(TensorSpec(name: "p", dataType: .fp32, shape: [-1, 2]), [1, 2, 3, 4])]
        )
        let bytes = InferResponseEncoder.encode(result)
        let decoded = try #require(
            bytes.withUnsafeBufferPointer {
                inference__model_infer_response__unpack(nil, $0.count, $0.baseAddress)
            }
        )
        defer { inference__model_infer_response__free_unpacked(decoded, nil) }
        #expect(String(cString: decoded.pointee.model_name) == "m")
        #expect(String(cString: decoded.pointee.model_version) == "3")
        #expect(String(cString: decoded.pointee.id) == "r1")
        #expect(decoded.pointee.n_outputs == 1)
        let tensor = decoded.pointee.outputs[0]!.pointee
        #expect(String(cString: tensor.name) == "p")
        #expect(String(cString: tensor.datatype) == "FP32")
        #expect(Array(UnsafeBufferPointer(start: tensor.shape, count: tensor.n_shape)) == [2, 2])
        let raw = decoded.pointee.raw_output_contents[0]
        let floats = Array(UnsafeRawBufferPointer(start: raw.data, count: raw.len).bindMemory(to: Float.self))
        #expect(floats == [1, 2, 3, 4])
    }
}
