// The front end's request/response/trailers/reset/GOAWAY paths with real HTTP/2 bytes and no sockets: an
// in-process nghttp2 client talks to a server `Connection` through SwitchyardHTTP2TestSupport. These run
// everywhere (no grpcio, no python), unlike the end-to-end suites that need a stock client.

import Logging
import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardHTTP2TestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Answers by path: echo at once (unary or streaming), fail, or hold the responder for the test to answer later.
private final class ScriptedService: GRPCService {
    static let unary = "/test.Echo/Unary"
    static let stream = "/test.Echo/Stream"
    static let fail = "/test.Echo/Fail"
    static let hold = "/test.Echo/Hold"

    let held = Mutex<[any GRPCResponder]>([])
    let heads = Mutex<[GRPCRequestHead]>([])

    func method(for path: String) -> GRPCMethod? {
        switch path {
        case Self.unary: GRPCMethod(id: 0, kind: .unary)
        case Self.stream: GRPCMethod(id: 1, kind: .bidirectionalStreaming)
        case Self.fail: GRPCMethod(id: 2, kind: .unary)
        case Self.hold: GRPCMethod(id: 3, kind: .unary)
        default: nil
        }
    }

    func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        heads.withLock { $0.append(head) }
        switch method.id {
        case 0: responder.send(message: Array(message), metadata: [("x-echo", head.metadata("x-tag") ?? "none")])
        case 1: responder.send(message: Array(message.reversed()))
        case 2:
            responder.fail(
                GRPCStatus(.notFound, "no such thing: \(message.count) bytes"),
                metadata: [("x-why", "test")]
            )
        default: held.withLock { $0.append(responder) }
        }
    }

    /// The responder of the `index`th held call.
    func heldResponder(_ index: Int = 0) -> (any GRPCResponder)? {
        held.withLock { $0.indices.contains(index) ? $0[index] : nil }
    }
}

@Suite struct InMemoryConnectionTests {
    private let service = ScriptedService()
    private let server: InMemoryHTTP2Server
    private let connection: InMemoryHTTP2Connection
    private let client = InMemoryHTTP2Client()

    init() throws {
        var logger = Logger(label: "in-memory")
        logger.logLevel = .critical
        var limits = ServerConfiguration.Limits()
        limits.maxRequestBytes = 1024
        server = try InMemoryHTTP2Server(service: service, limits: limits, logger: logger)
        connection = server.connect()
        client.exchange(with: connection)  // prefaces and SETTINGS both ways
    }

    private func response(_ stream: Int32?) throws -> InMemoryHTTP2Client.Response {
        let stream = try #require(stream)
        return try #require(client.responses[stream])
    }

    @Test func aUnaryCallGetsHeadersItsMessageAndOKTrailers() throws {
        let stream = client.startCall(path: ScriptedService.unary, metadata: [("x-tag", "seven")])
        client.send([1, 2, 3], on: try #require(stream), endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.headers.first { $0.name == ":status" }?.value == "200")
        #expect(answer.headers.first { $0.name == "content-type" }?.value == "application/grpc")
        #expect(answer.messages == [[1, 2, 3]])
        #expect(answer.trailers.first { $0.name == "grpc-status" }?.value == "0")
        #expect(answer.trailers.first { $0.name == "x-echo" }?.value == "seven")
        #expect(answer.closed && answer.closeCode == InMemoryHTTP2Client.ErrorCode.noError)
        #expect(service.heads.withLock { $0.first?.metadata("x-tag") } == "seven")
        #expect(server.statistics.callsByStatus[.ok] == 1)
        #expect(!connection.hasLiveCalls)
    }

    @Test func aFailureBeforeAnyMessageIsTrailersOnly() throws {
        let stream = client.startCall(path: ScriptedService.fail)
        client.send([9], on: try #require(stream), endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.trailers.isEmpty)
        #expect(answer.headers.first { $0.name == "grpc-status" }?.value == "5")
        #expect(answer.headers.first { $0.name == "grpc-message" }?.value == "no such thing: 1 bytes")
        #expect(answer.headers.first { $0.name == "x-why" }?.value == "test")
        #expect(answer.data.isEmpty)
        #expect(server.statistics.callsByStatus[.notFound] == 1)
    }

    @Test func aStreamAnswersEachMessageAndEndsWithOKAfterTheHalfClose() throws {
        let stream = try #require(client.startCall(path: ScriptedService.stream))
        client.send([1, 2], on: stream)
        client.exchange(with: connection)
        #expect(try response(stream).messages == [[2, 1]])
        #expect(try !response(stream).closed)
        client.send([3, 4, 5], on: stream)
        client.send([6], on: stream, endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.messages == [[2, 1], [5, 4, 3], [6]])
        #expect(answer.grpcStatus == 0)
        #expect(answer.closed)
        #expect(server.statistics.callsByStatus[.ok] == 1)
    }

    @Test func anUnknownMethodIsUnimplemented() throws {
        let stream = client.startCall(path: "/test.Echo/Nope")
        client.send([1], on: try #require(stream), endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.grpcStatus == 12)
        #expect(answer.value("grpc-message") == "unknown method /test.Echo/Nope")
    }

    @Test(arguments: [("GET", "application/grpc", "405"), ("POST", "text/plain", "415")])
    func requestsThatAreNotGRPCGetAnHTTPError(method: String, contentType: String, status: String) throws {
        let stream = client.startCall(path: ScriptedService.unary, method: method, contentType: contentType)
        client.send([1], on: try #require(stream), endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.value(":status") == status)
        #expect(answer.grpcStatus == 13)
        #expect(server.statistics.httpRejections == 1)
        #expect(service.heads.withLock { $0.isEmpty })
    }

    @Test func aMessageOverTheLimitIsRefusedAndTheRestOfTheRequestIgnored() throws {
        let stream = try #require(client.startCall(path: ScriptedService.unary))
        client.send([UInt8](repeating: 7, count: 2048), on: stream, endStream: true)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.grpcStatus == 8)
        #expect(answer.value("grpc-message")?.contains("exceeds the limit of 1024 bytes") == true)
        #expect(service.heads.withLock { $0.isEmpty })
        #expect(server.statistics.bufferedRequestBytes == 0)
    }

    @Test func aClientResetCancelsTheCallAndDropsTheLateAnswer() throws {
        let stream = try #require(client.startCall(path: ScriptedService.hold))
        client.send([1], on: stream, endStream: true)
        client.exchange(with: connection)
        let responder = try #require(service.heldResponder())
        #expect(!responder.isCancelled)
        #expect(connection.hasLiveCalls)
        client.reset(stream)
        client.exchange(with: connection)
        #expect(responder.isCancelled)
        #expect(!connection.hasLiveCalls)
        #expect(server.statistics.callsByStatus[.cancelled] == 1)
        responder.send(message: [1])
        client.exchange(with: connection)
        #expect(server.statistics.responsesDropped == 1)
        #expect(try response(stream).data.isEmpty)
    }

    @Test func aResetAfterTheResponseStartedCancelsTheStream() throws {
        let stream = try #require(client.startCall(path: ScriptedService.stream))
        client.send([1], on: stream)
        client.exchange(with: connection)
        #expect(try response(stream).messages == [[1]])
        client.reset(stream)
        client.exchange(with: connection)
        #expect(server.statistics.callsByStatus[.cancelled] == 1)
        #expect(!connection.hasLiveCalls)
        // The connection goes on serving.
        let next = client.startCall(path: ScriptedService.unary)
        client.send([5], on: try #require(next), endStream: true)
        client.exchange(with: connection)
        #expect(try response(next).messages == [[5]])
    }

    @Test func aUnaryResponderTakesOneAnswerFromAnotherThread() throws {
        let stream = try #require(client.startCall(path: ScriptedService.hold))
        client.send([1], on: stream, endStream: true)
        client.exchange(with: connection)
        let responder = try #require(service.heldResponder())
        // A worker thread answers; the second answer and a late failure are dropped before they reach the loop.
        let worker = try startThread(name: "test-worker") {
            responder.send(message: [8])
            responder.send(message: [9])
            responder.fail(GRPCStatus(.internal, "too late"))
        }
        pthread_join(worker, nil)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.messages == [[8]])
        #expect(answer.grpcStatus == 0)
        #expect(server.statistics.responsesDropped == 2)
    }

    @Test func theDeadlineEndsACallThatWasNotAnswered() throws {
        let stream = try #require(client.startCall(path: ScriptedService.hold, metadata: [("grpc-timeout", "1m")]))
        client.send([1], on: stream, endStream: true)
        client.exchange(with: connection)
        #expect(server.armedDeadlines == 1)
        usleep(5_000)
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.grpcStatus == 4)
        #expect(server.armedDeadlines == 0)
        #expect(try #require(service.heldResponder()).isCancelled)
        #expect(server.statistics.callsByStatus[.deadlineExceeded] == 1)
    }

    @Test func aGracefulGoawayLetsTheCallInFlightFinishThenCloses() throws {
        let stream = try #require(client.startCall(path: ScriptedService.hold))
        client.send([1], on: stream, endStream: true)
        client.exchange(with: connection)
        connection.beginGracefulShutdown()
        client.exchange(with: connection)
        connection.sendFinalGoaway()
        client.exchange(with: connection)
        #expect(client.goaways.last == .init(lastStreamID: stream, errorCode: InMemoryHTTP2Client.ErrorCode.noError))
        #expect(connection.isOpen)  // the call in flight keeps it
        try #require(service.heldResponder()).send(message: [4, 2])
        client.exchange(with: connection)
        let answer = try response(stream)
        #expect(answer.messages == [[4, 2]])
        #expect(answer.grpcStatus == 0)
        // The client acknowledges nothing more; with no stream left the server is done.
        _ = connection.flush()
        #expect(!connection.isOpen)
    }

    @Test func aPingOnAStreamIsAProtocolErrorThatClosesAfterTheGoaway() throws {
        // PING belongs to stream 0 (RFC 9113 §6.7): nghttp2 queues GOAWAY PROTOCOL_ERROR and stops reading, and
        // the connection closes once that is written.
        let ping: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 8)
        connection.receive(ping)
        #expect(connection.isOpen)
        client.receive(connection.flush())
        #expect(client.goaways.last?.errorCode == InMemoryHTTP2Client.ErrorCode.protocolError)
        #expect(!connection.isOpen)
        #expect(server.statistics.protocolErrors == 1)
    }

    @Test func frameBudgetsEndAFloodingConnectionWithEnhanceYourCalm() throws {
        // PRIORITY frames cost a control-frame token each; far past the burst the connection is ended by verdict.
        var flood: [UInt8] = []
        for _ in 0..<(ServerConfiguration.Limits().maxControlFrameBurst + 10) {
            flood += [0, 0, 5, 2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 16]
        }
        let accepted = connection.receive(flood)
        #expect(!accepted)
        client.receive(connection.flush())
        #expect(client.goaways.last?.errorCode == InMemoryHTTP2Client.ErrorCode.enhanceYourCalm)
        #expect(!connection.isOpen)
        #expect(server.statistics.connectionsThrottled == 1)
    }

    @Test func closingTheConnectionCancelsEveryLiveCall() throws {
        for _ in 0..<3 {
            let stream = try #require(client.startCall(path: ScriptedService.hold))
            client.send([1], on: stream, endStream: true)
        }
        client.exchange(with: connection)
        #expect(service.held.withLock { $0.count } == 3)
        connection.close()
        #expect(!connection.hasLiveCalls)
        #expect(server.statistics.callsByStatus[.cancelled] == 3)
        for index in 0..<3 {
            let responder = try #require(service.heldResponder(index))
            #expect(responder.isCancelled)
            responder.send(message: [1])
        }
        server.runPendingWork()
        #expect(server.statistics.responsesDropped == 3)
    }
}
