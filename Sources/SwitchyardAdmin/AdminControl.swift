// The admin plane's changes to the routing table: each one validated against the loaded models, persisted
// to the state file, audited, then swapped in atomically. One lock orders them, so the audit log's
// generations follow the table's.

import Foundation
public import SwitchyardCluster
public import SwitchyardCore
public import SwitchyardRouting
import Synchronization

/// Applies operator changes to a `RoutingTable` with validation, persistence and auditing.
public final class AdminControl: Sendable {
    /// The routing table changed.
    public let routing: RoutingTable
    let catalog: @Sendable (String) -> ModelCatalogEntry?
    private let modelNames: @Sendable () -> [String]
    private let audit: AuditLog?
    private let state: RouteStateFile?
    /// The fleet's route store in fleet mode (`cluster:`), `nil` for a replica on its own.
    public let fleet: FleetRoutes?
    /// Orders changes; holds, per model, the generation of the last change to its route made here, for changes
    /// based on a generation the operator read (`basedOn`).
    private let changes = Mutex<[String: UInt64]>([:])
    /// Models whose route only their holder may change (a rollout in progress), with the reason given to others.
    private let holds = Mutex<[String: String]>([:])
    /// Fleet mode: the configuration file's `routes:` as this replica last read them (at start, then at each reload
    /// that went through), so that a reload sends the fleet what changed in the file, not the whole file.
    let configurationRoutes = Mutex<[RouteConfiguration]?>(nil)

    /// Creates the control.
    /// - Parameters:
    ///   - routing: the table to change.
    ///   - catalog: the loaded versions of a model, `nil` for an unknown model (the table's own catalog).
    ///   - modelNames: every model name, for "unknown model" messages.
    ///   - audit: where changes are recorded, if anywhere.
    ///   - state: where the routes are persisted, if anywhere.
    ///   - fleet: in fleet mode, the fleet's route store: route changes go through `submit` into etcd.
    public init(
        routing: RoutingTable,
        catalog: @escaping @Sendable (String) -> ModelCatalogEntry?,
        modelNames: @escaping @Sendable () -> [String],
        audit: AuditLog?,
        state: RouteStateFile?,
        fleet: FleetRoutes? = nil
    ) {
        self.routing = routing
        self.catalog = catalog
        self.modelNames = modelNames
        self.audit = audit
        self.state = state
        self.fleet = fleet
    }

    /// Throws `invalidArgument` naming every problem of `route` against the loaded models (`route.…`).
    func validate(_ route: RouteConfiguration) throws(SwitchyardError) {
        let problems = RoutingTable.problems(in: [route], catalog: catalog, path: { _ in "route" })
        guard problems.isEmpty else { throw .invalidArgument(problems.joined(separator: "; ")) }
    }

    /// Throws `notFound` unless `model` is loaded.
    public func requireModel(_ model: String) throws(SwitchyardError) {
        guard catalog(model) == nil else { return }
        let known = modelNames().joined(separator: ", ")
        throw .notFound("unknown model '\(model)'; available models: \(known.isEmpty ? "none" : known)")
    }

    /// The route of `model`.
    /// - Throws: `notFound` for an unknown model or a model without a route.
    public func route(model: String) throws(SwitchyardError) -> RouteConfiguration {
        try requireModel(model)
        guard let route = routing.route(for: model) else {
            throw .notFound("model '\(model)' has no route; it serves its default version")
        }
        return route
    }

    /// Makes `change` on the local table: validated, persisted and audited (as `change.action`) before the table
    /// swaps. `submit` is the same in fleet mode too.
    /// - Parameter basedOn: the generation the author read (`If-Match`); the change is refused when the model's
    ///   route changed after it.
    /// - Returns: the new generation.
    /// - Throws: `notFound` for an unknown model, or one without a route for anything but `put`; `invalidArgument`
    ///   listing every problem (`route.…`, `route.shadow.…`, `route.bandit.…`, `weights.V` for a version not in the
    ///   route, a negative or non-finite weight, or canary weights summing to 0); `failedPrecondition` when the
    ///   route is held, or changed since `basedOn`. Changing bandit parameters starts the bandit afresh (the
    ///   learned state belongs to the old parameters).
    @discardableResult
    public func applyLocally(
        _ change: RouteChange,
        actor: String,
        reason: String?,
        basedOn: UInt64? = nil
    ) throws(SwitchyardError) -> UInt64 {
        try requireModel(change.model)
        return try self.change(
            action: change.action,
            model: change.model,
            actor: actor,
            reason: reason,
            basedOn: basedOn,
            Self.transform(change)
        )
    }

    /// Replaces every route (a configuration reload or the persisted state at start) of a replica on its own; in
    /// fleet mode a reload is `reload(routes:…)`, one transaction in etcd.
    /// - Returns: the new generation.
    /// - Throws: `invalidArgument` listing every problem (`routes[i]…`); nothing changes then.
    @discardableResult
    public func replaceAll(
        routes: [RouteConfiguration],
        actor: String,
        reason: String?,
        persist: Bool = true
    ) throws(SwitchyardError) -> UInt64 {
        if let fleet {
            throw SwitchyardError(
                .failedPrecondition,
                "in fleet mode the routes live in etcd under \(fleet.prefix)/routes/: a reload writes what the file "
                    + "changed there in one transaction (reload(routes:…)), never this replica's table alone"
            )
        }
        return try changes.withLock { lastChanged throws(SwitchyardError) in
            let problems = RoutingTable.problems(in: routes, catalog: catalog)
            guard problems.isEmpty else {
                throw .invalidArgument("invalid routes:\n  " + problems.joined(separator: "\n  "))
            }
            let old = routing.routes
            for (model, reason) in holds.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
                guard routes.first(where: { $0.model == model }) == old.first(where: { $0.model == model }) else {
                    throw SwitchyardError(
                        .failedPrecondition,
                        "the route of '\(model)' is held: \(reason); the new routes would change it"
                    )
                }
            }
            let sorted = routes.sorted { $0.model < $1.model }
            let generation = routing.generation + 1
            let entry = AuditEntry(
                time: Self.now(),
                actor: actor,
                action: "routes.reload",
                model: nil,
                old: old,
                new: sorted,
                reason: reason,
                generation: generation
            )
            try record(entry) { () throws(SwitchyardError) in
                if persist { try save(sorted, generation: generation) }
            }
            let published = try routing.replaceAll(routes: routes)
            for model in Set(old.map(\.model) + routes.map(\.model))
            where old.first(where: { $0.model == model }) != routes.first(where: { $0.model == model }) {
                lastChanged[model] = published
            }
            return published
        }
    }

    /// One per-model change: `transform` maps the current route (or `nil`) to the new one (or `nil` to remove);
    /// the result is validated, persisted and audited before the table swaps.
    private func change(
        action: String,
        model: String,
        actor: String,
        reason: String?,
        basedOn: UInt64? = nil,
        holder: Bool = false,
        _ transform: (RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration?
    ) throws(SwitchyardError) -> UInt64 {
        try changes.withLock { lastChanged throws(SwitchyardError) in
            if !holder, let reason = holds.withLock({ $0[model] }) {
                throw SwitchyardError(.failedPrecondition, "the route of '\(model)' is held: \(reason)")
            }
            let old = routing.route(for: model)
            if let basedOn, let changed = lastChanged[model], changed > basedOn {
                throw Self.changedSince(model: model, basedOn: basedOn, changedAt: changed, current: old)
            }
            let new = try transform(old)
            if let new { try validate(new) }
            var routes = routing.routes.filter { $0.model != model }
            if let new { routes.append(new) }
            routes.sort { $0.model < $1.model }
            // Changes are serialised by `changes`, so the table's next generation is this one.
            let generation = routing.generation + 1
            let entry = AuditEntry(
                time: Self.now(),
                actor: actor,
                action: action,
                model: model,
                old: old.map { [$0] } ?? [],
                new: new.map { [$0] } ?? [],
                reason: reason,
                generation: generation
            )
            try record(entry) { () throws(SwitchyardError) in try save(routes, generation: generation) }
            let published: UInt64
            if let new {
                published = try routing.replace(route: new)
            } else {
                published = try routing.remove(model: model)
            }
            lastChanged[model] = published
            return published
        }
    }

    /// The refusal of a change based on generation `basedOn` when the route changed after it: 409, naming the
    /// generation of that change and the route in force now, so the operator reads it again instead of overwriting.
    static func changedSince(
        model: String,
        basedOn: UInt64,
        changedAt: UInt64,
        current: RouteConfiguration?
    ) -> SwitchyardError {
        let now =
            current.map { route in
                "policy \(route.policy.rawValue), weights "
                    + route.versions.map { "\($0.version)=\(number($0.weight))" }.joined(separator: " ")
            } ?? "no route"
        return SwitchyardError(
            .failedPrecondition,
            "the route of '\(model)' changed at generation \(changedAt), after generation \(basedOn) the change was "
                + "based on (If-Match); it is now: \(now); read it again and retry"
        )
    }

    // MARK: Holds and other changes

    /// Reserves `model`'s route for one holder: other changes (and reloads that would change it) are refused
    /// with `reason` until `release(model:)`.
    /// - Throws: `failedPrecondition` when another holder has it.
    public func hold(model: String, reason: String) throws(SwitchyardError) {
        if fleet != nil {
            throw SwitchyardError(
                .failedPrecondition,
                "progressive rollouts are not yet coordinated across a fleet; in fleet mode change the weights "
                    + "through the admin API (switchyard routes weights)"
            )
        }
        try holds.withLock { holds throws(SwitchyardError) in
            if let existing = holds[model] {
                throw SwitchyardError(.failedPrecondition, "the route of '\(model)' is held: \(existing)")
            }
            holds[model] = reason
        }
    }

    /// Ends a hold.
    public func release(model: String) { _ = holds.withLock { $0.removeValue(forKey: model) } }

    /// Replaces `model`'s route on behalf of its holder, audited as `action`.
    /// - Returns: the new generation.
    @discardableResult
    public func apply(
        route: RouteConfiguration,
        action: String,
        actor: String,
        reason: String?
    ) throws(SwitchyardError) -> UInt64 {
        try change(action: action, model: route.model, actor: actor, reason: reason, holder: true) { _ in route }
    }

    /// Why `version` of `model` must stay loaded (a route serves or mirrors it), or `nil`.
    public func use(model: String, version: String) -> String? {
        guard let route = routing.route(for: model) else { return nil }
        if route.versions.contains(where: { $0.version == version }) {
            return "the route of '\(model)' lists it; remove it from the route first"
        }
        if route.shadow?.version == version {
            return "the route of '\(model)' mirrors calls to it; change the shadow first"
        }
        return nil
    }

    /// Makes a change that is not a route change (a model version loaded or unloaded, a rollout paused or
    /// resumed), recorded in the audit log the way route changes are: the entry is written first and taken back
    /// if `change` fails, so the log only holds what happened.
    @discardableResult
    public func audit<T: Sendable>(
        action: String,
        model: String,
        version: String,
        actor: String,
        reason: String?,
        _ change: () throws(SwitchyardError) -> T
    ) throws(SwitchyardError) -> T {
        try changes.withLock { _ throws(SwitchyardError) -> T in
            let entry = AuditEntry(
                time: Self.now(),
                actor: actor,
                action: action,
                model: model,
                old: [],
                new: [],
                reason: reason,
                generation: routing.generation,
                version: version
            )
            var result: T?
            try record(entry) { () throws(SwitchyardError) in result = try change() }
            return result!
        }
    }

    /// Audits a change, then persists it: a change the log cannot record is refused before anything is written,
    /// and the entry of a change the state file cannot hold is taken back, so the log, the state file and the
    /// table in memory never disagree about whether it happened.
    private func record(_ entry: AuditEntry, persist: () throws(SwitchyardError) -> Void) throws(SwitchyardError) {
        let length = try audit?.append(entry)
        do {
            try persist()
        } catch {
            if let length { audit?.retract(to: length) }
            throw error
        }
    }

    private func save(_ routes: [RouteConfiguration], generation: UInt64) throws(SwitchyardError) {
        try state?.save(RouteState(routes: routes, generation: generation, savedAt: Self.now()))
    }

    /// The current UTC time in ISO 8601 with milliseconds.
    public static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
