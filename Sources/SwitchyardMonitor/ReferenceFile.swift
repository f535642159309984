// Loading an operator's reference sample (.npy matrix or .json rows) into a profile, refusing a sample
// whose width or element type does not match the version's inputs.

import Foundation
public import SwitchyardCore

/// Reads reference samples.
public enum ReferenceFile {
    /// Loads the reference at `path` and profiles it.
    /// - Parameters:
    ///   - path: a `.npy` float/integer matrix `[rows, width]` (or a vector when width is 1), or a `.json` array
    ///     of rows, or an object `{"inputs": [[…]], "outputs": [[…]]}` whose outputs give prediction drift a
    ///     reference too.
    ///   - outputsPath: with a `.npy` reference, a `.npy` `[rows, output width]` of the same rows' outputs
    ///     (`drift.reference_outputs`), for prediction drift.
    ///   - inputs: the version's inputs: names and values per row, in signature order.
    ///   - outputs: the version's outputs, likewise.
    ///   - options: binning.
    /// - Throws: `invalidArgument` naming the file, the expected shape and what it holds instead; `notFound`
    ///   when it cannot be read.
    public static func load(
        path: String,
        outputsPath: String? = nil,
        inputs: [(name: String, width: Int)],
        outputs: [(name: String, width: Int)],
        options: ProfileOptions
    ) throws(SwitchyardError) -> ReferenceProfile {
        let what = "drift.reference '\(path)'"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SwitchyardError(.notFound, "\(what): cannot read it")
        }
        let width = inputs.reduce(0) { $0 + $1.width }
        let outputWidth = outputs.reduce(0) { $0 + $1.width }
        let expected =
            "expected [rows, \(width)] numbers (inputs "
            + inputs.map { "\($0.name): \($0.width)" }.joined(separator: ", ") + " per row)"
        var inputValues: [Float]
        var outputValues: [Float] = []
        if path.hasSuffix(".npy") {
            let array = try NPY.decode([UInt8](data), what: what)
            let columns = array.shape.count == 2 ? array.shape[1] : array.shape.count == 1 && width == 1 ? 1 : -1
            guard columns == width, array.values.count > 0 else {
                throw SwitchyardError(
                    .invalidArgument,
                    "\(what): \(expected), got shape \(array.shape) of '\(array.descr)'"
                )
            }
            inputValues = array.values
            if let outputsPath {
                outputValues = try npyOutputs(outputsPath, outputs: outputs, rows: array.shape[0])
            }
        } else {
            let parsed: Any
            do {
                parsed = try JSONSerialization.jsonObject(with: data)
            } catch {
                throw SwitchyardError(
                    .invalidArgument,
                    "\(what): expected JSON rows or {\"inputs\": …}, got invalid JSON: \(error)"
                )
            }
            let rowsObject: Any?
            if let object = parsed as? [String: Any] {
                rowsObject = object["inputs"]
                if let outputRows = object["outputs"] {
                    outputValues = try matrix(
                        outputRows,
                        width: outputWidth,
                        what: "\(what) outputs",
                        expected: "expected rows of \(outputWidth) numbers"
                    )
                }
            } else {
                rowsObject = parsed
            }
            inputValues = try matrix(rowsObject as Any, width: width, what: what, expected: expected)
        }
        let rows = inputValues.count / max(width, 1)
        if !outputValues.isEmpty, outputValues.count != rows * outputWidth {
            throw SwitchyardError(
                .invalidArgument,
                "\(what): expected as many output rows as input rows (\(rows)), got \(outputValues.count / max(outputWidth, 1))"
            )
        }
        return ReferenceProfile.build(
            inputs: inputValues,
            inputNames: ReferenceProfile.featureNames(inputs),
            outputs: outputValues,
            outputLayout: outputValues.isEmpty ? [] : outputs,
            options: options
        )
    }

    /// The `drift.reference_outputs` matrix: as many rows as the input reference, the outputs' width.
    private static func npyOutputs(_ path: String, outputs: [(name: String, width: Int)], rows: Int)
        throws(SwitchyardError) -> [Float]
    {
        let what = "drift.reference_outputs '\(path)'"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SwitchyardError(.notFound, "\(what): cannot read it")
        }
        let width = outputs.reduce(0) { $0 + $1.width }
        let array = try NPY.decode([UInt8](data), what: what)
        let columns = array.shape.count == 2 ? array.shape[1] : array.shape.count == 1 && width == 1 ? 1 : -1
        guard columns == width, array.shape.first == rows else {
            throw SwitchyardError(
                .invalidArgument,
                "\(what): expected [\(rows), \(width)] numbers (the reference's \(rows) rows; outputs "
                    + outputs.map { "\($0.name): \($0.width)" }.joined(separator: ", ")
                    + " per row), got shape \(array.shape) of '\(array.descr)'"
            )
        }
        return array.values
    }

    private static func matrix(_ object: Any, width: Int, what: String, expected: String) throws(SwitchyardError)
        -> [Float]
    {
        guard let rows = object as? [Any], !rows.isEmpty else {
            throw SwitchyardError(.invalidArgument, "\(what): \(expected), got no rows")
        }
        var values: [Float] = []
        values.reserveCapacity(rows.count * width)
        for (index, row) in rows.enumerated() {
            let numbers: [Any] = (row as? [Any]) ?? (width == 1 ? [row] : [])
            guard numbers.count == width else {
                throw SwitchyardError(
                    .invalidArgument,
                    "\(what): \(expected), got \(numbers.count) values in row \(index)"
                )
            }
            for number in numbers {
                guard let value = number as? NSNumber else {
                    throw SwitchyardError(.invalidArgument, "\(what): \(expected), got a non-number in row \(index)")
                }
                values.append(value.floatValue)
            }
        }
        return values
    }
}
