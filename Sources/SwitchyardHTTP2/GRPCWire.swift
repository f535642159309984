// gRPC wire codecs that need no socket: length-prefixed message deframing with a size limit checked
// from the prefix, `grpc-timeout` parsing, `grpc-message` percent-encoding, and gzip/deflate message
// decompression bounded by the same limit. Pure and tested directly.

internal import CZlib
import SwitchyardCore

/// Why a request's message stream cannot be deframed.
enum DeframeError: Error, Equatable {
    /// A message's declared length exceeds the limit (checked from the 5-byte prefix, before buffering).
    case tooLarge(declared: Int, limit: Int)
    /// The compressed-flag byte was neither 0 nor 1.
    case badFlag(UInt8)
}

/// Splits a stream of DATA-frame bytes into gRPC messages (1-byte compressed flag, 4-byte big-endian
/// length, message). Messages wholly inside one chunk are delivered without copying; a message that spans
/// chunks is assembled in a buffer reserved once from its declared length.
struct MessageDeframer {
    /// Largest message accepted, in bytes.
    let limit: Int
    private var header: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
    private var headerCount = 0
    private var body: [UInt8] = []
    private var bodyExpected = 0
    private var compressed = false
    private var inBody = false

    init(limit: Int) { self.limit = limit }

    /// Whether bytes of an unfinished message are buffered (a half-close now truncates a message).
    var hasPartialMessage: Bool { headerCount > 0 || inBody }

    /// The declared length of the message being assembled across chunks (0 when none): what the caller
    /// accounts against its memory budget between `feed` calls.
    var reservedBytes: Int { inBody ? bodyExpected : 0 }

    /// Drops any partly assembled message and its buffer (the call was refused).
    mutating func discard() {
        body = []
        inBody = false
        headerCount = 0
        bodyExpected = 0
    }

    /// Feeds bytes; calls `onMessage(compressed, bytes)` for each complete message, in order. The bytes are
    /// valid only during the call.
    mutating func feed(
        _ chunk: UnsafeRawBufferPointer,
        onMessage: (Bool, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var index = 0
        let count = chunk.count
        while index < count {
            if inBody {
                // Reserved once, from the declared length, only when a message really spans chunks.
                if body.capacity < bodyExpected { body.reserveCapacity(bodyExpected) }
                let take = min(bodyExpected - body.count, count - index)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<index + take]))
                index += take
                if body.count == bodyExpected {
                    inBody = false
                    let message = body
                    body = []
                    try message.withUnsafeBytes { try onMessage(compressed, $0) }
                }
                continue
            }
            if headerCount == 0 && count - index >= 5 {
                // Fast path: the prefix is here whole; the message may be too.
                let flag = chunk[index]
                let length =
                    Int(chunk[index + 1]) << 24 | Int(chunk[index + 2]) << 16 | Int(chunk[index + 3]) << 8
                    | Int(chunk[index + 4])
                try begin(flag: flag, length: length)
                index += 5
                if count - index >= length {
                    inBody = false
                    try onMessage(compressed, UnsafeRawBufferPointer(rebasing: chunk[index..<index + length]))
                    index += length
                }
                continue
            }
            // Slow path: assemble the prefix byte by byte.
            switch headerCount {
            case 0: header.0 = chunk[index]
            case 1: header.1 = chunk[index]
            case 2: header.2 = chunk[index]
            case 3: header.3 = chunk[index]
            default: header.4 = chunk[index]
            }
            headerCount += 1
            index += 1
            if headerCount == 5 {
                headerCount = 0
                let length = Int(header.1) << 24 | Int(header.2) << 16 | Int(header.3) << 8 | Int(header.4)
                try begin(flag: header.0, length: length)
                if length == 0 {
                    inBody = false
                    try onMessage(compressed, UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
    }

    private mutating func begin(flag: UInt8, length: Int) throws {
        guard flag <= 1 else { throw DeframeError.badFlag(flag) }
        guard length <= limit else { throw DeframeError.tooLarge(declared: length, limit: limit) }
        compressed = flag == 1
        inBody = true
        bodyExpected = length
        if length == 0 { inBody = false }
    }
}

/// Parses `grpc-timeout` (grpc `doc/PROTOCOL-HTTP2.md`: 1–8 ASCII digits then one of H, M, S, m, u, n).
enum GRPCTimeout {
    /// The timeout in nanoseconds, saturating at `UInt64.max`; `nil` when the text is malformed.
    static func parse<S: BidirectionalCollection<UInt8>>(_ bytes: S) -> UInt64? {
        guard let unit = bytes.last, bytes.count >= 2, bytes.count <= 9 else { return nil }
        var value: UInt64 = 0
        var digits = 0
        for byte in bytes.dropLast() {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
            digits += 1
        }
        guard digits >= 1 && digits <= 8 else { return nil }
        let multiplier: UInt64
        switch unit {
        case UInt8(ascii: "H"): multiplier = 3_600_000_000_000
        case UInt8(ascii: "M"): multiplier = 60_000_000_000
        case UInt8(ascii: "S"): multiplier = 1_000_000_000
        case UInt8(ascii: "m"): multiplier = 1_000_000
        case UInt8(ascii: "u"): multiplier = 1_000
        case UInt8(ascii: "n"): multiplier = 1
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? .max : product
    }

    /// Parses a string form (convenience for tests and logs).
    static func parse(_ text: String) -> UInt64? { parse(Array(text.utf8)) }
}

/// What an HTTP/2 header field we send may hold (RFC 9113 §8.2.1): names of lowercase token characters,
/// values without NUL, CR, LF or surrounding white space.
enum HeaderField {
    /// Whether `name` is a non-empty lowercase token (no pseudo-header: services never send those).
    static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): continue
            case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "!"), UInt8(ascii: "#"),
                UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"),
                UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default: return false
            }
        }
        return true
    }

    /// Whether `value` holds only visible ASCII, spaces and tabs inside (gRPC metadata that is not `-bin`).
    static func isValidValue(_ value: String) -> Bool {
        let bytes = value.utf8
        if let first = bytes.first, first == 0x20 || first == 0x09 { return false }
        if let last = bytes.last, last == 0x20 || last == 0x09 { return false }
        for byte in bytes where !(byte >= 0x20 && byte <= 0x7E) && byte != 0x09 { return false }
        return true
    }
}

/// `grpc-message` encoding: UTF-8, then every byte outside 0x20–0x7E, and `%` itself, as `%XX`.
enum GRPCPercentEncoding {
    /// Most UTF-8 bytes of a status message sent in `grpc-message`: messages echo client-supplied names, and a
    /// header block must stay far below what nghttp2 agrees to send (64 KiB), even at three bytes per escape.
    static let maxMessageBytes = 1024

    /// `message` cut to at most `limit` UTF-8 bytes at a scalar boundary, saying how much was cut.
    static func bounded(_ message: String, limit: Int = maxMessageBytes) -> String {
        SwitchyardError.echo(message, limit: limit)
    }

    /// Encodes a status message for the `grpc-message` trailer.
    static func encode(_ message: String) -> String {
        var needs = false
        for byte in message.utf8 where byte < 0x20 || byte > 0x7E || byte == 0x25 {
            needs = true
            break
        }
        if !needs { return message }
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count * 3)
        for byte in message.utf8 {
            if byte < 0x20 || byte > 0x7E || byte == 0x25 {
                out.append(0x25)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a `grpc-message` value; malformed escapes are kept as they are (as the spec asks).
    static func decode(_ encoded: String) -> String {
        let bytes = Array(encoded.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        func hexValue(_ b: UInt8) -> UInt8? {
            switch b {
            case 0x30...0x39: b - 0x30
            case 0x41...0x46: b - 0x41 + 10
            case 0x61...0x66: b - 0x61 + 10
            default: nil
            }
        }
        while i < bytes.count {
            if bytes[i] == 0x25, i + 2 < bytes.count,
                let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Message encodings the front end accepts (`grpc-encoding`).
enum GRPCCompression: Sendable, Equatable {
    case identity, gzip, deflate

    /// What we advertise in `grpc-accept-encoding`.
    static let acceptEncoding = "identity,deflate,gzip"

    /// The encoding named by a `grpc-encoding` value, or `nil` if unsupported.
    init?<S: Collection<UInt8>>(headerValue: S) {
        if headerValue.elementsEqual("identity".utf8) {
            self = .identity
        } else if headerValue.elementsEqual("gzip".utf8) {
            self = .gzip
        } else if headerValue.elementsEqual("deflate".utf8) {
            self = .deflate
        } else {
            return nil
        }
    }

    /// zlib window bits: gzip wrapper for gzip, zlib wrapper for deflate (as grpc's own deflate codec).
    private var windowBits: Int32 { self == .gzip ? 15 + 16 : 15 }

    /// Why a compressed message cannot be decoded.
    enum DecodeError: Error, Equatable {
        /// Inflating produced more than `limit` bytes; decoding stopped there.
        case tooLarge(limit: Int)
        /// The bytes are not a valid stream of this encoding.
        case corrupt(String)
    }

    /// Inflates `input`, refusing to produce more than `limit` bytes (a small compressed message can
    /// expand enormously, so the limit is enforced while inflating, not afterwards).
    func decompress(_ input: UnsafeRawBufferPointer, limit: Int) throws(DecodeError) -> [UInt8] {
        if self == .identity { return Array(input) }
        var stream = z_stream()
        guard cswitchyard_inflateInit2(&stream, windowBits) == Z_OK else {
            throw .corrupt("zlib could not initialise an inflater")
        }
        defer { inflateEnd(&stream) }
        // Inflate into a fixed scratch chunk and append what each step produced: the output grows by memcpy
        // (no zero-filling of a buffer larger than the message, no per-element work).
        var output: [UInt8] = []
        output.reserveCapacity(min(max(input.count * 4, 256), limit + 1))
        let chunkSize = 256 << 10
        let chunk = UnsafeMutablePointer<Bytef>.allocate(capacity: chunkSize)
        defer { chunk.deallocate() }
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        while true {
            stream.next_out = chunk
            stream.avail_out = uInt(chunkSize)
            let status = inflate(&stream, Z_NO_FLUSH)
            let got = chunkSize - Int(stream.avail_out)
            if output.count + got > limit { throw .tooLarge(limit: limit) }
            output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: got))
            switch status {
            case Z_STREAM_END:
                return output
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress was possible: with all input consumed and room left, the stream is cut short.
                if stream.avail_in == 0 && got < chunkSize { throw .corrupt("truncated \(self) stream") }
                continue
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                throw .corrupt("invalid \(self) stream: \(reason)")
            }
        }
    }

    /// Deflates `input` with this encoding (used by tests and for completeness of the codec).
    func compress(_ input: [UInt8]) -> [UInt8] {
        if self == .identity { return input }
        var stream = z_stream()
        precondition(
            cswitchyard_deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY)
                == Z_OK
        )
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let written: Int = input.withUnsafeMutableBytes { inRaw in
            output.withUnsafeMutableBytes { outRaw in
                stream.next_in = inRaw.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(inRaw.count)
                stream.next_out = outRaw.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = uInt(outRaw.count)
                let status = CZlib.deflate(&stream, Z_FINISH)
                precondition(status == Z_STREAM_END)
                return outRaw.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(written...)
        return output
    }
}
