// The etcd client against a real etcd: KV, transactions guarded by mod revision, watches with revision resume and
// compaction, leases with keep-alive, endpoint failover and an unreachable store.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardCluster

@Suite(.serialized, .enabled(if: EtcdProcess.binary != nil, "etcd is not installed (apt-get install etcd-server)"))
struct EtcdClientTests {
    /// Runs `body` with a fresh etcd and a client of it; stops both afterwards.
    func withEtcd(_ body: (EtcdProcess, EtcdClient) async throws -> Void) async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let client = try EtcdClient(settings: .init(endpoints: [etcd.endpoint]))
        do {
            try await body(etcd, client)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
    }

    @Test func putRangeAndDelete() async throws {
        try await withEtcd { _, client in
            let first = try await client.put(key: "/t/routes/a", value: Array("one".utf8))
            let second = try await client.put(key: "/t/routes/b", value: Array("two".utf8))
            try await client.put(key: "/t/other", value: [0xff, 0x00])
            #expect(second == first + 1)

            let one = try await client.range(key: "/t/routes/a")
            #expect(one.kvs.map(\.key) == ["/t/routes/a"])
            #expect(one.kvs.first?.value == Array("one".utf8))
            #expect(one.kvs.first?.modRevision == first)
            #expect(one.kvs.first?.createRevision == first)
            #expect(one.kvs.first?.version == 1)

            let all = try await client.range(key: "/t/routes/", prefix: true)
            #expect(all.kvs.map(\.key) == ["/t/routes/a", "/t/routes/b"])
            #expect(all.revision == second + 1)
            #expect(try await client.range(key: "/t/other").kvs.first?.value == [0xff, 0x00])

            #expect(try await client.delete(key: "/t/routes/", prefix: true) == 2)
            #expect(try await client.range(key: "/t/routes/", prefix: true).kvs.isEmpty)
            #expect(try await client.range(key: "/t/missing").kvs.isEmpty)
        }
    }

    @Test func transactionIsGuardedByModRevision() async throws {
        try await withEtcd { _, client in
            // Absent key: mod revision 0 holds, so the first writer creates it.
            let created = try await client.transaction(
                compare: [.modRevision("/t/k", equals: 0)],
                success: [.put(key: "/t/k", value: Array("v1".utf8)), .put(key: "/t/audit/1", value: [1])],
                failure: [.range(key: "/t/k")]
            )
            #expect(created.succeeded)
            let read = try await client.range(key: "/t/k")
            #expect(read.kvs.first?.modRevision == created.revision)
            #expect(try await client.range(key: "/t/audit/1").kvs.first?.modRevision == created.revision)

            // A writer that read before the change loses and gets the newer state back.
            let stale = try await client.transaction(
                compare: [.modRevision("/t/k", equals: 0)],
                success: [.put(key: "/t/k", value: Array("v2".utf8))],
                failure: [.range(key: "/t/k")]
            )
            #expect(!stale.succeeded)
            #expect(stale.ranges.first?.first?.value == Array("v1".utf8))
            #expect(stale.ranges.first?.first?.modRevision == created.revision)

            let current = try await client.transaction(
                compare: [.modRevision("/t/k", equals: created.revision)],
                success: [.delete(key: "/t/k")]
            )
            #expect(current.succeeded)
            #expect(current.revision == created.revision + 1)
            #expect(try await client.range(key: "/t/k").kvs.isEmpty)

            let creator = try await client.transaction(
                compare: [.createRevision("/t/k", equals: 0)],
                success: [.put(key: "/t/k", value: [2])]
            )
            #expect(creator.succeeded)
        }
    }

    @Test func watchDeliversChangesInOrderAndResumesFromARevision() async throws {
        try await withEtcd { _, client in
            let base = try await client.put(key: "/w/a", value: [1])
            try await client.put(key: "/w/b", value: [2])
            try await client.delete(key: "/w/a")

            // Resume: everything after `base`, including what happened before the watch began.
            var seen: [EtcdEvent] = []
            var created = false
            let stream = client.watch(key: "/w/", prefix: true, startRevision: base + 1)
            var iterator = stream.makeAsyncIterator()
            while seen.count < 3, let update = try await iterator.next() {
                switch update {
                case .created: created = true
                case .events(let events, _):
                    seen += events
                    if seen.count == 2 { try await client.put(key: "/w/c", value: [3]) }
                case .compacted: Issue.record("no compaction happened")
                }
            }
            #expect(created)
            #expect(seen.map(\.kind) == [.put, .delete, .put])
            #expect(seen.map(\.kv.key) == ["/w/b", "/w/a", "/w/c"])
            #expect(seen.map(\.kv.modRevision) == [base + 1, base + 2, base + 3])
            #expect(seen.last?.kv.value == [3])
        }
    }

    @Test func watchReportsCompaction() async throws {
        try await withEtcd { _, client in
            let first = try await client.put(key: "/c/a", value: [1])
            let last = try await client.put(key: "/c/a", value: [2])
            try await client.compact(revision: last)
            var updates: [EtcdWatchUpdate] = []
            for try await update in client.watch(key: "/c/", prefix: true, startRevision: first) {
                updates.append(update)
            }
            #expect(updates.last == .compacted(compactRevision: last))
        }
    }

    @Test func leaseKeepsItsKeysUntilRevoked() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grantLease(ttlSeconds: 5)
            try await client.put(key: "/l/replica", value: [1], lease: lease)
            #expect(try await client.range(key: "/l/replica").kvs.first?.lease == lease)
            #expect(try await client.keepAlive(lease: lease) == 5)
            try await client.revoke(lease: lease)
            #expect(try await client.range(key: "/l/replica").kvs.isEmpty)
            await #expect(throws: SwitchyardError.self) { try await client.keepAlive(lease: lease) }
        }
    }

    @Test func leaseExpiresWithoutKeepAliveAndLivesWithIt() async throws {
        try await withEtcd { _, client in
            let kept = try await client.grantLease(ttlSeconds: 2)
            let dropped = try await client.grantLease(ttlSeconds: 2)
            try await client.put(key: "/l/kept", value: [1], lease: kept)
            try await client.put(key: "/l/dropped", value: [1], lease: dropped)
            let loop = Task { try await client.keepAliveLoop(lease: kept, ttlSeconds: 2) }
            try await Task.sleep(for: .milliseconds(3500))
            #expect(try await client.range(key: "/l/kept").kvs.count == 1)
            #expect(try await client.range(key: "/l/dropped").kvs.isEmpty)
            loop.cancel()
        }
    }

    @Test func speaksTLSWithAClientCertificate() async throws {
        let etcd = try await EtcdProcess.start(tls: true)
        defer { etcd.stop() }
        let client = try EtcdClient(settings: .init(endpoints: [etcd.endpoint], tls: etcd.clientTLS))
        let revision = try await client.put(key: "/tls/a", value: [1])
        #expect(try await client.range(key: "/tls/a").kvs.first?.modRevision == revision)
        await client.shutdown()

        // Without the client certificate, etcd refuses the handshake.
        let anonymous = try EtcdClient(
            settings: .init(
                endpoints: [etcd.endpoint],
                tls: .init(ca: etcd.clientTLS?.ca),
                dialTimeoutMilliseconds: 500
            )
        )
        await #expect(throws: SwitchyardError.self) { try await anonymous.range(key: "/tls/a") }
        await anonymous.shutdown()
    }

    @Test func failsOverToTheNextEndpointAndReportsAnUnreachableStore() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let dead = "http://127.0.0.1:\(try EtcdProcess.freePort())"
        let client = try EtcdClient(settings: .init(endpoints: [dead, etcd.endpoint], dialTimeoutMilliseconds: 500))
        try await client.put(key: "/f/a", value: [1])
        #expect(try await client.range(key: "/f/a").kvs.count == 1)
        etcd.stop()
        do {
            _ = try await client.range(key: "/f/a")
            Issue.record("a stopped etcd answered")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.message.hasPrefix("etcd unreachable: "))
            #expect(error.message.contains(dead))
        }
        await client.shutdown()
    }
}
