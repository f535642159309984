import Testing

@testable import SwitchyardCore

@Suite struct HostAndPortTests {
    @Test(arguments: [
        ("127.0.0.1:8001", "127.0.0.1", 8001),
        ("[::1]:9000", "::1", 9000),
        ("localhost:0", "localhost", 0),
    ])
    func parses(text: String, host: String, port: Int) throws {
        let parsed = try HostAndPort(parsing: text)
        #expect(parsed.host == host)
        #expect(parsed.port == port)
    }

    @Test(arguments: ["8001", ":8001", "host:", "host:70000", "host:abc"])
    func rejects(text: String) {
        #expect(throws: SwitchyardError.self) { try HostAndPort(parsing: text) }
    }
}

@Suite struct ServerConfigurationTests {
    @Test func defaultsAreValid() {
        #expect(ServerConfiguration().validate().isEmpty)
        #expect(ServerConfiguration().limits.maxRequestBytes == 64 << 20)
    }

    @Test func reportsEveryProblemWithItsKeyPath() {
        var config = ServerConfiguration(listen: "nowhere", threads: 0)
        config.limits.maxConcurrentStreams = 0
        let problems = config.validate()
        #expect(problems.count == 3)
        #expect(problems.contains { $0.hasPrefix("listen:") })
        #expect(problems.contains { $0.hasPrefix("threads:") })
        #expect(problems.contains { $0.hasPrefix("limits.max_concurrent_streams:") })
    }
}

@Suite struct ShapeTests {
    @Test func elementCountDetectsOverflowAndNegativeDimensions() {
        #expect(Shape.elementCount([2, 64]) == 128)
        #expect(Shape.elementCount([]) == 1)
        #expect(Shape.elementCount([-1, 64]) == nil)
        #expect(Shape.elementCount([Int.max, 2]) == nil)
    }
}
