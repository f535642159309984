// A route's fallback (`fallback:` in a route): whether a call the chosen version failed or shed gets one more try on
// the fallback version, decided from the failure's code and the time the call's deadline still leaves; and the
// counters of what became of those calls. The decision is pure (the clock is the caller's), so it is tested alone.

public import SwitchyardCore
import Synchronization

/// A compiled `fallback:` of one route, shared by the decisions of every version but the fallback version itself.
public final class Fallback: Sendable {
    /// What became of a failed call that the route's fallback looked at.
    public enum Outcome: String, Sendable, CaseIterable {
        /// The fallback version answered the call.
        case answered
        /// The fallback version failed it too; the caller got the fallback's failure.
        case failed
        /// The call's deadline left less than the margin: the caller got the original failure.
        case noTime = "no_time"
        /// The fallback version could not take the call (unloaded, or its inputs differ): the original failure.
        case unavailable
    }

    /// Whether a failed call is tried again.
    public enum Verdict: Sendable, Equatable {
        /// Try it on the fallback version.
        case retry
        /// The failure's code is not one the route falls back on: the failure is the answer (not counted).
        case notOnThisCode
        /// The deadline leaves less than the margin: the failure is the answer (counted as `no_time`).
        case noTime
    }

    /// The routed model.
    public let model: String
    /// The version that answers instead.
    public let version: String
    /// The failure codes that fall back.
    let codes: Set<SwitchyardError.Code>
    /// The least time before the deadline a fallback needs.
    let marginNanoseconds: UInt64
    let counters: FallbackCounters

    init(_ settings: RouteConfiguration.FallbackSettings, model: String, version: String, counters: FallbackCounters) {
        self.model = model
        self.version = version
        codes = settings.codeSet
        marginNanoseconds = UInt64(max(0, settings.deadlineMarginMilliseconds) * 1e6)
        self.counters = counters
    }

    /// Whether a call that failed with `error` at `now` is tried on the fallback version, given its `deadline`.
    public func verdict(after error: SwitchyardError, now: MonotonicInstant, deadline: MonotonicInstant?) -> Verdict {
        guard codes.contains(error.code) else { return .notOnThisCode }
        guard let deadline else { return .retry }
        guard deadline > now, deadline.nanoseconds(since: now) >= marginNanoseconds else { return .noTime }
        return .retry
    }

    /// Counts what became of a call that `failedVersion` failed with `code`.
    public func record(_ outcome: Outcome, from failedVersion: String, code: SwitchyardError.Code) {
        counters.add(
            FallbackCounters.Key(
                model: model,
                from: failedVersion,
                to: version,
                code: Self.name(of: code),
                outcome: outcome
            )
        )
    }

    /// The `switchyard-route` trailer of a call the fallback version answered (or failed) after `failedVersion`
    /// failed it with `code`: the decision's trailer for the served version, then `; fallback=<failed>,<code>`.
    public func trailer(_ decision: RoutingDecision, failedVersion: String, code: SwitchyardError.Code) -> String {
        decision.trailer(servedVersion: version) + "; fallback=" + failedVersion + "," + Self.name(of: code)
    }

    /// A code's name as `fallback.on` spells it (`resource_exhausted`).
    public static func name(of code: SwitchyardError.Code) -> String {
        names[code] ?? String(code.description.map { $0 == " " ? "_" : $0 })
    }

    private static let names: [SwitchyardError.Code: String] = Dictionary(
        uniqueKeysWithValues: RouteConfiguration.FallbackSettings.codes.map { ($0.value, $0.key) }
    )
}

/// How many failed calls each route's fallback answered, failed, or left alone, by model, the version that failed,
/// the fallback version, the failure's code and the outcome. Kept by the routing table across generations; written
/// only on the failure path.
public final class FallbackCounters: Sendable {
    /// One counter's labels.
    public struct Key: Sendable, Hashable {
        /// The routed model.
        public var model: String
        /// The version that failed the call.
        public var from: String
        /// The fallback version.
        public var to: String
        /// The failure's code (`internal`, `resource_exhausted` …).
        public var code: String
        /// What became of the call.
        public var outcome: Fallback.Outcome
    }

    private let counts = Mutex<[Key: UInt64]>([:])
    /// Distinct label sets kept at most; versions and codes are few, but a churn of loaded versions must not grow
    /// the map without bound. Further label sets are counted under `dropped`.
    static let maxKeys = 4096
    private let droppedKeys = Atomic<UInt64>(0)

    init() {}

    func add(_ key: Key) {
        let kept = counts.withLock { counts -> Bool in
            guard counts[key] != nil || counts.count < Self.maxKeys else { return false }
            counts[key, default: 0] += 1
            return true
        }
        if !kept { droppedKeys.add(1, ordering: .relaxed) }
    }

    /// Every counter, sorted by its labels.
    public var snapshot: [(key: Key, count: UInt64)] {
        counts.withLock { $0 }.map { (key: $0.key, count: $0.value) }.sorted {
            ($0.key.model, $0.key.from, $0.key.to, $0.key.code, $0.key.outcome.rawValue)
                < ($1.key.model, $1.key.from, $1.key.to, $1.key.code, $1.key.outcome.rawValue)
        }
    }

    /// Counts not kept because the label sets reached `maxKeys`.
    public var dropped: UInt64 { droppedKeys.load(ordering: .relaxed) }
}
