// The REST listener's HTTP/1.1 framing over real loopback sockets: keep-alive, pipelining in request order,
// body and header limits, request smuggling, timeouts, and one bad connection never hurting another.

import Dispatch
import Glibc
import Logging
import Synchronization
import Testing

@testable import SwitchyardCore
@testable import SwitchyardHTTP2

/// Echoes the request: `GET /x` → "GET /x", `POST` adds the body length; `/slow?ms=N` answers from another
/// thread after N ms, so pipelined answers come back out of order and must be written in order.
final class EchoHTTPService: HTTPService {
    let handled = Atomic<Int>(0)

    func handle(head: HTTPRequestHead, body: UnsafeRawBufferPointer, responder: any HTTPResponder) {
        handled.add(1, ordering: .relaxed)
        var text = "\(head.method) \(head.path)"
        if head.method == "POST" { text += " \(body.count)" }
        let response = HTTPResponse(status: 200, headers: [("content-type", "text/plain")], body: Array(text.utf8))
        if head.path == "/slow", let ms = head.query.flatMap({ Int($0.dropFirst(3)) }) {
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { responder.respond(response) }
        } else {
            responder.respond(response)
        }
    }

    func refusal(status: Int, message: String) -> HTTPResponse {
        HTTPResponse(status: status, body: Array("refused: \(message)".utf8))
    }
}

/// A parsed response.
struct ClientResponse {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// A blocking loopback client with a receive timeout; reads responses framed by Content-Length.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw SwitchyardError.internal("connect failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads more bytes; false at end of stream or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// The next response, or nil when the connection closed (or timed out) first.
    func response() -> ClientResponse? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            if let end = find(separator) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                var headers: [String: String] = [:]
                for line in lines {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces
                }
                let length = Int(headers["content-length"] ?? "0") ?? 0
                while buffer.count < end + 4 + length { if !fill() { return nil } }
                let body = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
                buffer.removeFirst(end + 4 + length)
                return ClientResponse(status: Int(statusLine[1]) ?? 0, headers: headers, body: body)
            }
            if !fill() { return nil }
        }
    }

    /// Whether the server closed the connection (end of stream with nothing more).
    func closedByServer() -> Bool { buffer.isEmpty && !fill() }

    private func find(_ needle: [UInt8]) -> Int? {
        guard buffer.count >= needle.count else { return nil }
        for start in 0...(buffer.count - needle.count)
        where buffer[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String { String(drop { $0 == " " }) }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}

@Suite(.serialized) struct HTTP1ConnectionTests {
    /// Runs `body` against a server with a REST listener on a free port.
    static func withServer(
        limits: ServerConfiguration.Limits = .init(),
        service: EchoHTTPService = EchoHTTPService(),
        _ body: (Int) throws -> Void
    ) throws {
        let server = try GRPCServer(
            configuration: .init(
                listen: .init(host: "127.0.0.1", port: 0),
                limits: limits,
                restListen: .init(host: "127.0.0.1", port: 0)
            ),
            service: TestService(),
            httpService: service,
            logger: Logger(label: "test")
        )
        _ = try server.start()
        defer { server.shutdown(gracePeriodSeconds: 0) }
        try body(try #require(server.restPort))
    }

    @Test func keepAliveAndPipeliningAnswerInRequestOrder() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            // The slow request's answer is ready last but must be written first.
            client.send(
                "GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            )
            #expect(client.response()?.body == "GET /slow")
            #expect(client.response()?.body == "GET /a")
            #expect(client.response()?.body == "POST /b 5")
            // Still open: another request on the same connection.
            client.send("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            let chunked = client.response()
            #expect(chunked?.status == 200)
            #expect(chunked?.body == "POST /c 5")
        }
    }

    @Test func aTargetThatIsNotAPathIsAnsweredAndTheConnectionGoesOn() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            // Absolute form: nothing but the connection answers it, so it must not wait for a service.
            client.send("GET http://example.com/v2 HTTP/1.1\r\nHost: x\r\n\r\n")
            let refused = try #require(client.response())
            #expect(refused.status == 400)
            #expect(refused.body.contains("expected a path starting with '/'"))
            client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(client.response()?.body == "GET /a")
        }
    }

    @Test func pipelinedRequestsBeyondTheInFlightLimitWaitTheirTurn() throws {
        var limits = ServerConfiguration.Limits()
        limits.maxConcurrentStreams = 2
        let service = EchoHTTPService()
        try Self.withServer(limits: limits, service: service) { port in
            let client = try RawClient(port: port)
            client.send(String(repeating: "GET /slow?ms=20 HTTP/1.1\r\n\r\n", count: 10))
            for _ in 0..<10 { #expect(client.response()?.body == "GET /slow") }
            #expect(service.handled.load(ordering: .relaxed) == 10)
        }
    }

    @Test func bothContentLengthAndTransferEncodingIsRefused() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            client.send(
                "POST /x HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
            )
            let response = try #require(client.response())
            #expect(response.status == 400)
            #expect(response.body.contains("Content-Length and Transfer-Encoding"))
            #expect(response.headers["connection"] == "close")
            #expect(client.closedByServer())
        }
    }

    @Test func conflictingContentLengthsAreRefused() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            client.send("POST /x HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\nabcd")
            #expect(client.response()?.status == 400)
            #expect(client.closedByServer())
        }
    }

    @Test func oversizedBodiesGet413NamingTheLimit() throws {
        var limits = ServerConfiguration.Limits()
        limits.maxRequestBytes = 1024
        limits.maxBufferedRequestBytes = 1 << 20
        try Self.withServer(limits: limits) { port in
            let declared = try RawClient(port: port)
            declared.send("POST /x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
            let response = try #require(declared.response())
            #expect(response.status == 413)
            #expect(response.body.contains("1024 bytes (limits.max_request_bytes)"))

            let chunked = try RawClient(port: port)
            chunked.send(
                "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + String(repeating: "a", count: 2048)
            )
            let second = try #require(chunked.response())
            #expect(second.status == 413)
            #expect(second.body.contains("limits.max_request_bytes"))
        }
    }

    @Test func bodiesCountAgainstTheProcessWideBufferLimit() throws {
        var limits = ServerConfiguration.Limits()
        limits.maxRequestBytes = 4096
        limits.maxBufferedRequestBytes = 4096
        try Self.withServer(limits: limits) { port in
            // One body being received holds 3000 of the 4096 bytes; a second one of 3000 does not fit.
            let first = try RawClient(port: port)
            first.send("POST /a HTTP/1.1\r\nContent-Length: 3000\r\n\r\nxx")
            usleep(100_000)
            let second = try RawClient(port: port)
            second.send("POST /b HTTP/1.1\r\nContent-Length: 3000\r\n\r\n")
            let refused = try #require(second.response())
            #expect(refused.status == 429)
            #expect(refused.body.contains("limits.max_buffered_request_bytes"))
            // The first completes, and its bytes are given back: a third fits.
            first.send(String(repeating: "x", count: 2998))
            #expect(first.response()?.body == "POST /a 3000")
            let third = try RawClient(port: port)
            third.send("POST /c HTTP/1.1\r\nContent-Length: 3000\r\n\r\n" + String(repeating: "y", count: 3000))
            #expect(third.response()?.body == "POST /c 3000")
        }
    }

    @Test func expectContinueIsAnswered() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            client.send("POST /e HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            #expect(client.response()?.status == 100)
            client.send("abc")
            #expect(client.response()?.body == "POST /e 3")
        }
    }

    @Test func oversizedHeadersGet431NamingTheLimit() throws {
        var limits = ServerConfiguration.Limits()
        limits.maxHeaderListBytes = 1024
        try Self.withServer(limits: limits) { port in
            let client = try RawClient(port: port)
            client.send("GET /x HTTP/1.1\r\nX-Big: \(String(repeating: "b", count: 2000))\r\n\r\n")
            let response = try #require(client.response())
            #expect(response.status == 431)
            #expect(response.body.contains("limits.max_header_list_bytes"))
        }
    }

    @Test func slowHeadersTimeOutWith408() throws {
        var limits = ServerConfiguration.Limits()
        limits.headerTimeoutSeconds = 0.3
        try Self.withServer(limits: limits) { port in
            let client = try RawClient(port: port)
            client.send("GET /x HTTP/1.1\r\nX-Slow: ")
            let response = try #require(client.response())
            #expect(response.status == 408)
            #expect(response.body.contains("limits.header_timeout_seconds"))
            #expect(client.closedByServer())
        }
    }

    @Test func stalledBodiesGet408AndIdleConnectionsClose() throws {
        var limits = ServerConfiguration.Limits()
        limits.idleTimeoutSeconds = 0.3
        try Self.withServer(limits: limits) { port in
            let stalled = try RawClient(port: port)
            stalled.send("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
            let response = try #require(stalled.response())
            #expect(response.status == 408)
            #expect(response.body.contains("request body stalled"))
            #expect(response.body.contains("limits.idle_timeout_seconds"))
            #expect(stalled.closedByServer())

            let idle = try RawClient(port: port)
            idle.send("GET /a HTTP/1.1\r\n\r\n")
            #expect(idle.response()?.body == "GET /a")
            #expect(idle.closedByServer())  // closed without a response once idle past the timeout
        }
    }

    @Test func connectionCloseAndHTTP10AreHonoured() throws {
        try Self.withServer { port in
            let client = try RawClient(port: port)
            client.send("GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            let response = try #require(client.response())
            #expect(response.body == "GET /a")
            #expect(response.headers["connection"] == "close")
            #expect(client.closedByServer())

            let old = try RawClient(port: port)
            old.send("GET /c HTTP/1.0\r\n\r\n")
            #expect(old.response()?.body == "GET /c")
            #expect(old.closedByServer())
        }
    }

    @Test func aMalformedConnectionDoesNotHurtAnother() throws {
        try Self.withServer { port in
            let good = try RawClient(port: port)
            let bad = try RawClient(port: port)
            bad.send("BLAH\u{1}\u{2} / HTTP/9.9\r\n\r\n")
            let refused = try #require(bad.response())
            #expect(refused.status == 400)
            #expect(refused.body.contains("malformed HTTP/1.1 request"))
            good.send("GET /fine HTTP/1.1\r\n\r\n")
            #expect(good.response()?.body == "GET /fine")
        }
    }

    @Test func restPortInUseIsAClearError() throws {
        try Self.withServer { port in
            let second = try GRPCServer(
                configuration: .init(
                    listen: .init(host: "127.0.0.1", port: 0),
                    restListen: .init(host: "127.0.0.1", port: port)
                ),
                service: TestService(),
                httpService: EchoHTTPService(),
                logger: Logger(label: "test")
            )
            #expect {
                _ = try second.start()
            } throws: { error in
                "\(error)".contains("rest_listen: cannot bind 127.0.0.1:\(port)")
            }
        }
    }
}
