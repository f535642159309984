// Request decoding for every numeric datatype: raw little-endian bytes and the typed contents field each datatype
// travels in, converted to FP32 as a cast to float does, and every refusal with the message that names it.

import SwitchyardCore
import Testing

@testable import SwitchyardInference

/// One datatype's test values: what a client sends (raw bytes and, where the protocol has one, the typed field)
/// and the FP32 values the engine must see.
struct DecodingCase: Sendable, CustomTestStringConvertible {
    var dataType: DataType
    var raw: [UInt8]
    var typed: TypedContents?
    var expected: [Float]

    var testDescription: String { dataType.rawValue }
    var count: Int { expected.count }

    /// The validated call of one row of these values, sent as raw bytes or (`asTyped`) as typed contents.
    func validated(asTyped: Bool) throws -> ValidatedInferCall {
        try validateRequest(
            requestBytes([
                RequestTensor(
                    datatype: dataType.rawValue,
                    shape: [1, Int64(count)],
                    raw: asTyped ? nil : raw,
                    contents: asTyped ? typed : nil
                )
            ]),
            for: makeVersion(input: dataType, width: count)
        )
    }

    static let all: [DecodingCase] = [
        DecodingCase(
            dataType: .bool,
            raw: [0, 1, 2, 255],
            typed: .bool([false, true, true, true]),
            expected: [0, 1, 1, 1]
        ),
        DecodingCase(
            dataType: .uint8,
            raw: [0, 1, 200, 255],
            typed: .uint([0, 1, 200, 255]),
            expected: [0, 1, 200, 255]
        ),
        DecodingCase(
            dataType: .uint16,
            raw: littleEndianBytes([UInt16(0), 7, 1234, 65535]),
            typed: .uint([0, 7, 1234, 65535]),
            expected: [0, 7, 1234, 65535]
        ),
        DecodingCase(
            dataType: .uint32,
            raw: littleEndianBytes([UInt32(3), 16_777_217, 16_777_219, .max]),
            typed: .uint([3, 16_777_217, 16_777_219, .max]),
            // Nearest float, ties to even: 2^24 + 1 → 2^24, 2^24 + 3 → 2^24 + 4, 2^32 − 1 → 2^32.
            expected: [3, 16_777_216, 16_777_220, 4_294_967_296]
        ),
        DecodingCase(
            dataType: .uint64,
            raw: littleEndianBytes([UInt64(5), (1 << 53) + 1, 0, .max]),
            typed: .uint64([5, (1 << 53) + 1, 0, .max]),
            expected: [5, 0x1p53, 0, 0x1p64]
        ),
        DecodingCase(
            dataType: .int8,
            raw: littleEndianBytes([Int8.min, -1, 0, .max]),
            typed: .int([-128, -1, 0, 127]),
            expected: [-128, -1, 0, 127]
        ),
        DecodingCase(
            dataType: .int16,
            raw: littleEndianBytes([Int16.min, -300, 0, .max]),
            typed: .int([-32768, -300, 0, 32767]),
            expected: [-32768, -300, 0, 32767]
        ),
        DecodingCase(
            dataType: .int32,
            raw: littleEndianBytes([Int32.min, -16_777_219, 16_777_217, .max]),
            typed: .int([.min, -16_777_219, 16_777_217, .max]),
            expected: [-2_147_483_648, -16_777_220, 16_777_216, 2_147_483_648]
        ),
        DecodingCase(
            dataType: .int64,
            raw: littleEndianBytes([Int64.min, -3, 16_777_217, .max]),
            typed: .int64([.min, -3, 16_777_217, .max]),
            expected: [-0x1p63, -3, 16_777_216, 0x1p63]
        ),
        DecodingCase(
            dataType: .fp16,
            // 1.5, −0, 65504 (largest), 2^-24 (smallest subnormal), −Inf, NaN.
            raw: littleEndianBytes([UInt16(0x3E00), 0x8000, 0x7BFF, 0x0001, 0xFC00, 0x7E00]),
            typed: nil,
            expected: [1.5, -0.0, 65504, 0x1p-24, -.infinity, .nan]
        ),
        DecodingCase(
            dataType: .fp32,
            raw: littleEndianBytes([Float(1.5), -2, .infinity, .nan].map(\.bitPattern)),
            typed: .fp32([1.5, -2, .infinity, .nan]),
            expected: [1.5, -2, .infinity, .nan]
        ),
        DecodingCase(
            dataType: .fp64,
            raw: littleEndianBytes([0.1, 1e300, -1e300, 1e-50, .nan].map(\.bitPattern)),
            typed: .fp64([0.1, 1e300, -1e300, 1e-50, .nan]),
            // Nearest float; past FP32's range ±Inf, below its subnormals 0.
            expected: [Float(0.1), .infinity, -.infinity, 0, .nan]
        ),
        DecodingCase(
            dataType: .bf16,
            // 1.0, −2.5, the largest BF16, +Inf, NaN.
            raw: littleEndianBytes([UInt16(0x3F80), 0xC020, 0x7F7F, 0x7F80, 0x7FC0]),
            typed: nil,
            expected: [1, -2.5, Float(bitPattern: 0x7F7F_0000), .infinity, .nan]
        ),
    ]
}

@Suite struct DatatypeDecodingTests {
    @Test(arguments: DecodingCase.all)
    func rawInputsConvertToFloat(_ test: DecodingCase) throws {
        let call = try test.validated(asTyped: false)
        #expect(call.rows == 1)
        #expect(sameFloats(call.inputs[0], test.expected), "\(call.inputs[0])")
    }

    @Test(arguments: DecodingCase.all.filter { $0.typed != nil })
    func typedContentsConvertToFloat(_ test: DecodingCase) throws {
        let call = try test.validated(asTyped: true)
        #expect(sameFloats(call.inputs[0], test.expected), "\(call.inputs[0])")
    }

    /// Rows and odd lengths: the vector paths' tails (lengths that are not a multiple of 8) convert like the rest.
    @Test(arguments: [DataType.fp16, .bf16, .int64, .uint8, .fp64])
    func rowsOfAnyWidthConvert(_ dataType: DataType) throws {
        for width in [1, 7, 8, 9, 17, 784] {
            let values = (0..<(3 * width)).map { Float($0 % 251) - 100 }
            let raw: [UInt8]
            switch dataType {
            case .fp16: raw = littleEndianBytes(values.map { Float16($0).bitPattern })
            case .bf16: raw = littleEndianBytes(values.map { UInt16($0.bitPattern >> 16) })
            case .int64: raw = littleEndianBytes(values.map { Int64($0) })
            case .uint8: raw = values.map { UInt8(Int($0) + 100) }
            default: raw = littleEndianBytes(values.map { Double($0).bitPattern })
            }
            let expected = dataType == .uint8 ? values.map { $0 + 100 } : values
            let call = try validateRequest(
                requestBytes([RequestTensor(datatype: dataType.rawValue, shape: [3, Int64(width)], raw: raw)]),
                for: makeVersion(input: dataType, width: width)
            )
            #expect(call.rows == 3)
            #expect(call.inputs[0] == expected, "width \(width)")
        }
    }

    @Test func inputsOfDifferentDatatypesDecodeInSignatureOrder() throws {
        let version = makeVersion(
            ModelSignature(
                inputs: [
                    TensorSpec(name: "ids", dataType: .int64, shape: [-1, 2]),
                    TensorSpec(name: "features", dataType: .fp16, shape: [-1, 3]),
                    TensorSpec(name: "mask", dataType: .bool, shape: [-1, 2]),
                ],
                outputs: [TensorSpec(name: "y", dataType: .int64, shape: [-1, 1])]
            )
        )
        // Sent in another order than the signature's; raw contents follow the request's order.
        let call = try validateRequest(
            requestBytes([
                RequestTensor(name: "mask", datatype: "BOOL", shape: [2, 2], raw: [1, 0, 0, 1]),
                RequestTensor(
                    name: "ids",
                    datatype: "INT64",
                    shape: [2, 2],
                    raw: littleEndianBytes([Int64(9), -9, 1 << 40, 0])
                ),
                RequestTensor(
                    name: "features",
                    datatype: "FP16",
                    shape: [2, 3],
                    raw: littleEndianBytes([Float16(0.5), 1, 2, -0.25, 8, 1024].map(\.bitPattern))
                ),
            ]),
            for: version
        )
        #expect(call.rows == 2)
        #expect(call.inputs == [[9, -9, 0x1p40, 0], [0.5, 1, 2, -0.25, 8, 1024], [1, 0, 0, 1]])
    }

    @Test func mixedTypedInputsUseTheirOwnFields() throws {
        let version = makeVersion(
            ModelSignature(
                inputs: [
                    TensorSpec(name: "ids", dataType: .int64, shape: [-1, 2]),
                    TensorSpec(name: "mask", dataType: .bool, shape: [-1, 2]),
                ],
                outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 1])]
            )
        )
        let call = try validateRequest(
            requestBytes([
                RequestTensor(name: "ids", datatype: "INT64", shape: [1, 2], contents: .int64([4, -4])),
                RequestTensor(name: "mask", datatype: "BOOL", shape: [1, 2], contents: .bool([true, false])),
            ]),
            for: version
        )
        #expect(call.inputs == [[4, -4], [1, 0]])
    }

    @Test func theDatatypeMustBeTheModelsOwn() throws {
        let version = makeVersion(input: .int64, width: 4)
        let error = try #require(
            validationError(
                requestBytes([RequestTensor(datatype: "FP32", shape: [2, 4], raw: [UInt8](repeating: 0, count: 32))]),
                for: version
            )
        )
        #expect(error.code == .invalidArgument)
        #expect(error.message == "input 'x': expected INT64 [-1, 4], got FP32 [2, 4]")
    }

    @Test func bytesInputsAreRefusedByName() throws {
        let version = makeVersion(input: .fp32, width: 1)
        let error = try #require(
            validationError(
                requestBytes([RequestTensor(datatype: "BYTES", shape: [1, 1], contents: .bytes([[1, 2, 3]]))]),
                for: version
            )
        )
        #expect(error.code == .invalidArgument)
        #expect(error.message == "input 'x': expected FP32 [-1, 1], got BYTES [1, 1] (BYTES tensors are not supported)")
    }

    @Test(arguments: DataType.allCases.filter { $0 != .bytes })
    func rawByteCountsMustMatch(_ dataType: DataType) throws {
        let size = try #require(dataType.elementSize)
        let version = makeVersion(input: dataType, width: 4)
        for sent in [8 * size - 1, 8 * size + size, 0] {
            let error = try #require(
                validationError(
                    requestBytes([
                        RequestTensor(
                            datatype: dataType.rawValue,
                            shape: [2, 4],
                            raw: [UInt8](repeating: 0, count: sent)
                        )
                    ]),
                    for: version
                )
            )
            #expect(error.code == .invalidArgument)
            #expect(
                error.message
                    == "input 'x': expected \(8 * size) bytes of raw \(dataType.rawValue) data for shape [2, 4], got \(sent)"
            )
        }
    }

    @Test(arguments: [
        (DataType.fp16, TypedContents.fp32([1, 2]), "fp32_contents"), (.bf16, .uint([1, 2]), "uint_contents"),
    ])
    func halfPrecisionHasNoTypedField(_ dataType: DataType, contents: TypedContents, field: String) throws {
        let error = try #require(typedContentsError(dataType, contents))
        #expect(error.code == .invalidArgument)
        #expect(
            error.message
                == "input 'x': \(dataType.rawValue) has no typed contents field; expected its data in "
                + "raw_input_contents, got contents.\(field)"
        )
        let empty = try #require(typedContentsError(dataType, nil))
        #expect(empty.message == "input 'x': no data; expected raw_input_contents")
    }

    @Test(arguments: [
        (DataType.int64, TypedContents.int([1, 2]), "INT64 data belongs in contents.int64_contents, got int_contents"),
        (.int8, .int64([1, 2]), "INT8 data belongs in contents.int_contents, got int64_contents"),
        (.uint16, .int([1, 2]), "UINT16 data belongs in contents.uint_contents, got int_contents"),
        (.uint64, .uint([1, 2]), "UINT64 data belongs in contents.uint64_contents, got uint_contents"),
        (.bool, .int([1, 0]), "BOOL data belongs in contents.bool_contents, got int_contents"),
        (.fp64, .fp32([1, 0]), "FP64 data belongs in contents.fp64_contents, got fp32_contents"),
        (.fp32, .fp64([1, 0]), "FP32 data belongs in contents.fp32_contents, got fp64_contents"),
        (.int32, .bytes([[1], [2]]), "INT32 data belongs in contents.int_contents, got bytes_contents"),
    ])
    func typedValuesMustUseTheirDatatypesField(_ dataType: DataType, contents: TypedContents, message: String) throws {
        let error = try #require(typedContentsError(dataType, contents))
        #expect(error.code == .invalidArgument)
        #expect(error.message == "input 'x': \(message)")
    }

    @Test func typedValueCountsMustMatch() throws {
        let error = try #require(
            validationError(
                requestBytes([RequestTensor(datatype: "INT64", shape: [2, 2], contents: .int64([1, 2, 3]))]),
                for: makeVersion(input: .int64, width: 2)
            )
        )
        #expect(error.message == "input 'x': expected 4 values in contents.int64_contents for shape [2, 2], got 3")
        let none = try #require(typedContentsError(.uint8, nil))
        #expect(none.message == "input 'x': no data; expected raw_input_contents or contents.uint_contents")
    }

    @Test(arguments: [
        (
            DataType.int8, TypedContents.int([1, 128]),
            "contents.int_contents[1] = 128 is out of range for INT8; expected -128...127"
        ),
        (.int8, .int([-129, 0]), "contents.int_contents[0] = -129 is out of range for INT8; expected -128...127"),
        (
            .int16, .int([40000, 0]),
            "contents.int_contents[0] = 40000 is out of range for INT16; expected -32768...32767"
        ),
        (.uint8, .uint([0, 256]), "contents.uint_contents[1] = 256 is out of range for UINT8; expected 0...255"),
        (
            .uint16, .uint([70000, 1]),
            "contents.uint_contents[0] = 70000 is out of range for UINT16; expected 0...65535"
        ),
    ])
    func narrowTypedValuesMustFitTheirDatatype(_ dataType: DataType, contents: TypedContents, message: String) throws {
        let error = try #require(typedContentsError(dataType, contents))
        #expect(error.code == .invalidArgument)
        #expect(error.message == "input 'x': \(message)")
    }
}
