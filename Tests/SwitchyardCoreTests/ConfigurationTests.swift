import Foundation
import Synchronization
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

    @Test func restListenDefaultsToTritonsHTTPPortAndTurnsOffWithEmpty() throws {
        #expect(ServerConfiguration().restListen == "127.0.0.1:8000")
        #expect(ServerConfiguration(restListen: "").validate().isEmpty)
        let problems = ServerConfiguration(restListen: "8000").validate()
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("rest_listen: expected HOST:PORT") == true)
        let decoded = try JSONDecoder().decode(ServerConfiguration.self, from: Data(#"{"rest_listen": ""}"#.utf8))
        #expect(decoded.restListen == "")
        #expect(decoded.listen == "127.0.0.1:8001")
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

@Suite struct CPUListTests {
    @Test(arguments: [
        ("1", [1]), ("2-3", [2, 3]), ("0,4-6", [0, 4, 5, 6]), (" 3 , 1 ", [1, 3]), ("2,2,1-2", [1, 2]),
    ])
    func parses(text: String, cpus: [Int]) {
        #expect(SystemInfo.parseCPUList(text) == cpus)
    }

    @Test(arguments: ["", "a", "1,", ",1", "3-1", "-1", "1-", "1-2-3", "1.5", "5000"])
    func rejects(text: String) {
        #expect(SystemInfo.parseCPUList(text) == nil)
    }

    @Test func describesRangesTheWayItParses() {
        #expect(SystemInfo.describeCPUList([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8")
        #expect(SystemInfo.parseCPUList(SystemInfo.describeCPUList([5, 0, 1, 2, 7, 8])) == [0, 1, 2, 5, 7, 8])
    }

    @Test func theModelAndServerSettingsNameWhatIsWrong() throws {
        let allowed = SystemInfo.allowedCPUs
        #expect(!allowed.isEmpty)
        let usable = SystemInfo.describeCPUList(allowed)
        #expect(ModelConfiguration(workerCPUs: usable).validate().isEmpty)
        #expect(ServerConfiguration(ioCPUs: usable).validate().isEmpty)

        let garbled = ModelConfiguration(workerCPUs: "one").validate()
        #expect(garbled == [#"worker_cpus: expected a CPU list such as "1", "2-3" or "0,2-3", got "one""#])
        let missing = ServerConfiguration(ioCPUs: "\(allowed.last! + 1)-4095").validate()
        #expect(missing.count == 1)
        #expect(missing[0].hasPrefix("io_cpus: CPUs \(allowed.last! + 1)-4095 are not available to this process"))
        let one = ModelConfiguration(workerCPUs: "4095").validate()
        #expect(one.first?.hasPrefix("worker_cpus: CPU 4095 is not available to this process") == true)
        #expect(missing[0].hasSuffix("which may run on \(usable)"))
    }

    @Test func aNumberIsAOneCPUList() throws {
        let decoded = try JSONDecoder().decode(ModelConfiguration.self, from: Data(#"{"worker_cpus": 1}"#.utf8))
        #expect(decoded.workerCPUs == "1")
        #expect(decoded.workerCPUList == [1])
        let listed = try JSONDecoder().decode(ServerConfiguration.self, from: Data(#"{"io_cpus": "0-1"}"#.utf8))
        #expect(listed.ioCPUs == "0-1")
    }

    @Test func aPinnedThreadReportsItsCPUs() throws {
        let everyCPU = SystemInfo.allowedCPUs
        let cpu = try #require(everyCPU.first)
        let done = Mutex(false)
        let thread = try startThread(name: "sy-pin-test") {
            #expect(SystemInfo.pinCurrentThread(to: [cpu]) == 0)
            #expect(SystemInfo.cpus(ofThreadsNamed: "sy-pin-test") == [[cpu]])
            // What the process may use is not what this thread may: validation on a pinned loop sees every CPU.
            #expect(SystemInfo.allowedCPUs == everyCPU)
            done.withLock { $0 = true }
        }
        pthread_join(thread, nil)
        #expect(done.withLock { $0 })
    }
}
