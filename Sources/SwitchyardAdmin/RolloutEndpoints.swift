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
            do throws(SwitchyardError) {
                return Self.json(RolloutsResponse(rollouts: try await server.rollouts.submitStatus(model: nil)))
            } catch {
                throw AdminHTTPError(error)
            }
        }
        routes.get("/v1/rollouts/:model") { _, context -> Response in
            let model = try context.parameters.require("model")
            let found: [RolloutStatus]
            do throws(SwitchyardError) {
                found = try await server.rollouts.submitStatus(model: model)
            } catch {
                throw AdminHTTPError(error)
            }
            guard let status = found.first else {
                throw AdminHTTPError(.notFound, "model '\(model)' has no rollout")
            }
            return Self.json(status)
        }
        routes.post("/v1/rollouts/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(RolloutRequest.self, from: request, path: "rollout")
            let reason = Self.reason(request, body: body.reason)
            let status: RolloutStatus
            do throws(SwitchyardError) {
                status = try await server.rollouts.submitStart(
                    model: model,
                    plan: RolloutPlan(body),
                    actor: context.actor,
                    reason: reason
                )
            } catch {
                throw AdminHTTPError(error)
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
                let status: RolloutStatus
                do throws(SwitchyardError) {
                    status = try await server.rollouts.submit(
                        action: action,
                        model: model,
                        actor: actor,
                        reason: reason
                    )
                } catch {
                    throw AdminHTTPError(error)
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
