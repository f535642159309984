// Datatype conversion at the RPC edges: engines compute in FP32 whatever a tensor's declared datatype, so a
// request's inputs are widened to FP32 once when it is decoded and a response's outputs are narrowed to their
// declared datatypes once when it is encoded. The element loops are C (CSwitchyardConvert), vectorized per
// instruction set and chosen once per process; this file maps datatypes onto them and reads the typed
// `contents` fields, which are not on any fast path.

import CSwitchyardConvert
import SwitchyardCore
import SwitchyardProto

#if canImport(Glibc)
    import Glibc
#endif

/// Conversions between a tensor's declared datatype and FP32.
///
/// Decoding (to FP32) is what onnxruntime's Cast to float does: integers round to the nearest float (ties to
/// even), FP64 rounds to nearest (overflowing to ±Inf), FP16 and BF16 widen exactly, NaN and ±Inf pass through,
/// BOOL is 0 or 1. Encoding (from FP32):
/// - FP16, BF16: nearest, ties to even; past the type's range ±Inf; NaN stays NaN.
/// - FP64: exact.
/// - integers: truncated toward zero like a C cast, saturating at the type's bounds (so +Inf is the maximum and
///   −Inf the minimum), NaN to 0. Engines return integral values for labels and argmax; the rule only matters
///   for values a model should not produce.
/// - BOOL: 1 for anything but ±0 (NaN included, as a C cast to bool), else 0.
enum TensorConversion {
    /// The instruction-set path for this CPU, checked once.
    static let path = sy_convert_best_path()

    /// The path's name, for logs and benchmarks.
    static var pathName: String { path == Int32(SY_CONVERT_AVX2) ? "avx2+f16c" : "portable" }

    /// The C library's number for a datatype (Triton's TYPE_* numbering).
    @inline(__always)
    static func code(_ dataType: DataType) -> Int32 { Int32(dataType.modelConfigNumber) }

    /// Widens `destination.count` little-endian elements of `dataType` at `source` (any alignment) to FP32.
    /// `dataType` is never BYTES (signatures do not declare it).
    @inline(__always)
    static func toFloat(
        _ dataType: DataType,
        from source: UnsafeRawPointer,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        guard let base = destination.baseAddress, destination.count > 0 else { return }
        if dataType == .fp32 {
            memcpy(base, source, destination.count * 4)
        } else {
            let status = sy_convert_to_float(path, code(dataType), source, base, destination.count)
            precondition(status == 0, "no conversion from \(dataType.rawValue) to FP32")
        }
    }

    /// Narrows FP32 values to `dataType`, little-endian, at `destination` (any alignment), which holds
    /// `source.count × elementSize` bytes. `dataType` is never BYTES.
    @inline(__always)
    static func fromFloat(
        _ dataType: DataType,
        _ source: UnsafeBufferPointer<Float>,
        into destination: UnsafeMutableRawPointer
    ) {
        guard let base = source.baseAddress, source.count > 0 else { return }
        if dataType == .fp32 {
            memcpy(destination, base, source.count * 4)
        } else {
            let status = sy_convert_from_float(path, code(dataType), base, destination, source.count)
            precondition(status == 0, "no conversion from FP32 to \(dataType.rawValue)")
        }
    }
}

/// The typed `contents` field of a request tensor, as the protocol maps datatypes onto them.
enum TypedContentsField: String, CaseIterable {
    case bool = "bool_contents"
    case int = "int_contents"
    case int64 = "int64_contents"
    case uint = "uint_contents"
    case uint64 = "uint64_contents"
    case fp32 = "fp32_contents"
    case fp64 = "fp64_contents"
    case bytes = "bytes_contents"

    /// The field that carries `dataType`; `nil` for FP16 and BF16, which travel only as raw bytes.
    init?(carrying dataType: DataType) {
        switch dataType {
        case .bool: self = .bool
        case .int8, .int16, .int32: self = .int
        case .int64: self = .int64
        case .uint8, .uint16, .uint32: self = .uint
        case .uint64: self = .uint64
        case .fp32: self = .fp32
        case .fp64: self = .fp64
        case .bytes: self = .bytes
        case .fp16, .bf16: return nil
        }
    }

    /// How many values the field holds in `contents`.
    func count(in contents: Inference__InferTensorContents) -> Int {
        switch self {
        case .bool: contents.n_bool_contents
        case .int: contents.n_int_contents
        case .int64: contents.n_int64_contents
        case .uint: contents.n_uint_contents
        case .uint64: contents.n_uint64_contents
        case .fp32: contents.n_fp32_contents
        case .fp64: contents.n_fp64_contents
        case .bytes: contents.n_bytes_contents
        }
    }

    /// The first field with values in `contents`, other than `except`.
    static func populated(in contents: Inference__InferTensorContents, except: Self? = nil) -> Self? {
        allCases.first { $0 != except && $0.count(in: contents) > 0 }
    }
}

extension TensorConversion {
    /// Widens the values of a typed `contents` field to FP32. The field is the one `dataType` travels in and
    /// holds `destination.count` values; INT8/INT16 (in int_contents) and UINT8/UINT16 (in uint_contents) are
    /// checked against their type's range, since the protocol carries them in wider fields.
    /// - Throws: `invalidArgument` naming the input, the element and the range when a value does not fit.
    static func toFloat(
        _ dataType: DataType,
        contents: Inference__InferTensorContents,
        into destination: UnsafeMutableBufferPointer<Float>,
        input name: String
    ) throws(SwitchyardError) {
        let count = destination.count
        func outOfRange(_ index: Int, _ value: some BinaryInteger, _ range: ClosedRange<Int64>, field: String)
            -> SwitchyardError
        {
            .invalidArgument(
                "input '\(name)': contents.\(field)[\(index)] = \(value) is out of range for \(dataType.rawValue); "
                    + "expected \(range.lowerBound)...\(range.upperBound)"
            )
        }
        switch dataType {
        case .fp32:
            for index in 0..<count { destination[index] = contents.fp32_contents[index] }
        case .fp64:
            for index in 0..<count { destination[index] = Float(contents.fp64_contents[index]) }
        case .int8, .int16, .int32:
            let range: ClosedRange<Int64> =
                dataType == .int8
                ? Int64(Int8.min)...Int64(Int8.max)
                : dataType == .int16 ? Int64(Int16.min)...Int64(Int16.max) : Int64(Int32.min)...Int64(Int32.max)
            for index in 0..<count {
                let value = contents.int_contents[index]
                guard range.contains(Int64(value)) else { throw outOfRange(index, value, range, field: "int_contents") }
                destination[index] = Float(value)
            }
        case .int64:
            for index in 0..<count { destination[index] = Float(contents.int64_contents[index]) }
        case .uint8, .uint16, .uint32:
            let range: ClosedRange<Int64> =
                dataType == .uint8
                ? 0...Int64(UInt8.max) : dataType == .uint16 ? 0...Int64(UInt16.max) : 0...Int64(UInt32.max)
            for index in 0..<count {
                let value = contents.uint_contents[index]
                guard range.contains(Int64(value)) else {
                    throw outOfRange(index, value, range, field: "uint_contents")
                }
                destination[index] = Float(value)
            }
        case .uint64:
            for index in 0..<count { destination[index] = Float(contents.uint64_contents[index]) }
        case .bool:
            for index in 0..<count { destination[index] = contents.bool_contents[index] != 0 ? 1 : 0 }
        case .fp16, .bf16, .bytes:
            preconditionFailure("\(dataType.rawValue) has no typed contents conversion")
        }
    }
}
