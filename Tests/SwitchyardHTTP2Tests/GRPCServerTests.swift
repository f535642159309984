// End-to-end tests of the front end over loopback with independent clients: python grpcio (a stock
// gRPC stack), nghttp (a stock HTTP/2 client) and a raw socket speaking broken HTTP/2.

import Foundation
import Logging
import SwitchyardCore
import Synchronization
import Testing

@testable import SwitchyardHTTP2

/// A service for the tests: echo, fail-on-demand, never-answer, answer-later and streaming echo.
final class TestService: GRPCService {
    /// Responders of `/test.Test/Hang` calls, to check they were cancelled.
    let hung = Mutex<[any GRPCResponder]>([])
    /// One worker thread answering `/test.Test/Queued` calls in arrival order, as a pool would.
    let worker = DispatchQueue(label: "test-worker")

    func method(for path: String) -> GRPCMethod? {
        switch path {
        case "/test.Test/Echo": GRPCMethod(id: 0, kind: .unary)
        case "/test.Test/Fail": GRPCMethod(id: 1, kind: .unary)
        case "/test.Test/Hang": GRPCMethod(id: 2, kind: .unary)
        case "/test.Test/Later": GRPCMethod(id: 3, kind: .unary)
        case "/test.Test/Stream": GRPCMethod(id: 4, kind: .bidirectionalStreaming)
        case "/test.Test/Slow": GRPCMethod(id: 5, kind: .unary)
        case "/test.Test/Queued": GRPCMethod(id: 6, kind: .unary)
        case "/test.Test/StreamFail": GRPCMethod(id: 7, kind: .bidirectionalStreaming)
        case "/test.Test/StreamFirst": GRPCMethod(id: 8, kind: .bidirectionalStreaming)
        case "/test.Test/StreamQueued": GRPCMethod(id: 9, kind: .bidirectionalStreaming)
        default: nil
        }
    }

    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        let bytes = Array(message)
        switch method.id {
        case 0:
            var trailers: [(name: String, value: String)] = []
            if let key = head.metadata("x-key") { trailers.append(("x-echo", key)) }
            responder.send(message: bytes, metadata: trailers)
        case 1:
            // "CODE:message" → fail with that status.
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: ":", maxSplits: 1)
            responder.fail(
                GRPCStatus(GRPCStatusCode(rawValue: Int(parts[0]) ?? 2), parts.count > 1 ? String(parts[1]) : "")
            )
        case 2:
            hung.withLock { $0.append(responder) }
        case 3, 5:
            // Answer from another thread, as worker pools do.
            let box = UncheckedBox(responder)
            let delay = method.id == 3 ? 0.02 : 0.8
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: delay)
                box.value.send(message: bytes)
            }
        case 6, 9:
            worker.async { responder.send(message: bytes) }
        case 7:
            // Echo until the message "msg-3-…", then fail the whole stream.
            if bytes.starts(with: Array("msg-3-".utf8)) {
                responder.fail(GRPCStatus(.aborted, "stopped at message 3"))
            } else {
                responder.send(message: bytes)
            }
        case 8:
            // Answer only the first message, then leave the stream hanging.
            if bytes.starts(with: Array("msg-0-".utf8)) { responder.send(message: bytes) }
        default:
            responder.send(message: bytes)
        }
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A running server on an ephemeral port, stopped by `stop()`.
struct RunningServer {
    let server: GRPCServer
    let service: TestService
    let port: Int
    var target: String { "127.0.0.1:\(port)" }

    init(loops: Int = 2, tls: ServerConfiguration.TLSSettings? = nil, limits: ServerConfiguration.Limits = .init())
        throws
    {
        service = TestService()
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        server = try GRPCServer(
            configuration: .init(
                listen: HostAndPort(host: "127.0.0.1", port: 0),
                eventLoops: loops,
                tls: tls,
                limits: limits
            ),
            service: service,
            logger: logger
        )
        port = try server.start()
    }

    func stop() {
        server.shutdown(gracePeriodSeconds: 2)
        // Kept responders hold their loop, which holds the service: let the server's memory go with it.
        service.hung.withLock { $0.removeAll() }
    }
}

/// Result of a client run: exit status, and its JSON output.
struct ClientRun {
    let status: Int32
    let json: [String: Any]
    let stderr: String

    var code: String? { json["code"] as? String }
    var details: String? { json["details"] as? String }
    var trailers: [String: String] { json["trailers"] as? [String: String] ?? [:] }
}

enum Clients {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Clients/grpc_client.py").path

    /// Whether python3 with grpcio is present (it is on the project's machines).
    static let grpcioAvailable: Bool = (try? run("/usr/bin/env", ["python3", "-c", "import grpc"]).status) == 0

    static func run(_ executable: String, _ arguments: [String]) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
        )
    }

    /// Runs the grpcio client script in `mode` against `target`.
    static func grpc(_ mode: String, _ target: String, _ arguments: [String] = []) throws -> ClientRun {
        let result = try run("/usr/bin/env", ["python3", script, mode, "--target", target] + arguments)
        let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
        let json = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        return ClientRun(status: result.status, json: json, stderr: result.stderr)
    }
}

@Suite(.serialized, .enabled(if: Clients.grpcioAvailable, "python3 with grpcio is not installed"))
struct GRPCServerTests {
    @Test func unaryEcho() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--size", "100", "--repeat", "20", "--metadata", "x-key=abc"])
        let results = try #require(run.json["results"] as? [[String: Any]], "client failed: \(run.stderr)")
        #expect(results.count == 20)
        for result in results {
            #expect(result["code"] as? String == "OK")
            #expect(result["echoed"] as? Bool == true)
            #expect((result["trailers"] as? [String: String])?["x-echo"] == "abc")
        }
        #expect(s.server.statistics.callsByStatus[.ok] == 20)
        let empty = try Clients.grpc("unary", s.target, ["--size", "0"])
        #expect(empty.code == "OK", "\(empty.json) \(empty.stderr)")
        #expect(empty.json["length"] as? Int == 0)
        let emptyStream = try Clients.grpc("stream", s.target, ["--path", "/test.Test/Stream", "--count", "1"])
        #expect(emptyStream.code == "OK")
    }

    @Test func answerFromAnotherThread() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--path", "/test.Test/Later", "--size", "10", "--repeat", "5"])
        let results = try #require(run.json["results"] as? [[String: Any]], "client failed: \(run.stderr)")
        #expect(results.allSatisfy { $0["code"] as? String == "OK" && $0["echoed"] as? Bool == true })
    }

    @Test func bigMessageSpansManyFrames() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--size", String(8 << 20)])
        #expect(run.code == "OK", "\(run.json) \(run.stderr)")
        #expect(run.json["echoed"] as? Bool == true)
        #expect(run.json["length"] as? Int == 8 << 20)
    }

    @Test func overLimitMessageIsResourceExhausted() throws {
        let s = try RunningServer(limits: .init(maxRequestBytes: 64 << 10))
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--size", String(1 << 20)])
        #expect(run.code == "RESOURCE_EXHAUSTED", "\(run.json) \(run.stderr)")
        #expect(run.details?.contains("1048576") == true)
        #expect(run.details?.contains("65536") == true)
        // The connection is still good for the next call.
        let next = try Clients.grpc("unary", s.target, ["--size", "1000"])
        #expect(next.code == "OK")
    }

    @Test func unknownMethodIsUnimplemented() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--path", "/nope.Service/Missing"])
        #expect(run.code == "UNIMPLEMENTED", "\(run.json) \(run.stderr)")
        #expect(run.details?.contains("/nope.Service/Missing") == true)
    }

    @Test func deadlineIsExceededAndResponderCancelled() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let started = Date()
        let run = try Clients.grpc("unary", s.target, ["--path", "/test.Test/Hang", "--timeout", "0.3"])
        #expect(run.code == "DEADLINE_EXCEEDED", "\(run.json) \(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 5)
        // Client and server deadlines race (the client's starts first); either way the call ended once and
        // the responder knows.
        let stats = s.server.statistics
        #expect((stats.callsByStatus[.deadlineExceeded] ?? 0) + (stats.callsByStatus[.cancelled] ?? 0) == 1)
        let responders = s.service.hung.withLock { $0 }
        #expect(responders.count == 1)
        #expect(responders.allSatisfy { $0.isCancelled })
        // A late answer is dropped and counted.
        responders.first?.send(message: [1, 2, 3])
        #expect(s.server.statistics.responsesDropped == 1)
    }

    @Test(arguments: [("200m", 0.2), ("300000u", 0.3), ("1S", 1.0)])
    func serverEnforcesDeadlineItself(timeout: String, seconds: Double) throws {
        // nghttp has no deadline of its own: only the server can end this call.
        let s = try RunningServer()
        defer { s.stop() }
        let body = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-deadline-\(UUID()).bin")
        try Data(frame([1, 2, 3])).write(to: body)
        defer { try? FileManager.default.removeItem(at: body) }
        let started = Date()
        let result = try Clients.run(
            "/usr/bin/env",
            [
                "nghttp", "-v", "-H", "content-type: application/grpc", "-H", "grpc-timeout: \(timeout)", "-d",
                body.path,
                "http://\(s.target)/test.Test/Hang",
            ]
        )
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.stdout.contains("grpc-status: 4"), "\(result.stdout)")
        #expect(elapsed >= seconds * 0.95)
        #expect(elapsed < seconds + 3)
        #expect(s.server.statistics.callsByStatus[.deadlineExceeded] == 1)
        #expect(s.service.hung.withLock { $0.allSatisfy { $0.isCancelled } })
    }

    @Test(arguments: ["--gzip", "--deflate"])
    func compressedRequest(flag: String) throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--size", "200000", flag])
        #expect(run.code == "OK", "\(run.json) \(run.stderr)")
        #expect(run.json["echoed"] as? Bool == true)
    }

    @Test func compressedOverLimitIsResourceExhausted() throws {
        // The client's compressed message is small; it inflates past the limit.
        let s = try RunningServer(limits: .init(maxRequestBytes: 64 << 10))
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--zeros", String(1 << 20), "--gzip"])
        #expect(run.code == "RESOURCE_EXHAUSTED", "\(run.json) \(run.stderr)")
        #expect(run.details?.contains("65536") == true)
    }

    @Test func clientCancelMarksResponderCancelled() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("cancel", s.target, ["--path", "/test.Test/Hang", "--after", "0.3"])
        #expect(run.code == "CANCELLED", "\(run.json) \(run.stderr)")
        let responders = s.service.hung.withLock { $0 }
        #expect(responders.count == 1)
        #expect(responders.first?.isCancelled == true)
        #expect(s.server.statistics.callsByStatus[.cancelled] == 1)
    }

    @Test(arguments: ["plain message", "100% sure", "line one\nline two", "naïve café ✓ 日本"])
    func errorMessageRoundTrip(message: String) throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--path", "/test.Test/Fail", "--text", "9:\(message)"])
        #expect(run.code == "FAILED_PRECONDITION", "\(run.json) \(run.stderr)")
        #expect(run.details == message)
    }

    @Test func bidirectionalStreaming() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("stream", s.target, ["--path", "/test.Test/Stream", "--count", "200"])
        #expect(run.code == "OK", "\(run.json) \(run.stderr)")
        #expect(run.json["count"] as? Int == 200)
        #expect(run.json["echoed"] as? Bool == true)
        let queued = try Clients.grpc("stream", s.target, ["--path", "/test.Test/StreamQueued", "--count", "500"])
        #expect(queued.code == "OK", "\(queued.json) \(queued.stderr)")
        #expect(queued.json["count"] as? Int == 500)
        #expect(queued.json["echoed"] as? Bool == true)
        let empty = try Clients.grpc("stream", s.target, ["--path", "/test.Test/Stream", "--count", "0"])
        #expect(empty.code == "OK")
        #expect(empty.json["count"] as? Int == 0)
    }

    @Test func streamingFailureEndsTheStream() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc("stream", s.target, ["--path", "/test.Test/StreamFail", "--count", "10"])
        #expect(run.code == "ABORTED", "\(run.json) \(run.stderr)")
        #expect(run.details == "stopped at message 3")
        #expect(s.server.statistics.callsByStatus[.aborted] == 1)
    }

    @Test func streamingDeadlineAfterFirstResponse() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let run = try Clients.grpc(
            "stream",
            s.target,
            ["--path", "/test.Test/StreamFirst", "--count", "5", "--timeout", "0.5"]
        )
        #expect(run.code == "DEADLINE_EXCEEDED", "\(run.json) \(run.stderr)")
        let stats = s.server.statistics
        #expect((stats.callsByStatus[.deadlineExceeded] ?? 0) + (stats.callsByStatus[.cancelled] ?? 0) == 1)
    }

    @Test func peersVanishingMidResponseDoNotHurtTheServer() throws {
        let s = try RunningServer(loops: 1)
        defer { s.stop() }
        let run = try Clients.grpc(
            "hangup",
            s.target,
            ["--path", "/test.Test/Queued", "--size", "1000000", "--count", "8", "--repeat", "5"]
        )
        #expect(run.json["done"] as? Bool == true, "\(run.stderr)")
        let fine = try Clients.grpc("unary", s.target, ["--size", "100000"])
        #expect(fine.code == "OK")
        let start = Date()
        while s.server.statistics.connectionsOpen > 1 && Date().timeIntervalSince(start) < 5 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let stats = s.server.statistics
        #expect(stats.connectionsClosed >= 5)
        // Every stream ended exactly once: answered, or cancelled by the vanishing peer.
        #expect(stats.calls == stats.streamsOpened, "\(stats)")
    }

    @Test func brokenPeerGetsGoawayAndOthersAreUnaffected() throws {
        let s = try RunningServer(loops: 1)
        defer { s.stop() }
        let broken = try Clients.grpc("garbage", s.target)
        #expect(broken.json["goaway"] as? Bool == true, "\(broken.json) \(broken.stderr)")
        #expect(broken.json["closed"] as? Bool == true)
        let fine = try Clients.grpc("unary", s.target, ["--size", "10"])
        #expect(fine.code == "OK")
        #expect(s.server.statistics.protocolErrors >= 1)
    }

    @Test func wrongContentTypeIs415() throws {
        let s = try RunningServer()
        defer { s.stop() }
        let body = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-415-\(s.port).bin")
        try Data([0, 0, 0, 0, 1, 42]).write(to: body)
        defer { try? FileManager.default.removeItem(at: body) }
        let result = try Clients.run(
            "/usr/bin/env",
            ["nghttp", "-v", "-H", "content-type: text/plain", "-d", body.path, "http://\(s.target)/test.Test/Echo"]
        )
        #expect(result.stdout.contains(":status: 415"), "\(result.stdout)")
        #expect(s.server.statistics.httpRejections == 1)
    }

    /// Requests nghttp can make that grpcio would never send, and the status line each must produce.
    static let malformedRequests: [(headers: [String], body: [UInt8]?, expected: [String])] = [
        (["grpc-timeout: 12x"], [0, 0, 0, 0, 1, 42], ["grpc-status: 3", "malformed grpc-timeout '12x'"]),
        (["grpc-timeout: 123456789S"], [0, 0, 0, 0, 1, 42], ["grpc-status: 3"]),
        (
            ["grpc-encoding: snappy"], [0, 0, 0, 0, 1, 42],
            ["grpc-status: 12", "grpc-accept-encoding: identity,deflate,gzip"]
        ),
        ([], [1, 0, 0, 0, 1, 42], ["grpc-status: 12", "compressed but no grpc-encoding"]),
        (["grpc-encoding: gzip"], [1, 0, 0, 0, 3, 1, 2, 3], ["grpc-status: 13", "cannot decompress"]),
        (["x-big: " + String(repeating: "a", count: 20_000)], [0, 0, 0, 0, 1, 42], ["grpc-status: 8", "16384"]),
        ([], nil, [":status: 405"]),
        ([], [0, 0, 0, 0, 1], ["grpc-status: 13", "ended inside a message"]),
        ([], [], ["grpc-status: 13", "expects one request message, got none"]),
        ([], [0, 0, 0, 0, 1, 42, 0, 0, 0, 0, 1, 43], ["grpc-status: 13", "expects one request message, got more"]),
    ]

    @Test(arguments: malformedRequests)
    func malformedRequestGetsAClearStatus(headers: [String], body: [UInt8]?, expected: [String]) throws {
        let s = try RunningServer()
        defer { s.stop() }
        var arguments = ["-v", "-H", "content-type: application/grpc", "-H", "te: trailers"]
        for header in headers { arguments += ["-H", header] }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-body-\(UUID()).bin")
        defer { try? FileManager.default.removeItem(at: file) }
        if let body {
            try Data(body).write(to: file)
            arguments += ["-d", file.path]
        }
        let result = try Clients.run("/usr/bin/env", ["nghttp"] + arguments + ["http://\(s.target)/test.Test/Echo"])
        for line in expected { #expect(result.stdout.contains(line), "expected '\(line)' in:\n\(result.stdout)") }
        // The connection survives a bad stream: the server still answers.
        let fine = try Clients.grpc("unary", s.target, ["--size", "10"])
        #expect(fine.code == "OK")
    }

    @Test func connectionLimitRefusesExtraConnections() throws {
        let s = try RunningServer(loops: 1, limits: .init(maxConnections: 1))
        defer { s.stop() }
        // One connection held open by a hanging call; a second client is refused.
        let target = s.target
        Thread.detachNewThread {
            _ = try? Clients.grpc("unary", target, ["--path", "/test.Test/Hang", "--timeout", "3"])
        }
        let start = Date()
        while s.server.statistics.connectionsOpen == 0 && Date().timeIntervalSince(start) < 10 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let refused = try Clients.grpc("unary", s.target, ["--timeout", "1"])
        #expect(refused.code == "UNAVAILABLE")
        #expect(s.server.statistics.connectionsRejected >= 1)
    }

    @Test(arguments: [false, true])
    func clientThatStopsReadingIsBoundedThenClosed(flood: Bool) throws {
        let s = try RunningServer(limits: .init(maxOutputBufferBytes: 256 << 10))
        defer { s.stop() }
        let outcome = Mutex<(json: String, closedInTime: Bool, closed: Bool)>(("", false, false))
        let done = DispatchSemaphore(value: 0)
        let target = s.target
        Thread.detachNewThread {
            let run = try? Clients.grpc(
                "noread",
                target,
                ["--path", "/test.Test/Stream", "--timeout", "20"] + (flood ? ["--flood"] : ["--stall", "16"])
            )
            let result = (
                "\(String(describing: run?.json)) \(run?.stderr ?? "")",
                (run?.json["seconds"] as? Double ?? 99) < 60, run?.json["closed"] as? Bool ?? false
            )
            outcome.withLock { $0 = result }
            done.signal()
        }
        // While that client is stalled, others are served.
        Thread.sleep(forTimeInterval: flood ? 0.5 : 3)
        let other = try Clients.grpc("unary", s.target, ["--size", "1000"])
        #expect(other.code == "OK")
        #expect(done.wait(timeout: .now() + 70) == .success)
        let result = outcome.withLock { $0 }
        #expect(result.closedInTime, "the stalled connection stayed open too long: \(result.json)")
        #expect(result.closed, "the server never closed the stalled connection: \(result.json)")
        #expect(s.server.statistics.connectionsClosed >= 1)
        if flood { #expect(s.server.statistics.protocolErrors >= 1) }
    }

    @Test(arguments: ["/test.Test/Echo", "/test.Test/Queued"])
    func manyConcurrentCallsWithH2load(path: String) throws {
        let s = try RunningServer(loops: 2)
        defer { s.stop() }
        let body = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-h2load-\(UUID()).bin")
        try Data(frame(Array(repeating: 7, count: 100))).write(to: body)
        defer { try? FileManager.default.removeItem(at: body) }
        let result = try Clients.run(
            "/usr/bin/env",
            [
                "h2load", "-n", "20000", "-c", "4", "-m", "32", "-d", body.path, "-H", "content-type: application/grpc",
                "-H", "te: trailers", "http://\(s.target)\(path)",
            ]
        )
        #expect(result.stdout.contains("20000 succeeded"), "\(result.stdout)")
        let stats = s.server.statistics
        #expect(stats.callsByStatus[.ok] == 20000)
        #expect(stats.calls == 20000)
        #expect(stats.connectionsAccepted == 4)
        #expect(stats.responsesDropped == 0)
    }

    @Test func advertisesSettings() throws {
        let s = try RunningServer(limits: .init(maxConcurrentStreams: 77, maxHeaderListBytes: 9000))
        defer { s.stop() }
        let result = try Clients.run(
            "/usr/bin/env",
            ["nghttp", "-v", "-H", "content-type: application/grpc", "http://\(s.target)/test.Test/Echo"]
        )
        #expect(result.stdout.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):77"), "\(result.stdout)")
        #expect(result.stdout.contains("SETTINGS_MAX_HEADER_LIST_SIZE(0x06):9000"), "\(result.stdout)")
    }

    @Test func gracefulShutdownFinishesInFlightCalls() throws {
        let s = try RunningServer()
        let result = Mutex<(code: String?, output: String)>((nil, ""))
        let done = DispatchSemaphore(value: 0)
        let target = s.target
        Thread.detachNewThread {
            let run = try? Clients.grpc("unary", target, ["--path", "/test.Test/Slow", "--size", "10"])
            let outcome = (run?.code, "\(String(describing: run?.json)) \(run?.stderr ?? "")")
            result.withLock { $0 = outcome }
            done.signal()
        }
        // Wait until the call is in flight (python starts slowly), then drain with it still running.
        let start = Date()
        while s.server.statistics.streamsOpened == 0 && Date().timeIntervalSince(start) < 10 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        s.stop()
        #expect(done.wait(timeout: .now() + 10) == .success)
        let outcome = result.withLock { $0 }
        #expect(outcome.code == "OK", "\(outcome.output)")
        #expect(s.server.statistics.connectionsOpen == 0)
        // Nothing listens any more.
        let after = try Clients.grpc("unary", s.target, ["--timeout", "2"])
        #expect(after.code == "UNAVAILABLE")
    }
}
