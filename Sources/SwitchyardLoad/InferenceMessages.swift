// The few KServe v2 messages the load generator writes and reads, in protobuf wire format: it encodes
// ModelInferRequest and ModelMetadataRequest bodies once per run, decodes one ModelMetadataResponse, and
// per response pulls only `model_version` (field 2) out of the ModelInferResponse. Field numbers follow
// the Open Inference Protocol (see /proto); a hand-written codec keeps the per-response work to a scan.

public import SwitchyardCore

/// A tensor's name, datatype and shape, as ModelMetadata reports it (-1 for a variable dimension).
@MemberwiseInit
public struct TensorDescription: Sendable, Hashable, Codable {
    /// The tensor's name.
    public var name: String
    /// The datatype string, e.g. "FP32".
    public var datatype: String
    /// The shape; -1 marks a variable dimension.
    public var shape: [Int64]
}

/// What ModelMetadata says about a model.
public struct ModelDescription: Sendable, Hashable, Codable {
    /// The model's name.
    public var name: String
    /// Its available versions.
    public var versions: [String]
    /// Its platform string.
    public var platform: String
    /// Its inputs.
    public var inputs: [TensorDescription]
    /// Its outputs.
    public var outputs: [TensorDescription]
}

/// One input tensor of a request, with its raw little-endian contents.
@MemberwiseInit
public struct InputTensor: Sendable, Hashable {
    /// The input's name.
    public var name: String
    /// The datatype string.
    public var datatype: String
    /// The concrete shape (no -1).
    public var shape: [Int64]
    /// Raw contents, little-endian, row-major.
    public var raw: [UInt8]
}

/// Protobuf wire encoding and decoding for the messages above.
public enum InferenceMessages {
    /// Encodes a ModelInferRequest carrying its inputs in `raw_input_contents`.
    public static func modelInferRequest(
        model: String,
        version: String = "",
        id: String = "",
        inputs: [InputTensor],
        outputs: [String] = []
    ) -> [UInt8] {
        var w = ProtobufWriter()
        w.string(1, model)
        w.string(2, version)
        w.string(3, id)
        for input in inputs {
            var t = ProtobufWriter()
            t.string(1, input.name)
            t.string(2, input.datatype)
            t.packedInt64(3, input.shape)
            w.bytes(5, t.bytes)
        }
        for output in outputs {
            var o = ProtobufWriter()
            o.string(1, output)
            w.bytes(6, o.bytes)
        }
        for input in inputs { w.bytes(7, input.raw) }
        return w.bytes
    }

    /// Encodes a ModelMetadataRequest (also the layout of ModelReadyRequest and ModelConfigRequest).
    public static func modelMetadataRequest(model: String, version: String = "") -> [UInt8] {
        var w = ProtobufWriter()
        w.string(1, model)
        w.string(2, version)
        return w.bytes
    }

    /// Decodes a ModelMetadataResponse.
    public static func decodeModelMetadata(_ bytes: [UInt8]) throws(SwitchyardError) -> ModelDescription {
        var model = ModelDescription(name: "", versions: [], platform: "", inputs: [], outputs: [])
        var r = ProtobufReader(bytes[...])
        while let (field, value) = try r.next() {
            switch (field, value) {
            case (1, .bytes(let b)): model.name = String(decoding: b, as: UTF8.self)
            case (2, .bytes(let b)): model.versions.append(String(decoding: b, as: UTF8.self))
            case (3, .bytes(let b)): model.platform = String(decoding: b, as: UTF8.self)
            case (4, .bytes(let b)): model.inputs.append(try decodeTensorMetadata(b))
            case (5, .bytes(let b)): model.outputs.append(try decodeTensorMetadata(b))
            default: continue
            }
        }
        return model
    }

    private static func decodeTensorMetadata(_ bytes: ArraySlice<UInt8>) throws(SwitchyardError) -> TensorDescription {
        var tensor = TensorDescription(name: "", datatype: "", shape: [])
        var r = ProtobufReader(bytes)
        while let (field, value) = try r.next() {
            switch (field, value) {
            case (1, .bytes(let b)): tensor.name = String(decoding: b, as: UTF8.self)
            case (2, .bytes(let b)): tensor.datatype = String(decoding: b, as: UTF8.self)
            case (3, .varint(let v)): tensor.shape.append(Int64(bitPattern: v))
            case (3, .bytes(let b)):
                var packed = ProtobufReader(b)
                while !packed.isAtEnd { tensor.shape.append(Int64(bitPattern: try packed.varint())) }
            default: continue
            }
        }
        return tensor
    }

    /// Finds `model_version` (field 2) at the top level of a ModelInferResponse prefix without decoding the
    /// rest; returns nil when the prefix ends first or the message is malformed.
    public static func modelVersion(inResponsePrefix bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var index = 0
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }
        while index < bytes.count {
            guard let key = varint() else { return nil }
            let field = key >> 3
            switch key & 7 {
            case 0: guard varint() != nil else { return nil }
            case 1: index += 8
            case 5: index += 4
            case 2:
                guard let length = varint(), length <= UInt64(bytes.count - index) else { return nil }
                if field == 2 {
                    return UnsafeRawBufferPointer(rebasing: bytes[index..<index + Int(length)])
                }
                index += Int(length)
            default: return nil
            }
        }
        return nil
    }
}

/// Appends protobuf fields.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    mutating func string(_ field: Int, _ value: String) {
        guard !value.isEmpty else { return }
        bytes(field, Array(value.utf8))
    }

    mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func packedInt64(_ field: Int, _ values: [Int64]) {
        guard !values.isEmpty else { return }
        var inner = ProtobufWriter()
        for v in values { inner.varint(UInt64(bitPattern: v)) }
        bytes(field, inner.bytes)
    }
}

/// Reads protobuf fields one at a time.
struct ProtobufReader {
    enum Value {
        case varint(UInt64)
        case fixed(UInt64)
        case bytes(ArraySlice<UInt8>)
    }

    private var bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    var isAtEnd: Bool { index >= bytes.endIndex }

    mutating func varint() throws(SwitchyardError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex, shift < 64 {
            let byte = bytes[index]
            index += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw .invalidArgument("malformed protobuf: truncated varint at byte \(index - bytes.startIndex)")
    }

    mutating func next() throws(SwitchyardError) -> (Int, Value)? {
        guard !isAtEnd else { return nil }
        let key = try varint()
        let field = Int(key >> 3)
        switch key & 7 {
        case 0: return (field, .varint(try varint()))
        case 1, 5:
            let width = key & 7 == 1 ? 8 : 4
            guard bytes.endIndex - index >= width else {
                throw .invalidArgument("malformed protobuf: field \(field) needs \(width) bytes")
            }
            var v: UInt64 = 0
            for i in 0..<width { v |= UInt64(bytes[index + i]) << (8 * UInt64(i)) }
            index += width
            return (field, .fixed(v))
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - index) else {
                throw .invalidArgument(
                    "malformed protobuf: field \(field) declares \(length) bytes, \(bytes.endIndex - index) remain"
                )
            }
            let value = bytes[index..<index + Int(length)]
            index += Int(length)
            return (field, .bytes(value))
        default:
            throw .invalidArgument("malformed protobuf: field \(field) has unsupported wire type \(key & 7)")
        }
    }
}
