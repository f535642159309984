// Progressive rollouts in fleet mode. The rollout's state lives in etcd (P/rollouts/<model>); a route held by it
// has P/holds/<model>, which every operator change's transaction checks. Every replica publishes its per-version
// counters and latency histograms under a leased key (P/stats/<replica>) at each tick; one replica, elected on the
// create revision of P/leader/rollouts (attached to its lease), sums them into the fleet's window, judges the same
// gates as a replica on its own (`RolloutPlan.decide`) and applies each decision as one transaction that rewrites the
// record and the route, guarded by the record's revision and the election's. When the leader dies its key expires
// with its lease and the next replica to campaign continues the same step: the step's start and each replica's
// counters at that start are in the record. When the store is away nothing is read or written: the rollout holds.
//
// The same round shares bandit learning: each replica publishes its bandit routes' own rewards with its aggregates
// and absorbs what its peers observed since the last round, so the fleet explores like one replica while every
// routing decision still reads local state only.

import Foundation
import Logging
import SwitchyardAdminAPI
import SwitchyardCluster
import SwitchyardCore
import SwitchyardModels
import SwitchyardMonitor
import SwitchyardRouting
import SwitchyardSink
import Synchronization

/// A fleet rollout as stored in etcd: the state every rollout keeps (its fields at the top level of the JSON object),
/// and what judging the step across replicas needs.
@dynamicMemberLookup
@MemberwiseInit(.internal)
struct FleetRolloutRecord: Sendable, Hashable, Codable {
    /// One replica's cumulative counters at the step's start.
    struct Base: Sendable, Hashable, Codable {
        var incarnation: String
        var canary: FleetVersionCounters
        var baseline: FleetVersionCounters
        var compared: UInt64
        var agreed: UInt64
    }

    var state: RolloutState
    /// When the step started, in seconds since 1970 (replicas share wall time, not a monotonic clock).
    var stepStartedAt: Double
    /// Per replica publishing at the step's start.
    var base: [String: Base]
    /// The replica that wrote this state.
    var writtenBy: String

    subscript<Value>(dynamicMember keyPath: WritableKeyPath<RolloutState, Value>) -> Value {
        get { state[keyPath: keyPath] }
        set { state[keyPath: keyPath] = newValue }
    }

    var canaryWeight: Double { state.canaryWeight }

    private enum CodingKeys: String, CodingKey {
        case stepStartedAt, base, writtenBy
    }

    init(from decoder: any Decoder) throws {
        state = try RolloutState(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        stepStartedAt = try c.decode(Double.self, forKey: .stepStartedAt)
        base = try c.decode([String: Base].self, forKey: .base)
        writtenBy = try c.decode(String.self, forKey: .writtenBy)
    }

    func encode(to encoder: any Encoder) throws {
        try state.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stepStartedAt, forKey: .stepStartedAt)
        try c.encode(base, forKey: .base)
        try c.encode(writtenBy, forKey: .writtenBy)
    }
}

/// The fleet's window of one rollout step: the sum over the replicas publishing now of what each served since the
/// step started (a replica that restarted since counts from its start), and the worst of their latest drift readings
/// of the canary (the drift gates fail when any replica's traffic drifted past them).
struct FleetWindow: Sendable, Hashable {
    var canary: RolloutCounters
    var baseline: RolloutCounters
    var replicas: [RolloutStatus.Fleet.Replica]

    init(record: FleetRolloutRecord, aggregates: [String: ReplicaAggregates]) {
        let model = record.model
        let plan = record.plan
        var canary = FleetVersionCounters()
        var baseline = FleetVersionCounters()
        var compared: UInt64 = 0
        var agreed: UInt64 = 0
        var replicas: [RolloutStatus.Fleet.Replica] = []
        for name in aggregates.keys.sorted() {
            guard let published = aggregates[name] else { continue }
            let base = record.base[name].flatMap { $0.incarnation == published.incarnation ? $0 : nil }
            let ownCanary = published.counters(model: model, version: plan.canary)
                .since(base?.canary ?? FleetVersionCounters())
            let ownBaseline = published.counters(model: model, version: plan.baseline)
                .since(base?.baseline ?? FleetVersionCounters())
            let pair = published.pair(model: model, primary: plan.baseline, shadow: plan.canary)
            let pairBase = base ?? Base.zero
            compared &+= pair.compared >= pairBase.compared ? pair.compared - pairBase.compared : pair.compared
            agreed &+= pair.agreed >= pairBase.agreed ? pair.agreed - pairBase.agreed : pair.agreed
            var named = ownCanary
            named.drift?.replica = name
            named.drift?.outputReplica = name
            canary = canary + named
            baseline = baseline + ownBaseline
            replicas.append(
                .init(
                    replica: name,
                    calls: ownCanary.calls,
                    failures: ownCanary.failures,
                    baselineCalls: ownBaseline.calls
                )
            )
        }
        self.canary = RolloutCounters(
            calls: canary.calls,
            failures: canary.failures,
            latencyBuckets: canary.latency,
            compared: compared,
            agreed: min(agreed, compared),
            drift: canary.drift.map(DriftReading.init)
        )
        self.baseline = RolloutCounters(
            calls: baseline.calls,
            failures: baseline.failures,
            latencyBuckets: baseline.latency,
            compared: 0,
            agreed: 0
        )
        self.replicas = replicas
    }

    private typealias Base = FleetRolloutRecord.Base
}

extension FleetRolloutRecord.Base {
    static let zero = Self(
        incarnation: "",
        canary: FleetVersionCounters(),
        baseline: FleetVersionCounters(),
        compared: 0,
        agreed: 0
    )

    /// What `published` had of `plan`'s versions of `model`.
    init(_ published: ReplicaAggregates, model: String, plan: RolloutPlan) {
        let pair = published.pair(model: model, primary: plan.baseline, shadow: plan.canary)
        self.init(
            incarnation: published.incarnation,
            canary: published.counters(model: model, version: plan.canary),
            baseline: published.counters(model: model, version: plan.baseline),
            compared: pair.compared,
            agreed: pair.agreed
        )
    }
}

/// Drives rollouts across a fleet: operator actions from any replica, decisions by the elected one.
@MemberwiseInit(.internal)
public final class FleetRollouts: Sendable {
    /// The election's role name (`P/leader/rollouts`).
    static let role = "rollouts"

    private let fleet: FleetRoutes
    private let control: AdminControl
    private let registry: ModelRegistry
    private let sink: ComparisonSink?
    /// The drift detectors, whose latest readings each replica publishes for the drift gates.
    private let monitor: ModelMonitor?
    private let logger: Logger
    private let incarnation = UUID().uuidString
    private let published = Mutex<ReplicaAggregates?>(nil)
    private let leading = Atomic<Bool>(false)

    /// Whether this replica drives the fleet's rollouts now (as of its last tick).
    public var isLeader: Bool { leading.load(ordering: .relaxed) }

    // MARK: Operator actions (any replica)

    /// Starts a rollout in the fleet: the record, the hold and the first step's route in one transaction.
    /// - Throws: what `RolloutController.start` throws; `failedPrecondition` when a rollout of the model is active in
    ///   the fleet; `unavailable` when the store cannot be reached.
    func start(model: String, plan: RolloutPlan, actor: String, reason: String?) async throws(SwitchyardError)
        -> RolloutStatus
    {
        let aggregates = try await fleet.aggregates()
        let original = fleet.current?.routes[model]?.route
        let detail = "step 1/\(plan.steps.count): canary \(number(plan.steps[0]))%"
        var record = FleetRolloutRecord(
            state: RolloutState(model: model, plan: plan, original: original, detail: detail, actor: actor),
            stepStartedAt: Date().timeIntervalSince1970,
            base: aggregates.mapValues { .init($0, model: model, plan: plan) },
            writtenBy: fleet.replicaID
        )
        record.state.record("start", detail)
        let route = Self.route(for: record, canaryWeight: plan.steps[0], mirror: true)
        try control.validate(route)
        let hold = "a rollout of version \(plan.canary) is in progress; pause or abort it (/v1/rollouts/\(model))"
        let result = try await fleet.transact(
            compare: [.createRevision(fleet.holdKey(model), equals: 0)],
            operations: [
                .put(key: fleet.rolloutKey(model), value: try encode(record)),
                .put(key: fleet.holdKey(model), value: Array(hold.utf8)),
            ],
            route: route,
            audit: audit(record, action: "rollout.start", actor: actor, reason: reason ?? detail, route: route),
            failure: [.range(key: fleet.rolloutKey(model))]
        )
        guard result.succeeded else {
            let existing = result.ranges.first?.first.flatMap { try? decode($0.value) }
            throw SwitchyardError(
                .failedPrecondition,
                "a rollout of '\(model)' version \(existing?.plan.canary ?? "?") is "
                    + "\(existing?.phase.rawValue ?? "active") in the fleet; abort it before starting another"
            )
        }
        logger.notice("rollout start", metadata: ["model": "\(model)", "canary": "\(plan.canary)", "fleet": "true"])
        return try await status(model: model) ?? status(of: record, window: nil, leader: nil, aggregates: [:])
    }

    /// Pauses, resumes or aborts the fleet's rollout of `model`, guarded by the record's revision.
    func transition(model: String, action: String, actor: String, reason: String?) async throws(SwitchyardError)
        -> RolloutStatus
    {
        let from: Set<RolloutPhase> =
            switch action {
            case "pause": [.running]
            case "resume": [.paused]
            default: [.running, .paused]
            }
        for _ in 0..<3 {
            guard let stored = try await fleet.rolloutRecords()[model] else {
                throw .notFound("model '\(model)' has no rollout")
            }
            var record = try decode(stored.value)
            try requirePhase(record.phase, in: from, model: model, action: action)
            let detail = reason ?? "by \(actor)"
            var operations: [EtcdOperation] = []
            var route: RouteConfiguration?
            switch action {
            case "pause":
                record.phase = .paused
            case "resume":
                record.phase = .running
                record.stepStartedAt = Date().timeIntervalSince1970
                record.base = try await fleet.aggregates().mapValues { .init($0, model: model, plan: record.plan) }
            default:
                record.phase = .aborted
                route = Self.route(for: record, canaryWeight: 0, mirror: false)
                operations.append(.delete(key: fleet.holdKey(model)))
            }
            record.detail = "\(action): \(detail)"
            record.writtenBy = fleet.replicaID
            record.state.record(action, detail)
            operations.insert(.put(key: fleet.rolloutKey(model), value: try encode(record)), at: 0)
            let result = try await fleet.transact(
                compare: [.modRevision(fleet.rolloutKey(model), equals: stored.modRevision)],
                operations: operations,
                route: route,
                audit: audit(record, action: "rollout.\(action)", actor: actor, reason: detail, route: route)
            )
            if result.succeeded {
                logger.notice("rollout \(action)", metadata: ["model": "\(model)", "detail": "\(detail)"])
                return try await status(model: model) ?? status(of: record, window: nil, leader: nil, aggregates: [:])
            }
            // The leader wrote a step in between: judge the action against the newer state.
        }
        throw SwitchyardError(
            .failedPrecondition,
            "the rollout of '\(model)' kept changing while \(action) was tried; read its status and retry"
        )
    }

    // MARK: Status (any replica)

    /// The fleet's rollout of `model` with its live fleet window and leader, `nil` when there is none.
    /// - Throws: `unavailable` when the store cannot be reached.
    func status(model: String) async throws(SwitchyardError) -> RolloutStatus? {
        try await all(only: model).first
    }

    /// Every fleet rollout, by model.
    func all(only: String? = nil) async throws(SwitchyardError) -> [RolloutStatus] {
        var records = try await fleet.rolloutRecords()
        if let only { records = records.filter { $0.key == only } }
        guard !records.isEmpty else { return [] }
        let aggregates = try await fleet.aggregates()
        let leader = try await fleet.leader(Self.role)
        return try records.keys.sorted().map { (model) throws(SwitchyardError) -> RolloutStatus in
            let record = try decode(records[model]!.value)
            let window = record.phase.isActive ? FleetWindow(record: record, aggregates: aggregates) : nil
            return status(of: record, window: window, leader: leader?.replica, aggregates: aggregates)
        }
    }

    private func status(
        of record: FleetRolloutRecord,
        window: FleetWindow?,
        leader: String?,
        aggregates: [String: ReplicaAggregates]
    ) -> RolloutStatus {
        let counters =
            window?.canary ?? RolloutCounters(calls: 0, failures: 0, latencyBuckets: [], compared: 0, agreed: 0)
        let elapsed = record.phase.isActive ? max(0, Date().timeIntervalSince1970 - record.stepStartedAt) : 0
        var detail = record.detail
        if record.phase.isActive, let window {
            // What the leader's next tick will see, so that an operator reads the step's state between writes.
            switch record.plan.decide(
                step: record.step,
                elapsedSeconds: elapsed,
                window: window.canary,
                baseline: record.plan.gates.comparesWithBaseline ? window.baseline : nil
            ) {
            case .hold(let why): detail = record.phase == .paused ? "paused; \(why)" : why
            case .rollBack(let why): detail = "rolling back: \(why)"
            case .advance, .complete: detail = record.phase == .paused ? "paused; the step's gates pass" : detail
            }
        }
        return RolloutStatus(
            model: record.model,
            baseline: record.plan.baseline,
            canary: record.plan.canary,
            phase: record.phase,
            step: record.step + 1,
            steps: record.plan.steps,
            canaryWeight: record.canaryWeight,
            stepSeconds: record.plan.stepSeconds,
            gates: record.plan.gates,
            window: .init(
                calls: counters.calls,
                failures: counters.failures,
                errorRate: counters.errorRate,
                p99Milliseconds: counters.p99Milliseconds,
                compared: counters.compared,
                agreement: counters.agreement,
                inputDrift: nil,
                outputDrift: nil,
                elapsedSeconds: elapsed
            ),
            detail: detail,
            startedAt: record.startedAt,
            actor: record.actor,
            events: record.events,
            fleet: .init(leader: leader, replicas: window?.replicas ?? [])
        )
    }

    // MARK: Ticking (every replica publishes; the leader decides)

    /// One round: publish this replica's aggregates, absorb the peers' new bandit rewards, stand for leader, and as
    /// leader judge every active rollout. Any failure to reach the store ends the round: nothing is decided on what
    /// could not be read.
    func tick() async {
        do throws(SwitchyardError) {
            try await publishAggregates()
            var read: [String: ReplicaAggregates]?
            if !control.routing.banditShares.isEmpty {
                let all = try await fleet.aggregates()
                absorbBandits(all)
                read = all
            }
            let leader = try await fleet.campaign(Self.role)
            let leads = leader.replica == fleet.replicaID
            if leading.exchange(leads, ordering: .relaxed) != leads {
                logger.notice(
                    leads
                        ? "this replica now leads the fleet's rollouts" : "another replica leads the fleet's rollouts",
                    metadata: ["leader": "\(leader.replica)"]
                )
            }
            guard leads else { return }
            let records = try await fleet.rolloutRecords()
            guard records.values.contains(where: { (try? decode($0.value))?.phase.isActive == true }) else { return }
            let aggregates: [String: ReplicaAggregates]
            if let read { aggregates = read } else { aggregates = try await fleet.aggregates() }
            for model in records.keys.sorted() {
                guard let stored = records[model], let record = try? decode(stored.value), record.phase.isActive else {
                    continue
                }
                try await advance(record, revision: stored.modRevision, leader: leader, aggregates: aggregates)
            }
        } catch {
            leading.store(false, ordering: .relaxed)
            logger.debug("fleet rollout round skipped", metadata: ["reason": "\(error.message)"])
        }
    }

    private func publishAggregates() async throws(SwitchyardError) {
        var versions: [String: [String: FleetVersionCounters]] = [:]
        for entry in registry.models {
            for version in entry.versions {
                let statistics = version.statistics
                let succeeded = statistics.successes
                let failed = statistics.failures
                versions[entry.name, default: [:]][version.version] = FleetVersionCounters(
                    calls: succeeded + failed,
                    failures: failed,
                    latency: statistics.latency.bucketCounts,
                    drift:
                        monitor
                        .flatMap { DriftReading(latestOf: $0, model: entry.name, version: version.version) }
                        .map(FleetDriftReading.init)
                )
            }
        }
        let pairs = (sink?.aggregates ?? [:]).map { key, aggregate in
            FleetPairCounters(
                model: key.model,
                primary: key.primaryVersion,
                shadow: key.shadowVersion,
                compared: aggregate.classified,
                agreed: aggregate.agreed
            )
        }.sorted { ($0.model, $0.primary, $0.shadow) < ($1.model, $1.primary, $1.shadow) }
        let bandits = control.routing.banditShares.mapValues { route in
            FleetBanditShare(versions: route.versions, counts: route.share.counts, sums: route.share.sums)
        }
        let aggregates = ReplicaAggregates(
            replica: fleet.replicaID,
            incarnation: incarnation,
            versions: versions,
            pairs: pairs,
            bandits: bandits.isEmpty ? nil : bandits
        )
        // Written when it changed, and at least once per lease: the key lives on the lease, a restart of the
        // lease (after losing the store) needs it written again.
        let lease = fleet.currentLease
        if published.withLock({ $0 }) == aggregates && lastLease.load(ordering: .relaxed) == lease { return }
        try await fleet.publish(aggregates)
        published.withLock { $0 = aggregates }
        lastLease.store(lease, ordering: .relaxed)
    }

    private let lastLease = Atomic<Int64>(0)

    /// Per peer: its incarnation and the bandit shares last absorbed from it.
    private let absorbed = Mutex<[String: (incarnation: String, shares: [String: FleetBanditShare])]>([:])

    /// Adds to this replica's bandits what each peer observed since the last round (the whole of a peer seen for the
    /// first time or restarted): the fleet's bandits learn from every replica's calls, and a decision still reads only
    /// local state.
    private func absorbBandits(_ all: [String: ReplicaAggregates]) {
        for (name, peer) in all where name != fleet.replicaID {
            let shares = peer.bandits ?? [:]
            let last = absorbed.withLock { $0[name] }
            for (model, share) in shares {
                var earlier = BanditShare(arms: share.counts.count)
                if let last, last.incarnation == peer.incarnation, let before = last.shares[model],
                    before.versions == share.versions
                {
                    earlier = BanditShare(counts: before.counts, sums: before.sums)
                }
                let delta = BanditShare(counts: share.counts, sums: share.sums).since(earlier)
                guard delta.counts.contains(where: { $0 > 0 }) else { continue }
                control.routing.absorbBandit(model: model, versions: share.versions, delta: delta)
            }
            absorbed.withLock { $0[name] = (peer.incarnation, shares) }
        }
    }

    private func advance(
        _ current: FleetRolloutRecord,
        revision: Int64,
        leader: FleetLeader,
        aggregates: [String: ReplicaAggregates]
    ) async throws(SwitchyardError) {
        var record = current
        let plan = record.plan
        let window = FleetWindow(record: record, aggregates: aggregates)
        let elapsed = Date().timeIntervalSince1970 - record.stepStartedAt
        let canaryLoaded =
            registry.model(named: record.model)?.versions.contains { $0.version == plan.canary } == true
        let decision: RolloutDecision =
            canaryLoaded
            ? plan.decide(
                step: record.step,
                elapsedSeconds: elapsed,
                window: window.canary,
                baseline: plan.gates.comparesWithBaseline ? window.baseline : nil
            ) : .rollBack("version \(plan.canary) is no longer loaded on \(fleet.replicaID)")
        let event: String
        let detail: String
        var route: RouteConfiguration
        var operations: [EtcdOperation] = []
        let evidence =
            "\(windowSummary(window.canary)) over \(window.replicas.count) replicas; judged by \(leader.replica)"
        switch decision {
        case .hold:
            return
        case .advance where record.phase == .running:
            let next = record.step + 1
            event = "advance"
            detail =
                "step \(next + 1)/\(plan.steps.count): canary \(number(plan.steps[next]))% "
                + "(\(evidence) at \(number(plan.steps[record.step]))%)"
            record.step = next
            record.stepStartedAt = Date().timeIntervalSince1970
            record.base = aggregates.mapValues { .init($0, model: record.model, plan: plan) }
            route = Self.route(for: record, canaryWeight: plan.steps[next], mirror: true)
        case .complete where record.phase == .running:
            event = "complete"
            detail = "every step passed (\(evidence) at the last)"
            record.phase = .completed
            route = Self.route(for: record, canaryWeight: 100, mirror: false)
            operations.append(.delete(key: fleet.holdKey(record.model)))
        case .rollBack(let why):
            event = "rollback"
            detail = "\(why) (fleet window: \(evidence))"
            record.phase = .rolledBack
            route = Self.route(for: record, canaryWeight: 0, mirror: false)
            operations.append(.delete(key: fleet.holdKey(record.model)))
        case .advance, .complete:
            return
        }
        record.detail = detail
        record.writtenBy = fleet.replicaID
        record.state.record(event, detail)
        operations.insert(.put(key: fleet.rolloutKey(record.model), value: try encode(record)), at: 0)
        let result = try await fleet.transact(
            compare: [
                .modRevision(fleet.rolloutKey(record.model), equals: revision),
                .createRevision(fleet.leaderKey(Self.role), equals: leader.createRevision),
            ],
            operations: operations,
            route: route,
            audit: audit(record, action: "rollout.\(event)", actor: "rollout", reason: detail, route: route)
        )
        // A lost guard means an operator acted or the election moved: the next round reads the newer state.
        guard result.succeeded else { return }
        logger.notice(
            "rollout \(event)",
            metadata: [
                "model": "\(record.model)", "canary": "\(plan.canary)",
                "canary_weight": "\(number(record.canaryWeight))", "detail": "\(detail)", "leader": "\(leader.replica)",
            ]
        )
    }

    // MARK: Helpers

    /// The route of a rollout at a canary weight.
    static func route(for record: FleetRolloutRecord, canaryWeight: Double, mirror: Bool) -> RouteConfiguration {
        record.state.route(canaryWeight: canaryWeight, mirror: mirror)
    }

    private func audit(
        _ record: FleetRolloutRecord,
        action: String,
        actor: String,
        reason: String,
        route: RouteConfiguration?
    ) -> FleetAudit {
        FleetAudit(
            actor: actor,
            action: action,
            model: record.model,
            old: route == nil ? nil : fleet.current?.routes[record.model]?.route,
            new: route,
            reason: reason,
            replica: fleet.replicaID
        )
    }

    private func encode(_ record: FleetRolloutRecord) throws(SwitchyardError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        do { return [UInt8](try encoder.encode(record)) } catch {
            throw .internal("cannot encode the rollout of '\(record.model)': \(error)")
        }
    }

    private func decode(_ value: [UInt8]) throws(SwitchyardError) -> FleetRolloutRecord {
        do { return try JSONDecoder().decode(FleetRolloutRecord.self, from: Data(value)) } catch {
            throw .internal("unreadable rollout record in the fleet's store: \(error)")
        }
    }
}

extension FleetDriftReading {
    /// A replica's reading, for publication.
    init(_ reading: DriftReading) {
        self.init(
            maxInputPSI: reading.maxInputPSI,
            worstInput: reading.worstInput,
            maxOutputPSI: reading.maxOutputPSI,
            worstOutput: reading.worstOutput,
            windowRows: reading.windowRows
        )
    }
}

extension DriftReading {
    /// The fleet's worst reading as the gates read it; the feature names say which replica's traffic it came from.
    init(_ reading: FleetDriftReading) {
        self.init(
            maxInputPSI: reading.maxInputPSI,
            worstInput: reading.worstInput + (reading.replica.map { " on \($0)" } ?? ""),
            maxOutputPSI: reading.maxOutputPSI,
            worstOutput: reading.worstOutput + (reading.outputReplica.map { " on \($0)" } ?? ""),
            windowRows: reading.windowRows
        )
    }
}
