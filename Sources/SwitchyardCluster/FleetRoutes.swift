// The fleet's routing table in etcd, and one replica's view of it.
//
// Keys under the fleet's prefix P:
//   P/routes/<model>   a route as JSON (the admin API's spelling); its mod_revision is the route's generation
//   P/audit/<id>       one audit record per change, written in the same transaction as the change
//   P/seeded           written once, when the first replica seeds the fleet from its `routes:`
//   P/generation       rewritten by every change (and the seed); its mod_revision is the fleet's routing generation
//   P/replicas/<id>    a replica's presence, attached to its lease
//   P/holds/<model>    present while a rollout drives the model's route: operator changes are refused
//   (FleetCoordination.swift adds the published statistics, the rollout leader's key and the rollout records)
//
// A replica reads the whole table, then watches P/routes/ from the next revision and hands every new state to its
// owner, which swaps its routing snapshot. A change is one transaction guarded by the mod_revision its writer read.
// Nothing here is on the request path: when etcd is away, the last state stays in force and changes are refused.

import Foundation
public import Logging
public import SwitchyardAdminAPI
public import SwitchyardCore
import Synchronization

/// The fleet's routes at one revision of the store.
@MemberwiseInit
public struct FleetRouteState: Sendable, Hashable {
    /// The store revision this state reflects (the routing generation in fleet mode).
    public var revision: Int64
    /// Per model: its route and the revision of the route's last change.
    public var routes: [String: FleetRoute]

    /// The routes in model order.
    public var configurations: [RouteConfiguration] { routes.keys.sorted().compactMap { routes[$0]?.route } }
}

/// One model's route in the fleet and the revision it was last changed at.
@MemberwiseInit
public struct FleetRoute: Sendable, Hashable {
    /// The route.
    public var route: RouteConfiguration
    /// The store revision of its last change; a change must name it to win.
    public var modRevision: Int64
}

/// Whether the replica is in touch with the fleet's store.
public struct FleetConnection: Sendable, Hashable {
    /// True while the watch is in place and the last lease renewal succeeded.
    public var connected: Bool
    /// Why not, when not connected.
    public var reason: String?
}

/// One replica's view of the fleet's routing table, kept current by a watch, and the way it changes the table.
public final class FleetRoutes: Sendable {
    private struct State {
        var view: FleetRouteState?
        var watching = false
        var leaseHealthy = true
        var reason: String? = "not yet connected to etcd"
    }

    /// The etcd client.
    public let client: EtcdClient
    /// The fleet's key prefix (`cluster.etcd.prefix`).
    public let prefix: String
    /// This replica's name.
    public let replicaID: String
    private let leaseTTLSeconds: Int
    let logger: Logger
    private let onChange: @Sendable (FleetRouteState) -> Void
    private let state = Mutex(State())
    private let audits = Atomic<UInt64>(0)
    /// What this replica publishes under its presence key; `nil` publishes its name only.
    private let describe = Mutex<(@Sendable () -> FleetReplica)?>(nil)
    /// The lease this replica's presence is attached to (0 while it has none); its leased keys share it.
    private let presenceLease = Atomic<Int64>(0)
    /// Forwarded `Feedback/Report`s: counters and the forwards under way (FleetCoordination.swift).
    let feedbackLedger = FleetFeedbackLedger()

    /// Creates the view; `run(seed:)` fills it.
    /// - Parameters:
    ///   - client: the fleet's etcd.
    ///   - configuration: the `cluster:` section (prefix, replica name, lease TTL).
    ///   - logger: where connection changes and unreadable routes are logged.
    ///   - onChange: called with every new state, in revision order, from the watching task (never concurrently).
    public init(
        client: EtcdClient,
        configuration: ClusterConfiguration,
        logger: Logger,
        onChange: @escaping @Sendable (FleetRouteState) -> Void
    ) {
        self.client = client
        self.prefix = configuration.etcd.prefix
        self.replicaID = configuration.replicaID
        self.leaseTTLSeconds = configuration.etcd.leaseTTLSeconds
        self.logger = logger
        self.onChange = onChange
    }

    /// The key whose mod_revision is the fleet's routing generation.
    var generationKey: String { "\(prefix)/generation" }

    /// The key of `model`'s route.
    public func routeKey(_ model: String) -> String { "\(prefix)/routes/\(model)" }

    /// The key that holds `model`'s route while a rollout drives it.
    public func holdKey(_ model: String) -> String { "\(prefix)/holds/\(model)" }

    /// The lease of this replica's presence key, 0 while it has none. Keys attached to it vanish within the lease
    /// TTL once the replica dies or loses the store.
    public var currentLease: Int64 { presenceLease.load(ordering: .acquiring) }

    /// The latest state seen, `nil` before the first read.
    public var current: FleetRouteState? { state.withLock { $0.view } }

    /// Whether changes can be made now, and why not.
    public var connection: FleetConnection {
        state.withLock { s in
            let connected = s.view != nil && s.watching && s.leaseHealthy
            return FleetConnection(connected: connected, reason: connected ? nil : s.reason ?? "etcd unreachable")
        }
    }

    // MARK: Keeping the view current

    /// Reads the fleet's table (seeding an empty fleet with `seed`), then follows it until the task is cancelled:
    /// a lost watch is resumed from the last revision seen, a compacted one re-reads the table. Also keeps this
    /// replica's presence key alive under its lease. Never throws; problems are logged and shown by `connection`.
    public func run(seed: [RouteConfiguration]) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow(seed: seed) }
            group.addTask { await self.keepPresence() }
            await group.waitForAll()
        }
    }

    private func follow(seed: [RouteConfiguration]) async {
        var needsRead = true
        var failures = 0
        // The store revision the view has seen through: the watch resumes after it.
        var seen: Int64 = 0
        while !Task.isCancelled {
            do throws(SwitchyardError) {
                if needsRead {
                    let (view, revision) = try await read(seed: seed)
                    publish(view)
                    seen = revision
                    needsRead = false
                }
                needsRead = try await watch(from: seen + 1) { seen = max(seen, $0) }
                failures = 0
            } catch {
                failures += 1
                setWatching(false, reason: error.message)
                if failures == 1 { logger.warning("fleet store lost", metadata: ["reason": "\(error.message)"]) }
                let backoff = min(2000, 50 << min(failures, 6))
                do { try await Task.sleep(for: .milliseconds(backoff)) } catch { break }
            }
        }
        setWatching(false, reason: "stopped")
    }

    /// Follows the routes from revision `from`, reporting each revision seen to `advance`; returns true when the
    /// history was compacted (read again).
    private func watch(from: Int64, advance: (Int64) -> Void) async throws(SwitchyardError) -> Bool {
        let stream = client.watch(key: "\(prefix)/routes/", prefix: true, startRevision: from)
        do {
            for try await update in stream {
                switch update {
                case .created:
                    setWatching(true, reason: nil)
                case .events(let events, let revision):
                    advance(revision)
                    guard var view = current else { continue }
                    for event in events {
                        let model = String(event.kv.key.dropFirst("\(prefix)/routes/".count))
                        switch event.kind {
                        case .put:
                            if let route = decode(event.kv) {
                                view.routes[model] = FleetRoute(route: route, modRevision: event.kv.modRevision)
                            }
                        case .delete:
                            view.routes[model] = nil
                        }
                        // A change's transaction also rewrites P/generation: same revision.
                        view.revision = max(view.revision, event.kv.modRevision)
                        advance(event.kv.modRevision)
                    }
                    publish(view)
                case .compacted(let revision):
                    logger.notice(
                        "fleet store compacted past the last revision seen; reading the routes again",
                        metadata: ["compact_revision": "\(revision)"]
                    )
                    return true
                }
            }
        } catch let error as SwitchyardError {
            throw error
        } catch {
            throw SwitchyardError(.unavailable, "etcd watch failed: \(error)")
        }
        if Task.isCancelled { return false }
        throw SwitchyardError(.unavailable, "etcd watch ended")
    }

    /// The whole table and the store revision it was read at, after seeding an empty fleet with `seed` (once per
    /// fleet: `P/seeded` records it).
    private func read(seed: [RouteConfiguration]) async throws(SwitchyardError) -> (FleetRouteState, Int64) {
        let marker = "\(prefix)/seeded"
        if try await client.range(key: marker).kvs.isEmpty {
            var operations: [EtcdOperation] = [
                .put(key: marker, value: Array(replicaID.utf8)), .put(key: generationKey, value: []),
            ]
            for route in seed { operations.append(.put(key: routeKey(route.model), value: try encode(route))) }
            if !seed.isEmpty {
                operations.append(
                    .put(
                        key: auditKey(),
                        value: try encode(
                            FleetAudit(
                                actor: replicaID,
                                action: "routes.seed",
                                model: nil,
                                reason: "seeded from routes:"
                            )
                        )
                    )
                )
            }
            let result = try await client.transaction(
                compare: [.createRevision(marker, equals: 0)],
                success: operations
            )
            if result.succeeded {
                logger.notice(
                    "seeded an empty fleet with this replica's routes",
                    metadata: ["routes": "\(seed.map(\.model))", "revision": "\(result.revision)"]
                )
            }
        }
        // One transaction, so that the routes and the generation are read at the same revision.
        let snapshot = try await client.transaction(
            compare: [],
            success: [.range(key: "\(prefix)/routes/", prefix: true), .range(key: generationKey)]
        )
        var routes: [String: FleetRoute] = [:]
        var generation: Int64 = 0
        for kv in snapshot.ranges.first ?? [] {
            generation = max(generation, kv.modRevision)
            guard let route = decode(kv) else { continue }
            routes[route.model] = FleetRoute(route: route, modRevision: kv.modRevision)
        }
        if let marker = snapshot.ranges.last?.first { generation = max(generation, marker.modRevision) }
        return (FleetRouteState(revision: generation, routes: routes), snapshot.revision)
    }

    private func keepPresence() async {
        let key = "\(prefix)/replicas/\(replicaID)"
        while !Task.isCancelled {
            do throws(SwitchyardError) {
                let lease = try await client.grantLease(ttlSeconds: leaseTTLSeconds)
                var published = presenceValue()
                try await client.put(key: key, value: published, lease: lease)
                presenceLease.store(lease, ordering: .releasing)
                setLeaseHealthy(true, reason: nil)
                // Renewed at a third of the TTL; the value is written again only when it changed, so an idle
                // fleet adds no revisions to etcd's history.
                let interval = Duration.milliseconds(max(200, min(1000, leaseTTLSeconds * 1000 / 3)))
                while !Task.isCancelled {
                    do { try await Task.sleep(for: interval) } catch {
                        // Cancelled: this replica is leaving. The revoke runs outside the cancelled task, or the
                        // HTTP client would cancel it too, and the key would linger until the lease expired.
                        let client = self.client
                        await Task { try? await client.revoke(lease: lease) }.value
                        return
                    }
                    try await client.keepAlive(lease: lease)
                    let value = presenceValue()
                    if value != published {
                        try await client.put(key: key, value: value, lease: lease)
                        published = value
                    }
                    setLeaseHealthy(true, reason: nil)
                }
            } catch {
                presenceLease.store(0, ordering: .releasing)
                setLeaseHealthy(false, reason: error.message)
                do { try await Task.sleep(for: .milliseconds(500)) } catch { return }
            }
        }
    }

    // MARK: Membership

    /// Sets what this replica publishes under its presence key (`<prefix>/replicas/<replica_id>`) from now on:
    /// read at every renewal, written when it changed.
    public func describeReplica(_ status: @escaping @Sendable () -> FleetReplica) {
        describe.withLock { $0 = status }
        // Written now too, so that peers see the replica's addresses without waiting for the next renewal.
        let lease = currentLease
        guard lease != 0 else { return }
        let (client, key, value) = (client, "\(prefix)/replicas/\(replicaID)", presenceValue())
        Task { _ = try? await client.put(key: key, value: value, lease: lease) }
    }

    private func presenceValue() -> [UInt8] {
        guard let status = describe.withLock({ $0 })?() else { return Array(replicaID.utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(status)).map { Array($0) } ?? Array(replicaID.utf8)
    }

    /// The replicas whose presence keys exist now (a stopped replica revoked its lease, a dead one's expired),
    /// ordered by name.
    /// - Throws: `unavailable` when etcd cannot be reached.
    public func replicas() async throws(SwitchyardError) -> [FleetReplica] {
        let listed = try await client.range(key: "\(prefix)/replicas/", prefix: true)
        return listed.kvs.map { kv in
            (try? JSONDecoder().decode(FleetReplica.self, from: Data(kv.value)))
                ?? FleetReplica(replica: String(decoding: kv.value, as: UTF8.self))
        }.sorted { $0.replica < $1.replica }
    }

    private func publish(_ view: FleetRouteState) {
        let changed = state.withLock { s -> Bool in
            if let old = s.view, old.revision >= view.revision, old.routes == view.routes { return false }
            s.view = view
            return true
        }
        if changed { onChange(view) }
    }

    private func setWatching(_ watching: Bool, reason: String?) {
        let (was, now) = state.withLock { s -> (Bool, Bool) in
            let was = s.view != nil && s.watching && s.leaseHealthy
            s.watching = watching
            if let reason { s.reason = reason }
            return (was, s.view != nil && s.watching && s.leaseHealthy)
        }
        if !was && now { logger.notice("fleet store connected", metadata: ["replica": "\(replicaID)"]) }
    }

    private func setLeaseHealthy(_ healthy: Bool, reason: String?) {
        state.withLock { s in
            s.leaseHealthy = healthy
            if let reason { s.reason = reason }
        }
    }

    // MARK: Changing the table

    /// Replaces (`route`) or removes (`nil`) `model`'s route in one transaction guarded by `readRevision`, the
    /// revision of the route its writer read (0: it read no route), with `audit` written in the same transaction;
    /// then waits (up to `applyTimeout`) until this replica's view shows the change.
    /// - Returns: the change's revision: the fleet's new routing generation.
    /// - Throws: `unavailable` when the store is not connected (with the reason); `failedPrecondition` when the route
    ///   changed since it was read, naming the newer generation and route.
    public func commit(
        model: String,
        readRevision: Int64,
        route: RouteConfiguration?,
        audit: FleetAudit,
        applyTimeout: Duration = .seconds(2)
    ) async throws(SwitchyardError) -> Int64 {
        try requireConnected()
        let change = try guardedChange(model: model, readRevision: readRevision, route: route)
        let result: EtcdTransactionResult
        do {
            result = try await client.transaction(
                compare: change.compare,
                success: [
                    change.write, .put(key: generationKey, value: []), .put(key: auditKey(), value: try encode(audit)),
                ],
                failure: change.failure
            )
        } catch  where error.code == .unavailable {
            throw SwitchyardError(
                .unavailable,
                "route change not made: \(error.message); traffic keeps the last routes"
            )
        }
        guard result.succeeded else {
            if let hold = result.ranges.last?.first {
                throw SwitchyardError(
                    .failedPrecondition,
                    "the route of '\(model)' is held: \(String(decoding: hold.value, as: UTF8.self))"
                )
            }
            let newer = result.ranges.first?.first
            let now = newer.flatMap(decode).flatMap { try? JSONEncoder.sorted.encode($0) }
            throw SwitchyardError(
                .failedPrecondition,
                "the route of '\(model)' changed since it was read at generation \(readRevision): "
                    + "now generation \(newer?.modRevision ?? result.revision), route "
                    + (now.map { String(decoding: $0, as: UTF8.self) } ?? "none")
                    + "; read it again and retry"
            )
        }
        await waitUntilApplied(revision: result.revision, timeout: applyTimeout)
        return result.revision
    }

    /// Changes are refused, naming why, while the store is unreachable: traffic keeps the last routes.
    private func requireConnected() throws(SwitchyardError) {
        let connection = connection
        guard connection.connected else {
            throw SwitchyardError(
                .unavailable,
                "route changes are refused while the fleet's store is unreachable (\(connection.reason ?? "unknown")); "
                    + "traffic keeps the last routes"
            )
        }
    }

    /// One model's part of a guarded route change: its route unchanged since `readRevision` and not held by a
    /// rollout; the write (a put, or a delete for `nil`); and, on failure, the reads that say which guard failed
    /// (the route, then the hold).
    private func guardedChange(
        model: String,
        readRevision: Int64,
        route: RouteConfiguration?
    ) throws(SwitchyardError) -> (compare: [EtcdCompare], write: EtcdOperation, failure: [EtcdOperation]) {
        let key = routeKey(model)
        let write: EtcdOperation = if let route { .put(key: key, value: try encode(route)) } else { .delete(key: key) }
        return (
            [.modRevision(key, equals: readRevision), .createRevision(holdKey(model), equals: 0)],
            write,
            [.range(key: key), .range(key: holdKey(model))]
        )
    }

    /// Sets several models' routes in one transaction (a configuration reload): each model's route is replaced (a
    /// route) or removed (`nil`), guarded by the revision of that route in `read` (the view its writer compared the
    /// file with) and by the absence of a rollout's hold on it, with `audit` written in the same transaction; then
    /// waits (up to `applyTimeout`) until this replica's view shows the change.
    /// - Returns: the change's revision: the fleet's new routing generation.
    /// - Throws: `unavailable` when the store is not connected (with the reason); `failedPrecondition` when a route
    ///   changed since `read` or is held by a rollout, naming the model; nothing changes then.
    public func commit(
        routes changes: [String: RouteConfiguration?],
        read: FleetRouteState,
        audit: FleetAudit,
        applyTimeout: Duration = .seconds(2)
    ) async throws(SwitchyardError) -> Int64 {
        try requireConnected()
        let models = changes.keys.sorted()
        var compare: [EtcdCompare] = []
        var success: [EtcdOperation] = []
        var failure: [EtcdOperation] = []
        for model in models {
            let change = try guardedChange(
                model: model,
                readRevision: read.routes[model]?.modRevision ?? 0,
                route: changes[model] ?? nil
            )
            compare += change.compare
            success.append(change.write)
            failure += change.failure
        }
        success += [.put(key: generationKey, value: []), .put(key: auditKey(), value: try encode(audit))]
        let result: EtcdTransactionResult
        do {
            result = try await client.transaction(compare: compare, success: success, failure: failure)
        } catch  where error.code == .unavailable {
            throw SwitchyardError(.unavailable, "routes not changed: \(error.message); traffic keeps the last routes")
        }
        guard result.succeeded else {
            var problems: [String] = []
            for (index, model) in models.enumerated() {
                if let hold = result.ranges[safe: 2 * index + 1]?.first {
                    problems.append("the route of '\(model)' is held: \(String(decoding: hold.value, as: UTF8.self))")
                    continue
                }
                let now = result.ranges[safe: 2 * index]?.first?.modRevision ?? 0
                let was = read.routes[model]?.modRevision ?? 0
                if now != was {
                    problems.append(
                        "the route of '\(model)' changed at generation \(now) after this replica read it at \(was)"
                    )
                }
            }
            throw SwitchyardError(
                .failedPrecondition,
                "routes not changed: "
                    + (problems.isEmpty ? "the fleet changed meanwhile" : problems.joined(separator: "; "))
                    + "; nothing was written, reload again to compare with the fleet's routes now"
            )
        }
        await waitUntilApplied(revision: result.revision, timeout: applyTimeout)
        return result.revision
    }

    /// One guarded transaction of a fleet-wide process (a rollout): `operations` when every comparison holds, with
    /// `route` (when given) written as the model's route in the same step, the generation bumped and `audit` recorded;
    /// `failure` otherwise. After a route change it waits (up to `applyTimeout`) until this replica's view shows it.
    /// - Throws: `unavailable` when the store is not connected or cannot be reached (with the reason).
    public func transact(
        compare: [EtcdCompare],
        operations: [EtcdOperation],
        route: RouteConfiguration?,
        audit: FleetAudit,
        failure: [EtcdOperation] = [],
        applyTimeout: Duration = .seconds(2)
    ) async throws(SwitchyardError) -> EtcdTransactionResult {
        let connection = connection
        guard connection.connected else {
            throw SwitchyardError(
                .unavailable,
                "the fleet's store is unreachable (\(connection.reason ?? "unknown")); nothing was changed"
            )
        }
        var success = operations
        if let route {
            success += [
                .put(key: routeKey(route.model), value: try encode(route)), .put(key: generationKey, value: []),
            ]
        }
        success.append(.put(key: auditKey(), value: try encode(audit)))
        let result = try await client.transaction(compare: compare, success: success, failure: failure)
        if result.succeeded, route != nil { await waitUntilApplied(revision: result.revision, timeout: applyTimeout) }
        return result
    }

    /// Waits until the view reflects `revision` or `timeout` passes.
    /// - Returns: whether it does.
    @discardableResult
    public func waitUntilApplied(revision: Int64, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while (current?.revision ?? 0) < revision {
            guard ContinuousClock.now < deadline else { return false }
            do { try await Task.sleep(for: .milliseconds(1)) } catch { return false }
        }
        return true
    }

    private func auditKey() -> String {
        let milliseconds = Int64(Date().timeIntervalSince1970 * 1000)
        let serial = audits.add(1, ordering: .relaxed).newValue
        return "\(prefix)/audit/\(String(format: "%013lld", milliseconds))-\(replicaID)-\(serial)"
    }

    private func decode(_ kv: EtcdKeyValue) -> RouteConfiguration? {
        do {
            return try JSONDecoder().decode(RouteConfiguration.self, from: Data(kv.value))
        } catch {
            logger.error(
                "unreadable route in the fleet's store; this replica ignores it",
                metadata: ["key": "\(kv.key)", "revision": "\(kv.modRevision)", "reason": "\(error)"]
            )
            return nil
        }
    }

    private func encode(_ value: some Encodable) throws(SwitchyardError) -> [UInt8] {
        do { return [UInt8](try JSONEncoder.sorted.encode(value)) } catch {
            throw .internal("cannot encode \(value) as JSON: \(error)")
        }
    }
}

/// The audit record of a fleet change, stored beside the change in the same transaction. Its key's mod_revision is
/// the change's generation.
public struct FleetAudit: Sendable, Hashable, Codable {
    /// ISO 8601 UTC time of the change.
    public var time: String
    /// Who made it (the admin token's name, `anonymous`, or the replica that seeded the fleet).
    public var actor: String
    /// What was done: `route.put`, `route.delete`, `route.weights`, `route.shadow`, `route.bandit`, `routes.seed`,
    /// `routes.reload`, `rollout.…`.
    public var action: String
    /// The model changed (`nil` for whole-table actions).
    public var model: String?
    /// The route before (`nil`: none).
    public var old: RouteConfiguration?
    /// The route after (`nil`: removed).
    public var new: RouteConfiguration?
    /// Why, as the operator said.
    public var reason: String?
    /// The replica that made the change.
    public var replica: String?
    /// For a change of several routes (a configuration reload, `routes.reload`): the changed models' routes before
    /// (those that had one) and after (those that keep one), in model order.
    public var oldRoutes: [RouteConfiguration]?
    /// See `oldRoutes`.
    public var newRoutes: [RouteConfiguration]?

    /// Creates a record stamped with the current time.
    public init(
        actor: String,
        action: String,
        model: String?,
        old: RouteConfiguration? = nil,
        new: RouteConfiguration? = nil,
        reason: String?,
        replica: String? = nil
    ) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        self.time = formatter.string(from: Date())
        self.actor = actor
        self.action = action
        self.model = model
        self.old = old
        self.new = new
        self.reason = reason
        self.replica = replica
    }
}

extension Array {
    fileprivate subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

extension JSONEncoder {
    /// An encoder with sorted keys, so that equal values store equal bytes.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
