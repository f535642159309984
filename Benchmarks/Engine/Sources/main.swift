// switchyard-engine-bench: times the reference and fused engines on ONNX models at several batch sizes, one
// thread, and counts heap allocations per batch.
//
//   switchyard-engine-bench [--runs N] [--rows 1,4,16,64,256] [--paths avx512,avx2] [--bf16] [--int8]
//                           [--accuracy TEST.json] [--json] MODEL.onnx…
//
// --bf16 adds the fused engine with BF16 weights (where the CPU has AVX-512 BF16); --int8 adds it with INT8
// weights and dynamically quantized inputs, on the first of --paths (named fused-PATH-int8). --accuracy takes a
// JSON file {"pixels": [[…]], "labels": […]} and reports each engine's top-1 accuracy on it (for classifiers
// whose first output holds the class scores) and, for each fused engine, the largest difference from the
// reference engine's first output.
// Each figure is the median of N runs; a run repeats the batch until it has taken at least 30 ms and reports
// the mean time per batch. GFLOP/s counts 2·k·n per row per dense layer.

import CAllocationCounter
import Foundation
import SwitchyardCore
import SwitchyardEngine

struct Options {
    var runs = 7
    var rows = [1, 4, 16, 64, 256]
    var paths = KernelPath.allCases.filter(\.isAvailable)
    var reference = true
    var bf16 = false
    var int8 = false
    var accuracy: String?
    var json = false
    var models: [String] = []
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let argument = arguments.popFirst() {
        switch argument {
        case "--runs": options.runs = Int(arguments.popFirst() ?? "") ?? options.runs
        case "--rows": options.rows = (arguments.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
        case "--paths":
            options.paths = (arguments.popFirst() ?? "").split(separator: ",").compactMap {
                KernelPath(rawValue: String($0))
            }
        case "--no-reference": options.reference = false
        case "--bf16": options.bf16 = true
        case "--int8": options.int8 = true
        case "--accuracy": options.accuracy = arguments.popFirst()
        case "--json": options.json = true
        case "--help", "-h":
            print(
                "usage: switchyard-engine-bench [--runs N] [--rows 1,4,…] [--paths avx512,avx2,portable] "
                    + "[--no-reference] [--bf16] [--int8] [--accuracy TEST.json] [--json] MODEL.onnx…"
            )
            exit(0)
        default: options.models.append(argument)
        }
    }
    return options
}

func nanoseconds() -> UInt64 { MonotonicInstant.now().nanoseconds }

struct Measurement: Codable {
    var model: String
    var engine: String
    var rows: Int
    var microseconds: Double
    var gflops: Double
    var allocationsPerBatch: Double?
}

struct Accuracy: Codable {
    var model: String
    var engine: String
    var rows: Int
    var accuracy: Double
    /// Largest |output − reference output| over the first output, for engines other than the reference.
    var maxDifferenceFromReference: Double?
}

struct TestSet: Decodable {
    var pixels: [[Float]]
    var labels: [Int]
}

func firstOutput(_ engine: any InferenceEngine, _ input: [Float], rows: Int) throws -> [Float] {
    let executor = engine.makeExecutor()
    let outputs = engine.signature.outputs.map {
        UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * $0.elementsPerRow)
    }
    defer { outputs.forEach { $0.deallocate() } }
    try input.withUnsafeBufferPointer { try executor.run(inputs: [$0], rows: rows, outputs: outputs) }
    return Array(outputs[0].prefix(rows * engine.signature.outputs[0].elementsPerRow))
}

/// Median seconds per batch over `runs` runs.
func time(
    _ executor: any EngineExecutor,
    inputs: [UnsafeBufferPointer<Float>],
    rows: Int,
    outputs: [UnsafeMutableBufferPointer<Float>],
    runs: Int
) throws -> Double {
    try executor.run(inputs: inputs, rows: rows, outputs: outputs)  // warm caches and scratch
    var samples: [Double] = []
    for _ in 0..<runs {
        var iterations = 0
        let start = nanoseconds()
        var elapsed: UInt64 = 0
        repeat {
            try executor.run(inputs: inputs, rows: rows, outputs: outputs)
            iterations += 1
            elapsed = nanoseconds() - start
        } while elapsed < 30_000_000
        samples.append(Double(elapsed) / 1e9 / Double(iterations))
    }
    samples.sort()
    return samples[samples.count / 2]
}

func allocationsPerBatch(
    _ executor: any EngineExecutor,
    batches: Int,
    inputs: [UnsafeBufferPointer<Float>],
    rows: Int,
    outputs: [UnsafeMutableBufferPointer<Float>]
) throws -> Double? {
    let before = sy_allocation_count()
    guard before != UInt64.max else { return nil }
    for _ in 0..<batches { try executor.run(inputs: inputs, rows: rows, outputs: outputs) }
    return Double(sy_allocation_count() - before) / Double(batches)
}

let options = parseOptions()
guard !options.models.isEmpty else {
    FileHandle.standardError.write("switchyard-engine-bench: no model given (see --help)\n".data(using: .utf8)!)
    exit(2)
}
var results: [Measurement] = []
var accuracies: [Accuracy] = []
for path in options.models {
    let model = try ONNXModel(contentsOf: path)
    let name =
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent == "model"
        ? URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent + "/"
            + URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        : URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    var engines: [(String, any InferenceEngine)] = []
    var widths: [Int] = []
    for kernel in options.paths {
        let engine = try FusedEngine(model: model, kernel: kernel)
        widths = engine.layerWidths
        engines.append(("fused-\(kernel)", engine))
    }
    if options.bf16 && WeightPrecision.bf16.isAvailable {
        engines.append(("fused-avx512-bf16", try FusedEngine(model: model, kernel: .avx512, precision: .bf16)))
    }
    if options.int8, let kernel = options.paths.first {
        let engine = try FusedEngine(model: model, kernel: kernel, precision: .int8)
        widths = engine.layerWidths
        engines.append(("fused-\(kernel)-int8", engine))
    }
    if options.reference { engines.append(("reference", ReferenceEngine(model: model))) }
    let flopsPerRow = widths.isEmpty ? 0 : zip(widths, widths.dropFirst()).reduce(0) { $0 + 2 * $1.0 * $1.1 }
    let maxRows = options.rows.max() ?? 1
    var rng = SystemRandomNumberGenerator()
    let inputs = model.signature.inputs.map { spec -> UnsafeMutableBufferPointer<Float> in
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: maxRows * spec.elementsPerRow)
        for index in buffer.indices { buffer[index] = Float.random(in: 0...16, using: &rng) }
        return buffer
    }
    let outputs = model.signature.outputs.map {
        UnsafeMutableBufferPointer<Float>.allocate(capacity: maxRows * $0.elementsPerRow)
    }
    let inputViews = inputs.map { UnsafeBufferPointer($0) }
    if let file = options.accuracy, model.signature.inputs.count == 1,
        let classes = model.signature.outputs.first?.elementsPerRow,
        model.signature.inputs[0].elementsPerRow
            == (try? JSONDecoder().decode(
                TestSet.self,
                from: Data(contentsOf: URL(fileURLWithPath: file))
            ))?.pixels.first?.count
    {
        let test = try JSONDecoder().decode(TestSet.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        let input = test.pixels.flatMap { $0 }
        let rows = test.labels.count
        let reference = try firstOutput(ReferenceEngine(model: model), input, rows: rows)
        for (engineName, engine) in engines {
            let scores = engineName == "reference" ? reference : try firstOutput(engine, input, rows: rows)
            var correct = 0
            for row in 0..<rows {
                let slice = scores[(row * classes)..<((row + 1) * classes)]
                if slice.firstIndex(of: slice.max()!)! - row * classes == test.labels[row] { correct += 1 }
            }
            let difference = zip(scores, reference).map { Double(abs($0 - $1)) }.max() ?? 0
            let entry = Accuracy(
                model: name,
                engine: engineName,
                rows: rows,
                accuracy: Double(correct) / Double(rows),
                maxDifferenceFromReference: engineName == "reference" ? nil : difference
            )
            accuracies.append(entry)
            if !options.json {
                print(
                    name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + engineName.padding(toLength: 18, withPad: " ", startingAt: 0)
                        + String(
                            format: "accuracy %.4f on %d rows, max |Δ| from reference %.2e",
                            entry.accuracy,
                            rows,
                            difference
                        )
                )
            }
        }
    }
    for (engineName, engine) in engines {
        let executor = engine.makeExecutor()
        for rows in options.rows {
            // The reference engine is slow: fewer runs past small batches.
            let runs = engineName == "reference" && rows > 16 ? min(options.runs, 3) : options.runs
            let seconds = try time(executor, inputs: inputViews, rows: rows, outputs: outputs, runs: runs)
            // The reference engine allocates by design and is slow: a few batches show it.
            let allocations = try allocationsPerBatch(
                executor,
                batches: engineName == "reference" ? 3 : 100,
                inputs: inputViews,
                rows: rows,
                outputs: outputs
            )
            let measurement = Measurement(
                model: name,
                engine: engineName,
                rows: rows,
                microseconds: seconds * 1e6,
                gflops: Double(flopsPerRow * rows) / seconds / 1e9,
                allocationsPerBatch: allocations
            )
            results.append(measurement)
            if !options.json {
                let allocationText = allocations.map { String(format: "%.1f", $0) } ?? "n/a"
                let label =
                    name.padding(toLength: 24, withPad: " ", startingAt: 0)
                    + engineName.padding(toLength: 18, withPad: " ", startingAt: 0)
                print(
                    label
                        + String(
                            format: "M=%-4d %10.1f µs %8.2f GFLOP/s  allocations/batch ",
                            rows,
                            seconds * 1e6,
                            measurement.gflops
                        ) + allocationText
                )
            }
        }
    }
}
if options.json {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    struct Report: Encodable {
        var timings: [Measurement]
        var accuracy: [Accuracy]
    }
    print(String(data: try encoder.encode(Report(timings: results, accuracy: accuracies)), encoding: .utf8)!)
}
