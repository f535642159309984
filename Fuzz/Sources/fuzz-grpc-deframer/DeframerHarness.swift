// libFuzzer harness for the gRPC wire codecs (Sources/SwitchyardHTTP2/GRPCWire.swift).
//
// Input: one control byte, then a stream of DATA-frame bytes. The control byte picks how the stream is cut into
// chunks (as DATA frames would cut it) and which encoding compressed messages are inflated with. Checked:
// - deframing the stream in one piece and in chunks gives the same messages and the same error;
// - a message never exceeds the limit; every byte of a clean stream is accounted for;
// - inflating stops at the limit (the decompression-bomb guard), and what inflates re-deflates and inflates
//   back to the same bytes;
// - `grpc-message` percent-encoding round-trips, and `grpc-timeout` parsing never traps.

import CFuzzerDriver

@testable import SwitchyardHTTP2

#if canImport(Glibc)
    import Glibc
#endif

/// The deframing limit: small, so that size checks and bombs are reached quickly.
private let messageLimit = 1 << 16

private struct Deframed: Equatable {
    var messages: [Message] = []
    var error: DeframeError?
    var partial = false

    struct Message: Equatable {
        var compressed: Bool
        var bytes: [UInt8]
    }
}

private func deframe(_ stream: UnsafeRawBufferPointer, chunkSizes: [Int]) -> Deframed {
    var deframer = MessageDeframer(limit: messageLimit)
    var result = Deframed()
    var offset = 0
    var sizes = chunkSizes.makeIterator()
    while offset < stream.count {
        let size = min(sizes.next() ?? stream.count, stream.count - offset)
        let chunk = UnsafeRawBufferPointer(rebasing: stream[offset..<offset + size])
        offset += size
        do {
            try deframer.feed(chunk) { compressed, bytes in
                precondition(bytes.count <= messageLimit, "a delivered message exceeds the limit")
                result.messages.append(.init(compressed: compressed, bytes: Array(bytes)))
            }
        } catch let error as DeframeError {
            result.error = error
            return result
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }
    result.partial = deframer.hasPartialMessage
    return result
}

/// Chunk sizes from a small generator seeded by the control byte: 1-byte chunks, short ones, frame-sized ones.
private func chunkSizes(control: UInt8, total: Int) -> [Int] {
    let largest = [1, 2, 3, 5, 8, 17, 256, 16_384][Int(control & 7)]
    var state = UInt32(control) &* 2_654_435_761 | 1
    var sizes: [Int] = []
    var covered = 0
    while covered < total {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let size = 1 + Int(state % UInt32(largest))
        sizes.append(size)
        covered += size
    }
    return sizes
}

private func checkInflate(_ message: [UInt8], encoding: GRPCCompression) {
    let inflated: [UInt8]
    do {
        inflated = try message.withUnsafeBytes { try encoding.decompress($0, limit: messageLimit) }
    } catch GRPCCompression.DecodeError.tooLarge(let limit) {
        precondition(limit == messageLimit)
        return
    } catch {
        return
    }
    precondition(inflated.count <= messageLimit, "inflated past the limit: \(inflated.count) bytes")
    let again = encoding.compress(inflated)
    let back = try? again.withUnsafeBytes { try encoding.decompress($0, limit: messageLimit) }
    precondition(back == inflated, "\(encoding) round trip changed the bytes")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let control = data[0]
    let stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)

    let whole = deframe(stream, chunkSizes: [stream.count])
    let chunked = deframe(stream, chunkSizes: chunkSizes(control: control, total: stream.count))
    precondition(whole == chunked, "chunking changed the deframed messages or error")
    if whole.error == nil && !whole.partial {
        let accounted = whole.messages.reduce(0) { $0 + 5 + $1.bytes.count }
        precondition(accounted == stream.count, "a clean stream of \(stream.count) bytes framed \(accounted)")
    }

    let encoding: GRPCCompression = control & 0x80 != 0 ? .gzip : .deflate
    for message in whole.messages where message.compressed { checkInflate(message.bytes, encoding: encoding) }
    // Streams with nothing framed still exercise the inflater on the raw bytes.
    if whole.messages.isEmpty { checkInflate(Array(stream), encoding: encoding) }

    let text = String(decoding: stream, as: UTF8.self)
    precondition(GRPCPercentEncoding.decode(GRPCPercentEncoding.encode(text)) == text, "grpc-message round trip")
    _ = GRPCPercentEncoding.decode(text)
    _ = GRPCTimeout.parse(Array(stream.prefix(12)))
    _ = GRPCCompression(headerValue: stream.prefix(16))
    return 0
}

/// libFuzzer's driver, started from this executable's entry point (SwiftPM names every executable's `main`).
@main
enum Harness {
    static func main() { exit(switchyard_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzOneInput)) }
}
