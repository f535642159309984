// libFuzzer harness for the HTTP/2 server input path (Sources/SwitchyardHTTP2/Connection.swift).
//
// Input: one control byte, then the bytes a client sends after its connection preface. A fresh server
// connection (the real nghttp2 session, callbacks, gRPC framing, limits, answers and state machines) takes them
// in memory through SwitchyardHTTP2TestSupport, cut into chunks the control byte picks; between chunks the driver
// does what the event loop does between socket reads: it applies the service's answers and lets nghttp2 produce
// frames, which are discarded as a socket would take them. At the end the connection is closed as when its
// socket closes, and answers that arrive afterwards are dropped.
//
// The service answers synchronously, through the responder as any service does: a message whose first byte is
// odd fails its call with a status naming the bytes (percent-encoded in `grpc-message`); any other is echoed
// back with a trailer copied from the request's metadata.

import CFuzzerDriver
import Logging
import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardHTTP2TestSupport

#if canImport(Glibc)
    import Glibc
#endif

private final class EchoService: GRPCService {
    func method(for path: String) -> GRPCMethod? {
        switch path {
        case "/inference.GRPCInferenceService/ModelInfer": GRPCMethod(id: 0, kind: .unary)
        case "/inference.GRPCInferenceService/ModelStreamInfer": GRPCMethod(id: 1, kind: .bidirectionalStreaming)
        case "/grpc.health.v1.Health/Check": GRPCMethod(id: 2, kind: .unary)
        default: nil
        }
    }

    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        if let first = message.first, first & 1 == 1 {
            let text = String(decoding: message.prefix(64), as: UTF8.self)
            return responder.fail(GRPCStatus(.invalidArgument, "refused: \(text)"))
        }
        let trailers = head.metadata.prefix(2).map { (name: "x-echo-" + $0.name, value: $0.value) }
        responder.send(message: Array(message), metadata: trailers)
    }
}

/// One server for every input: its loop belongs to the thread libFuzzer calls the harness on.
nonisolated(unsafe) private let server: InMemoryHTTP2Server = {
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    // Small limits, so that the fuzzer reaches them: 4 KiB messages, 64 KiB of output per connection.
    let limits = ServerConfiguration.Limits(
        maxRequestBytes: 4096,
        maxConcurrentStreams: 16,
        maxHeaderListBytes: 2048,
        maxOutputBufferBytes: 65_536
    )
    precondition(limits.validate().isEmpty)
    do {
        return try InMemoryHTTP2Server(service: EchoService(), limits: limits, logger: logger)
    } catch {
        fatalError("cannot create an event loop: \(error)")
    }
}()

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let chunkSize = [1, 7, 64, 1 << 20][Int(data[0] & 3)]
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let connection = server.connect()
    var open = connection.receive(preface)
    _ = connection.flush()
    var offset = 0
    while open && connection.isOpen && offset < input.count {
        let end = min(offset + chunkSize, input.count)
        open = connection.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
        offset = end
        _ = connection.flush()
    }
    if open { _ = connection.flush() }
    connection.close()
    precondition(!connection.hasLiveCalls, "a call outlived its connection")
    // Answers that raced with the close are dropped, as the loop drops them.
    server.runPendingWork()
    precondition(server.armedDeadlines == 0, "a closed connection left a deadline armed")
    return 0
}

/// libFuzzer's driver, started from this executable's entry point (SwiftPM names every executable's `main`).
@main
enum Harness {
    static func main() { exit(switchyard_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzOneInput)) }
}
