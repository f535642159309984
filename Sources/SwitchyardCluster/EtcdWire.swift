// etcd v3's JSON gateway messages (grpc-gateway's mapping of etcdserverpb): 64-bit integers travel as decimal
// strings, keys and values as base64, and fields at their default value are left out. Only what the client reads
// or writes is declared.

import Foundation

/// A 64-bit integer as the gateway writes it: a decimal string (or, from some proxies, a JSON number).
struct WireInt: Codable, Sendable, Hashable {
    var value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let text = try? c.decode(String.self), let value = Int64(text) {
            self.value = value
        } else {
            value = try c.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(String(value))
    }
}

struct WireHeader: Codable, Sendable {
    var revision: WireInt?
}

struct WireKeyValue: Codable, Sendable {
    var key: String?
    var value: String?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var version: WireInt?
    var lease: WireInt?
}

struct WireRangeRequest: Codable, Sendable {
    var key: String
    var range_end: String?
    var revision: WireInt?
}

struct WireRangeResponse: Codable, Sendable {
    var header: WireHeader?
    var kvs: [WireKeyValue]?
}

struct WirePutRequest: Codable, Sendable {
    var key: String
    var value: String
    var lease: WireInt?
}

struct WirePutResponse: Codable, Sendable {
    var header: WireHeader?
}

struct WireDeleteRangeRequest: Codable, Sendable {
    var key: String
    var range_end: String?
}

struct WireDeleteRangeResponse: Codable, Sendable {
    var header: WireHeader?
    var deleted: WireInt?
}

struct WireCompaction: Codable, Sendable {
    var revision: WireInt
    var physical: Bool
}

struct WireCompare: Codable, Sendable {
    var target: String
    var key: String
    var result: String
    var mod_revision: WireInt?
    var create_revision: WireInt?
    var version: WireInt?
}

struct WireRequestOp: Codable, Sendable {
    var request_range: WireRangeRequest?
    var request_put: WirePutRequest?
    var request_delete_range: WireDeleteRangeRequest?
}

struct WireResponseOp: Codable, Sendable {
    var response_range: WireRangeResponse?
    var response_put: WirePutResponse?
    var response_delete_range: WireDeleteRangeResponse?
}

struct WireTxnRequest: Codable, Sendable {
    var compare: [WireCompare]
    var success: [WireRequestOp]
    var failure: [WireRequestOp]
}

struct WireTxnResponse: Codable, Sendable {
    var header: WireHeader?
    var succeeded: Bool?
    var responses: [WireResponseOp]?
}

struct WireLeaseGrantRequest: Codable, Sendable {
    var TTL: WireInt
}

struct WireLeaseGrantResponse: Codable, Sendable {
    var ID: WireInt?
    var TTL: WireInt?
    var error: String?
}

struct WireLeaseID: Codable, Sendable {
    var ID: WireInt
}

struct WireLeaseKeepAliveResponse: Codable, Sendable {
    var result: WireLeaseGrantResponse?
}

struct WireWatchCreate: Codable, Sendable {
    var key: String
    var range_end: String?
    var start_revision: WireInt?
}

struct WireWatchRequest: Codable, Sendable {
    var create_request: WireWatchCreate
}

struct WireEvent: Codable, Sendable {
    var type: String?
    var kv: WireKeyValue?
}

struct WireWatchResponse: Codable, Sendable {
    var header: WireHeader?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: WireInt?
    var cancel_reason: String?
    var events: [WireEvent]?
}

struct WireWatchEnvelope: Codable, Sendable {
    var result: WireWatchResponse?
    var error: WireError?
}

/// The gateway's error body (`{"error": …, "code": …, "message": …}`).
struct WireError: Codable, Sendable {
    var error: String?
    var message: String?
    var code: Int?
}

extension WireKeyValue {
    func decoded() -> EtcdKeyValue {
        EtcdKeyValue(
            key: key.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? "",
            value: value.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? [],
            createRevision: create_revision?.value ?? 0,
            modRevision: mod_revision?.value ?? 0,
            version: version?.value ?? 0,
            lease: lease?.value ?? 0
        )
    }
}

/// Base64 of a key's UTF-8 bytes.
func base64(_ key: String) -> String { Data(key.utf8).base64EncodedString() }

/// Base64 of bytes.
func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

/// The `range_end` that makes a range cover every key starting with `prefix`: the prefix with its last byte
/// incremented (bytes 0xff dropped first); `\0` (every key) when nothing is left.
func prefixEnd(_ prefix: String) -> String {
    var bytes = [UInt8](prefix.utf8)
    while let last = bytes.last {
        if last < 0xff {
            bytes[bytes.count - 1] = last + 1
            return base64(bytes)
        }
        bytes.removeLast()
    }
    return base64([0])
}
