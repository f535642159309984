// Unit tests of the socket-free gRPC codecs: deframing, grpc-timeout, grpc-message encoding, compression.

import Testing

@testable import SwitchyardHTTP2

/// Frames messages as gRPC does: flag, 4-byte big-endian length, bytes.
func frame(_ message: [UInt8], compressed: Bool = false) -> [UInt8] {
    let n = UInt32(message.count)
    return [compressed ? 1 : 0, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        + message
}

/// Feeds `chunks` to a deframer and collects the messages.
func deframe(_ chunks: [[UInt8]], limit: Int = 1 << 20) throws -> [(Bool, [UInt8])] {
    var deframer = MessageDeframer(limit: limit)
    var messages: [(Bool, [UInt8])] = []
    for chunk in chunks {
        try chunk.withUnsafeBytes { raw in
            try deframer.feed(raw) { compressed, bytes in messages.append((compressed, Array(bytes))) }
        }
    }
    #expect(!deframer.hasPartialMessage)
    return messages
}

@Suite struct MessageDeframerTests {
    @Test func wholeMessageInOneChunk() throws {
        let messages = try deframe([frame(Array("hello".utf8))])
        #expect(messages.count == 1)
        #expect(messages[0].1 == Array("hello".utf8))
        #expect(messages[0].0 == false)
    }

    @Test func severalMessagesInOneChunk() throws {
        let a = Array("first".utf8)
        let b: [UInt8] = []
        let c = Array(repeating: UInt8(7), count: 300)
        let messages = try deframe([frame(a) + frame(b) + frame(c, compressed: true)])
        #expect(messages.map(\.1) == [a, b, c])
        #expect(messages.map(\.0) == [false, false, true])
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 100, 4096])
    func messagesSplitAtEveryChunkSize(chunkSize: Int) throws {
        let payloads: [[UInt8]] = [Array(0..<200).map { UInt8($0) }, [], [42], Array(repeating: 9, count: 5000)]
        let stream = payloads.flatMap { frame($0) }
        let chunks = stride(from: 0, to: stream.count, by: chunkSize).map {
            Array(stream[$0..<min($0 + chunkSize, stream.count)])
        }
        let messages = try deframe(chunks)
        #expect(messages.map(\.1) == payloads)
    }

    @Test func declaredLengthOverLimitFailsFromThePrefix() throws {
        var deframer = MessageDeframer(limit: 1024)
        // Only the prefix arrives: the limit must trip before any body is buffered.
        let prefix: [UInt8] = [0, 0, 0, 0x10, 0x00]  // 4096
        #expect(throws: DeframeError.tooLarge(declared: 4096, limit: 1024)) {
            try prefix.withUnsafeBytes { try deframer.feed($0) { _, _ in Issue.record("no message expected") } }
        }
    }

    @Test func aMessageSpanningChunksReservesItsDeclaredLengthUntilComplete() throws {
        var deframer = MessageDeframer(limit: 1 << 20)
        let stream = frame(Array(repeating: 1, count: 1000)) + frame([2, 3])
        #expect(deframer.reservedBytes == 0)
        var messages = 0
        try Array(stream[0..<400]).withUnsafeBytes { try deframer.feed($0) { _, _ in messages += 1 } }
        #expect(deframer.reservedBytes == 1000)
        try Array(stream[400...]).withUnsafeBytes { try deframer.feed($0) { _, _ in messages += 1 } }
        #expect(messages == 2)
        #expect(deframer.reservedBytes == 0)
        // A refused call's partial message is dropped; the deframer holds nothing afterwards.
        try Array(stream[0..<10]).withUnsafeBytes { try deframer.feed($0) { _, _ in } }
        #expect(deframer.reservedBytes == 1000)
        deframer.discard()
        #expect(deframer.reservedBytes == 0)
        #expect(!deframer.hasPartialMessage)
    }

    @Test func prefixSplitAcrossChunksStillChecksLimit() throws {
        var deframer = MessageDeframer(limit: 10)
        let first: [UInt8] = [0, 0]
        let second: [UInt8] = [0, 0, 11]
        try first.withUnsafeBytes { try deframer.feed($0) { _, _ in } }
        #expect(deframer.hasPartialMessage)
        #expect(throws: DeframeError.tooLarge(declared: 11, limit: 10)) {
            try second.withUnsafeBytes { try deframer.feed($0) { _, _ in } }
        }
    }

    @Test func messageExactlyAtLimitIsAccepted() throws {
        let messages = try deframe([frame(Array(repeating: 1, count: 1024))], limit: 1024)
        #expect(messages.count == 1)
    }

    @Test func invalidFlagIsRejected() throws {
        var deframer = MessageDeframer(limit: 100)
        let bytes: [UInt8] = [2, 0, 0, 0, 0]
        #expect(throws: DeframeError.badFlag(2)) { try bytes.withUnsafeBytes { try deframer.feed($0) { _, _ in } } }
    }

    @Test func truncatedMessageIsReportedAsPartial() throws {
        var deframer = MessageDeframer(limit: 100)
        let bytes = Array(frame(Array("abcdef".utf8)).prefix(8))
        try bytes.withUnsafeBytes { try deframer.feed($0) { _, _ in Issue.record("no message expected") } }
        #expect(deframer.hasPartialMessage)
    }
}

@Suite struct GRPCTimeoutTests {
    static let units: [(String, UInt64)] = [
        ("1H", 3_600_000_000_000), ("2M", 120_000_000_000), ("3S", 3_000_000_000), ("1500m", 1_500_000_000),
        ("250u", 250_000), ("7n", 7), ("0S", 0), ("99999999n", 99_999_999), ("99999999H", UInt64.max),
    ]

    @Test(arguments: units)
    func parsesEveryUnit(text: String, nanoseconds: UInt64) {
        #expect(GRPCTimeout.parse(text) == nanoseconds)
    }

    @Test(arguments: ["", "S", "10", "123456789S", "1.5S", "-1S", "10s", "10 S", "abcS", "1h", "10SS"])
    func rejectsMalformed(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }
}

@Suite struct GRPCPercentEncodingTests {
    @Test(arguments: [
        ("plain text", "plain text"), ("100%", "100%25"), ("line\nbreak", "line%0Abreak"),
        ("café", "caf%C3%A9"), ("tab\there", "tab%09here"), ("~ok!", "~ok!"), ("\u{7F}", "%7F"),
    ])
    func encodes(message: String, encoded: String) {
        #expect(GRPCPercentEncoding.encode(message) == encoded)
        #expect(GRPCPercentEncoding.decode(encoded) == message)
    }

    @Test func decodeKeepsMalformedEscapes() {
        #expect(GRPCPercentEncoding.decode("50%") == "50%")
        #expect(GRPCPercentEncoding.decode("%zz%4") == "%zz%4")
    }
}

@Suite struct GRPCCompressionTests {
    static let sample: [UInt8] = Array(String(repeating: "switchyard compresses well. ", count: 200).utf8)

    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func roundTrips(encoding: GRPCCompression) throws {
        let compressed = encoding.compress(Self.sample)
        #expect(compressed.count < Self.sample.count / 4)
        let inflated = try compressed.withUnsafeBytes { try encoding.decompress($0, limit: 1 << 20) }
        #expect(inflated == Self.sample)
    }

    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func stopsAtTheLimit(encoding: GRPCCompression) throws {
        // 64 MiB of zeros compress to ~64 KiB: the inflater must stop at the limit, not allocate it all.
        let bomb = encoding.compress([UInt8](repeating: 0, count: 64 << 20))
        #expect(bomb.count < 128 << 10)
        #expect(throws: GRPCCompression.DecodeError.tooLarge(limit: 4096)) {
            try bomb.withUnsafeBytes { try encoding.decompress($0, limit: 4096) }
        }
    }

    @Test func exactlyAtLimitIsAccepted() throws {
        let data = [UInt8](repeating: 5, count: 4096)
        let inflated = try GRPCCompression.gzip.compress(data).withUnsafeBytes {
            try GRPCCompression.gzip.decompress($0, limit: 4096)
        }
        #expect(inflated == data)
    }

    @Test(arguments: [GRPCCompression.gzip, .deflate])
    func corruptInputIsAnError(encoding: GRPCCompression) {
        let garbage: [UInt8] = Array("definitely not compressed".utf8)
        #expect(throws: (any Error).self) {
            try garbage.withUnsafeBytes { try encoding.decompress($0, limit: 1 << 20) }
        }
        let truncated = Array(encoding.compress(Self.sample).prefix(20))
        #expect(throws: (any Error).self) {
            try truncated.withUnsafeBytes { try encoding.decompress($0, limit: 1 << 20) }
        }
    }

    @Test func headerValues() {
        #expect(GRPCCompression(headerValue: "gzip".utf8) == .gzip)
        #expect(GRPCCompression(headerValue: "deflate".utf8) == .deflate)
        #expect(GRPCCompression(headerValue: "identity".utf8) == .identity)
        #expect(GRPCCompression(headerValue: "snappy".utf8) == nil)
    }
}

@Suite struct MessageQueueTests {
    @Test(arguments: [0, 1, 2, 5, 100])
    func isFirstInFirstOut(count: Int) {
        var queue = MessageQueue()
        var popped: [[UInt8]] = []
        // Interleave appends and pops so the overflow storage is reused.
        for i in 0..<count {
            queue.append([UInt8(i % 256)])
            if i % 3 == 2 {
                popped.append(queue.front)
                queue.removeFirst()
            }
        }
        while !queue.isEmpty {
            popped.append(queue.front)
            queue.removeFirst()
        }
        #expect(popped == (0..<count).map { [UInt8($0 % 256)] })
    }

    @Test func removeAllEmpties() {
        var queue = MessageQueue()
        queue.append([1])
        queue.append([2])
        queue.removeAll()
        #expect(queue.isEmpty)
        queue.append([3])
        #expect(queue.front == [3])
    }
}
