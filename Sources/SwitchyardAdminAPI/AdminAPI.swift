// The admin API's wire contract, shared by the server (SwitchyardAdmin), its client (SwitchyardAdminClient), the
// `switchyard` CLI and the load generator: one Codable type per request and answer body, the JSON settings both
// sides use, and the strict decoding that refuses fields a body must not carry.

public import Foundation
import SwitchyardCore

/// The JSON settings of the admin API.
public enum AdminJSON {
    /// The encoder of answers (and of request bodies): keys sorted, slashes unescaped.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The decoder of request and answer bodies.
    public static func decoder() -> JSONDecoder { JSONDecoder() }

    /// The header carrying the audit log's reason of a change.
    public static let reasonHeader = "X-Switchyard-Reason"

    /// A decoder's `userInfo` key: `true` when the request's header gives the reason, so that a body's `reason`
    /// field is neither read nor checked (the header wins, whatever the field holds).
    public static let reasonInHeader = CodingUserInfoKey(rawValue: "switchyard.reasonInHeader")!
}

/// Every error answer: `{"error": message}`, the message naming the offending field where there is one.
@MemberwiseInit
public struct AdminErrorBody: Sendable, Hashable, Codable {
    /// What was wrong and what was expected.
    public var error: String
}

/// A request body that breaks the API's contract beyond what a decoding error says (a field the endpoint does not
/// know, a value of the wrong kind); `message` is the whole answer, field path first.
public struct AdminRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `path: what was wrong; what was expected`.
    public var message: String

    /// Creates the error.
    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Any key of a JSON object, for checking which fields a body carries.
@MemberwiseInit(.internal)
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init?(intValue: Int) { nil }
}

/// Refuses the fields of the object `decoder` reads that are neither in `expected` nor in `alsoAccepted`: a typo
/// (`wieght`) would otherwise be ignored silently. The message lists `expected`; a value that is not an object is
/// left for the field's own decoding to report.
func rejectUnknownFields(
    _ decoder: any Decoder,
    expected: [String],
    alsoAccepted: [String] = [],
    path: String
) throws {
    guard let container = try? decoder.container(keyedBy: AnyCodingKey.self) else { return }
    for key in container.allKeys.map(\.stringValue).sorted()
    where !expected.contains(key) && !alsoAccepted.contains(key) {
        throw AdminRequestError(
            "\(path).\(key): unknown field; expected one of \(expected.sorted().joined(separator: ", "))"
        )
    }
}

/// The `reason` field of a change's body: the audit log's reason, when no `X-Switchyard-Reason` header gives one.
func decodeReason(_ decoder: any Decoder) throws -> String? {
    if decoder.userInfo[AdminJSON.reasonInHeader] as? Bool == true { return nil }
    guard let container = try? decoder.container(keyedBy: AnyCodingKey.self) else { return nil }
    let key = AnyCodingKey(stringValue: "reason")
    guard container.contains(key) else { return nil }
    do {
        return try container.decode(String.self, forKey: key)
    } catch {
        throw AdminRequestError("reason: expected a string")
    }
}
