// The fleet's routing table through a real etcd with two replica views: seeding once, a change through one seen by
// the other at the change's revision, guarded transactions (one of two concurrent changes wins), the audit record
// in the same transaction, and an unreachable store (last routes kept, changes refused, resumed on return).

import Foundation
import Logging
import SwitchyardCore
import Synchronization
import Testing

@testable import SwitchyardCluster

/// Every state a view handed over, in order.
final class Recorder: Sendable {
    let states = Mutex<[FleetRouteState]>([])
}

/// A replica's view under test: the fleet routes, the task that runs them and every state handed over.
final class ReplicaView: Sendable {
    let routes: FleetRoutes
    let client: EtcdClient
    let received = Recorder()
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ etcd: EtcdProcess, id: String, seed: [RouteConfiguration] = []) throws {
        let configuration = ClusterConfiguration(
            etcd: .init(endpoints: [etcd.endpoint], prefix: "/switchyard/test", dialTimeoutMilliseconds: 300),
            replicaID: id
        )
        client = try EtcdClient(settings: configuration.etcd, requestTimeout: .seconds(2))
        let received = received
        routes = FleetRoutes(client: client, configuration: configuration, logger: Logger(label: id)) { state in
            received.states.withLock { $0.append(state) }
        }
        let routes = routes
        task.withLock { $0 = Task { await routes.run(seed: seed) } }
    }

    /// Waits until the view is connected (or `timeout` passes).
    func waitUntilConnected(_ connected: Bool = true, timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        while routes.connection.connected != connected {
            guard ContinuousClock.now < deadline else {
                Issue.record("connection stayed \(!connected): \(routes.connection.reason ?? "")")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func stop() async {
        task.withLock { $0?.cancel() }
        await client.shutdown()
    }
}

/// The result of `body`, its error included.
func outcome(_ body: () async throws -> Int64) async -> Result<Int64, SwitchyardError> {
    do { return .success(try await body()) } catch {
        return .failure(error as? SwitchyardError ?? .internal("\(error)"))
    }
}

@Suite(.serialized, .enabled(if: EtcdProcess.binary != nil, "etcd is not installed (apt-get install etcd-server)"))
struct FleetRoutesTests {
    static let canary = RouteConfiguration(
        model: "digits",
        policy: .canary,
        versions: [.init(version: "1", weight: 90), .init(version: "2", weight: 10)]
    )

    /// Runs `body` with two connected views of a fresh etcd: "a", which seeds the fleet with `canary`, then "b",
    /// seeding `seedOfB` (which an already seeded fleet ignores); stops them both afterwards.
    func withReplicas(
        seedOfB: [RouteConfiguration] = [],
        _ body: (ReplicaView, ReplicaView) async throws -> Void
    ) async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try ReplicaView(etcd, id: "a", seed: [Self.canary])
        try await a.waitUntilConnected()
        let b = try ReplicaView(etcd, id: "b", seed: seedOfB)
        try await b.waitUntilConnected()
        try await body(a, b)
        await a.stop()
        await b.stop()
    }

    @Test func seedsAnEmptyFleetOnceAndReplicasReadTheFleet() async throws {
        var other = Self.canary
        other.versions = [.init(version: "3")]
        try await withReplicas(seedOfB: [other]) { a, b in
            #expect(a.routes.current?.configurations == [Self.canary])
            #expect(b.routes.current?.configurations == [Self.canary])
            #expect(a.routes.current?.revision == b.routes.current?.revision)
            let presence = try await a.client.range(key: "/switchyard/test/replicas/", prefix: true)
            #expect(Set(presence.kvs.map(\.key)) == ["/switchyard/test/replicas/a", "/switchyard/test/replicas/b"])
            #expect(presence.kvs.allSatisfy { $0.lease != 0 })
        }
    }

    @Test func aChangeThroughOneReplicaIsInForceOnTheOtherAtItsRevision() async throws {
        try await withReplicas { a, b in
            let read = try #require(a.routes.current?.routes["digits"])
            var changed = read.route
            changed.versions = [.init(version: "1", weight: 50), .init(version: "2", weight: 50)]
            let audit = FleetAudit(
                actor: "ops",
                action: "route.weights",
                model: "digits",
                old: read.route,
                new: changed,
                reason: "half",
                replica: "a"
            )
            let revision = try await a.routes.commit(
                model: "digits",
                readRevision: read.modRevision,
                route: changed,
                audit: audit
            )
            #expect(a.routes.current?.revision == revision)
            #expect(await b.routes.waitUntilApplied(revision: revision, timeout: .seconds(5)))
            #expect(b.routes.current?.routes["digits"] == FleetRoute(route: changed, modRevision: revision))
            #expect(b.received.states.withLock { $0.last?.revision } == revision)

            // The audit record was written by the same transaction.
            let records = try await a.client.range(key: "/switchyard/test/audit/", prefix: true).kvs
            let record = try #require(records.first { $0.modRevision == revision })
            let decoded = try JSONDecoder().decode(FleetAudit.self, from: Data(record.value))
            #expect(decoded.action == "route.weights")
            #expect(decoded.new == changed)
            #expect(decoded.reason == "half")

            // Removing the route reaches the other replica too.
            let removed = try await b.routes.commit(
                model: "digits",
                readRevision: revision,
                route: nil,
                audit: FleetAudit(actor: "ops", action: "route.delete", model: "digits", reason: nil)
            )
            #expect(await a.routes.waitUntilApplied(revision: removed, timeout: .seconds(5)))
            #expect(a.routes.current?.routes.isEmpty == true)
        }
    }

    @Test func ofTwoChangesFromTheSameReadOneWinsAndTheOtherSeesTheNewerState() async throws {
        try await withReplicas { a, b in
            let read = try #require(b.routes.current?.routes["digits"])
            var first = read.route
            first.versions[0].weight = 1
            var second = read.route
            second.versions[0].weight = 2
            let audit = FleetAudit(actor: "ops", action: "route.weights", model: "digits", reason: nil)
            async let x = outcome {
                try await a.routes.commit(model: "digits", readRevision: read.modRevision, route: first, audit: audit)
            }
            async let y = outcome {
                try await b.routes.commit(model: "digits", readRevision: read.modRevision, route: second, audit: audit)
            }
            let results = await [x, y]
            let wins = results.compactMap { try? $0.get() }
            let losses = results.compactMap { result -> SwitchyardError? in
                if case .failure(let error) = result { return error }
                return nil
            }
            #expect(wins.count == 1)
            let loss = try #require(losses.first)
            #expect(loss.code == .failedPrecondition)
            #expect(loss.message.contains("changed since it was read at generation \(read.modRevision)"))
            #expect(loss.message.contains("now generation \(wins[0])"))
        }
    }

    @Test func anUnreachableStoreKeepsTheLastRoutesRefusesChangesAndResumes() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try ReplicaView(etcd, id: "a", seed: [Self.canary])
        try await a.waitUntilConnected()
        let before = try #require(a.routes.current)

        etcd.stop(keepingData: true)
        try await a.waitUntilConnected(false)
        #expect(a.routes.current == before)
        do {
            _ = try await a.routes.commit(
                model: "digits",
                readRevision: before.routes["digits"]!.modRevision,
                route: nil,
                audit: FleetAudit(actor: "ops", action: "route.delete", model: "digits", reason: nil)
            )
            Issue.record("a change was accepted while etcd was down")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("route changes are refused while the fleet's store is unreachable ("))
        }

        try await etcd.restart()
        try await a.waitUntilConnected()
        let revision = try await a.routes.commit(
            model: "digits",
            readRevision: before.routes["digits"]!.modRevision,
            route: nil,
            audit: FleetAudit(actor: "ops", action: "route.delete", model: "digits", reason: nil)
        )
        #expect(revision > before.revision)
        #expect(a.routes.current?.routes.isEmpty == true)
        await a.stop()
    }

    @Test func aReloadWritesSeveralRoutesInOneTransactionGuardedByWhatItRead() async throws {
        try await withReplicas { a, b in
            let read = try #require(a.routes.current)
            var half = Self.canary
            half.versions = [.init(version: "1", weight: 50), .init(version: "2", weight: 50)]
            let other = RouteConfiguration(model: "other", policy: .fixed, versions: [.init(version: "1")])
            var audit = FleetAudit(
                actor: "config_watch",
                action: "routes.reload",
                model: nil,
                reason: nil,
                replica: "a"
            )
            audit.newRoutes = [half, other]
            let revision = try await a.routes.commit(
                routes: ["digits": half, "other": other],
                read: read,
                audit: audit
            )
            #expect(await b.routes.waitUntilApplied(revision: revision, timeout: .seconds(5)))
            // Both routes at the one revision, with one audit record written by the same transaction.
            #expect(b.routes.current?.routes["digits"] == FleetRoute(route: half, modRevision: revision))
            #expect(b.routes.current?.routes["other"] == FleetRoute(route: other, modRevision: revision))
            let records = try await a.client.range(key: "/switchyard/test/audit/", prefix: true).kvs
            #expect(records.filter { $0.modRevision == revision }.count == 1)

            // A reload compared with the state before that change is refused, naming the route and both generations;
            // nothing is written, not even the route that did not change in between.
            let stale = await outcome {
                try await b.routes.commit(
                    routes: ["digits": Self.canary, "third": other],
                    read: read,
                    audit: FleetAudit(actor: "sighup", action: "routes.reload", model: nil, reason: nil)
                )
            }
            guard case .failure(let error) = stale else {
                Issue.record("a reload based on a stale read went through")
                return
            }
            #expect(error.code == .failedPrecondition)
            let before = read.routes["digits"]?.modRevision ?? 0
            #expect(
                error.message.contains(
                    "the route of 'digits' changed at generation \(revision) after this replica read it at \(before)"
                ),
                "\(error.message)"
            )
            #expect(!error.message.contains("'third'"), "\(error.message)")
            #expect(b.routes.current?.routes["third"] == nil)

            // Removing a route by reload (nil), guarded by the current read.
            let current = try #require(b.routes.current)
            let removed = try await b.routes.commit(
                routes: ["other": nil],
                read: current,
                audit: FleetAudit(actor: "sighup", action: "routes.reload", model: nil, reason: nil)
            )
            #expect(await a.routes.waitUntilApplied(revision: removed, timeout: .seconds(5)))
            #expect(a.routes.current?.routes["other"] == nil)
            #expect(a.routes.current?.routes["digits"]?.route == half)
        }
    }
}
