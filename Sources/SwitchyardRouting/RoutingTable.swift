// The routing table: per model, the policy that picks the version serving a call and the shadow version
// that mirrors it. Calls read an immutable snapshot; every change builds a new snapshot with the next
// generation number and swaps it in one step, so a call sees either the old table or the new one.

public import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the router needs to know about a loaded model.
@MemberwiseInit
public struct ModelCatalogEntry: Sendable, Hashable {
    /// The loaded versions.
    public var versions: [String]
    /// The model's latency target (its `slo_ms`), the default target of automatic bandit rewards.
    public var latencyTargetMilliseconds: Double
}

/// A bandit's state behind its lock, shared by the routes of successive snapshots while the route is unchanged.
final class BanditCell: Sendable {
    let state: Mutex<Bandit>
    init(_ bandit: Bandit) { state = Mutex(bandit) }
}

/// The routing of one call.
public struct RoutingDecision: Sendable {
    /// The version to serve; `""` means the model's default version.
    public let version: String
    /// Why that version.
    public let reason: RouteReason
    /// The routing table's generation the decision was made on.
    public let generation: UInt64
    /// The version to mirror the call to, if any.
    public let shadowVersion: String?
    /// The `switchyard-route` trailer value when `version` is known at decision time.
    let cachedTrailer: String?
    /// The snapshot's trailers of default and explicit decisions, built once per served version.
    let trailers: TrailerCache?
    let bandit: BanditCell?
    let arm: Int
    let rewardTargetNanoseconds: UInt64?
    /// The route's fallback, when it names a version other than `version`; `nil` for most decisions.
    public let fallback: Fallback?

    /// Whether the caller should report the call's outcome with `recordOutcome` (automatic bandit rewards).
    public var wantsOutcome: Bool { rewardTargetNanoseconds != nil }

    /// A decision no policy made: the default version of a model without a route, or the version the call named.
    static func unrouted(
        _ version: String,
        reason: RouteReason,
        on snapshot: RoutingSnapshot,
        shadowVersion: String?
    ) -> RoutingDecision {
        RoutingDecision(
            version: version,
            reason: reason,
            generation: snapshot.generation,
            shadowVersion: shadowVersion,
            cachedTrailer: nil,
            trailers: snapshot.trailers,
            bandit: nil,
            arm: 0,
            rewardTargetNanoseconds: nil,
            fallback: nil
        )
    }

    /// Records the automatic reward of a bandit decision: 1 when the call succeeded within the route's
    /// latency target, else 0. Does nothing for other decisions.
    public func recordOutcome(succeeded: Bool, latencyNanoseconds: UInt64) {
        guard let bandit, let target = rewardTargetNanoseconds else { return }
        let reward: Double = succeeded && latencyNanoseconds <= target ? 1 : 0
        bandit.state.withLock { $0.record(arm: arm, reward: reward) }
    }

    /// The `switchyard-route` trailer: `generation=G; version=V; policy=P`.
    /// - Parameter servedVersion: the version that actually served (resolves `""`).
    public func trailer(servedVersion: String) -> String {
        if let cachedTrailer, servedVersion == version { return cachedTrailer }
        if let trailers { return trailers.trailer(version: servedVersion, reason: reason) }
        return RoutingDecision.trailer(generation: generation, version: servedVersion, reason: reason)
    }

    static func trailer(generation: UInt64, version: String, reason: RouteReason) -> String {
        // Built by appending into one reserved buffer: interpolation costs several times more per call.
        let policy = reason.rawValue
        var text = "generation="
        text.reserveCapacity(40 + version.utf8.count)
        text += String(generation)
        text += "; version="
        text += version
        text += "; policy="
        text += policy
        return text
    }
}

/// Trailer values of one generation for decisions whose version is only known after the decision (default
/// and explicit): a few entries, filled on first use, so that a call usually finds its string ready.
@MemberwiseInit(.internal)
final class TrailerCache: Sendable {
    private let generation: UInt64
    private let entries = Mutex<[String: (default: String?, explicit: String?)]>([:])

    func trailer(version: String, reason: RouteReason) -> String {
        let cached = entries.withLock { $0[version] }
        switch reason {
        case .default: if let text = cached?.default { return text }
        case .explicit: if let text = cached?.explicit { return text }
        default: return RoutingDecision.trailer(generation: generation, version: version, reason: reason)
        }
        let text = RoutingDecision.trailer(generation: generation, version: version, reason: reason)
        entries.withLock { entries in
            // Versions come from the registry, but bound the cache anyway against unforeseen growth.
            guard entries.count < 1024 || entries[version] != nil else { return }
            if reason == .default { entries[version, default: (nil, nil)].default = text }
            if reason == .explicit { entries[version, default: (nil, nil)].explicit = text }
        }
        return text
    }
}

/// One route compiled for a snapshot.
final class CompiledRoute: Sendable {
    let configuration: RouteConfiguration
    let versions: [String]
    let reason: RouteReason
    let buckets: StickyBuckets?
    let seed: UInt64
    let bandit: BanditCell?
    let rewardTargetNanoseconds: UInt64?
    let feedbackTTLNanoseconds: UInt64?
    let shadowFraction: Double
    /// Per served arm: the version it mirrors to (`nil` = none).
    let shadowTargets: [String?]
    /// Per arm: the trailer value for this snapshot's generation.
    let trailers: [String]
    /// Per arm: where its failed calls go (`nil`: no fallback, or the arm is the fallback version).
    let fallbacks: [Fallback?]

    init(
        _ configuration: RouteConfiguration,
        catalog: ModelCatalogEntry,
        generation: UInt64,
        bandit reused: BanditCell?,
        fallbackCounters: FallbackCounters
    ) {
        self.configuration = configuration
        versions = configuration.versions.map(\.version)
        seed = StickyBuckets.seed(forModel: configuration.model)
        switch configuration.policy {
        case .fixed:
            reason = .fixed
            buckets = nil
            bandit = nil
            rewardTargetNanoseconds = nil
            feedbackTTLNanoseconds = nil
        case .canary:
            reason = .canary
            buckets = StickyBuckets(weights: configuration.versions.map(\.weight))
            bandit = nil
            rewardTargetNanoseconds = nil
            feedbackTTLNanoseconds = nil
        case .bandit:
            reason = .bandit
            buckets = nil
            let settings = configuration.bandit ?? .init()
            let memory: BanditMemory =
                settings.window > 0
                ? .window(settings.window) : settings.discount < 1 ? .discount(settings.discount) : .unlimited
            bandit =
                reused
                ?? BanditCell(
                    Bandit(
                        arms: configuration.versions.count,
                        algorithm: BanditAlgorithm(rawValue: settings.algorithm) ?? .thompson,
                        epsilon: settings.epsilon,
                        exploration: settings.exploration,
                        memory: memory
                    )
                )
            if settings.reward == "feedback" {
                rewardTargetNanoseconds = nil
                feedbackTTLNanoseconds = UInt64(settings.feedbackTTLSeconds * 1e9)
            } else {
                let target = settings.latencyTargetMilliseconds ?? catalog.latencyTargetMilliseconds
                rewardTargetNanoseconds = UInt64(max(0, target) * 1e6)
                feedbackTTLNanoseconds = nil
            }
        }
        shadowFraction = configuration.shadow?.fraction ?? 0
        let versions = self.versions
        shadowTargets = versions.map { served in
            guard let shadow = configuration.shadow else { return nil }
            let target = shadow.version ?? versions.first { $0 != served }
            return target == served ? nil : target
        }
        trailers = versions.map {
            RoutingDecision.trailer(generation: generation, version: $0, reason: configuration.policy.reason)
        }
        let fallback = configuration.fallback.flatMap { settings in
            settings.version(in: versions).map {
                Fallback(settings, model: configuration.model, version: $0, counters: fallbackCounters)
            }
        }
        fallbacks = versions.map { $0 == fallback?.version ? nil : fallback }
    }
}

extension RouteConfiguration.Policy {
    var reason: RouteReason {
        switch self {
        case .fixed: .fixed
        case .canary: .canary
        case .bandit: .bandit
        }
    }
}

/// An immutable routing table.
final class RoutingSnapshot: Sendable {
    let generation: UInt64
    let routes: [String: CompiledRoute]
    let trailers: TrailerCache

    init(generation: UInt64, routes: [String: CompiledRoute]) {
        self.generation = generation
        self.routes = routes
        self.trailers = TrailerCache(generation: generation)
    }
}

/// A bandit route's state, for inspection.
public struct BanditReport: Sendable, Hashable {
    /// The algorithm.
    public var algorithm: BanditAlgorithm
    /// The route's versions, in order.
    public var versions: [String]
    /// Per version: pulls, rewards, effective observations and reward sum, mean and posterior.
    public var arms: [BanditArmState]
}

/// The routing table of a gateway: routes per model, read per call, replaced atomically.
///
/// Thread-safe: `decide` runs on event-loop threads (one short lock to read the snapshot; bandit routes
/// take their own lock); changes are serialised and each publishes a new generation.
public final class RoutingTable: Sendable {
    private let snapshot: Mutex<RoutingSnapshot>
    private let changes = Mutex<Void>(())
    private let catalog: @Sendable (String) -> ModelCatalogEntry?
    private let random: SharedRandom
    private let clock: @Sendable () -> UInt64
    private let ledger: Mutex<FeedbackLedger<(bandit: BanditCell, arm: Int)>>
    /// What the routes' fallbacks did, across every generation.
    public let fallbackCounters: FallbackCounters

    /// Creates a table.
    /// - Parameters:
    ///   - routes: the initial routes.
    ///   - catalog: the loaded versions and latency target of a model, `nil` for an unknown model.
    ///   - random: the random source of splits, shadow sampling and bandits (seed it for reproducible tests).
    ///   - clock: monotonic nanoseconds, for feedback TTLs.
    ///   - feedbackCapacity: most decisions kept waiting for feedback.
    /// - Throws: `invalidArgument` listing every problem of `routes`, each with its key path `routes[i]…`.
    public init(
        routes: [RouteConfiguration] = [],
        catalog: @escaping @Sendable (String) -> ModelCatalogEntry?,
        random: SharedRandom = SharedRandom(),
        clock: @escaping @Sendable () -> UInt64 = { MonotonicInstant.now().nanoseconds },
        feedbackCapacity: Int = 1 << 20
    ) throws(SwitchyardError) {
        let problems = RoutingTable.problems(in: routes, catalog: catalog)
        guard problems.isEmpty else {
            throw .invalidArgument("invalid routes:\n  " + problems.joined(separator: "\n  "))
        }
        self.catalog = catalog
        self.random = random
        self.clock = clock
        self.ledger = Mutex(FeedbackLedger(capacity: feedbackCapacity))
        let fallbackCounters = FallbackCounters()
        self.fallbackCounters = fallbackCounters
        var compiled: [String: CompiledRoute] = [:]
        for route in routes {
            compiled[route.model] = CompiledRoute(
                route,
                catalog: catalog(route.model)!,
                generation: 1,
                bandit: nil,
                fallbackCounters: fallbackCounters
            )
        }
        snapshot = Mutex(RoutingSnapshot(generation: 1, routes: compiled))
    }

    /// Every problem of `routes`: structural ones and versions or models not in `catalog`, each with its
    /// key path (`routes[i].versions[j].version: …`).
    public static func problems(
        in routes: [RouteConfiguration],
        catalog: (String) -> ModelCatalogEntry?,
        path: (Int) -> String = { "routes[\($0)]" }
    ) -> [String] {
        var problems: [String] = []
        var seen: [String: Int] = [:]
        for (index, route) in routes.enumerated() {
            let at = path(index)
            problems += route.validate(path: at)
            if let first = seen[route.model] {
                problems.append("\(at).model: model '\(route.model)' already has a route (\(path(first)))")
            }
            seen[route.model] = seen[route.model] ?? index
            guard !route.model.isEmpty else { continue }
            guard let entry = catalog(route.model) else {
                problems.append("\(at).model: unknown model '\(route.model)'")
                continue
            }
            let known = entry.versions.joined(separator: ", ")
            for (versionIndex, version) in route.versions.enumerated()
            where !version.version.isEmpty && !entry.versions.contains(version.version) {
                problems.append(
                    "\(at).versions[\(versionIndex)].version: model '\(route.model)' has no loaded version "
                        + "'\(version.version)'; available versions: \(known)"
                )
            }
            if let shadow = route.shadow?.version, !shadow.isEmpty, !entry.versions.contains(shadow) {
                problems.append(
                    "\(at).shadow.version: model '\(route.model)' has no loaded version '\(shadow)'; "
                        + "available versions: \(known)"
                )
            }
        }
        return problems
    }

    // MARK: Reading

    /// The current generation; every change increments it.
    public var generation: UInt64 { snapshot.withLock { $0.generation } }

    /// The routes in force, sorted by model.
    public var routes: [RouteConfiguration] {
        snapshot.withLock { $0 }.routes.values.map(\.configuration).sorted { $0.model < $1.model }
    }

    /// The route of `model`, if any.
    public func route(for model: String) -> RouteConfiguration? {
        snapshot.withLock { $0 }.routes[model]?.configuration
    }

    /// A bandit route's state: pulls, rewards and posterior per version; `nil` for other models.
    public func banditState(model: String) -> BanditReport? {
        guard let route = snapshot.withLock({ $0 }).routes[model], let bandit = route.bandit else { return nil }
        let state = bandit.state.withLock { $0 }
        return BanditReport(algorithm: state.algorithm, versions: route.versions, arms: state.arms)
    }

    /// Every bandit route's own observations (not those absorbed from peers) by model, with the versions its arms
    /// stand for: what this replica shares with its fleet.
    public var banditShares: [String: (versions: [String], share: BanditShare)] {
        snapshot.withLock { $0 }.routes.compactMapValues { route in
            route.bandit.map { cell in (route.versions, cell.state.withLock { $0.own }) }
        }
    }

    /// Adds rewards a peer observed to `model`'s bandit when its arms stand for `versions` (else nothing).
    /// - Returns: whether they were absorbed.
    @discardableResult
    public func absorbBandit(model: String, versions: [String], delta: BanditShare) -> Bool {
        guard let route = snapshot.withLock({ $0 }).routes[model], let cell = route.bandit, route.versions == versions
        else { return false }
        cell.state.withLock { $0.absorb(delta) }
        return true
    }

    /// Counters of explicit feedback: registered, applied, late, unknown, expired.
    public var feedbackCounters: FeedbackCounters {
        let now = clock()
        return ledger.withLock {
            $0.sweep(now: now)
            return $0.counters
        }
    }

    // MARK: Changing (the admin plane's API)

    /// Adds or replaces the route of `route.model` and publishes a new generation. A bandit route whose
    /// versions, algorithm and memory are unchanged keeps its learned state; any other change starts afresh.
    /// - Returns: the new generation.
    /// - Throws: `invalidArgument` listing every problem, each with its key path under `route`.
    @discardableResult
    public func replace(route: RouteConfiguration) throws(SwitchyardError) -> UInt64 {
        let problems = RoutingTable.problems(in: [route], catalog: catalog, path: { _ in "route" })
        guard problems.isEmpty else { throw .invalidArgument(problems.joined(separator: "; ")) }
        return changes.withLock { _ in
            let current = snapshot.withLock { $0 }
            var configurations = current.routes.mapValues(\.configuration)
            configurations[route.model] = route
            return publish(configurations, replacing: current)
        }
    }

    /// Removes the route of `model` (its calls go to the default version again) and publishes a new generation.
    /// - Returns: the new generation.
    /// - Throws: `notFound` when the model has no route.
    @discardableResult
    public func remove(model: String) throws(SwitchyardError) -> UInt64 {
        try changes.withLock { _ throws(SwitchyardError) in
            let current = snapshot.withLock { $0 }
            guard current.routes[model] != nil else {
                let known = current.routes.keys.sorted().joined(separator: ", ")
                throw .notFound("model '\(model)' has no route; routed models: \(known.isEmpty ? "none" : known)")
            }
            var configurations = current.routes.mapValues(\.configuration)
            configurations[model] = nil
            return publish(configurations, replacing: current)
        }
    }

    /// Replaces every route at once (a configuration reload, or the fleet's table in fleet mode) and publishes a
    /// new generation: the next one, or `generation` when given (the etcd revision in fleet mode; it must not go
    /// back, a lower one is raised to the next).
    /// - Returns: the new generation.
    /// - Throws: `invalidArgument` listing every problem with its key path `routes[i]…`; nothing changes then.
    @discardableResult
    public func replaceAll(routes: [RouteConfiguration], generation: UInt64? = nil) throws(SwitchyardError) -> UInt64 {
        let problems = RoutingTable.problems(in: routes, catalog: catalog)
        guard problems.isEmpty else {
            throw .invalidArgument("invalid routes:\n  " + problems.joined(separator: "\n  "))
        }
        return changes.withLock { _ in
            let current = snapshot.withLock { $0 }
            return publish(
                Dictionary(uniqueKeysWithValues: routes.map { ($0.model, $0) }),
                replacing: current,
                generation: generation
            )
        }
    }

    /// Builds and swaps in the next snapshot. Called with `changes` held.
    private func publish(
        _ configurations: [String: RouteConfiguration],
        replacing current: RoutingSnapshot,
        generation requested: UInt64? = nil
    ) -> UInt64 {
        let generation = max(current.generation + 1, requested ?? 0)
        var compiled: [String: CompiledRoute] = [:]
        for (model, configuration) in configurations {
            guard let entry = catalog(model) else { continue }
            var reused: BanditCell?
            if let old = current.routes[model], let cell = old.bandit,
                old.configuration.versions.map(\.version)
                    == configuration.versions.map(\.version), old.configuration.policy == configuration.policy,
                old.configuration.bandit == configuration.bandit
            {
                reused = cell
            }
            compiled[model] = CompiledRoute(
                configuration,
                catalog: entry,
                generation: generation,
                bandit: reused,
                fallbackCounters: fallbackCounters
            )
        }
        let next = RoutingSnapshot(generation: generation, routes: compiled)
        snapshot.withLock { $0 = next }
        return generation
    }

    // MARK: Deciding (hot path)

    /// Routes one call.
    /// - Parameters:
    ///   - model: the requested model.
    ///   - requestedVersion: the call's `model_version`; non-empty bypasses the policy.
    ///   - requestID: the call's `id`, joined to explicit feedback for bandit routes with `reward: feedback`.
    ///   - key: reads the call's sticky key from the source a canary route names (called only for those).
    public func decide(
        model: String,
        requestedVersion: String,
        requestID: @autoclosure () -> String,
        key: (RouteConfiguration.StickyKey) -> String?
    ) -> RoutingDecision {
        let current = snapshot.withLock { $0 }
        guard let route = current.routes[model] else {
            return .unrouted(
                requestedVersion,
                reason: requestedVersion.isEmpty ? .default : .explicit,
                on: current,
                shadowVersion: nil
            )
        }
        var generator = random.generator
        if !requestedVersion.isEmpty {
            var shadow: String?
            if let settings = route.configuration.shadow, settings.explicit, sample(route.shadowFraction, &generator) {
                let target = settings.version ?? route.versions.first { $0 != requestedVersion }
                shadow = target == requestedVersion ? nil : target
            }
            return .unrouted(requestedVersion, reason: .explicit, on: current, shadowVersion: shadow)
        }
        let arm: Int
        switch route.reason {
        case .canary:
            let buckets = route.buckets!
            let bucket: UInt64
            if let sticky = route.configuration.sticky, let value = key(sticky) {
                bucket = StickyBuckets.bucket(of: value, seed: route.seed)
            } else {
                bucket = StickyBuckets.randomBucket(using: &generator)
            }
            arm = buckets.version(ofBucket: bucket)
        case .bandit:
            arm = route.bandit!.state.withLock { $0.choose(using: &generator) }
            if let ttl = route.feedbackTTLNanoseconds {
                let id = requestID()
                if !id.isEmpty {
                    let now = clock()
                    let cell = route.bandit!
                    ledger.withLock { $0.register(id: id, value: (cell, arm), now: now, ttlNanoseconds: ttl) }
                }
            }
        default:
            arm = 0
        }
        let shadow =
            route.shadowTargets[arm] != nil && sample(route.shadowFraction, &generator) ? route.shadowTargets[arm] : nil
        return RoutingDecision(
            version: route.versions[arm],
            reason: route.reason,
            generation: current.generation,
            shadowVersion: shadow,
            cachedTrailer: route.trailers[arm],
            trailers: nil,
            bandit: route.bandit,
            arm: arm,
            rewardTargetNanoseconds: route.rewardTargetNanoseconds,
            fallback: route.fallbacks[arm]
        )
    }

    @inline(__always)
    private func sample(_ fraction: Double, _ generator: inout SharedRandom.Generator) -> Bool {
        fraction >= 1 || (fraction > 0 && generator.unitDouble() < fraction)
    }

    // MARK: Feedback

    /// Joins an explicit reward in [0, 1] to the bandit decision of `requestID`.
    /// - Returns: `applied`, or `late`/`unknown` (counted, reward ignored).
    /// - Throws: `invalidArgument` when the reward is not a number in [0, 1] or the id is empty.
    public func report(requestID: String, reward: Double) throws(SwitchyardError) -> FeedbackOutcome {
        guard !requestID.isEmpty else { throw .invalidArgument("request_id: expected the id of a routed call, got ''") }
        guard reward >= 0 && reward <= 1 else {
            throw .invalidArgument("reward: expected a number in [0, 1], got \(reward)")
        }
        let now = clock()
        let (outcome, value) = ledger.withLock { $0.claim(id: requestID, now: now) }
        if let value { value.bandit.state.withLock { $0.record(arm: value.arm, reward: reward) } }
        return outcome
    }
}
