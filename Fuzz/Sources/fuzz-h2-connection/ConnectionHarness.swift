// libFuzzer harness for the HTTP/2 server input path (Sources/SwitchyardHTTP2/Connection.swift).
//
// Input: one control byte, then the bytes a client sends after its connection preface. A fresh server
// `Connection` (the real nghttp2 session, callbacks, gRPC framing, limits and answers) takes them in memory,
// cut into chunks the control byte picks; between chunks the harness does what the event loop does between
// socket reads: it applies the service's answers and lets nghttp2 produce frames, which are discarded as a
// socket would take them. At the end the connection is torn down as when its socket closes, and answers that
// arrive afterwards are dropped.
//
// The service answers synchronously: a message whose first byte is odd fails its call with a status naming
// the bytes (percent-encoded in `grpc-message`); any other is echoed back with a trailer copied from the
// request's metadata.

import CFuzzerDriver
import Logging
import SwitchyardCore
import Synchronization

@testable import SwitchyardHTTP2

#if canImport(Glibc)
    import Glibc
#endif

/// Answers as the real service would hand them to the loop: `send`/`fail` through the call's responder state,
/// then applied on the loop (here: by the harness, on the same thread).
private final class EchoService: GRPCService {
    enum Answer {
        case send(GRPCCall, [UInt8], [(name: String, value: String)])
        case fail(GRPCCall, GRPCStatus)
    }

    let pending = Mutex<[Answer]>([])

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
        guard let call = responder as? GRPCCall else { preconditionFailure("the front end's responder is a GRPCCall") }
        precondition(call.method == method, "handed a message for another method")
        if let first = message.first, first & 1 == 1 {
            // As `GRPCCall.fail`: only the first answer of a call counts.
            guard
                call.state.compareExchange(expected: GRPCCall.open, desired: GRPCCall.answered, ordering: .relaxed)
                    .exchanged
            else { return }
            let text = String(decoding: message.prefix(64), as: UTF8.self)
            pending.withLock { $0.append(.fail(call, GRPCStatus(.invalidArgument, "refused: \(text)"))) }
            return
        }
        if method.kind == .unary {
            guard
                call.state.compareExchange(expected: GRPCCall.open, desired: GRPCCall.answered, ordering: .relaxed)
                    .exchanged
            else { return }
        } else if call.state.load(ordering: .relaxed) != GRPCCall.open {
            return
        }
        let trailers = head.metadata.prefix(2).map { (name: "x-echo-" + $0.name, value: $0.value) }
        pending.withLock { $0.append(.send(call, Array(message), trailers)) }
    }
}

private struct Fixture: @unchecked Sendable {
    let service: EchoService
    let loop: EventLoop
}

private let fixture: Fixture = {
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
    let service = EchoService()
    let core = ServerCore(service: service, limits: limits, tls: nil, logger: logger)
    do {
        return Fixture(service: service, loop: try EventLoop(index: 0, core: core))
    } catch {
        fatalError("cannot create an event loop: \(error)")
    }
}()

/// What `EventLoop.apply` does with `.send` and `.fail`.
private func applyAnswers() {
    let answers = fixture.service.pending.withLock { pending in
        defer { pending.removeAll() }
        return pending
    }
    for answer in answers {
        switch answer {
        case .send(let call, let bytes, let metadata):
            guard !call.streamClosed else {
                fixture.loop.countDropped()
                continue
            }
            call.connection.deliverSend(call, message: bytes, metadata: metadata)
        case .fail(let call, let status):
            guard !call.streamClosed else {
                fixture.loop.countDropped()
                continue
            }
            call.connection.finish(call, status: status, metadata: [])
        }
    }
}

/// What `EventLoop.flush` does, with a socket that takes everything.
private func flush(_ connection: Connection) -> Bool {
    for _ in 0..<8 {
        guard connection.produce() else { return false }
        precondition(connection.pendingOutput <= connection.out.count)
        connection.out.removeAll(keepingCapacity: true)
        connection.outSent = 0
        if connection.sessionFinished { return false }
        if !connection.sessionWantsWrite { break }
    }
    return true
}

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size >= 1 else { return 0 }
    let chunkSize = [1, 7, 64, 1 << 20][Int(data[0] & 3)]
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    let connection = Connection(fd: -1, loop: fixture.loop, tls: nil)
    var open = preface.withUnsafeBytes { connection.receive($0) } && flush(connection)
    var offset = 0
    while open && offset < input.count {
        let end = min(offset + chunkSize, input.count)
        open = connection.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
        offset = end
        applyAnswers()
        open = flush(connection) && open
    }
    if open {
        applyAnswers()
        _ = flush(connection)
    }
    connection.teardown()
    precondition(connection.calls == nil, "a call outlived its connection")
    // Answers that raced with the close are dropped, as the loop drops them.
    applyAnswers()
    fixture.loop.dirty.removeAll()
    precondition(fixture.loop.timers.count == 0, "a closed connection left a deadline armed")
    return 0
}

/// libFuzzer's driver, started from this executable's entry point (SwiftPM names every executable's `main`).
@main
enum Harness {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
    }
}
