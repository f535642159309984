// Tensor descriptions shared by the engine, the worker pools and the RPC layer.

/// An Open Inference Protocol datatype, named as on the wire ("FP32", "INT64", …).
public enum DataType: String, Sendable, Hashable, CaseIterable, Codable {
    case bool = "BOOL"
    case uint8 = "UINT8"
    case uint16 = "UINT16"
    case uint32 = "UINT32"
    case uint64 = "UINT64"
    case int8 = "INT8"
    case int16 = "INT16"
    case int32 = "INT32"
    case int64 = "INT64"
    case fp16 = "FP16"
    case fp32 = "FP32"
    case fp64 = "FP64"
    case bytes = "BYTES"
    case bf16 = "BF16"

    /// Bytes per element, or `nil` for variable-size `BYTES`.
    public var elementSize: Int? {
        switch self {
        case .bool, .uint8, .int8: 1
        case .uint16, .int16, .fp16, .bf16: 2
        case .uint32, .int32, .fp32: 4
        case .uint64, .int64, .fp64: 8
        case .bytes: nil
        }
    }

    /// The number of Triton's model-configuration `DataType` enum for this datatype (TYPE_BOOL = 1 …
    /// TYPE_BF16 = 14; BYTES is TYPE_STRING = 13), as ModelConfig reports it.
    public var modelConfigNumber: Int {
        switch self {
        case .bool: 1
        case .uint8: 2
        case .uint16: 3
        case .uint32: 4
        case .uint64: 5
        case .int8: 6
        case .int16: 7
        case .int32: 8
        case .int64: 9
        case .fp16: 10
        case .fp32: 11
        case .fp64: 12
        case .bytes: 13
        case .bf16: 14
        }
    }
}

/// The name, datatype and shape of a model input or output. A dimension of -1 is variable; the first
/// dimension of a batched model is the batch (-1).
@MemberwiseInit
public struct TensorSpec: Sendable, Hashable, CustomStringConvertible {
    /// Tensor name as the model declares it.
    public var name: String
    /// Element datatype.
    public var dataType: DataType
    /// Shape including the leading batch dimension; -1 marks a variable dimension.
    public var shape: [Int]

    /// Elements per batch row: the product of every dimension after the first. Requires those to be fixed.
    public var elementsPerRow: Int { shape.dropFirst().reduce(1) { $0 * max($1, 1) } }

    public var description: String { "\(dataType.rawValue) \(Shape.format(shape))" }
}

/// Helpers for shapes as lists of dimensions.
public enum Shape {
    /// Formats a shape as `[-1, 64]`.
    public static func format(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

    /// Element count of a concrete shape, or `nil` if a dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            count = product
        }
        return count
    }
}

/// What a model takes and returns.
@MemberwiseInit
public struct ModelSignature: Sendable, Hashable {
    /// Inputs in the order the model declares them.
    public var inputs: [TensorSpec]
    /// Outputs in the order the model declares them.
    public var outputs: [TensorSpec]
}
