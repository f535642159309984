// Loads the ONNX fixtures and their onnxruntime results (written by scripts/make_engine_fixtures.py) and runs
// engines over them.

import Foundation
import SwitchyardCore
import SwitchyardEngine

/// One tensor of a fixture case.
struct FixtureTensor: Decodable {
    var name: String
    var shape: [Int]
    var data: [Float]
}

/// A model with inputs and the outputs onnxruntime computed for them.
struct FixtureCase: Decodable, CustomStringConvertible {
    var name: String
    var model: String
    var ops: [String]
    var inputs: [FixtureTensor]
    var outputs: [FixtureTensor]
    var description: String { name }
}

/// A model the importer must refuse, and the words its error must contain.
struct FixtureRefusal: Decodable, CustomStringConvertible {
    var name: String
    var model: String
    var contains: [String]
    var description: String { name }
}

enum Fixtures {
    struct Manifest: Decodable {
        var cases: [FixtureCase]
        var refusals: [FixtureRefusal]
    }

    static let directory: URL = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("the test bundle has no Fixtures directory")
        }
        return url
    }()

    static let manifest: Manifest = {
        do {
            let data = try Data(contentsOf: directory.appendingPathComponent("cases.json"))
            return try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            fatalError("cannot read Fixtures/cases.json: \(error)")
        }
    }()

    static var cases: [FixtureCase] { manifest.cases }
    static var refusals: [FixtureRefusal] { manifest.refusals }

    static func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    static func bytes(_ file: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
    }
}

/// Runs `rows` rows through an executor, allocating output buffers from the signature.
func runEngine(_ engine: any InferenceEngine, inputs: [[Float]], rows: Int) throws -> [[Float]] {
    let executor = engine.makeExecutor()
    return try runExecutor(executor, signature: engine.signature, inputs: inputs, rows: rows)
}

/// Runs `rows` rows through an existing executor.
func runExecutor(
    _ executor: any EngineExecutor,
    signature: ModelSignature,
    inputs: [[Float]],
    rows: Int
) throws -> [[Float]] {
    var outputs = signature.outputs.map { [Float](repeating: .nan, count: rows * $0.elementsPerRow) }
    let inputPointers = inputs.map { array -> UnsafeMutableBufferPointer<Float> in
        let pointer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(array.count, 1))
        _ = pointer.initialize(from: array)
        return pointer
    }
    let outputPointers = outputs.map { array -> UnsafeMutableBufferPointer<Float> in
        let pointer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(array.count, 1))
        pointer.initialize(repeating: .nan)
        return pointer
    }
    defer {
        inputPointers.forEach { $0.deallocate() }
        outputPointers.forEach { $0.deallocate() }
    }
    try executor.run(
        inputs: inputPointers.map { UnsafeBufferPointer($0) },
        rows: rows,
        outputs: outputPointers
    )
    for index in outputs.indices {
        outputs[index] = Array(outputPointers[index].prefix(outputs[index].count))
    }
    return outputs
}

/// The first index where `actual` and `expected` differ by more than `relative · |expected| + absolute`, with
/// both values, or nil when every element is within tolerance.
func firstMismatch(
    _ actual: [Float],
    _ expected: [Float],
    relative: Float,
    absolute: Float
) -> (index: Int, actual: Float, expected: Float)? {
    guard actual.count == expected.count else { return (-1, Float(actual.count), Float(expected.count)) }
    for index in actual.indices {
        let difference = abs(actual[index] - expected[index])
        if !(difference <= relative * abs(expected[index]) + absolute) {
            return (index, actual[index], expected[index])
        }
    }
    return nil
}
