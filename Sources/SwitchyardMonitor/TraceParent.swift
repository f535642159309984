// The trace id of a W3C `traceparent` header (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`), for
// captured records. A malformed header yields no trace id rather than a wrong one.

/// Reads W3C trace context.
public enum TraceParent {
    /// The 32-hex-digit trace id of `header`, or empty when it is absent or malformed (wrong length or
    /// separators, non-hex or upper-case digits, an all-zero id, or version ff).
    public static func traceID(_ header: String?) -> String {
        guard let header else { return "" }
        let bytes = Array(header.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"),
            bytes[52] == UInt8(ascii: "-"), bytes.count == 55 || bytes[55] == UInt8(ascii: "-")
        else { return "" }
        func isHex(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
        }
        let hexRanges = [0..<2, 3..<35, 36..<52, 53..<55]
        guard hexRanges.allSatisfy({ $0.allSatisfy { isHex(bytes[$0]) } }) else { return "" }
        guard !(bytes[0] == UInt8(ascii: "f") && bytes[1] == UInt8(ascii: "f")) else { return "" }
        let id = bytes[3..<35]
        guard id.contains(where: { $0 != UInt8(ascii: "0") }) else { return "" }
        return String(decoding: id, as: UTF8.self)
    }
}
