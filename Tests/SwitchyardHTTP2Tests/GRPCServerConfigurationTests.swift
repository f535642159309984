// Configuration errors the server reports before touching a socket, and its lifecycle rules.

import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardHTTP2

@Suite struct GRPCServerConfigurationTests {
    static func make(_ configuration: GRPCServer.Configuration) throws -> GRPCServer {
        try GRPCServer(configuration: configuration, service: TestService(), logger: Logger(label: "test"))
    }

    @Test func badLimitsAreNamed() {
        var limits = ServerConfiguration.Limits()
        limits.maxConcurrentStreams = 0
        limits.maxOutputBufferBytes = 10
        #expect {
            _ = try Self.make(.init(listen: .init(host: "127.0.0.1", port: 0), limits: limits))
        } throws: { error in
            let text = "\(error)"
            return text.contains("limits.max_concurrent_streams") && text.contains("limits.max_output_buffer_bytes")
        }
    }

    @Test(arguments: [0, 257])
    func eventLoopCountIsChecked(loops: Int) {
        #expect(throws: SwitchyardError.self) {
            _ = try Self.make(.init(listen: .init(host: "127.0.0.1", port: 0), eventLoops: loops))
        }
    }

    @Test func portInUseIsAClearError() throws {
        let first = try Self.make(.init(listen: .init(host: "127.0.0.1", port: 0)))
        let port = try first.start()
        defer { first.shutdown(gracePeriodSeconds: 0) }
        let second = try Self.make(.init(listen: .init(host: "127.0.0.1", port: port)))
        #expect {
            _ = try second.start()
        } throws: { error in
            "\(error)".contains("127.0.0.1:\(port)")
        }
    }

    @Test func startTwiceFailsAndShutdownIsIdempotent() throws {
        let server = try Self.make(.init(listen: .init(host: "127.0.0.1", port: 0), eventLoops: 2))
        _ = try server.start()
        #expect(throws: SwitchyardError.self) { _ = try server.start() }
        server.shutdown(gracePeriodSeconds: 0)
        server.shutdown(gracePeriodSeconds: 0)
        #expect(server.statistics.connectionsOpen == 0)
    }
}
