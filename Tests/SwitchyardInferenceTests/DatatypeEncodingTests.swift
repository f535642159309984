// Response encoding for every numeric datatype: the engine's FP32 outputs written in each output's declared
// datatype in raw_output_contents — FP16/BF16 rounded to nearest even, integers truncated and saturated — the
// same way for unary and streaming responses.

import SwitchyardCore
import SwitchyardProto
import Testing

@testable import SwitchyardInference

/// One datatype's encoding case: FP32 values from the engine and the bytes the client must receive.
struct EncodingCase: Sendable, CustomTestStringConvertible {
    var dataType: DataType
    var values: [Float]
    var expected: [UInt8]

    var testDescription: String { dataType.rawValue }

    static let all: [EncodingCase] = [
        EncodingCase(
            dataType: .bool,
            values: [0, -0.0, 0.5, -2, .nan, .infinity],
            expected: [0, 0, 1, 1, 1, 1]
        ),
        EncodingCase(
            dataType: .uint8,
            values: [3.9, -0.5, -1, 255.9, 256, 1e9, -.infinity, .infinity, .nan],
            expected: [3, 0, 0, 255, 255, 255, 0, 255, 0]
        ),
        EncodingCase(
            dataType: .uint16,
            values: [65535.5, 65536, -7, 1234.99, .nan],
            expected: littleEndianBytes([UInt16(65535), 65535, 0, 1234, 0])
        ),
        EncodingCase(
            dataType: .uint32,
            values: [4_294_967_040, 0x1p32, -1, 7.5, .infinity, .nan],
            expected: littleEndianBytes([UInt32(4_294_967_040), .max, 0, 7, .max, 0])
        ),
        EncodingCase(
            dataType: .uint64,
            values: [0x1p63, 0x1p64, -1e30, 42.7, .infinity, .nan],
            expected: littleEndianBytes([UInt64(1) << 63, .max, 0, 42, .max, 0])
        ),
        EncodingCase(
            dataType: .int8,
            values: [3.7, -3.7, 127.9, 128, -128.9, -129, 300, -300, .infinity, -.infinity, .nan],
            expected: littleEndianBytes([Int8(3), -3, 127, 127, -128, -128, 127, -128, 127, -128, 0])
        ),
        EncodingCase(
            dataType: .int16,
            values: [32767.5, 32768, -32768.5, -40000, -0.9, .nan],
            expected: littleEndianBytes([Int16(32767), 32767, -32768, -32768, 0, 0])
        ),
        EncodingCase(
            dataType: .int32,
            values: [0x1p31, -0x1p31, -3e9, Float(Int32(123_456_789)), -2.5, .infinity, .nan],
            // 123456789 is 123456792 as a float.
            expected: littleEndianBytes([Int32.max, .min, .min, 123_456_792, -2, .max, 0])
        ),
        EncodingCase(
            dataType: .int64,
            values: [9, -9.99, 0x1p62, 0x1p63, -0x1p63, -1e19, .infinity, -.infinity, .nan],
            expected: littleEndianBytes([Int64(9), -9, 1 << 62, .max, .min, .min, .max, .min, 0])
        ),
        EncodingCase(
            dataType: .fp16,
            // Ties to even: 1 + 2^-11 → 1, 1 + 3·2^-11 → 1 + 2^-9; 65519 → 65504, 65520 → Inf; 2^-25 (a tie with
            // zero) → 0, 3·2^-26 → 2^-24; NaN stays NaN.
            values: [1 + 0x1p-11, 1 + 3 * 0x1p-11, 65519, 65520, -1e6, 0x1p-25, 3 * 0x1p-26, -0.0, .nan],
            expected: littleEndianBytes([
                UInt16(0x3C00), 0x3C02, 0x7BFF, 0x7C00, 0xFC00, 0x0000, 0x0001, 0x8000, 0x7E00,
            ])
        ),
        EncodingCase(
            dataType: .fp32,
            values: [1.5, -.infinity, .nan, -0.0],
            expected: littleEndianBytes([Float(1.5), -.infinity, .nan, -0.0].map(\.bitPattern))
        ),
        EncodingCase(
            dataType: .fp64,
            values: [0.1, -.infinity, 0x1p-149, 3],
            expected: littleEndianBytes([Double(Float(0.1)), -.infinity, 0x1p-149, 3].map(\.bitPattern))
        ),
        EncodingCase(
            dataType: .bf16,
            // Ties to even: 1 + 2^-8 → 1, 1 + 3·2^-8 → 1 + 2^-6; the largest float rounds to Inf; NaN stays NaN.
            values: [1 + 0x1p-8, 1 + 3 * 0x1p-8, -2.5, .greatestFiniteMagnitude, -.infinity, .nan],
            expected: littleEndianBytes([UInt16(0x3F80), 0x3F82, 0xC020, 0x7F80, 0xFF80, 0x7FC0])
        ),
    ]
}

/// The unpacked response's one output: datatype, shape and raw bytes.
private func decodeOutput(_ bytes: [UInt8]) throws -> (datatype: String, shape: [Int64], raw: [UInt8]) {
    let decoded = try #require(
        bytes.withUnsafeBufferPointer { inference__model_infer_response__unpack(nil, $0.count, $0.baseAddress) }
    )
    defer { inference__model_infer_response__free_unpacked(decoded, nil) }
    return try output(of: decoded.pointee)
}

private func output(of response: Inference__ModelInferResponse) throws -> (
    datatype: String, shape: [Int64], raw: [UInt8]
) {
    try #require(response.n_outputs == 1 && response.n_raw_output_contents == 1)
    let tensor = try #require(response.outputs[0]).pointee
    let raw = response.raw_output_contents[0]
    return (
        String(cString: tensor.datatype),
        Array(UnsafeBufferPointer(start: tensor.shape, count: tensor.n_shape)),
        Array(UnsafeBufferPointer(start: raw.data, count: raw.len))
    )
}

private func result(_ test: EncodingCase) -> InferResult {
    InferResult(
        modelName: "typed",
        modelVersion: "1",
        id: "",
        rows: 1,
        outputs: [(TensorSpec(name: "y", dataType: test.dataType, shape: [-1, test.values.count]), test.values[...])]
    )
}

@Suite struct DatatypeEncodingTests {
    @Test(arguments: EncodingCase.all)
    func outputsAreWrittenInTheirDeclaredDatatype(_ test: EncodingCase) throws {
        let (datatype, shape, raw) = try decodeOutput(InferResponseEncoder.encode(result(test)))
        #expect(datatype == test.dataType.rawValue)
        #expect(shape == [1, Int64(test.values.count)])
        #expect(raw == test.expected)
    }

    @Test(arguments: EncodingCase.all)
    func streamingResponsesEncodeTheSameWay(_ test: EncodingCase) throws {
        let bytes = InferResponseEncoder.encodeStream(.success(result(test)))
        let decoded = try #require(
            bytes.withUnsafeBufferPointer {
                inference__model_stream_infer_response__unpack(nil, $0.count, $0.baseAddress)
            }
        )
        defer { inference__model_stream_infer_response__free_unpacked(decoded, nil) }
        let response = try #require(decoded.pointee.infer_response).pointee
        let (datatype, _, raw) = try output(of: response)
        #expect(datatype == test.dataType.rawValue)
        #expect(raw == test.expected)
    }

    /// What the engine computes survives the trip out and back in: encoding then decoding gives the values again
    /// wherever the datatype holds them exactly.
    @Test(arguments: DataType.allCases.filter { $0 != .bytes })
    func representableValuesRoundTrip(_ dataType: DataType) throws {
        let values: [Float] =
            switch dataType {
            case .bool: [0, 1, 1, 0]
            case .uint8, .uint16, .uint32, .uint64: [0, 1, 7, 200, 255]
            case .int8, .int16, .int32, .int64: [-128, -1, 0, 3, 127]
            default: [-0.0, 0.5, -3.25, 96, .infinity, -.infinity, .nan]
            }
        let spec = TensorSpec(name: "y", dataType: dataType, shape: [-1, values.count])
        let response = InferResult(modelName: "m", modelVersion: "1", id: "", rows: 1, outputs: [(spec, values[...])])
        let (_, _, raw) = try decodeOutput(InferResponseEncoder.encode(response))
        let call = try validateRequest(
            requestBytes([RequestTensor(datatype: dataType.rawValue, shape: [1, Int64(values.count)], raw: raw)]),
            for: makeVersion(input: dataType, width: values.count)
        )
        #expect(sameFloats(call.inputs[0], values), "\(call.inputs[0])")
    }
}
