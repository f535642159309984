// Configuration errors the server reports before touching a socket, and its lifecycle rules.

import Glibc
import Logging
import Testing

@testable import SwitchyardCore
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

    @Test func everyHardeningLimitIsValidatedWithItsKeyPath() {
        var limits = ServerConfiguration.Limits()
        limits.maxStreamResetBurst = 0
        limits.maxStreamResetsPerSecond = -1
        limits.maxControlFrameBurst = 0
        limits.maxControlFramesPerSecond = 2_000_000
        limits.handshakeTimeoutSeconds = 0
        limits.idleTimeoutSeconds = -1
        limits.writeStallTimeoutSeconds = .nan
        limits.maxBufferedRequestBytes = limits.maxRequestBytes - 1
        let problems = limits.validate()
        for key in [
            "max_stream_reset_burst", "max_stream_resets_per_second", "max_control_frame_burst",
            "max_control_frames_per_second", "handshake_timeout_seconds", "idle_timeout_seconds",
            "write_stall_timeout_seconds", "max_buffered_request_bytes",
        ] {
            #expect(problems.contains { $0.hasPrefix("limits.\(key): expected") }, "\(key) in \(problems)")
        }
        #expect(problems.count == 8)
        #expect(ServerConfiguration.Limits().validate().isEmpty)
        limits = ServerConfiguration.Limits()
        limits.idleTimeoutSeconds = 0  // 0 means never
        #expect(limits.validate().isEmpty)
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

@Suite struct EventLoopPinningTests {
    @Test func loopCPUsPinTheEventLoops() throws {
        let cpu = try #require(SystemInfo.allowedCPUs.last)
        let server = try GRPCServerConfigurationTests.make(
            .init(listen: .init(host: "127.0.0.1", port: 0), eventLoops: 2, loopCPUs: [cpu])
        )
        _ = try server.start()
        defer { server.shutdown(gracePeriodSeconds: 0) }
        // Other tests' servers run loops of the same names, unpinned; this server's two are pinned.
        let end = MonotonicInstant.now().advanced(byNanoseconds: 2_000_000_000)
        func pinned() -> Int {
            ["switchyard-io-0", "switchyard-io-1"].reduce(0) { count, name in
                count + SystemInfo.cpus(ofThreadsNamed: name).filter { $0 == [cpu] }.count
            }
        }
        while pinned() < 2 && MonotonicInstant.now() < end { usleep(1_000) }
        #expect(pinned() >= 2)
    }
}
