// Rollouts: start one, read them, pause, resume or abort one.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardRouting

extension AdminServer {
    /// `/v1/rollouts…`.
    func rolloutEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/rollouts") { _, _ -> Response in
            Self.json(RolloutsResponse(rollouts: server.rollouts.all))
        }
        routes.get("/v1/rollouts/:model") { _, context -> Response in
            let model = try context.parameters.require("model")
            guard let status = server.rollouts.status(model: model) else {
                throw AdminHTTPError(.notFound, "model '\(model)' has no rollout")
            }
            return Self.json(status)
        }
        routes.post("/v1/rollouts/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(RolloutRequest.self, from: request, path: "rollout")
            let reason = Self.reason(request, body: body.reason)
            let status = try server.perform { () throws(SwitchyardError) in
                try server.rollouts.start(model: model, plan: RolloutPlan(body), actor: context.actor, reason: reason)
            }
            server.logChange(
                "rollout.start",
                model: model,
                actor: context.actor,
                generation: server.control.routing.generation
            )
            return Self.json(status, status: .created)
        }
        for action in ["pause", "resume", "abort"] {
            routes.post("/v1/rollouts/:model/\(action)") { request, context -> Response in
                let actor = context.actor
                let model = try context.parameters.require("model")
                let reason = Self.reason(request)
                let status = try server.perform { () throws(SwitchyardError) in
                    switch action {
                    case "pause": try server.rollouts.pause(model: model, actor: actor, reason: reason)
                    case "resume": try server.rollouts.resume(model: model, actor: actor, reason: reason)
                    default: try server.rollouts.abort(model: model, actor: actor, reason: reason)
                    }
                }
                server.logChange(
                    "rollout.\(action)",
                    model: model,
                    actor: actor,
                    generation: server.control.routing.generation
                )
                return Self.json(status)
            }
        }
        return routes
    }
}
