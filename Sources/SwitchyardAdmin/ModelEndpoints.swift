// Models: list them, show one, load or unload a version (through the audited model control that Triton's
// repository RPCs share).

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardModels
import SwitchyardWorkers
import Synchronization

extension AdminServer {
    /// `/v1/models…`.
    func modelEndpoints() -> RouteCollection<AdminRequestContext> {
        let router = RouteCollection(context: AdminRequestContext.self)
        let server = self
        router.get("/v1/models") { _, _ -> Response in
            Self.json(ModelsResponse(models: server.registry.models.map(ModelStatus.init)))
        }
        router.get("/v1/models/:model") { _, context -> Response in
            let model = try context.parameters.require("model")
            try server.perform { () throws(SwitchyardError) in
                try server.control.requireModel(model)
            }
            guard let entry = server.registry.model(named: model) else {
                throw AdminHTTPError(.notFound, "unknown model '\(model)'")
            }
            return Self.json(ModelStatus(entry))
        }
        router.post("/v1/models/:model/versions/:version/load") { request, context -> Response in
            let actor = context.actor
            let model = try context.parameters.require("model")
            let version = try context.parameters.require("version")
            let reason = Self.reason(request)
            let entry = try server.perform { () throws(SwitchyardError) in
                try server.auditedLoad(model: model, version: version, actor: actor, reason: reason)
            }
            guard let entry else { throw AdminHTTPError(.conflict, "model '\(model)' was unloaded meanwhile") }
            return Self.json(ModelStatus(entry), status: .created)
        }
        router.post("/v1/models/:model/versions/:version/unload") { request, context -> Response in
            let actor = context.actor
            let model = try context.parameters.require("model")
            let version = try context.parameters.require("version")
            let reason = Self.reason(request)
            let outcome: RetirementOutcome
            do throws(SwitchyardError) {
                outcome = try await server.unloadVersion(model: model, version: version, actor: actor, reason: reason)
            } catch {
                throw AdminHTTPError(error)
            }
            return Self.json(UnloadResponse(model: model, version: version, unloaded: true, note: outcome.note))
        }
        return router
    }
}

extension ModelStatus {
    /// The model as the registry has it now, with each version's counters.
    init(_ entry: ModelEntry) {
        self.init(
            name: entry.name,
            ready: entry.isReady,
            defaultVersion: entry.defaultVersion?.version,
            versions: entry.versions.map { version in
                let pool = version.pool.statistics
                return Version(
                    version: version.version,
                    requestsSucceeded: version.statistics.successes,
                    requestsFailed: version.statistics.failures,
                    queueDepth: pool.queued,
                    batches: pool.batches
                )
            },
            failures: entry.failures,
            sloMilliseconds: entry.configuration.sloMilliseconds,
            maxBatchSize: entry.configuration.maxBatchSize
        )
    }
}
