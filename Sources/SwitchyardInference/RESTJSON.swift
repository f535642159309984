// JSON values for the v2 REST binding, decoded and encoded with Foundation's JSONDecoder/JSONEncoder: the open
// shapes the protocol uses (`data` flat or nested, `parameters` of any scalar type) and the answers built from
// the registry. Errors from the decoder are turned into messages that name the field and what was expected.

import FoundationEssentials

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
