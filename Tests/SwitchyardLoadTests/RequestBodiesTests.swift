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
