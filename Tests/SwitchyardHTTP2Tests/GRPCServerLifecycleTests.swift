// What a server leaves behind once it is stopped and dropped (found by scripts/sanitize.sh asan: LeakSanitizer
// reported every test server's event loops, their read buffers and descriptors, and the service as leaked).

import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardHTTP2

@Suite struct GRPCServerLifecycleTests {
    private static func makeServer(service: TestService, loops: Int) throws -> GRPCServer {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return try GRPCServer(
            configuration: .init(listen: HostAndPort(host: "127.0.0.1", port: 0), eventLoops: loops),
            service: service,
            logger: logger
        )
    }

    @Test(arguments: [1, 3])
    func aStoppedServerReleasesItsLoopsAndService(loops: Int) throws {
        weak var released: TestService?
        do {
            let service = TestService()
            released = service
            let server = try Self.makeServer(service: service, loops: loops)
            let port = try server.start()
            #expect(port > 0)
            server.shutdown(gracePeriodSeconds: 0)
        }
        #expect(released == nil, "the stopped server's event loops still hold the service")
    }

    @Test func aServerNeverStartedReleasesItsLoopsAndService() throws {
        weak var released: TestService?
        do {
            let service = TestService()
            released = service
            _ = try Self.makeServer(service: service, loops: 2)
        }
        #expect(released == nil, "the unstarted server's event loops still hold the service")
    }
}
