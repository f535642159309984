// protobuf-c hands string fields over as C strings, so a name with a NUL byte inside ("digits\0x") would be
// read as its prefix ("digits") and served. Before decoding, the request's wire bytes are walked once and
// every string field the service reads as a name is checked: no NUL, valid UTF-8 (as proto3 requires), and
// names (of models, versions, tensors) no longer than `StringFieldCheck.maxNameBytes`, so that a request naming
// a 100 KB model costs the event loop a length check, not a hash and a lookup of 100 KB. Refusals are
// INVALID_ARGUMENT naming the field.

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// The string fields of one message type that are checked, and the nested messages to descend into.
struct StringFieldSchema: Sendable {
    /// Field number → field name, for string fields.
    var strings: [UInt32: String] = [:]
    /// Field number → field name, for string fields that are names, bounded by `StringFieldCheck.maxNameBytes`.
    var names: [UInt32: String] = [:]
    /// Field number → (field name, schema) for message fields (maps are messages of key 1 and value 2).
    var messages: [UInt32: (name: String, schema: StringFieldSchema)] = [:]

    /// `InferParameter`: only `string_param` is a string.
    static let parameter = StringFieldSchema(strings: [3: "string_param"])
    /// A `map<string, InferParameter>` entry.
    static let parameterEntry = StringFieldSchema(strings: [1: "key"], messages: [2: ("value", parameter)])
    /// Requests of the form `{1 string name; 2 string version}` (ModelReady, ModelMetadata, ModelConfig,
    /// ModelStatistics).
    static let nameAndVersion = StringFieldSchema(names: [1: "name", 2: "version"])
    /// `switchyard.v1.Feedback/Report`'s request.
    static let feedback = StringFieldSchema(strings: [1: "request_id"])
    /// `grpc.health.v1.HealthCheckRequest`.
    static let healthCheck = StringFieldSchema(strings: [1: "service"])
    /// Requests whose field 1 is a region name (the CUDA shared-memory requests).
    static let name = StringFieldSchema(strings: [1: "name"])
    /// `SystemSharedMemoryRegisterRequest`.
    static let sharedMemoryRegister = StringFieldSchema(strings: [1: "name", 2: "key"])
    /// `RepositoryIndexRequest`.
    static let repositoryIndex = StringFieldSchema(strings: [1: "repository_name"])
    /// `RepositoryModelLoadRequest` and `RepositoryModelUnloadRequest` (parameter values: `string_param` = 3).
    static let repositoryChange = StringFieldSchema(
        strings: [1: "repository_name"],
        names: [2: "model_name"],
        messages: [3: ("parameters", parameterEntry)]
    )
    /// `TraceSettingRequest`.
    static let traceSetting = StringFieldSchema(
        strings: [2: "model_name"],
        messages: [
            1: (
                "settings",
                StringFieldSchema(
                    strings: [1: "key"],
                    messages: [2: ("value", StringFieldSchema(strings: [1: "value"]))]
                )
            )
        ]
    )
    /// `LogSettingsRequest`.
    static let logSettings = StringFieldSchema(
        messages: [1: ("settings", StringFieldSchema(strings: [1: "key"], messages: [2: ("value", parameter)]))]
    )
    /// `ModelInferRequest`.
    static let inferRequest = StringFieldSchema(
        strings: [3: "id"],
        names: [1: "model_name", 2: "model_version"],
        messages: [
            4: ("parameters", parameterEntry),
            5: (
                "inputs",
                StringFieldSchema(names: [1: "name", 2: "datatype"], messages: [4: ("parameters", parameterEntry)])
            ),
            6: ("outputs", StringFieldSchema(names: [1: "name"], messages: [2: ("parameters", parameterEntry)])),
        ]
    )
}

/// Walks protobuf wire bytes and checks the string fields a schema names.
enum StringFieldCheck {
    /// The longest name accepted, in bytes: model directories are file names (at most 255 bytes on Linux), and
    /// tensor names of real exports are far shorter.
    static let maxNameBytes = 1024

    /// Throws `invalidArgument` naming the first string field with a NUL byte or invalid UTF-8. Malformed wire
    /// bytes are left for the decoder to refuse.
    static func check(_ message: UnsafeRawBufferPointer, schema: StringFieldSchema) throws(SwitchyardError) {
        guard let base = message.baseAddress, message.count > 0 else { return }
        if let problem = scan(base.assumingMemoryBound(to: UInt8.self), count: message.count, schema: schema, depth: 0)
        {
            throw .invalidArgument(problem)
        }
    }

    /// The first problem as "field: what is wrong", or nil.
    private static func scan(
        _ bytes: UnsafePointer<UInt8>,
        count: Int,
        schema: StringFieldSchema,
        depth: Int
    ) -> String? {
        var index = 0
        var repeats = SIMD8<Int32>()  // occurrences of message fields 0–7 so far, without allocating
        while index < count {
            guard let key = varint(bytes, count: count, index: &index) else { return nil }
            let field = UInt32(truncatingIfNeeded: key >> 3)
            switch key & 7 {
            case 0:
                guard varint(bytes, count: count, index: &index) != nil else { return nil }
            case 1:
                index += 8
            case 5:
                index += 4
            case 2:
                guard let length = varint(bytes, count: count, index: &index), length <= UInt64(count - index)
                else { return nil }
                let start = index
                index += Int(length)
                if let name = schema.names[field] {
                    guard length <= UInt64(maxNameBytes) else {
                        return "\(name): is \(length) bytes long; expected a name of at most \(maxNameBytes) bytes"
                    }
                    let value = UnsafeBufferPointer(start: bytes + start, count: Int(length))
                    if let problem = problem(in: value) { return "\(name): \(problem)" }
                } else if let name = schema.strings[field] {
                    let value = UnsafeBufferPointer(start: bytes + start, count: Int(length))
                    if let problem = problem(in: value) { return "\(name): \(problem)" }
                } else if let (name, nested) = schema.messages[field], depth < 4 {
                    let slot = Int(field & 7)
                    let position = repeats[slot]
                    repeats[slot] = position &+ 1
                    if let problem = scan(bytes + start, count: Int(length), schema: nested, depth: depth + 1) {
                        return "\(name)[\(position)].\(problem)"
                    }
                }
            default:
                return nil  // groups or a malformed key: the decoder decides
            }
        }
        return nil
    }

    /// What a C string cannot carry, or what proto3 forbids in a string. Both checks run in optimised C and
    /// standard-library code (memchr, the stdlib's UTF-8 validation): a 100 KB name costs microseconds.
    private static func problem(in value: UnsafeBufferPointer<UInt8>) -> String? {
        guard let base = value.baseAddress, !value.isEmpty else { return nil }
        if let nul = memchr(base, 0, value.count) {
            let offset = UnsafeRawPointer(nul) - UnsafeRawPointer(base)
            return "contains a NUL byte at offset \(offset); expected a name without NUL"
        }
        if String(validating: value, as: UTF8.self) == nil { return "is not valid UTF-8" }
        return nil
    }

    private static func varint(_ bytes: UnsafePointer<UInt8>, count: Int, index: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < count, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}

extension InferenceMethod {
    /// The string fields of this method's request that are checked before decoding.
    var stringFields: StringFieldSchema? {
        switch self {
        case .modelInfer, .modelStreamInfer: .inferRequest
        case .modelReady, .modelMetadata, .modelConfig, .modelStatistics: .nameAndVersion
        case .healthCheck: .healthCheck
        case .feedbackReport: .feedback
        case .serverLive, .serverReady, .serverMetadata: nil
        case .repositoryIndex: .repositoryIndex
        case .repositoryModelLoad, .repositoryModelUnload: .repositoryChange
        case .cudaSharedMemoryStatus, .cudaSharedMemoryRegister, .cudaSharedMemoryUnregister: .name
        case .systemSharedMemoryStatus, .systemSharedMemoryUnregister: .name
        case .systemSharedMemoryRegister: .sharedMemoryRegister
        case .traceSetting: .traceSetting
        case .logSettings: .logSettings
        }
    }
}
