// Request bodies from metadata, samples JSON and .npy files, and the protobuf codec they rely on.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardLoad

@Suite struct RequestBodiesTests {
    let model = ModelDescription(
        name: "digits",
        versions: ["1", "2"],
        platform: "onnx",
        inputs: [TensorDescription(name: "pixels", datatype: "FP32", shape: [-1, 4])],
        outputs: [TensorDescription(name: "probabilities", datatype: "FP32", shape: [-1, 2])]
    )

    /// Decodes the raw input of a framed body back to floats.
    private func floats(_ body: [UInt8]) throws -> (shape: [Int64], values: [Float]) {
        #expect(body[0] == 0)
        var r = ProtobufReader(body[5...])
        var shape: [Int64] = []
        var values: [Float] = []
        while let (field, value) = try r.next() {
            if field == 5, case .bytes(let t) = value {
                var tr = ProtobufReader(t)
                while let (f, v) = try tr.next() {
                    if f == 3, case .bytes(let packed) = v {
                        var p = ProtobufReader(packed)
                        while !p.isAtEnd { shape.append(Int64(bitPattern: try p.varint())) }
                    }
                }
            }
            if field == 7, case .bytes(let raw) = value {
                values = stride(from: raw.startIndex, to: raw.endIndex, by: 4).map { i in
                    Float(
                        bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(
                            raw[i + 3]
                        ) << 24
                    )
                }
            }
        }
        return (shape, values)
    }

    @Test func randomBodiesHaveTheModelsShape() throws {
        let bodies = try RequestBodies.build(model: model, version: "2", batch: 3, source: .random, variants: 5)
        #expect(bodies.bodies.count == 5)
        let (shape, values) = try floats(bodies.bodies[0])
        #expect(shape == [3, 4])
        #expect(values.count == 12)
        #expect(Set(values).count > 1)
        #expect(bodies.bodies[0] != bodies.bodies[1])
    }

    @Test func samplesJSONRowsAreBatchedInOrder() throws {
        let path = NSTemporaryDirectory() + "samples-\(getpid()).json"
        try Data(#"{"pixels": [[1,2,3,4],[5,6,7,8],[9,10,11,12]], "labels": [0,1,2]}"#.utf8).write(
            to: URL(fileURLWithPath: path)
        )
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bodies = try RequestBodies.build(model: model, version: "", batch: 1, source: .samplesJSON(path: path))
        #expect(bodies.bodies.count == 3)
        #expect(try floats(bodies.bodies[1]).values == [5, 6, 7, 8])
    }

    @Test func samplesJSONMissingInputIsNamed() throws {
        let path = NSTemporaryDirectory() + "bad-\(getpid()).json"
        try Data(#"{"image": [[1,2,3,4]]}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: SwitchyardError.self) {
            try RequestBodies.build(model: model, version: "", batch: 1, source: .samplesJSON(path: path))
        }
    }

    @Test func npyRowsFeedTheInput() throws {
        let path = NSTemporaryDirectory() + "rows-\(getpid()).npy"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] =
            [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        bytes += Array(header.utf8)
        for v in [Float](arrayLiteral: 1, 2, 3, 4, 5, 6, 7, 8) {
            withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bodies = try RequestBodies.build(model: model, version: "", batch: 2, source: .file(path))
        #expect(bodies.bodies.count == 1)
        let (shape, values) = try floats(bodies.bodies[0])
        #expect(shape == [2, 4])
        #expect(values == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func wrongRowWidthIsRejectedWithTheExpectedShape() throws {
        let path = NSTemporaryDirectory() + "wide-\(getpid()).json"
        try Data(#"{"pixels": [[1,2,3]]}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try RequestBodies.build(model: model, version: "", batch: 1, source: .samplesJSON(path: path))
            Issue.record("expected a failure")
        } catch {
            #expect(error.message.contains("rows have 3 values, expected 4"))
        }
    }

    @Test(
        arguments: [
            ("FP16", [1, -2.5, 65520, 1 + 0x1p-11], [0x00, 0x3C, 0x00, 0xC1, 0x00, 0x7C, 0x00, 0x3C]),
            ("BF16", [1, -2.5, 1 + 0x1p-8], [0x80, 0x3F, 0x20, 0xC0, 0x80, 0x3F]),
            (
                "INT64", [-2.7, 1e30],
                [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]
            ),
            ("UINT64", [0x1p63, -1], [0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("INT8", [-300, .nan, 5.9], [0x80, 0, 5]),
            ("BOOL", [0, 2, -0.5], [0, 1, 1]),
            ("UINT16", [70000, 258], [0xFF, 0xFF, 0x02, 0x01]),
        ] as [(String, [Double], [UInt8])]
    )
    func valuesAreEncodedInTheModelsDatatype(datatype: String, values: [Double], expected: [UInt8]) throws {
        #expect(try RequestBodies.encode(values, datatype: datatype, input: "x") == expected)
    }

    @Test func randomBodiesUseTheDeclaredDatatype() throws {
        let halves = ModelDescription(
            name: "h",
            versions: ["1"],
            platform: "onnx",
            inputs: [
                TensorDescription(name: "a", datatype: "FP16", shape: [-1, 3]),
                TensorDescription(name: "b", datatype: "INT64", shape: [-1, 2]),
            ],
            outputs: []
        )
        let body = try RequestBodies.build(model: halves, version: "", batch: 2, source: .random).bodies[0]
        // raw_input_contents (field 7) in input order: 2 × 3 FP16 values, then 2 × 2 INT64 values.
        var reader = ProtobufReader(body[5...])
        var sizes: [Int] = []
        while let (field, value) = try reader.next() {
            if field == 7, case .bytes(let raw) = value { sizes.append(raw.count) }
        }
        #expect(sizes == [12, 32])
        #expect(throws: SwitchyardError.self) { try RequestBodies.encode([1], datatype: "BYTES", input: "x") }
    }

    @Test func modelVersionIsFoundInAResponsePrefix() {
        var w = ProtobufWriter()
        w.string(1, "digits")
        w.string(2, "17")
        w.string(3, "id")
        let bytes = w.bytes
        let version = bytes.withUnsafeBytes { InferenceMessages.modelVersion(inResponsePrefix: $0).map { Array($0) } }
        #expect(version == Array("17".utf8))
        let truncated = Array(bytes.prefix(9))
        #expect(truncated.withUnsafeBytes { InferenceMessages.modelVersion(inResponsePrefix: $0) } == nil)
    }
}
