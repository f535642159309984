// The request bodies a run cycles through, built once before it starts: random inputs shaped by the
// model's metadata, or rows taken from a data file (a samples.json like models/digits/samples.json, or a
// NumPy .npy array). Each body is a whole gRPC message (5-byte prefix included), so sending one is a copy.

import CSwitchyardConvert
import Foundation
public import SwitchyardCore

/// Where request inputs come from.
public enum InputSource: Sendable, Hashable {
    /// Random values of the right datatype and shape, from ModelMetadata.
    case random
    /// A JSON object mapping input names to lists of rows (other keys, such as "labels", are ignored).
    case samplesJSON(path: String)
    /// A NumPy .npy array whose rows feed the model's single input (or the named one).
    case npy(path: String, input: String?)

    /// Picks the source from a path's extension: `.npy` or JSON.
    public static func file(_ path: String, input: String? = nil) -> InputSource {
        path.hasSuffix(".npy") ? .npy(path: path, input: input) : .samplesJSON(path: path)
    }
}

/// A set of framed ModelInferRequest bodies.
public struct RequestBodies: Sendable {
    /// Framed gRPC messages (flag, 4-byte length, message).
    public let bodies: [[UInt8]]

    /// Wraps ready-made framed bodies.
    public init(framed: [[UInt8]]) { bodies = framed }

    /// Frames a protobuf message for gRPC (uncompressed).
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        let n = UInt32(message.count)
        return [0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + message
    }

    /// Builds bodies for a model.
    /// - Parameters:
    ///   - model: the model's metadata.
    ///   - version: the version to ask for ("" for the server's default).
    ///   - batch: rows per request.
    ///   - source: where inputs come from.
    ///   - variants: how many distinct bodies to build for random inputs.
    ///   - seed: random seed.
    /// - Throws: `SwitchyardError.invalidArgument` naming the file, input or datatype that does not fit.
    public static func build(
        model: ModelDescription,
        version: String,
        batch: Int,
        source: InputSource,
        variants: Int = 16,
        seed: UInt64 = 7
    ) throws(SwitchyardError) -> RequestBodies {
        guard batch >= 1 else { throw .invalidArgument("batch must be at least 1, got \(batch)") }
        guard !model.inputs.isEmpty else { throw .invalidArgument("model '\(model.name)' reports no inputs") }
        let outputs = model.outputs.map(\.name)
        var requests: [[InputTensor]] = []
        switch source {
        case .random:
            var rng = SplitMix64(seed: seed)
            for _ in 0..<max(1, variants) {
                requests.append(
                    try model.inputs.map { spec throws(SwitchyardError) in
                        try randomTensor(spec, batch: batch, rng: &rng)
                    }
                )
            }
        case .samplesJSON(let path):
            let rows = try samplesJSON(path: path)
            for spec in model.inputs where rows[spec.name] == nil {
                throw .invalidArgument(
                    "\(path): no rows for input '\(spec.name)'; expected a JSON object with keys "
                        + model.inputs.map { "'\($0.name)'" }.joined(separator: ", ")
                )
            }
            requests = try batches(model: model, batch: batch, path: path) { rows[$0]! }
        case .npy(let path, let name):
            let inputName = name ?? (model.inputs.count == 1 ? model.inputs[0].name : "")
            guard model.inputs.count == 1 || name != nil, model.inputs.contains(where: { $0.name == inputName }) else {
                throw .invalidArgument(
                    "\(path): a .npy file feeds one input; name it (inputs: "
                        + model.inputs.map(\.name).joined(separator: ", ") + ")"
                )
            }
            let rows = try NPYFile.rows(path: path)
            requests = try batches(
                model: ModelDescription(
                    name: model.name,
                    versions: model.versions,
                    platform: model.platform,
                    inputs: model.inputs.filter { $0.name == inputName },
                    outputs: model.outputs
                ),
                batch: batch,
                path: path
            ) { _ in rows }
        }
        return RequestBodies(
            framed: requests.map {
                frame(
                    InferenceMessages.modelInferRequest(
                        model: model.name,
                        version: version,
                        inputs: $0,
                        outputs: outputs
                    )
                )
            }
        )
    }

    /// Cuts rows (as doubles) into request-sized batches, cycling through the rows.
    private static func batches(
        model: ModelDescription,
        batch: Int,
        path: String,
        rows: (String) -> [[Double]]
    ) throws(SwitchyardError) -> [[InputTensor]] {
        let counts = model.inputs.map { rows($0.name).count }
        guard let rowCount = counts.min(), rowCount > 0 else { throw .invalidArgument("\(path): no rows") }
        let requestCount = max(1, rowCount / batch)
        var out: [[InputTensor]] = []
        for r in 0..<requestCount {
            var tensors: [InputTensor] = []
            for spec in model.inputs {
                let all = rows(spec.name)
                let width = all[0].count
                let expected = spec.shape.dropFirst().reduce(Int64(1)) { $0 * max($1, 1) }
                guard Int64(width) == expected else {
                    throw .invalidArgument(
                        "\(path): input '\(spec.name)': rows have \(width) values, expected \(expected) "
                            + "(shape \(spec.shape))"
                    )
                }
                var values: [Double] = []
                values.reserveCapacity(batch * width)
                for i in 0..<batch {
                    let row = all[(r * batch + i) % all.count]
                    guard row.count == width else {
                        throw .invalidArgument("\(path): input '\(spec.name)': rows differ in length")
                    }
                    values.append(contentsOf: row)
                }
                let shape = [Int64(batch)] + spec.shape.dropFirst().map { max($0, 1) }
                tensors.append(
                    InputTensor(
                        name: spec.name,
                        datatype: spec.datatype,
                        shape: shape,
                        raw: try encode(values, datatype: spec.datatype, input: spec.name)
                    )
                )
            }
            out.append(tensors)
        }
        return out
    }

    private static func randomTensor(
        _ spec: TensorDescription,
        batch: Int,
        rng: inout SplitMix64
    ) throws(SwitchyardError) -> InputTensor {
        var shape = spec.shape
        if let first = shape.first, first == -1 { shape[0] = Int64(batch) }
        shape = shape.map { $0 < 0 ? 1 : $0 }
        let count = Int(shape.reduce(1, *))
        var values: [Double] = []
        values.reserveCapacity(count)
        let integer = spec.datatype.hasPrefix("INT") || spec.datatype.hasPrefix("UINT")
        for _ in 0..<count {
            let u = rng.unitInterval()
            values.append(spec.datatype == "BOOL" ? (u < 0.5 ? 0 : 1) : integer ? (u * 100).rounded(.down) : u)
        }
        return InputTensor(
            name: spec.name,
            datatype: spec.datatype,
            shape: shape,
            raw: try encode(values, datatype: spec.datatype, input: spec.name)
        )
    }

    /// Encodes values little-endian in a datatype: floating-point types round to nearest (FP16 and BF16 through
    /// FP32, ties to even), integer types truncate toward zero and saturate (NaN is 0), BOOL is 1 for nonzero.
    /// - Throws: `invalidArgument` for BYTES or an unknown datatype.
    static func encode(_ values: [Double], datatype: String, input: String) throws(SwitchyardError) -> [UInt8] {
        if datatype == "FP16" || datatype == "BF16" {
            let floats = values.map { Float($0) }
            let code = Int32(datatype == "FP16" ? SY_DTYPE_FP16 : SY_DTYPE_BF16)
            return [UInt8](unsafeUninitializedCapacity: 2 * floats.count) { buffer, initialized in
                floats.withUnsafeBufferPointer { source in
                    if let base = source.baseAddress, let destination = buffer.baseAddress {
                        _ = sy_convert_from_float(sy_convert_best_path(), code, base, destination, source.count)
                    }
                }
                initialized = 2 * floats.count
            }
        }
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        // Saturating truncation: Int64(_:) itself traps on NaN and on values past its range.
        func integer(_ v: Double) -> Int64 {
            v.isNaN ? 0 : v >= 0x1p63 ? .max : v < -0x1p63 ? .min : Int64(v)
        }
        for v in values {
            switch datatype {
            case "FP32": put(Float(v).bitPattern)
            case "FP64": put(v.bitPattern)
            case "INT8": put(Int8(clamping: integer(v)))
            case "INT16": put(Int16(clamping: integer(v)))
            case "INT32": put(Int32(clamping: integer(v)))
            case "INT64": put(integer(v))
            case "BOOL": put(UInt8(v != 0 ? 1 : 0))
            case "UINT8": put(UInt8(clamping: integer(v)))
            case "UINT16": put(UInt16(clamping: integer(v)))
            case "UINT32": put(UInt32(clamping: integer(v)))
            case "UINT64": put(v >= 0x1p64 ? UInt64.max : v >= 0 ? UInt64(v) : 0)
            default:
                throw .invalidArgument(
                    "input '\(input)': datatype \(datatype) is not supported by the load generator; expected "
                        + "FP16, BF16, FP32, FP64, INT8-64, UINT8-64 or BOOL"
                )
            }
        }
        return out
    }

    /// Reads a samples JSON file: `{"input": [[row], …], …}`.
    static func samplesJSON(path: String) throws(SwitchyardError) -> [String: [[Double]]] {
        let text = try readFile(path)
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(text)) } catch {
            throw .invalidArgument("\(path): not valid JSON (\(error))")
        }
        guard let dictionary = object as? [String: Any] else {
            throw .invalidArgument("\(path): expected a JSON object mapping input names to lists of rows")
        }
        var result: [String: [[Double]]] = [:]
        for (key, rows) in dictionary {
            guard let list = rows as? [Any] else { continue }
            var parsed: [[Double]] = []
            for row in list {
                if let numbers = row as? [Any] {
                    parsed.append(numbers.compactMap { ($0 as? NSNumber)?.doubleValue })
                } else if let number = row as? NSNumber {
                    parsed.append([number.doubleValue])
                }
            }
            result[key] = parsed
        }
        return result
    }

    static func readFile(_ path: String) throws(SwitchyardError) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw .invalidArgument("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}

/// A .npy file's rows (NumPy's format through `NPY`: versions 1–3, little-endian numbers or booleans, C order).
enum NPYFile {
    static func rows(path: String) throws(SwitchyardError) -> [[Double]] {
        let (shape, values, _) = try NPY.decode(RequestBodies.readFile(path), what: path, as: Double.self)
        guard let rows = shape.first, rows > 0 else { throw .invalidArgument("\(path): empty array") }
        let width = values.count / rows
        return (0..<rows).map { Swift.Array(values[($0 * width)..<(($0 + 1) * width)]) }
    }
}
