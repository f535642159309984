// The generator against a real server with scripted delays over loopback: it sends at the asked rate,
// its histograms report the latencies the server imposed, open-loop latency includes the time requests
// waited (here in the generator's own backlog), and statuses and versions are broken down per response.

import SwitchyardCore
import SwitchyardHTTP2
import Synchronization
import Testing

@testable import SwitchyardLoad

@Suite(.serialized) struct LoadRunnerTests {
    @Test func sendsAtTheRequestedRate() throws {
        let server = try ScriptedServer { _ in ScriptedAnswer(delayMs: 0) }
        defer { server.stop() }
        let result = try server.run(
            { $0.connections = 2 },
            mode: .open(stages: [.steady(2000, for: 1.5)], arrival: .constant)
        )
        #expect(result.summary.offered == 3000)
        #expect(result.summary.ok == 3000)
        let arrivals = server.service.arrivals.withLock { $0 }
        #expect(arrivals.count == 3000)
        // The server saw the requests spread over the 1.5 s, not in a burst.
        let span = Double(arrivals.last! - arrivals.first!) / 1e9
        #expect(span > 1.35 && span < 1.7)
        let firstThird = arrivals.filter { $0 < arrivals.first! + 500_000_000 }.count
        #expect(firstThird > 850 && firstThird < 1150)
    }

    @Test func poissonArrivalsKeepTheMeanRate() throws {
        let server = try ScriptedServer { _ in ScriptedAnswer(delayMs: 0) }
        defer { server.stop() }
        let result = try server.run({ $0.seed = 42 }, mode: .open(stages: [.steady(3000, for: 1)], arrival: .poisson))
        // 3000 expected, sd ≈ 55.
        #expect(abs(result.summary.offered - 3000) < 250)
        #expect(result.summary.ok == result.summary.offered)
    }

    @Test func histogramsReportTheScriptedLatencies() throws {
        // 90 % of requests take 20 ms and name version 1; every tenth takes 200 ms and names version 2;
        // request 7 of each 25 fails with RESOURCE_EXHAUSTED after its delay. The delays are long next to
        // loopback and scheduling noise, so the bounds hold on a busy machine too.
        let server = try ScriptedServer { n in
            n % 25 == 7
                ? ScriptedAnswer(delayMs: 20, version: "1", status: .resourceExhausted)
                : n % 10 == 9 ? ScriptedAnswer(delayMs: 200, version: "2") : ScriptedAnswer(delayMs: 20, version: "1")
        }
        defer { server.stop() }
        let result = try server.run({ _ in }, mode: .open(stages: [.steady(200, for: 1)], arrival: .constant))
        let s = result.summary
        #expect(s.completed == 200)
        #expect(s.byStatus["RESOURCE_EXHAUSTED"] == 8)
        #expect(s.byStatus["OK"] == 192)
        #expect(s.byVersion["2"] == 20)
        #expect(s.byVersion["1"] == 172)
        #expect(s.errorMessages["RESOURCE_EXHAUSTED"]?.contains("scripted failure") == true)
        // No latency can be below what the server imposed; the median sits in the 20 ms group and the
        // 99th percentile in the 200 ms group.
        #expect(s.latencyMs.min >= 20)
        #expect(s.latencyMs.p50 >= 20 && s.latencyMs.p50 < 100)
        #expect(s.latencyMs.p99 >= 200 && s.latencyMs.p99 < 400)
        #expect(s.latencyMs.max >= 200)
        // 10 % of the values are ≥ 200 ms: the CDF crosses 200 ms near the 90th percentile.
        let crossing = try #require(result.cdf.first { $0.latencyMs >= 199.5 })
        #expect(crossing.percentile > 85 && crossing.percentile < 92)
        #expect(result.intervals.reduce(0) { $0 + $1.completed } == 200)
    }

    @Test func openLoopLatencyIncludesQueueingDelay() throws {
        // One stream, 10 ms per request, 200 requests/s offered: capacity is 100/s, so requests queue in the
        // generator's backlog. Measured from the intended send time the queue shows (the last request waits
        // about a second); measured from the actual send it would not.
        let server = try ScriptedServer { _ in ScriptedAnswer(delayMs: 10) }
        defer { server.stop() }
        let result = try server.run(
            {
                $0.connections = 1
                $0.streamsPerConnection = 1
            },
            mode: .open(stages: [.steady(200, for: 1)], arrival: .constant)
        )
        let s = result.summary
        #expect(s.ok == 200)
        #expect(result.harness.maxBacklog > 50)
        #expect(s.serviceLatencyMs.p50 >= 10 && s.serviceLatencyMs.p50 < 100)
        #expect(s.latencyMs.p99 > 800)
        #expect(s.latencyMs.max > 900)
        #expect(result.harness.sendDelayMs.max > 800)
    }

    @Test func closedLoopKeepsConcurrencyAndMeasuresFromSend() throws {
        let server = try ScriptedServer(serial: true) { _ in ScriptedAnswer(delayMs: 5) }
        defer { server.stop() }
        let result = try server.run({ $0.requests = 60 }, mode: .closed(concurrency: 1, duration: nil))
        #expect(result.summary.ok == 60)
        #expect(result.summary.latencyMs.p50 >= 5 && result.summary.latencyMs.p50 < 50)
        // One at a time against a 5 ms server: about 200 requests/s at most.
        #expect(result.summary.throughput < 205)
    }

    @Test func deadlinesAreSentAndCounted() throws {
        // Half the requests take 400 ms against a 100 ms deadline: the server must end those (it only can
        // if grpc-timeout was sent), and the generator must count them apart from the OK ones.
        let server = try ScriptedServer { n in ScriptedAnswer(delayMs: n % 2 == 0 ? 1 : 400) }
        defer { server.stop() }
        let result = try server.run(
            { $0.timeoutMs = 100 },
            mode: .open(stages: [.steady(100, for: 0.5)], arrival: .constant)
        )
        let expired = result.summary.byStatus["DEADLINE_EXCEEDED"] ?? 0
        #expect(expired >= 25 && expired <= 27)
        #expect(result.summary.ok + expired == 50)
        #expect(result.summary.latencyMs.max < 300)
    }

    @Test func deadlinesRunFromTheIntendedSendTime() throws {
        // One stream and 20 ms per request cap the server at 50/s; 200/s are offered with a 100 ms deadline.
        // Requests that wait in the generator's backlog past their deadline fail there, unsent, as a gRPC
        // client's calls would; none of them is counted as OK later.
        let server = try ScriptedServer { _ in ScriptedAnswer(delayMs: 20) }
        defer { server.stop() }
        let result = try server.run(
            {
                $0.connections = 1
                $0.streamsPerConnection = 1
                $0.timeoutMs = 100
            },
            mode: .open(stages: [.steady(200, for: 0.5)], arrival: .constant)
        )
        let s = result.summary
        let expired = s.byStatus["DEADLINE_EXCEEDED"] ?? 0
        #expect(s.ok + expired == 100)
        #expect(expired >= 50)
        #expect(s.ok >= 5)
        #expect(s.errorMessages["DEADLINE_EXCEEDED"]?.contains("in the generator") == true)
        #expect(server.service.arrivals.withLock { $0.count } == s.ok)
        #expect(s.okLatencyMs.max < 200)
    }

    @Test func warmupIsNotMeasured() throws {
        let server = try ScriptedServer { _ in ScriptedAnswer(delayMs: 0) }
        defer { server.stop() }
        let result = try server.run(
            { $0.warmup = 0.5 },
            mode: .open(stages: [.steady(400, for: 0.5)], arrival: .constant)
        )
        #expect(result.summary.offered == 200)
        #expect(server.service.arrivals.withLock { $0.count } == 400)
    }

    @Test func tlsWithVerifiedCertificate() throws {
        let pki = try TestCertificates()
        defer { pki.remove() }
        let server = try ScriptedServer(
            tls: .init(certificate: pki.cert, key: pki.key),
            clientTLS: ClientTLSOptions(caFile: pki.ca)
        ) { _ in ScriptedAnswer(delayMs: 1, version: "3") }
        defer { server.stop() }
        let result = try server.run(
            { $0.connections = 2 },
            mode: .open(stages: [.steady(500, for: 0.5)], arrival: .constant)
        )
        #expect(result.summary.ok == 250)
        #expect(result.summary.byVersion == ["3": 250])
    }

    @Test func tlsWithAnUntrustedCertificateFailsClearly() throws {
        let pki = try TestCertificates()
        let other = try TestCertificates()
        defer {
            pki.remove()
            other.remove()
        }
        let server = try ScriptedServer(tls: .init(certificate: pki.cert, key: pki.key)) { _ in
            ScriptedAnswer(delayMs: 0)
        }
        defer { server.stop() }
        do {
            _ = try UnaryCall.modelMetadata(
                target: server.target,
                model: "scripted",
                tls: ClientTLSOptions(caFile: other.ca)
            )
            Issue.record("expected a verification failure")
        } catch {
            #expect(error.message.contains("TLS handshake failed"))
            #expect(error.message.contains("certificate"))
        }
    }

    @Test func unreachableServerIsAClearError() throws {
        let bodies = RequestBodies(framed: [RequestBodies.frame([])])
        let runner = try LoadRunner(
            configuration: LoadConfiguration(target: "127.0.0.1:1", mode: .closed(concurrency: 1, duration: 1)),
            bodies: bodies
        )
        do {
            _ = try runner.run()
            Issue.record("expected a connection error")
        } catch {
            #expect(error.message.contains("cannot connect to 127.0.0.1:1"))
        }
    }

    @Test func invalidConfigurationListsEveryProblem() {
        var c = LoadConfiguration(target: "127.0.0.1:1", mode: .closed(concurrency: 0, duration: nil))
        c.connections = 0
        do {
            try c.validate()
            Issue.record("expected a failure")
        } catch {
            #expect(error.message.contains("concurrency"))
            #expect(error.message.contains("connections"))
            #expect(error.message.contains("duration or a request count"))
        }
    }
}
