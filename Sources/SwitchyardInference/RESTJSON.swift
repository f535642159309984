// JSON values for the v2 REST binding: the open shapes the protocol uses (`data` flat or nested, `parameters` of any
// scalar type) and the answers built from the registry, decoded and encoded with Foundation's JSONDecoder/JSONEncoder;
// on the infer call's hot path, requests parsed by simdjson (`JSONDocument`, read with JSONDecoder's messages by
// `JSONFields`) and answers written straight to bytes (`JSONWriter`). Errors name the field and what was expected.

import CJansson
import CSwitchyardJSON
import FoundationEssentials
import SwitchyardCore

/// Any JSON value. Numbers decode as `.number`; `.integer` and `.unsigned` exist so that answers keep counters
/// and shapes exact.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    /// An FP32 output value, written with the fewest digits that read back as the same `Float`.
    case float(Float)
    case integer(Int64)
    case unsigned(UInt64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        // Numbers first: they are nearly every value of a tensor's `data`.
        if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .float(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The kind of value, for messages.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number, .float, .integer, .unsigned: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

enum RESTJSON {
    /// Encodes an answer; non-finite floats become the strings "NaN", "Infinity" and "-Infinity".
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity",
            negativeInfinity: "-Infinity",
            nan: "NaN"
        )
        // Every value encoded here is plain data, so encoding cannot fail.
        return (try? Array(encoder.encode(value))) ?? Array(#"{"error":"cannot encode the answer"}"#.utf8)
    }

    /// `{"error": message}`.
    static func error(_ message: String) -> [UInt8] { encode(["error": message]) }

    /// A decoder error as a message naming the field and what was expected.
    static func describe(_ error: any Error, what: String) -> String {
        guard let error = error as? DecodingError else { return "malformed JSON in \(what): \(error)" }
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text.isEmpty ? "the top level" : "'\(text)'"
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))"
            return "\(what): missing field '\(key.stringValue)'\(parent)"
        case .typeMismatch(let type, let context):
            return "\(what): field \(path(context.codingPath)) has the wrong type; expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(what): field \(path(context.codingPath)) is null; expected \(typeName(type))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "malformed JSON in \(what): \(context.debugDescription)"
            }
            return "\(what): field \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "malformed JSON in \(what): \(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int64.Type, is Int.Type, is Double.Type: "a number"
        case is Bool.Type: "a boolean"
        case is [Int64].Type: "an array of integers"
        default: "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }
}

/// A JSON document parsed by simdjson (CSwitchyardJSON), read in place by `body`; values are valid only inside it.
enum JSONDocument {
    /// Parses `bytes` (any top-level value, every number read as a double) and passes the root to `body`.
    /// - Throws: `invalidArgument` "malformed JSON in `what`: ..." naming the byte offset of a syntax error, or
    ///   what `body` throws.
    static func parse<Result>(
        _ bytes: UnsafeRawBufferPointer,
        what: String,
        _ body: (JSONNode) throws(SwitchyardError) -> Result
    ) throws(SwitchyardError) -> Result {
        var failure: UnsafePointer<CChar>?
        let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self)
        guard let document = sy_json_parse(base, bytes.count, &failure) else {
            throw .invalidArgument("malformed JSON in \(what): \(syntaxError(bytes, simdjson: failure))")
        }
        defer { sy_json_release(document) }
        return try body(JSONNode(document: document, index: 0))
    }

    /// What is wrong with a text simdjson refused. simdjson names no position, so jansson reads the same bytes for
    /// its message and byte offset; a text only simdjson refuses (an integer beyond 64 bits) gets simdjson's message.
    private static func syntaxError(_ bytes: UnsafeRawBufferPointer, simdjson: UnsafePointer<CChar>?) -> String {
        var error = json_error_t()
        let flags = cswitchyard_json_request_flags()
        let root: UnsafeMutablePointer<json_t>?
        if let base = bytes.baseAddress, bytes.count > 0 {
            root = json_loadb(base.assumingMemoryBound(to: CChar.self), bytes.count, flags, &error)
        } else {
            var empty: CChar = 0
            root = json_loadb(&empty, 0, flags, &error)
        }
        if let root {
            cswitchyard_json_release(root)
            return simdjson.map { String(cString: $0) } ?? "unreadable JSON"
        }
        let text = withUnsafeBytes(of: error.text) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return "\(text) at byte \(error.position)"
    }
}

/// The kind of a `JSONNode`.
enum JSONType {
    case null, `false`, `true`, number, string, array, object
}

/// A value inside a `JSONDocument`.
struct JSONNode {
    let document: OpaquePointer
    let index: UInt32

    var type: JSONType {
        switch sy_json_type_of(document, index) {
        case SY_JSON_FALSE: .false
        case SY_JSON_TRUE: .true
        case SY_JSON_NUMBER: .number
        case SY_JSON_STRING: .string
        case SY_JSON_ARRAY: .array
        case SY_JSON_OBJECT: .object
        default: .null
        }
    }
    var isNull: Bool { type == .null }
    var isNumber: Bool { type == .number }

    /// The member `key` of an object (`nil` when absent or not an object).
    subscript(key: StaticString) -> JSONNode? {
        let pointer = UnsafeRawPointer(key.utf8Start).assumingMemoryBound(to: CChar.self)
        let member = sy_json_member(document, index, pointer, key.utf8CodeUnitCount)
        return member == UInt32.max ? nil : JSONNode(document: document, index: member)
    }

    /// The element count of an array (member count of an object).
    var count: Int { sy_json_count(document, index) }

    /// The element `index` of an array.
    subscript(index: Int) -> JSONNode {
        JSONNode(document: document, index: sy_json_element(document, self.index, index))
    }

    /// The value of a number.
    var number: Double { sy_json_number(document, index) }

    /// An array whose elements are all numbers, as doubles; `nil` for any other value. One call for the whole
    /// array: this is how a tensor's flat `data` is read.
    var numbers: [Double]? {
        guard type == .array else { return nil }
        let count = count
        var complete = false
        let values = [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            let copied = count == 0 ? 0 : sy_json_numbers(document, index, buffer.baseAddress)
            complete = copied == count
            initialized = copied
        }
        return complete ? values : nil
    }

    /// The text of a string.
    var string: String {
        var length = 0
        let text = sy_json_string(document, index, &length)
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }

    /// The value and everything in it.
    var value: JSONValue {
        switch type {
        case .object:
            var members: [String: JSONValue] = [:]
            for slot in 0..<count {
                var length = 0
                let key = sy_json_member_key(document, index, slot, &length)
                let name = String(decoding: UnsafeRawBufferPointer(start: key, count: length), as: UTF8.self)
                // A repeated key keeps its last value, as `subscript(key:)` reads it.
                members[name] = self[slot].value
            }
            return .object(members)
        case .array: return .array((0..<count).map { self[$0].value })
        case .string: return .string(string)
        case .number: return .number(number)
        case .true: return .bool(true)
        case .false: return .bool(false)
        case .null: return .null
        }
    }
}

/// Typed reads of a `JSONDocument`'s fields with the messages `RESTJSON.describe` gives JSONDecoder's errors:
/// "`what`: missing field 'name' in 'inputs[0]'", "`what`: field 'inputs[0].shape' has the wrong type; expected an
/// array of integers", "... is null; expected a string". Paths are built only for a message.
struct JSONFields {
    /// What was read, as messages name it ("inference request").
    let what: String

    /// The type a field must have, as messages name it.
    enum Expected: String {
        case string = "a string"
        case number = "a number"
        case boolean = "a boolean"
        case integers = "an array of integers"
        case array = "an array"
        case object = "an object"
        /// Any value but null.
        case any = "a value"
    }

    static func join(_ parent: String, _ key: StaticString) -> String {
        parent.isEmpty ? "\(key)" : "\(parent).\(key)"
    }

    private static func quoted(_ path: String) -> String { path.isEmpty ? "the top level" : "'\(path)'" }

    func matches(_ node: JSONNode, _ expected: Expected) -> Bool {
        switch expected {
        case .string: node.type == .string
        case .number: node.isNumber
        case .boolean: node.type == .true || node.type == .false
        case .integers, .array: node.type == .array
        case .object: node.type == .object
        case .any: true
        }
    }

    /// `node` itself, of the `expected` type.
    func check(_ node: JSONNode, _ expected: Expected, at path: () -> String) throws(SwitchyardError) -> JSONNode {
        if node.isNull {
            throw .invalidArgument("\(what): field \(Self.quoted(path())) is null; expected \(expected.rawValue)")
        }
        guard matches(node, expected) else { throw wrongType(expected, at: path()) }
        return node
    }

    func wrongType(_ expected: Expected, at path: String) -> SwitchyardError {
        .invalidArgument("\(what): field \(Self.quoted(path)) has the wrong type; expected \(expected.rawValue)")
    }

    /// The member `key` of `object`, of the `expected` type; a missing (or null) member of an `optional` field is
    /// `nil`.
    func field(
        _ object: JSONNode,
        _ key: StaticString,
        _ expected: Expected,
        optional: Bool = false,
        in parent: () -> String
    ) throws(SwitchyardError) -> JSONNode? {
        guard let node = object[key] else {
            if optional { return nil }
            let parentPath = parent()
            throw .invalidArgument(
                "\(what): missing field '\(key)'" + (parentPath.isEmpty ? "" : " in \(Self.quoted(parentPath))")
            )
        }
        if optional && node.isNull { return nil }
        return try check(node, expected, at: { Self.join(parent(), key) })
    }

    /// The member `key` of `object` as a string.
    func string(_ object: JSONNode, _ key: StaticString, in parent: () -> String) throws(SwitchyardError) -> String {
        try field(object, key, .string, in: parent)!.string
    }

    /// A number that must be an integer (shapes, byte counts), as JSONDecoder reads an `Int64`.
    func integer(_ node: JSONNode, at path: () -> String) throws(SwitchyardError) -> Int64 {
        let value = try check(node, .number, at: path).number
        guard value.rounded() == value, value >= -9.223_372_036_854_775_808e18, value < 9.223_372_036_854_775_808e18
        else {
            throw .invalidArgument(
                "\(what): field \(Self.quoted(path())): Parsed JSON number <\(value)> does not fit in Int64."
            )
        }
        return Int64(value)
    }

    /// The member `key` of `object` as an integer, `nil` when absent or null.
    func optionalInteger(_ object: JSONNode, _ key: StaticString, in parent: () -> String) throws(SwitchyardError)
        -> Int64?
    {
        guard let node = object[key], !node.isNull else { return nil }
        return try integer(node, at: { Self.join(parent(), key) })
    }
}

/// A JSON text written straight to bytes, numbers as JSONEncoder writes them (a `Float` or `Double` with the fewest
/// digits that read back the same, non-finite ones as the strings "NaN", "Infinity" and "-Infinity").
struct JSONWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `"key":`, for keys that need no escaping.
    mutating func key(_ key: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(key)
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw(#"\""#)
            case UInt8(ascii: "\\"): raw(#"\\"#)
            case UInt8(ascii: "/"): raw(#"\/"#)
            case 0x0A: raw(#"\n"#)
            case 0x0D: raw(#"\r"#)
            case 0x09: raw(#"\t"#)
            case 0x08: raw(#"\b"#)
            case 0x0C: raw(#"\f"#)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                raw(#"\u00"#)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func number(_ value: Float) {
        guard value.isFinite else { return nonFinite(value.isNaN, negative: value < 0) }
        decimal(value.description)
    }

    mutating func number(_ value: Double) {
        guard value.isFinite else { return nonFinite(value.isNaN, negative: value < 0) }
        decimal(value.description)
    }

    mutating func number(_ value: some FixedWidthInteger) { bytes.append(contentsOf: String(value).utf8) }

    mutating func bool(_ value: Bool) { value ? raw("true") : raw("false") }

    private mutating func decimal(_ text: String) {
        // "1.0" is written "1", as JSONEncoder writes it.
        var text = text
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    private mutating func nonFinite(_ isNaN: Bool, negative: Bool) {
        raw(isNaN ? #""NaN""# : negative ? #""-Infinity""# : #""Infinity""#)
    }

    /// `[a,b,...]`, each element written by `element`.
    mutating func array<C: Collection>(_ items: C, _ element: (inout JSONWriter, C.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            element(&self, item)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}
