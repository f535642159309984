// INT8 dynamic quantization: every INT8 kernel this CPU runs against the portable kernel's int32 sums (bit for
// bit) and against the reference engine within the quantization's own error bound; a row's bits wherever it
// lands; the digits model; and the precision a model's config.yaml asks for, measured at load.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardEngine

/// The SIMD INT8 kernels this CPU runs (the portable kernel is their oracle).
let int8SIMDPaths: [KernelPath] = [.avx2].filter(\.isAvailable)

/// Single layers: (seed, k, n, rows), k and n on and off the 4-input groups and 16-column panels.
let int8LayerCases: [(seed: UInt64, k: Int, n: Int, rows: Int)] = [
    (1, 1, 1, 1), (2, 3, 5, 2), (3, 4, 16, 3), (4, 5, 17, 4), (5, 17, 33, 5), (6, 63, 15, 6), (7, 64, 64, 7),
    (8, 65, 31, 13), (9, 255, 100, 64), (10, 256, 10, 65), (11, 257, 47, 129), (12, 784, 40, 300),
    (13, 1030, 19, 9), (14, 33, 1, 257), (15, 128, 130, 1), (16, 300, 48, 2),
]

/// A network of one dense layer and an activation; inputs are shifted for some seeds so rows are all positive.
func int8Layer(
    _ shape: (seed: UInt64, k: Int, n: Int, rows: Int),
    activation: UnaryOperator?
) -> (model: ONNXModel, data: [Float]) {
    var network = RandomNetwork(seed: shape.seed)
    let input = network.value(shape.k)
    var current = network.dense(input, n: shape.n)
    if let activation { current = network.activation(activation, current) }
    let shift: Float = shape.seed % 3 == 0 ? 2.5 : 0
    let data = network.floats(shape.rows * shape.k, scale: 2).map { $0 + shift }
    return (network.model(input: input, outputs: [current]), data)
}

/// Drops each row's padding columns.
func unpadded(_ values: [Float], rows: Int, stride: Int, width: Int) -> [Float] {
    (0..<rows).flatMap { values[($0 * stride)..<($0 * stride + width)] }
}

@Suite struct Int8KernelTests {
    @Test(arguments: int8LayerCases)
    func simdSumsAreThePortableSumsBitForBit(shape: (seed: UInt64, k: Int, n: Int, rows: Int)) throws {
        guard !int8SIMDPaths.isEmpty else {
            Issue.record("no INT8 SIMD kernel runs here: this CPU lacks AVX2")
            return
        }
        let (model, data) = int8Layer(shape, activation: .relu)
        let engine = try FusedEngine(model: model, kernel: .portable, precision: .int8)
        let oracle = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: .portable, raw: true)
        for path in int8SIMDPaths {
            let sums = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: path, raw: true)
            let mismatch = sums.indices.first { sums[$0].bitPattern != oracle[$0].bitPattern }
            #expect(
                mismatch == nil,
                "\(path) k \(shape.k) n \(shape.n) rows \(shape.rows): sum \(String(describing: mismatch))"
            )
            let outputs = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: path, raw: false)
            let expected = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: .portable, raw: false)
            // The epilogue may fuse a multiply-add on one path and not on another: the last bits may differ.
            let worst = zip(outputs, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            #expect(worst <= 1e-5, "\(path) k \(shape.k) n \(shape.n): outputs differ from portable by \(worst)")
        }
    }

    @Test(.enabled(if: FusedEngine.int8VNNIAvailable, "needs AVX-512 VNNI (vpdpbusd), which this CPU lacks"))
    func vnniSumsAreThePortableSumsBitForBit() throws {
        for shape in int8LayerCases {
            let (model, data) = int8Layer(shape, activation: nil)
            let engine = try FusedEngine(model: model, kernel: .portable, precision: .int8)
            let oracle = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: .portable, raw: true)
            let sums = engine.runInt8Layer(0, input: data, rows: shape.rows, kernel: .avx512, raw: true)
            #expect(
                zip(sums, oracle).allSatisfy { $0.bitPattern == $1.bitPattern },
                "avx512-vnni k \(shape.k) n \(shape.n) rows \(shape.rows)"
            )
        }
    }

    /// |x·w − x̂·ŵ| ≤ |x|·s_w/2 + s_x·|w| + s_x·s_w/2 per product (s_x: the row's step, a whole step allowed for
    /// the clamp at 127; s_w: the column's), plus float rounding; the activations used are 1-Lipschitz except
    /// GELU (≤ 1.13).
    @Test(arguments: int8LayerCases, [UnaryOperator?.none, .relu, .tanh, .gelu])
    func staysWithinTheQuantizationBoundOfTheReference(
        shape: (seed: UInt64, k: Int, n: Int, rows: Int),
        activation: UnaryOperator?
    ) throws {
        let (model, data) = int8Layer(shape, activation: activation)
        let layer = try FusedPlan.compile(model.graph).layers[0]
        let expected = try runEngine(ReferenceEngine(model: model), inputs: [data], rows: shape.rows)[0]
        for path in [KernelPath.portable] + int8SIMDPaths {
            let engine = try FusedEngine(model: model, kernel: path, precision: .int8)
            #expect(engine.precision == .int8)
            let actual = try runEngine(engine, inputs: [data], rows: shape.rows)[0]
            let columnSteps = (0..<shape.n).map { column in
                (0..<shape.k).map { abs(layer.weights[$0 * shape.n + column]) }.max()! / 127
            }
            for row in 0..<shape.rows {
                let x = data[(row * shape.k)..<((row + 1) * shape.k)]
                let rowStep = (max(x.max()!, 0) - min(x.min()!, 0)) / 127
                for column in 0..<shape.n {
                    var bound: Float = 0
                    var magnitude = abs(layer.bias[column])
                    for (offset, value) in x.enumerated() {
                        let w = abs(layer.weights[offset * shape.n + column])
                        bound += abs(value) * columnSteps[column] / 2 + rowStep * w + rowStep * columnSteps[column] / 2
                        magnitude += abs(value) * w
                    }
                    bound = (bound + 1e-4 * magnitude + 1e-5) * 1.13
                    let error = abs(actual[row * shape.n + column] - expected[row * shape.n + column])
                    #expect(
                        error <= bound,
                        "\(path) \(String(describing: activation)) k \(shape.k) n \(shape.n) row \(row) col \(column)"
                    )
                    if error > bound { return }
                }
            }
        }
    }

    @Test(arguments: [KernelPath.portable] + int8SIMDPaths)
    func aRowGetsTheSameBitsWhereverItLands(path: KernelPath) throws {
        var network = RandomNetwork(seed: 77)
        let input = network.value(70)
        let hidden = network.activation(.relu, network.dense(input, n: 90))
        let output = network.dense(hidden, n: 11)
        let model = network.model(input: input, outputs: [output])
        let engine = try FusedEngine(model: model, kernel: path, precision: .int8)
        let rows = 150
        let data = network.floats(rows * 70, scale: 3)
        let batch = try runEngine(engine, inputs: [data], rows: rows)[0]
        for row in [0, 1, 5, 63, 64, 65, 149] {
            let alone = try runEngine(engine, inputs: [Array(data[(row * 70)..<((row + 1) * 70)])], rows: 1)[0]
            #expect(alone == Array(batch[(row * 11)..<((row + 1) * 11)]), "\(path) row \(row)")
        }
    }

    @Test(arguments: [1, 2], [KernelPath.portable] + int8SIMDPaths)
    func classifiesTheDigitSamples(version: Int, path: KernelPath) throws {
        let model = try ONNXModel(
            contentsOf: demoModelsDirectory.appendingPathComponent("digits/\(version)/model.onnx").path
        )
        let samples = try DigitSamples.load()
        let data = samples.pixels.flatMap { $0 }
        let int8 = try runEngine(
            try FusedEngine(model: model, kernel: path, precision: .int8),
            inputs: [data],
            rows: samples.labels.count
        )
        for row in samples.labels.indices {
            #expect(argmax(int8[0][(row * 10)..<((row + 1) * 10)]) == samples.labels[row], "sample \(row)")
        }
    }

    @Test func describesItsKernel() throws {
        let model = try ONNXModel(contentsOf: demoModelsDirectory.appendingPathComponent("digits/2/model.onnx").path)
        let engine = try FusedEngine(model: model, kernel: .portable, precision: .int8)
        #expect(engine.description.contains("int8 on the portable kernel"))
        #expect(WeightPrecision.int8.isAvailable)
    }
}

// MARK: - Precision per model

@Suite struct PrecisionConfigurationTests {
    func decode(_ json: String) throws -> ModelConfiguration {
        try JSONDecoder().decode(ModelConfiguration.self, from: Data(json.utf8))
    }

    @Test func defaultsToFP32WithoutACheck() throws {
        let configuration = try decode("{}")
        #expect(configuration.precision == .fp32)
        #expect(configuration.precisionCheck == nil)
        #expect(configuration.validate().isEmpty)
    }

    @Test(arguments: ModelConfiguration.Precision.allCases)
    func readsEachPrecision(precision: ModelConfiguration.Precision) throws {
        let configuration = try decode(#"{"precision": "\#(precision.rawValue)"}"#)
        #expect(configuration.precision == precision)
        #expect(configuration.validate().isEmpty)
    }

    @Test func namesTheKeyAndTheAllowedValues() throws {
        let problems = try decode(#"{"precision": "fp16"}"#).validate()
        #expect(problems == ["precision: unknown precision 'fp16'; expected one of fp32, bf16, int8"])
    }

    @Test func readsTheCheck() throws {
        let configuration = try decode(
            #"""
            {"precision": "int8", "precision_check": {"samples": "check.json", "min_top1_agreement": 0.95,
             "max_abs_error": 0.5, "on_failure": "warn"}}
            """#
        )
        #expect(
            configuration.precisionCheck
                == PrecisionCheckConfiguration(
                    samples: "check.json",
                    minTop1Agreement: 0.95,
                    maxAbsError: 0.5,
                    onFailure: .warn
                )
        )
        #expect(configuration.validate().isEmpty)
        let defaults = try decode(#"{"precision": "int8", "precision_check": {}}"#).precisionCheck
        #expect(defaults == PrecisionCheckConfiguration())
        #expect(defaults?.minTop1Agreement == 0.99 && defaults?.onFailure == .refuse && defaults?.maxAbsError == nil)
    }

    @Test func reportsEveryBadCheckSetting() throws {
        let problems = try decode(
            #"""
            {"precision": "int8", "precision_check": {"samples": "", "min_top1_agreement": 1.5,
             "max_abs_error": -1, "on_failure": "ignore"}}
            """#
        ).validate()
        #expect(
            problems == [
                "precision_check.min_top1_agreement: expected 0…1, got 1.5",
                "precision_check.max_abs_error: expected a finite number >= 0, got -1.0",
                "precision_check.samples: expected a file name, got an empty string",
                "precision_check.on_failure: unknown action 'ignore'; expected one of refuse, warn",
            ]
        )
    }
}

@Suite struct PrecisionCheckTests {
    /// A model directory `<temp>/<model>/1/model.onnx` (the file itself is not read) with a samples file.
    func modelDirectory(samples: [String: Any], file: String = "samples.json") throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("precision-\(UUID().uuidString)")
        let version = root.appendingPathComponent("m/1")
        try FileManager.default.createDirectory(at: version, withIntermediateDirectories: true)
        let data = try JSONSerialization.data(withJSONObject: samples)
        try data.write(to: root.appendingPathComponent("m/\(file)"))
        return version.appendingPathComponent("model.onnx").path
    }

    func digits() throws -> (model: ONNXModel, modelPath: String) {
        let directory = demoModelsDirectory.appendingPathComponent("digits")
        return (
            try ONNXModel(contentsOf: directory.appendingPathComponent("2/model.onnx").path),
            directory.appendingPathComponent("2/model.onnx").path
        )
    }

    @Test func passesTheDigitsModelOnItsSamples() throws {
        let (model, path) = try digits()
        let engine = try applyingPrecision(
            ModelConfiguration(precision: .int8),
            modelPath: path,
            to: makeEngine(for: model)
        )
        let fused = try #require(engine as? FusedEngine)
        #expect(fused.precision == .int8)
        let check = try #require(fused.precisionCheck)
        #expect(check.passed && check.rows == 16 && check.top1Agreement == 1 && check.samples == "samples.json")
        #expect(fused.description.contains("int8 against fp32 on 16 samples (samples.json): top-1 agreement 1"))
    }

    @Test func fp32IsTheEngineItself() throws {
        let (model, path) = try digits()
        let engine = try makeEngine(for: model)
        let same = try applyingPrecision(ModelConfiguration(), modelPath: path, to: engine)
        #expect(same as? FusedEngine === engine as? FusedEngine)
    }

    @Test func refusesATighterErrorThanInt8Gives() throws {
        let (model, path) = try digits()
        let configuration = ModelConfiguration(
            precision: .int8,
            precisionCheck: PrecisionCheckConfiguration(maxAbsError: 1e-6)
        )
        let error = #expect(throws: SwitchyardError.self) {
            try applyingPrecision(configuration, modelPath: path, to: makeEngine(for: model))
        }
        let message = try #require(error?.message)
        #expect(message.contains("top-1 agreement 1 (min 0.99)"), "\(message)")
        #expect(message.contains("max abs error") && message.contains("(max 1e-06)"), "\(message)")
        #expect(message.contains("on_failure: refuse"))
    }

    /// One huge weight per output column sets that column's INT8 step; every other weight rounds to zero, while
    /// the samples never use the outlier's input, so FP32's answers come from exactly the weights INT8 loses.
    func outlierModel() -> (model: ONNXModel, samples: [[Float]]) {
        var network = RandomNetwork(seed: 5)
        let input = network.value(32)
        let output = network.value(10)
        var weights = network.floats(32 * 10, scale: 1)
        for column in 0..<10 { weights[31 * 10 + column] = 10_000 }
        network.add(
            .matMul(MatMulOperation(input: input, output: output, k: 32, n: 10, b: weights)),
            "MatMul"
        )
        let rows = (0..<40).map { _ in network.floats(31, scale: 1) + [0] }
        return (network.model(input: input, outputs: [output]), rows)
    }

    @Test func refusesAModelThatQuantizesBadly() throws {
        let (model, rows) = outlierModel()
        let path = try modelDirectory(samples: ["v0": rows])
        let error = #expect(throws: SwitchyardError.self) {
            try applyingPrecision(
                ModelConfiguration(precision: .int8),
                modelPath: path,
                to: FusedEngine(model: model)
            )
        }
        let message = try #require(error?.message)
        #expect(message.contains("int8 against fp32 on 40 samples (samples.json): top-1 agreement"), "\(message)")
        #expect(message.contains("(min 0.99)") && message.contains("max abs error"), "\(message)")
    }

    @Test func warnsAndServesWhenTold() throws {
        let (model, rows) = outlierModel()
        let path = try modelDirectory(samples: ["v0": rows], file: "check.json")
        let engine = try applyingPrecision(
            ModelConfiguration(
                precision: .int8,
                precisionCheck: PrecisionCheckConfiguration(samples: "check.json", onFailure: .warn)
            ),
            modelPath: path,
            to: FusedEngine(model: model)
        )
        let fused = try #require(engine as? FusedEngine)
        #expect(fused.precisionCheck?.passed == false)
        #expect(fused.description.contains("WARNING: int8 against fp32 on 40 samples (check.json)"))
    }

    @Test func namesAMissingOrMisshapenSamplesFile() throws {
        let (model, _) = outlierModel()
        let path = try modelDirectory(samples: ["v0": [[1, 2, 3]]])
        let engine = try FusedEngine(model: model)
        let missing = #expect(throws: SwitchyardError.self) {
            try applyingPrecision(
                ModelConfiguration(precision: .int8, precisionCheck: PrecisionCheckConfiguration(samples: "no.json")),
                modelPath: path,
                to: engine
            )
        }
        #expect(missing?.message == "precision_check.samples: no file 'no.json' in the model directory")
        let short = #expect(throws: SwitchyardError.self) {
            try applyingPrecision(ModelConfiguration(precision: .int8), modelPath: path, to: engine)
        }
        #expect(short?.message == "precision_check.samples: samples.json: input 'v0' row 0: expected 32 numbers")
    }

    @Test func withoutSamplesItServesUnchecked() throws {
        let (model, _) = outlierModel()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("precision-\(UUID().uuidString)")
        let engine = try applyingPrecision(
            ModelConfiguration(precision: .int8),
            modelPath: root.appendingPathComponent("m/1/model.onnx").path,
            to: FusedEngine(model: model)
        )
        #expect((engine as? FusedEngine)?.description.contains("int8 not checked against fp32") == true)
    }

    @Test func refusesWhatTheCPUOrEngineCannotRun() throws {
        let (model, path) = try digits()
        if !WeightPrecision.bf16.isAvailable {
            let error = #expect(throws: SwitchyardError.self) {
                try applyingPrecision(ModelConfiguration(precision: .bf16), modelPath: path, to: makeEngine(for: model))
            }
            #expect(error?.message.contains("precision: bf16 needs a CPU with AVX-512 BF16") == true)
        }
        let error = #expect(throws: SwitchyardError.self) {
            try applyingPrecision(
                ModelConfiguration(precision: .int8),
                modelPath: path,
                to: ReferenceEngine(model: model)
            )
        }
        #expect(error?.message.contains("runs on the fused engine") == true)
    }
}
