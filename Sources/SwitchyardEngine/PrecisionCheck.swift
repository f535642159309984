// Precision as the operator's choice per model: the bf16 or int8 engine a model's `config.yaml` asks for, built
// beside the FP32 one and measured against it on the model's own samples before it is trusted.

import Foundation
public import SwitchyardCore

/// What a precision measured against FP32 on a model's samples at load.
public struct PrecisionCheckResult: Sendable, Hashable, CustomStringConvertible {
    /// The precision checked.
    public var precision: WeightPrecision
    /// The samples file as configured (`samples.json` by default); nil when the default file is absent and
    /// nothing was measured.
    public var samples: String?
    /// Sample rows run through both engines.
    public var rows: Int
    /// Share of rows whose first output has its largest entry at the same place as FP32's.
    public var top1Agreement: Double
    /// Largest |FP32 − precision| over every output value of every row.
    public var maxAbsError: Double
    /// The thresholds and the failure action it was held to.
    public var settings: PrecisionCheckConfiguration

    /// Whether both figures are within the thresholds (an unmeasured check passes).
    public var passed: Bool {
        samples == nil
            || (top1Agreement >= settings.minTop1Agreement && maxAbsError <= (settings.maxAbsError ?? .infinity))
    }

    /// The figures against their thresholds: `int8 against fp32 on 16 samples (samples.json): top-1 agreement
    /// 1.0000 (min 0.99), max abs error 0.0312 (no limit)`.
    public var figures: String {
        guard let samples else {
            return "\(precision) not checked against fp32: no samples.json in the model directory"
        }
        let limit = settings.maxAbsError.map { "max \(format($0))" } ?? "no limit"
        return "\(precision) against fp32 on \(rows) sample\(rows == 1 ? "" : "s") (\(samples)): top-1 agreement "
            + "\(format(top1Agreement)) (min \(format(settings.minTop1Agreement))), max abs error "
            + "\(format(maxAbsError)) (\(limit))"
    }

    /// The figures, and a warning when the check failed and the version serves anyway.
    public var description: String {
        passed ? figures : "WARNING: \(figures): below the thresholds, served anyway (on_failure: warn)"
    }

    private func format(_ value: Double) -> String {
        value.isFinite ? String(format: "%.4g", value) : "\(value)"
    }
}

/// Builds the engine a model's `precision:` asks for from the FP32 engine a loader made, measured before it is
/// trusted: the samples (`precision_check.samples`, else `samples.json` in the model's directory when there is
/// one) run through both, and the version is refused, or served with a warning in its description, when top-1
/// agreement or the largest difference is worse than `precision_check` allows. FP32 returns `engine` unchanged.
/// - Parameters:
///   - configuration: the model's settings (`precision`, `precision_check`).
///   - modelPath: the version's `model.onnx`, `<repository>/<model>/<version>/model.onnx`: samples are found
///     in `<repository>/<model>/`.
///   - engine: the FP32 engine the loader built for the version.
/// - Throws: `SwitchyardError.invalidArgument` when this CPU lacks the precision's instructions, when the
///   version runs on the reference engine, when a named samples file is missing or does not fit the model's
///   inputs, or when the check fails with `on_failure: refuse` (the message names both figures).
public func applyingPrecision(
    _ configuration: ModelConfiguration,
    modelPath: String,
    to engine: any InferenceEngine
) throws(SwitchyardError) -> any InferenceEngine {
    let precision = WeightPrecision(configuration.precision)
    guard precision != .fp32 else { return engine }
    if let missing = precision.missingFeature {
        throw .invalidArgument(
            "precision: \(precision) needs a CPU with \(missing), which this CPU lacks; it runs "
                + WeightPrecision.allCases.filter(\.isAvailable).map(\.rawValue).joined(separator: ", ")
        )
    }
    guard let fp32 = engine as? FusedEngine, fp32.precision == .fp32 else {
        throw .invalidArgument(
            "precision: \(precision) runs on the fused engine, and this version runs on the reference engine"
        )
    }
    let settings = configuration.precisionCheck ?? PrecisionCheckConfiguration()
    let candidate = try FusedEngine(
        graph: fp32.program.graph,
        kernel: precision == .bf16 ? .avx512 : fp32.kernel,
        precision: precision
    )
    let directory = ((modelPath as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
    let name = settings.samples ?? "samples.json"
    let path = name.hasPrefix("/") ? name : (directory as NSString).appendingPathComponent(name)
    guard FileManager.default.fileExists(atPath: path) else {
        if settings.samples != nil {
            throw .invalidArgument("precision_check.samples: no file '\(name)' in the model directory")
        }
        let unchecked = PrecisionCheckResult(
            precision: precision,
            samples: nil,
            rows: 0,
            top1Agreement: 0,
            maxAbsError: 0,
            settings: settings
        )
        return FusedEngine(candidate, precisionCheck: unchecked)
    }
    let (inputs, rows) = try PrecisionSamples.load(path: path, shownAs: name, signature: fp32.signature)
    let result = try measure(candidate, against: fp32, inputs: inputs, rows: rows, samples: name, settings: settings)
    if !result.passed && settings.onFailure == .refuse {
        throw .invalidArgument(
            "precision: \(result.figures): below the thresholds (precision_check); refused (on_failure: refuse)"
        )
    }
    return FusedEngine(candidate, precisionCheck: result)
}

/// Runs the sample rows through both engines and compares their outputs.
func measure(
    _ candidate: FusedEngine,
    against fp32: FusedEngine,
    inputs: [[Float]],
    rows: Int,
    samples: String,
    settings: PrecisionCheckConfiguration
) throws(SwitchyardError) -> PrecisionCheckResult {
    let expected = try PrecisionSamples.run(fp32, inputs: inputs, rows: rows)
    let actual = try PrecisionSamples.run(candidate, inputs: inputs, rows: rows)
    var agreeing = 0
    if let first = expected.first, let width = fp32.signature.outputs.first?.elementsPerRow, width > 0 {
        for row in 0..<rows {
            let range = (row * width)..<((row + 1) * width)
            if PrecisionSamples.argmax(first[range]) == PrecisionSamples.argmax(actual[0][range]) { agreeing += 1 }
        }
    }
    var worst = 0.0
    for (want, got) in zip(expected, actual) {
        for (a, b) in zip(want, got) {
            let difference = Double(abs(a - b))
            // NaN on either side is the worst difference there is.
            worst = difference.isNaN ? .infinity : max(worst, difference)
        }
    }
    return PrecisionCheckResult(
        precision: candidate.precision,
        samples: samples,
        rows: rows,
        top1Agreement: rows > 0 ? Double(agreeing) / Double(rows) : 1,
        maxAbsError: worst,
        settings: settings
    )
}

/// A samples file: a JSON object with, for each model input, its name and a list of rows (each a list of
/// numbers, nested or flat); other keys (`labels`) are ignored.
enum PrecisionSamples {
    static func load(
        path: String,
        shownAs name: String,
        signature: ModelSignature
    ) throws(SwitchyardError) -> (inputs: [[Float]], rows: Int) {
        let prefix = "precision_check.samples: \(name)"
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw .invalidArgument("\(prefix): expected a JSON object of input names to lists of rows") }
        var inputs: [[Float]] = []
        var rows: Int?
        for spec in signature.inputs {
            guard let list = object[spec.name] as? [Any] else {
                throw .invalidArgument("\(prefix): no list of rows for input '\(spec.name)'")
            }
            guard rows == nil || rows == list.count else {
                throw .invalidArgument("\(prefix): input '\(spec.name)' has \(list.count) rows, expected \(rows!)")
            }
            rows = list.count
            var values: [Float] = []
            values.reserveCapacity(list.count * spec.elementsPerRow)
            for (index, row) in list.enumerated() {
                guard let flat = flatten(row), flat.count == spec.elementsPerRow else {
                    throw .invalidArgument(
                        "\(prefix): input '\(spec.name)' row \(index): expected \(spec.elementsPerRow) numbers"
                    )
                }
                values += flat
            }
            inputs.append(values)
        }
        guard let rows, rows > 0 else { throw .invalidArgument("\(prefix): expected at least one row") }
        return (inputs, rows)
    }

    /// A row's numbers in order, or nil when it holds anything but numbers and lists of numbers.
    static func flatten(_ value: Any) -> [Float]? {
        if let number = value as? Double { return [Float(number)] }
        if let number = value as? Int { return [Float(number)] }
        if let number = value as? NSNumber { return [number.floatValue] }
        guard let list = value as? [Any] else { return nil }
        var values: [Float] = []
        for item in list {
            guard let inner = flatten(item) else { return nil }
            values += inner
        }
        return values
    }

    static func run(_ engine: FusedEngine, inputs: [[Float]], rows: Int) throws(SwitchyardError) -> [[Float]] {
        let executor = engine.makeExecutor()
        let counts = engine.signature.outputs.map { rows * $0.elementsPerRow }
        let outputs = counts.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0) }
        let inputCopies = inputs.map { values in
            let pointer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = pointer.initialize(from: values)
            return pointer
        }
        defer {
            for pointer in outputs { pointer.deallocate() }
            for pointer in inputCopies { pointer.deallocate() }
        }
        for output in outputs { output.initialize(repeating: 0) }
        try executor.run(inputs: inputCopies.map { UnsafeBufferPointer($0) }, rows: rows, outputs: outputs)
        return outputs.map { Array($0) }
    }

    static func argmax(_ row: ArraySlice<Float>) -> Int {
        var best = row.startIndex
        for index in row.indices where row[index] > row[best] { best = index }
        return best - row.startIndex
    }
}
