// What replicas share beyond routes, through a real etcd: the election on a key's create revision (one leader, the
// next one once it leaves), published aggregates attached to each replica's lease, a held route that refuses
// operator changes while a guarded process transaction changes it; and the counter arithmetic fleet windows use.

import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardCluster

@Suite struct FleetVersionCountersTests {
    @Test func aWindowIsTheDifferenceAndMissingBucketsCountAsZero() {
        let earlier = FleetVersionCounters(calls: 10, failures: 2, latency: [5, 5])
        let now = FleetVersionCounters(calls: 25, failures: 3, latency: [9, 6, 10])
        #expect(now.since(earlier) == FleetVersionCounters(calls: 15, failures: 1, latency: [4, 1, 10]))
        #expect(now.since(FleetVersionCounters()) == now)
    }

    @Test func countersThatWentBackwardsCountFromZero() {
        // Only a restart makes counters smaller: what the new process served is the window.
        let earlier = FleetVersionCounters(calls: 100, failures: 10, latency: [100])
        let restarted = FleetVersionCounters(calls: 4, failures: 1, latency: [4])
        #expect(restarted.since(earlier) == restarted)
    }

    @Test func replicasSumBucketByBucket() {
        let a = FleetVersionCounters(calls: 3, failures: 1, latency: [1, 2])
        let b = FleetVersionCounters(calls: 4, failures: 0, latency: [4])
        #expect(a + b == FleetVersionCounters(calls: 7, failures: 1, latency: [5, 2]))
    }
}

/// A replica's fleet store with a short lease, so that a departure is seen within seconds (a stopped replica revokes
/// it at once; 6 s, not less, so that keep-alives survive a test host busy with every other suite).
final class CoordinatingReplica: Sendable {
    let routes: FleetRoutes
    let client: EtcdClient
    private let task: Task<Void, Never>

    init(_ etcd: EtcdProcess, id: String, prefix: String) throws {
        let configuration = ClusterConfiguration(
            etcd: .init(endpoints: [etcd.endpoint], prefix: prefix, dialTimeoutMilliseconds: 300, leaseTTLSeconds: 6),
            replicaID: id
        )
        client = try EtcdClient(settings: configuration.etcd, requestTimeout: .seconds(2))
        let routes = FleetRoutes(client: client, configuration: configuration, logger: Logger(label: id)) { _ in }
        self.routes = routes
        task = Task { await routes.run(seed: []) }
    }

    /// Waits until the replica is connected and holds its lease.
    func ready() async throws {
        let deadline = ContinuousClock.now + .seconds(15)
        while !(routes.connection.connected && routes.currentLease != 0) {
            try #require(ContinuousClock.now < deadline, "replica never connected: \(routes.connection.reason ?? "")")
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func stop() async {
        task.cancel()
        await task.value
        await client.shutdown()
    }
}

@Suite(.serialized, .enabled(if: EtcdProcess.binary != nil, "etcd is not installed (apt-get install etcd-server)"))
struct FleetCoordinationTests {
    @Test func oneReplicaLeadsUntilItLeavesThenAnotherIsElected() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try CoordinatingReplica(etcd, id: "a", prefix: "/t/election")
        let b = try CoordinatingReplica(etcd, id: "b", prefix: "/t/election")
        try await a.ready()
        try await b.ready()
        let first = try await a.routes.campaign("rollouts")
        #expect(first.replica == "a")
        // A second candidate learns who leads, with the same election (create revision), and does not take over.
        let seen = try await b.routes.campaign("rollouts")
        #expect(seen == first)
        #expect(try await b.routes.leader("rollouts") == first)
        await a.stop()
        // a's lease is gone with it, and its key with the lease: b wins the next election, a newer one.
        let deadline = ContinuousClock.now + .seconds(20)
        var next = try await b.routes.campaign("rollouts")
        while next.replica != "b" {
            try #require(ContinuousClock.now < deadline, "b never became leader; leader is \(next.replica)")
            try await Task.sleep(for: .milliseconds(50))
            next = try await b.routes.campaign("rollouts")
        }
        #expect(next.createRevision > first.createRevision)
        await b.stop()
    }

    @Test func publishedAggregatesAreSeenByOthersAndVanishWithTheirReplica() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try CoordinatingReplica(etcd, id: "a", prefix: "/t/stats")
        let b = try CoordinatingReplica(etcd, id: "b", prefix: "/t/stats")
        try await a.ready()
        try await b.ready()
        let published = ReplicaAggregates(
            replica: "a",
            incarnation: "first",
            versions: ["digits": ["2": FleetVersionCounters(calls: 7, failures: 1, latency: [3, 4])]],
            pairs: [FleetPairCounters(model: "digits", primary: "1", shadow: "2", compared: 5, agreed: 4)]
        )
        try await a.routes.publish(published)
        let seen = try await b.routes.aggregates()
        #expect(seen["a"] == published)
        #expect(seen["a"]?.counters(model: "digits", version: "2").calls == 7)
        #expect(seen["a"]?.counters(model: "digits", version: "9") == FleetVersionCounters())
        #expect(seen["a"]?.pair(model: "digits", primary: "1", shadow: "2").agreed == 4)
        await a.stop()
        // The key goes with a's lease: revoked on stop, read back by b once etcd has applied the revocation.
        var gone = false
        for _ in 0..<150 where !gone {
            gone = try await b.routes.aggregates()["a"] == nil
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "a's aggregates outlived its stop by 15 s")
        await b.stop()
    }

    @Test func aHeldRouteRefusesOperatorChangesButNotTheGuardedProcess() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try CoordinatingReplica(etcd, id: "a", prefix: "/t/hold")
        try await a.ready()
        let route = RouteConfiguration(
            model: "digits",
            policy: .canary,
            versions: [.init(version: "1", weight: 90), .init(version: "2", weight: 10)]
        )
        let held = try await a.routes.transact(
            compare: [.createRevision(a.routes.holdKey("digits"), equals: 0)],
            operations: [.put(key: a.routes.holdKey("digits"), value: Array("a rollout of version 2".utf8))],
            route: route,
            audit: FleetAudit(actor: "rollout", action: "rollout.start", model: "digits", reason: "test")
        )
        #expect(held.succeeded)
        #expect(a.routes.current?.routes["digits"]?.route == route)
        let read = a.routes.current?.routes["digits"]?.modRevision ?? 0
        var manual = route
        manual.versions[1].weight = 50
        do {
            _ = try await a.routes.commit(
                model: "digits",
                readRevision: read,
                route: manual,
                audit: FleetAudit(actor: "e2e", action: "route.weights", model: "digits", reason: nil)
            )
            Issue.record("a change of a held route was accepted")
        } catch {
            #expect(error.code == .failedPrecondition)
            #expect(error.message == "the route of 'digits' is held: a rollout of version 2")
        }
        // A second hold is refused by the guard: one process at a time.
        let again = try await a.routes.transact(
            compare: [.createRevision(a.routes.holdKey("digits"), equals: 0)],
            operations: [],
            route: manual,
            audit: FleetAudit(actor: "rollout", action: "rollout.start", model: "digits", reason: "test")
        )
        #expect(!again.succeeded)
        #expect(a.routes.current?.routes["digits"]?.route == route)
        // Once released, the operator's change goes through.
        try await a.client.delete(key: a.routes.holdKey("digits"))
        let revision = try await a.routes.commit(
            model: "digits",
            readRevision: read,
            route: manual,
            audit: FleetAudit(actor: "e2e", action: "route.weights", model: "digits", reason: nil)
        )
        #expect(revision > read)
        await a.stop()
    }
}
