// Route changes in fleet mode: one etcd transaction per change, guarded by the revision this replica read, with
// its audit record in the same transaction. Standalone, the same entry point changes the local table as before.

import Foundation
import Hummingbird
import SwitchyardCluster
public import SwitchyardCore
import SwitchyardRouting
import Synchronization

/// One operator change of one model's route, as the admin API receives it.
public enum RouteChange: Sendable, Hashable {
    /// Add or replace the route.
    case put(RouteConfiguration)
    /// Remove the route.
    case delete(model: String)
    /// Set the weights of the named versions; the others keep theirs.
    case weights(model: String, [String: Double])
    /// Set (or with `nil` remove) the shadow.
    case shadow(model: String, RouteConfiguration.ShadowSettings?)
    /// Set the bandit parameters.
    case bandit(model: String, RouteConfiguration.BanditSettings)

    /// The model the change applies to.
    public var model: String {
        switch self {
        case .put(let route): route.model
        case .delete(let model), .weights(let model, _), .shadow(let model, _), .bandit(let model, _): model
        }
    }

    /// The audit action (`route.put`, `route.delete`, `route.weights`, `route.shadow`, `route.bandit`).
    public var action: String {
        switch self {
        case .put: "route.put"
        case .delete: "route.delete"
        case .weights: "route.weights"
        case .shadow: "route.shadow"
        case .bandit: "route.bandit"
        }
    }
}

extension AdminControl {
    /// Makes `change`: standalone, on the local table (validated, persisted, audited, swapped in); in fleet mode, as
    /// one etcd transaction guarded by the revision of the route this replica read, with its audit record, after
    /// which the change is in force here (the watch applied it) and on its way to every other replica.
    /// - Returns: the new generation (in fleet mode: the change's etcd revision).
    /// - Throws: what `applyLocally` throws; in fleet mode also `failedPrecondition` when the route changed
    ///   since it was read (the message names the newer generation and route), `unavailable` when etcd cannot be
    ///   reached (with the reason). With `basedOn` (the generation the operator read, from `If-Match`):
    ///   `failedPrecondition` when the model's route changed after it, naming that change and the route now.
    public func submit(
        _ change: RouteChange,
        actor: String,
        reason: String?,
        basedOn: UInt64? = nil
    ) async throws(SwitchyardError) -> UInt64 {
        guard let fleet else { return try applyLocally(change, actor: actor, reason: reason, basedOn: basedOn) }
        let model = change.model
        try requireModel(model)
        let read = fleet.current?.routes[model]
        // In fleet mode generations are etcd revisions: the route's own revision says when it last changed.
        if let basedOn, let read, read.modRevision > 0, UInt64(read.modRevision) > basedOn {
            throw Self.changedSince(
                model: model,
                basedOn: basedOn,
                changedAt: UInt64(read.modRevision),
                current: read.route
            )
        }
        let new = try Self.transform(change)(read?.route)
        if let new { try validate(new) }
        let audit = FleetAudit(
            actor: actor,
            action: change.action,
            model: model,
            old: read?.route,
            new: new,
            reason: reason,
            replica: fleet.replicaID
        )
        let revision = try await fleet.commit(
            model: model,
            readRevision: read?.modRevision ?? 0,
            route: new,
            audit: audit
        )
        return UInt64(revision)
    }
}

/// What a configuration reload did.
public struct ReloadOutcome: Sendable, Hashable {
    /// The routing generation in force after it (in fleet mode the etcd revision of its transaction, or the
    /// fleet's generation when there was nothing to write).
    public var generation: UInt64
    /// The models whose route the reload changed, in order.
    public var changed: [String]
    /// One line saying what happened, for the log and the answer.
    public var summary: String
}

extension AdminControl {
    /// Notes the configuration file's `routes:` as read at start, the base a fleet-mode reload compares the file
    /// with (see `reload`).
    public func noteConfigurationRoutes(_ routes: [RouteConfiguration]) {
        configurationRoutes.withLock { $0 = routes }
    }

    /// Reloads the configuration file's `routes:`.
    ///
    /// On a replica on its own, the file's routes replace every route (`replaceAll`). In fleet mode the routes live
    /// in etcd, so a reload never changes this replica alone: the models whose route *the file* changed since this
    /// replica last read it (added, edited or removed in `routes:`) are written to the fleet in one transaction,
    /// guarded by the revision of each of those routes this replica holds and by the absence of a rollout's hold,
    /// with one `routes.reload` audit record in the same transaction; every replica's watch then swaps it in.
    /// Routes the file did not change keep what the fleet has (changes made through the admin API stay), and a route
    /// the fleet already has as the file says is not written again, so the same ConfigMap change reaching every
    /// replica makes one change, not one per replica.
    /// - Returns: the generation in force and the models changed.
    /// - Throws: `invalidArgument` listing every problem of the file's routes; in fleet mode also
    ///   `failedPrecondition` when a route to change is held by a rollout or changed since it was read (nothing is
    ///   written; the file's base stays, so the next reload tries again), `unavailable` when etcd cannot be reached.
    public func reload(routes: [RouteConfiguration], actor: String, reason: String?) async throws(SwitchyardError)
        -> ReloadOutcome
    {
        guard let fleet else {
            let old = routing.routes
            let generation = try replaceAll(routes: routes, actor: actor, reason: reason)
            let changed = Self.differences(old, routes)
            return ReloadOutcome(
                generation: generation,
                changed: changed,
                summary: "routes replaced by the file's: \(changed.isEmpty ? "none changed" : "changed \(changed)")"
            )
        }
        let problems = RoutingTable.problems(in: routes, catalog: catalog)
        guard problems.isEmpty else {
            throw .invalidArgument("invalid routes:\n  " + problems.joined(separator: "\n  "))
        }
        guard let view = fleet.current else {
            throw SwitchyardError(
                .unavailable,
                "the fleet's routes have not been read yet (\(fleet.connection.reason ?? "etcd unreachable")); "
                    + "a reload in fleet mode changes the fleet's routes in etcd, so nothing was changed"
            )
        }
        let base = configurationRoutes.withLock { $0 } ?? []
        let inFile = Dictionary(routes.map { ($0.model, $0) }, uniquingKeysWith: { $1 })
        let fileChanged = Self.differences(base, routes)
        var writes: [String: RouteConfiguration?] = [:]
        for model in fileChanged where view.routes[model]?.route != inFile[model] {
            writes[model] = .some(inFile[model])
        }
        guard !writes.isEmpty else {
            configurationRoutes.withLock { $0 = routes }
            return ReloadOutcome(
                generation: UInt64(max(0, view.revision)),
                changed: [],
                summary: fileChanged.isEmpty
                    ? "fleet mode: the file's routes did not change since this replica read them; the fleet's routes "
                        + "stay as they are"
                    : "fleet mode: the fleet already has the file's new routes for \(fileChanged); nothing to write"
            )
        }
        let models = writes.keys.sorted()
        var audit = FleetAudit(
            actor: actor,
            action: "routes.reload",
            model: nil,
            reason: reason,
            replica: fleet.replicaID
        )
        audit.oldRoutes = models.compactMap { view.routes[$0]?.route }
        audit.newRoutes = models.compactMap { inFile[$0] }
        let revision = try await fleet.commit(routes: writes, read: view, audit: audit)
        configurationRoutes.withLock { $0 = routes }
        return ReloadOutcome(
            generation: UInt64(revision),
            changed: models,
            summary: "fleet mode: the file changed the routes of \(models); written to the fleet in one transaction "
                + "(routes the file did not change keep the fleet's)"
        )
    }

    /// The models whose route differs between `old` and `new` (present in one only, or different), in order.
    public static func differences(_ old: [RouteConfiguration], _ new: [RouteConfiguration]) -> [String] {
        let before = Dictionary(old.map { ($0.model, $0) }, uniquingKeysWith: { $1 })
        let after = Dictionary(new.map { ($0.model, $0) }, uniquingKeysWith: { $1 })
        return Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
    }

    /// The route `change` makes of the current one (`nil`: there is none); `nil` removes the route.
    static func transform(
        _ change: RouteChange
    ) -> (RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration? {
        switch change {
        case .put(let route):
            return { _ in route }
        case .delete(let model):
            return { (old: RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration? in
                guard old != nil else { throw .notFound("model '\(model)' has no route; nothing to delete") }
                return nil
            }
        case .weights(let model, let weights):
            return { (old: RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration? in
                guard !weights.isEmpty else {
                    throw .invalidArgument("weights: expected at least one version: weight")
                }
                guard var route = old else {
                    throw .notFound("model '\(model)' has no route; PUT /v1/routes/\(model) first")
                }
                let listed = route.versions.map(\.version)
                var problems: [String] = []
                for (version, weight) in weights.sorted(by: { $0.key < $1.key }) {
                    guard let index = listed.firstIndex(of: version) else {
                        problems.append(
                            "weights.\(version): version '\(version)' is not in the route of '\(model)'; "
                                + "route versions: \(listed.joined(separator: ", "))"
                        )
                        continue
                    }
                    if !(weight >= 0) || !weight.isFinite {
                        problems.append("weights.\(version): expected a finite number ≥ 0, got \(weight)")
                    }
                    route.versions[index].weight = weight
                }
                if problems.isEmpty && route.policy == .canary && !(route.versions.reduce(0) { $0 + $1.weight } > 0) {
                    problems.append("weights: canary weights must sum to more than 0")
                }
                guard problems.isEmpty else { throw .invalidArgument(problems.joined(separator: "; ")) }
                return route
            }
        case .shadow(let model, let shadow):
            return { (old: RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration? in
                guard var route = old else {
                    throw .notFound("model '\(model)' has no route; PUT /v1/routes/\(model) first")
                }
                route.shadow = shadow
                return route
            }
        case .bandit(let model, let bandit):
            return { (old: RouteConfiguration?) throws(SwitchyardError) -> RouteConfiguration? in
                guard var route = old else {
                    throw .notFound("model '\(model)' has no route; PUT /v1/routes/\(model) first")
                }
                guard route.policy == .bandit else {
                    throw .invalidArgument("route.policy: model '\(model)' routes by \(route.policy), not bandit")
                }
                route.bandit = bandit
                return route
            }
        }
    }
}

extension AdminServer {
    /// `control.submit`, its errors as HTTP answers; an `If-Match: <generation>` header bases the change on the
    /// generation the operator read.
    func submit(_ change: RouteChange, actor: String, reason: String?, request: Request) async throws -> UInt64 {
        let basedOn = try Self.ifMatch(request)
        do {
            return try await control.submit(change, actor: actor, reason: reason, basedOn: basedOn)
        } catch {
            throw AdminHTTPError(error)
        }
    }

    /// The generation in an `If-Match` header (`7`, `"7"` or `W/"7"`), `nil` without one.
    static func ifMatch(_ request: Request) throws -> UInt64? {
        guard let raw = request.headers[.ifMatch] else { return nil }
        var text = Substring(raw.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("W/") { text = text.dropFirst(2) }
        if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
        guard let generation = UInt64(text) else {
            throw AdminHTTPError(
                .badRequest,
                "If-Match: expected the route generation the change is based on, such as \"12\", got '\(raw)'"
            )
        }
        return generation
    }
}
