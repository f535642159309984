// Routing decisions waiting for explicit feedback, keyed by request id, each with a time to live.
// A pure state machine over an injected clock: reports within the TTL are joined to their decision,
// reports after it are late, reports for ids never seen (or long forgotten) are unknown.

/// How a feedback report was handled.
public enum FeedbackOutcome: String, Sendable, Hashable {
    /// Joined to its routing decision; the reward was recorded.
    case applied
    /// The decision's TTL had passed; the reward was ignored.
    case late
    /// No pending decision has this id (never routed by a bandit with feedback rewards, already
    /// reported, or forgotten); the reward was ignored.
    case unknown
}

/// Counters of a feedback ledger.
public struct FeedbackCounters: Sendable, Hashable {
    /// Decisions registered for feedback.
    public var registered: UInt64 = 0
    /// Reports joined to their decision.
    public var applied: UInt64 = 0
    /// Reports after the TTL.
    public var late: UInt64 = 0
    /// Reports for unknown ids.
    public var unknown: UInt64 = 0
    /// Decisions that never got a report within their TTL (or were evicted by the capacity bound).
    public var expired: UInt64 = 0
    /// Decisions replaced by a newer decision with the same request id.
    public var replaced: UInt64 = 0
    /// Entries held: decisions awaiting feedback and recently expired ones kept to recognise late reports.
    public var pending: Int = 0

    /// Zeroed counters.
    public init() {}
}

/// Pending decisions by request id.
///
/// An entry lives until its TTL passes, then one more TTL as a tombstone so that a late report is told
/// apart from an unknown one; entries beyond `capacity` are evicted oldest first.
public struct FeedbackLedger<Value> {
    private struct Entry {
        var value: Value
        var expiresAt: UInt64
        var reported: Bool
    }

    /// Most entries (pending and tombstones) kept.
    public let capacity: Int
    private var entries: [String: Entry] = [:]
    private var order: [(id: String, expiresAt: UInt64, forgetAt: UInt64)] = []
    private var orderHead = 0
    /// The counters.
    public private(set) var counters = FeedbackCounters()

    /// Creates an empty ledger holding at most `capacity` entries.
    public init(capacity: Int = 1 << 20) { self.capacity = max(1, capacity) }

    /// Registers a decision awaiting feedback until `now + ttl`.
    public mutating func register(id: String, value: Value, now: UInt64, ttlNanoseconds: UInt64) {
        sweep(now: now)
        let expiresAt = now &+ ttlNanoseconds
        if let old = entries[id], !old.reported, old.expiresAt > now { counters.replaced += 1 }
        entries[id] = Entry(value: value, expiresAt: expiresAt, reported: false)
        order.append((id, expiresAt, expiresAt &+ ttlNanoseconds))
        counters.registered += 1
        while entries.count > capacity, orderHead < order.count {
            let oldest = order[orderHead]
            orderHead += 1
            if let entry = entries[oldest.id], entry.expiresAt == oldest.expiresAt {
                if !entry.reported && entry.expiresAt > now { counters.expired += 1 }
                entries[oldest.id] = nil
            }
        }
        compact()
        counters.pending = pendingCount
    }

    /// Joins a report to its decision.
    /// - Returns: the decision's value when applied, and how the report was handled.
    public mutating func claim(id: String, now: UInt64) -> (outcome: FeedbackOutcome, value: Value?) {
        sweep(now: now)
        guard var entry = entries[id], !entry.reported else {
            counters.unknown += 1
            return (.unknown, nil)
        }
        if now > entry.expiresAt {
            counters.late += 1
            return (.late, nil)
        }
        entry.reported = true
        entries[id] = entry
        counters.applied += 1
        counters.pending = pendingCount
        return (.applied, entry.value)
    }

    /// Forgets tombstones whose grace period has passed and counts decisions that expired unreported.
    public mutating func sweep(now: UInt64) {
        while orderHead < order.count, order[orderHead].forgetAt < now {
            let oldest = order[orderHead]
            orderHead += 1
            if let entry = entries[oldest.id], entry.expiresAt == oldest.expiresAt {
                if !entry.reported { counters.expired += 1 }
                entries[oldest.id] = nil
            }
        }
        compact()
        counters.pending = pendingCount
    }

    private var pendingCount: Int { entries.count }

    private mutating func compact() {
        if orderHead > 1024 && orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }
}
