// What replicas share beyond the routes, so that fleet-wide processes judge the fleet rather than one pod:
//
//   P/stats/<replica>      the replica's published aggregates (per-version counters and latency histograms, shadow
//                          pair counts, bandit routes' own rewards), attached to its presence lease: a dead
//                          replica's vanish within the TTL
//   P/leader/<role>        the elected replica for a role (`rollouts`): created only when absent (a guard on the
//                          key's create revision), attached to the winner's lease, so it ends with the winner
//   P/rollouts/<model>     a rollout's state (plan, phase, step, window start, events), written only by guarded
//                          transactions
//
// Every call here is control plane: a failure is an error to the caller (who holds), never a wait on the request path.

import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardAdminAPI
public import SwitchyardCore
import Synchronization

/// Cumulative counters of one model version on one replica since the replica started.
@MemberwiseInit
public struct FleetVersionCounters: Sendable, Hashable, Codable {
    /// Finished calls.
    public var calls: UInt64 = 0
    /// Failed calls.
    public var failures: UInt64 = 0
    /// Latency histogram bucket counts (the layout of `LatencyHistogram.bucketCounts`).
    public var latency: [UInt64] = []
    /// The version's latest drift scores on this replica (`nil`: no detector, or no full window yet). A reading, not
    /// a counter: `since` keeps it, and a sum keeps the worst.
    public var drift: FleetDriftReading?

    /// What happened between `earlier` and `self`; a bucket missing on either side counts as zero, and a counter
    /// that went backwards (which only a restart explains) counts from zero.
    public func since(_ earlier: FleetVersionCounters) -> FleetVersionCounters {
        guard calls >= earlier.calls else { return self }
        let count = max(latency.count, earlier.latency.count)
        return FleetVersionCounters(
            calls: calls - earlier.calls,
            failures: failures >= earlier.failures ? failures - earlier.failures : failures,
            latency: (0..<count).map { index in
                let now = index < latency.count ? latency[index] : 0
                let then = index < earlier.latency.count ? earlier.latency[index] : 0
                return now >= then ? now - then : now
            },
            drift: drift
        )
    }

    /// The sum of two replicas' counters.
    public static func + (lhs: FleetVersionCounters, rhs: FleetVersionCounters) -> FleetVersionCounters {
        let count = max(lhs.latency.count, rhs.latency.count)
        return FleetVersionCounters(
            calls: lhs.calls &+ rhs.calls,
            failures: lhs.failures &+ rhs.failures,
            latency: (0..<count).map { index in
                (index < lhs.latency.count ? lhs.latency[index] : 0)
                    &+ (index < rhs.latency.count ? rhs.latency[index] : 0)
            },
            drift: FleetDriftReading.worst(lhs.drift, rhs.drift)
        )
    }
}

/// One replica's drift scores of a version over its detector's latest full window: the largest population stability
/// index among the inputs and among the outputs, and which feature holds each. Windows are per replica (each scores
/// the traffic it served); across a fleet the worst reading is the one a gate judges, so that drift in one replica's
/// traffic is never averaged away by the others'.
@MemberwiseInit
public struct FleetDriftReading: Sendable, Hashable, Codable {
    public var maxInputPSI: Double
    public var worstInput: String
    public var maxOutputPSI: Double
    public var worstOutput: String
    /// Rows in the scored window.
    public var windowRows: Int
    /// The replicas the worst input and the worst output readings came from (set when readings are combined).
    public var replica: String?
    public var outputReplica: String?

    /// The worse of two readings, inputs and outputs taken separately; `nil` only when both are.
    public static func worst(_ lhs: FleetDriftReading?, _ rhs: FleetDriftReading?) -> FleetDriftReading? {
        guard let lhs else { return rhs }
        guard let rhs else { return lhs }
        var worst = lhs.maxInputPSI >= rhs.maxInputPSI ? lhs : rhs
        let output = lhs.maxOutputPSI >= rhs.maxOutputPSI ? lhs : rhs
        worst.maxOutputPSI = output.maxOutputPSI
        worst.worstOutput = output.worstOutput
        worst.outputReplica = output.outputReplica
        worst.windowRows = min(lhs.windowRows, rhs.windowRows)
        return worst
    }
}

/// Cumulative shadow-comparison counts of one (model, primary, shadow) pair on one replica.
@MemberwiseInit
public struct FleetPairCounters: Sendable, Hashable, Codable {
    /// The model.
    public var model: String
    /// The version that answered.
    public var primary: String
    /// The mirrored version.
    public var shadow: String
    /// Pairs with a classification verdict.
    public var compared: UInt64 = 0
    /// Of those, pairs whose argmax agreed.
    public var agreed: UInt64 = 0
}

/// One bandit route's rewards as a replica observed them itself, cumulative and undiscounted, per arm.
@MemberwiseInit
public struct FleetBanditShare: Sendable, Hashable, Codable {
    /// The versions the arms stand for, in arm order: a peer absorbs the share only into a route with the same.
    public var versions: [String]
    /// Rewards received per arm.
    public var counts: [UInt64]
    /// Their sum per arm.
    public var sums: [Double]
}

/// What one replica publishes under `P/stats/<replica>`: cumulative counters that the reader differences.
@MemberwiseInit
public struct ReplicaAggregates: Sendable, Hashable, Codable {
    /// The replica's name.
    public var replica: String
    /// Differs at every start of the replica: counters of another incarnation are not comparable.
    public var incarnation: String
    /// Per model, per version.
    public var versions: [String: [String: FleetVersionCounters]] = [:]
    /// Shadow pairs.
    public var pairs: [FleetPairCounters] = []
    /// Bandit routes' own rewards, by model (`nil`: none).
    public var bandits: [String: FleetBanditShare]?

    /// The counters of `version` of `model` (zero when not published).
    public func counters(model: String, version: String) -> FleetVersionCounters {
        versions[model]?[version] ?? FleetVersionCounters()
    }

    /// The counts of a shadow pair (zero when not published).
    public func pair(model: String, primary: String, shadow: String) -> FleetPairCounters {
        pairs.first { $0.model == model && $0.primary == primary && $0.shadow == shadow }
            ?? FleetPairCounters(model: model, primary: primary, shadow: shadow)
    }
}

/// The replica elected for a role, as its key in etcd shows it.
public struct FleetLeader: Sendable, Hashable {
    /// The elected replica.
    public var replica: String
    /// The create revision of its key: a write guarded on it succeeds only while this election stands.
    public var createRevision: Int64
}

/// A record in the store with the revision of its last change, for guarded rewrites.
public struct FleetRecord: Sendable, Hashable {
    /// The stored bytes (JSON).
    public var value: [UInt8]
    /// The revision of the last change; a rewrite compares it.
    public var modRevision: Int64
}

extension FleetRoutes {
    /// The key of a role's elected replica.
    public func leaderKey(_ role: String) -> String { "\(prefix)/leader/\(role)" }

    /// The key of `model`'s rollout record.
    public func rolloutKey(_ model: String) -> String { "\(prefix)/rollouts/\(model)" }

    /// Publishes this replica's aggregates under `P/stats/<replica>`, attached to its presence lease.
    /// - Throws: `unavailable` when the replica holds no lease or etcd cannot be reached.
    public func publish(_ aggregates: ReplicaAggregates) async throws(SwitchyardError) {
        let lease = currentLease
        guard lease != 0 else {
            throw SwitchyardError(.unavailable, "statistics not published: this replica holds no lease in etcd")
        }
        let value: [UInt8]
        do { value = [UInt8](try JSONEncoder.sorted.encode(aggregates)) } catch {
            throw .internal("cannot encode the replica's aggregates: \(error)")
        }
        try await client.put(key: "\(prefix)/stats/\(replicaID)", value: value, lease: lease)
    }

    /// Every live replica's published aggregates, by replica name; unreadable entries are skipped.
    /// - Throws: `unavailable` when etcd cannot be reached.
    public func aggregates() async throws(SwitchyardError) -> [String: ReplicaAggregates] {
        let listed = try await client.range(key: "\(prefix)/stats/", prefix: true)
        var all: [String: ReplicaAggregates] = [:]
        for kv in listed.kvs {
            guard let aggregates = try? JSONDecoder().decode(ReplicaAggregates.self, from: Data(kv.value)) else {
                continue
            }
            all[aggregates.replica] = aggregates
        }
        return all
    }

    /// Stands for `role`: becomes its leader when nobody is (the key is created only if absent, attached to this
    /// replica's lease), and answers who leads now.
    /// - Throws: `unavailable` when this replica holds no lease or etcd cannot be reached.
    public func campaign(_ role: String) async throws(SwitchyardError) -> FleetLeader {
        let lease = currentLease
        guard lease != 0 else {
            throw SwitchyardError(.unavailable, "cannot stand for \(role) leader: this replica holds no lease in etcd")
        }
        let key = leaderKey(role)
        let result = try await client.transaction(
            compare: [.createRevision(key, equals: 0)],
            success: [.put(key: key, value: Array(replicaID.utf8), lease: lease)],
            failure: [.range(key: key)]
        )
        if result.succeeded { return FleetLeader(replica: replicaID, createRevision: result.revision) }
        guard let kv = result.ranges.first?.first else {
            // The key expired between the comparison and the read: the next campaign decides.
            throw SwitchyardError(.unavailable, "the \(role) election is changing hands")
        }
        return FleetLeader(replica: String(decoding: kv.value, as: UTF8.self), createRevision: kv.createRevision)
    }

    /// Who leads `role` now, `nil` when nobody does.
    /// - Throws: `unavailable` when etcd cannot be reached.
    public func leader(_ role: String) async throws(SwitchyardError) -> FleetLeader? {
        guard let kv = try await client.range(key: leaderKey(role)).kvs.first else { return nil }
        return FleetLeader(replica: String(decoding: kv.value, as: UTF8.self), createRevision: kv.createRevision)
    }

    /// Every rollout record, by model.
    /// - Throws: `unavailable` when etcd cannot be reached.
    public func rolloutRecords() async throws(SwitchyardError) -> [String: FleetRecord] {
        let base = "\(prefix)/rollouts/"
        let listed = try await client.range(key: base, prefix: true)
        var records: [String: FleetRecord] = [:]
        for kv in listed.kvs {
            records[String(kv.key.dropFirst(base.count))] = FleetRecord(value: kv.value, modRevision: kv.modRevision)
        }
        return records
    }
}

/// What became of the `Feedback/Report`s this replica forwarded to its peers (cumulative since it started).
public struct FleetFeedbackCounters: Sendable, Hashable {
    /// Reports a peer knew and applied.
    public var applied: UInt64 = 0
    /// Reports a peer knew but had already stopped waiting for (its window closed).
    public var late: UInt64 = 0
    /// Reports no asked peer knew, or that no peer answered in time.
    public var unknown: UInt64 = 0
    /// Reports not forwarded because `maxInFlight` forwards were already under way (answered UNKNOWN at once).
    public var shed: UInt64 = 0
    /// Peers asked, over every report.
    public var peersAsked: UInt64 = 0
    /// Peers not asked because a report asks at most `maxPeers`.
    public var peersSkipped: UInt64 = 0
    /// Peers that failed or did not answer within the report's time.
    public var peerErrors: UInt64 = 0

    /// Creates counters.
    public init() {}
}

/// How far a forwarded `Feedback/Report` may reach: the peers asked at once, the time the whole report may take, and
/// the reports under way at once.
@MemberwiseInit
public struct FleetFeedbackLimits: Sendable, Hashable {
    /// Peers asked per report, at once (default 8); the others are counted as skipped.
    public var maxPeers: Int = 8
    /// The time one report may take, over every peer asked (default 1 s); a peer still silent then counts as an error.
    public var timeout: Duration = .seconds(1)
    /// Reports forwarded at once (default 64); a report beyond it is answered UNKNOWN at once and counted as shed.
    public var maxInFlight: Int = 64
}

/// The feedback forwarding state of one replica: its counters and the forwards under way.
final class FleetFeedbackLedger: Sendable {
    let counters = Mutex(FleetFeedbackCounters())
    let inFlight = Atomic<Int>(0)
}

extension FleetRoutes {
    /// What became of the reports this replica forwarded.
    public var feedbackCounters: FleetFeedbackCounters { feedbackLedger.counters.withLock { $0 } }

    /// Delivers a `Feedback/Report` this replica cannot join to the replica that routed the call: asks other
    /// replicas' admin APIs (`POST /v1/fleet/feedback`, which answers from its own ledger and never forwards) at once,
    /// at most `limits.maxPeers` of them (in an order that changes per report, so no peer carries every report), and
    /// takes the first that knows the call; the others are cancelled. The whole report takes at most
    /// `limits.timeout`, and at most `limits.maxInFlight` reports are forwarded at once. Every outcome is counted
    /// (`feedbackCounters`).
    /// - Parameters:
    ///   - token: the admin bearer token the fleet's replicas share (`nil`: none).
    ///   - limits: the bounds.
    /// - Returns: the outcome at the replica that knew the call (`applied` or `late`), `nil` when none did, none
    ///   answered in time, or the report was shed.
    public func forwardFeedback(
        requestID: String,
        reward: Double,
        token: String?,
        limits: FleetFeedbackLimits = FleetFeedbackLimits()
    ) async -> String? {
        let ledger = feedbackLedger
        guard ledger.inFlight.add(1, ordering: .relaxed).newValue <= limits.maxInFlight else {
            ledger.inFlight.subtract(1, ordering: .relaxed)
            ledger.counters.withLock { $0.shed += 1 }
            return nil
        }
        defer { ledger.inFlight.subtract(1, ordering: .relaxed) }
        let outcome = await forward(requestID: requestID, reward: reward, token: token, limits: limits)
        ledger.counters.withLock { counters in
            switch outcome {
            case "applied": counters.applied += 1
            case "late": counters.late += 1
            default: counters.unknown += 1
            }
        }
        return outcome
    }

    private func forward(
        requestID: String,
        reward: Double,
        token: String?,
        limits: FleetFeedbackLimits
    ) async -> String? {
        guard let listed = try? await replicas() else { return nil }
        let peers = listed.filter { $0.replica != replicaID && !$0.admin.isEmpty }.shuffled()
        let asked = Array(peers.prefix(max(0, limits.maxPeers)))
        feedbackLedger.counters.withLock { counters in
            counters.peersAsked += UInt64(asked.count)
            counters.peersSkipped += UInt64(peers.count - asked.count)
        }
        guard !asked.isEmpty,
            let body = try? JSONEncoder.sorted.encode(FleetFeedback(requestID: requestID, reward: reward))
        else { return nil }
        let deadline = ContinuousClock.now + limits.timeout
        return await withTaskGroup(of: String?.self) { group in
            for peer in asked {
                group.addTask { await self.ask(peer, body: body, token: token, deadline: deadline) }
            }
            // A silent peer must not hold the report past its time, whatever the HTTP client does.
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return "timeout"
            }
            var pending = asked.count
            while pending > 0, let answer = await group.next() {
                if answer == "timeout" {
                    feedbackLedger.counters.withLock { $0.peerErrors += UInt64(pending) }
                    logger.warning(
                        "forwarded feedback: peers did not answer in time",
                        metadata: ["peers": "\(pending)", "timeout": "\(limits.timeout)"]
                    )
                    group.cancelAll()
                    return nil
                }
                pending -= 1
                if let answer, answer != "unknown" {
                    group.cancelAll()
                    return answer
                }
            }
            group.cancelAll()
            return nil
        }
    }

    /// One peer's answer (`applied`, `late`, `unknown`), `nil` when it failed (counted and logged).
    private func ask(_ peer: FleetReplica, body: Data, token: String?, deadline: ContinuousClock.Instant) async
        -> String?
    {
        var request = HTTPClientRequest(url: "http://\(peer.admin)/v1/fleet/feedback")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(bytes: body))
        let left = max(.milliseconds(1), deadline - ContinuousClock.now)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(left.nanoseconds))
            let bytes = try await response.body.collect(upTo: 64 * 1024)
            guard response.status == .ok,
                let answer = try? JSONDecoder().decode(FleetFeedbackOutcome.self, from: Data(bytes.readableBytesView))
            else {
                feedbackLedger.counters.withLock { $0.peerErrors += 1 }
                logger.warning(
                    "a peer refused forwarded feedback",
                    metadata: ["peer": "\(peer.replica)", "status": "\(response.status.code)"]
                )
                return nil
            }
            return answer.outcome
        } catch {
            if Task.isCancelled { return nil }
            feedbackLedger.counters.withLock { $0.peerErrors += 1 }
            logger.warning(
                "a peer did not answer forwarded feedback",
                metadata: ["peer": "\(peer.replica)", "reason": "\(error)"]
            )
            return nil
        }
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
