// Routes: read them, put or delete one, change its weights, shadow or bandit parameters, reload them from the
// configuration file. Every change goes through `AdminControl.submit` (checked against `If-Match`, audited).

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardRouting

extension AdminServer {
    /// `/v1/routes…` and `/v1/config/reload`.
    func routeEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/routes") { _, _ -> Response in
            let routing = server.control.routing
            return Self.json(RoutesResponse(generation: routing.generation, routes: routing.routes))
        }
        routes.get("/v1/routes/:model") { _, context -> Response in
            let model = try context.parameters.require("model")
            let route = try server.perform { () throws(SwitchyardError) in try server.control.route(model: model) }
            return Self.json(RouteResponse(generation: server.control.routing.generation, route: route))
        }
        routes.put("/v1/routes/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(RouteRequest.self, from: request, path: "route")
            let route: RouteConfiguration
            do { route = try body.route(model: model) } catch let error as AdminRequestError {
                throw AdminHTTPError(.badRequest, error.message)
            }
            return try await server.change(.put(route), body.reason, request, context)
        }
        routes.delete("/v1/routes/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            return try await server.change(.delete(model: model), nil, request, context)
        }
        routes.patch("/v1/routes/:model/weights") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(WeightsRequest.self, from: request, path: "body")
            return try await server.change(.weights(model: model, body.weights), body.reason, request, context)
        }
        routes.put("/v1/routes/:model/shadow") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(ShadowRequest.self, from: request, path: "shadow")
            // An empty object, or fraction 0, turns mirroring off.
            let shadow = body.shadow?.fraction == 0 ? nil : body.shadow
            return try await server.change(.shadow(model: model, shadow), body.reason, request, context)
        }
        routes.put("/v1/routes/:model/bandit") { request, context -> Response in
            let model = try context.parameters.require("model")
            let body = try await server.decode(BanditRequest.self, from: request, path: "route.bandit")
            return try await server.change(.bandit(model: model, body.bandit), body.reason, request, context)
        }
        routes.post("/v1/config/reload") { request, context -> Response in
            let reason = Self.reason(request)
            guard let reload = server.reload else {
                throw AdminHTTPError(
                    .conflict,
                    "no configuration file to reload: the gateway was started without --config"
                )
            }
            let routes: [RouteConfiguration]
            do {
                routes = try reload()
            } catch {
                throw AdminHTTPError(.badRequest, "configuration not reloaded; the running routes stay: \(error)")
            }
            let outcome: ReloadOutcome
            do throws(SwitchyardError) {
                outcome = try await server.control.reload(
                    routes: routes,
                    actor: context.actor,
                    reason: reason ?? "configuration reloaded"
                )
            } catch {
                throw AdminHTTPError(error)
            }
            let generation = outcome.generation
            server.logChange("routes.reload", model: "*", actor: context.actor, generation: generation)
            return Self.json(RoutesResponse(generation: generation, routes: server.control.routing.routes))
        }
        return routes
    }

    /// Makes one route change (its reason from the header, else the body), logs it, and answers the model's route
    /// as it now is.
    private func change(
        _ change: RouteChange,
        _ bodyReason: String?,
        _ request: Request,
        _ context: AdminRequestContext
    ) async throws -> Response {
        let generation = try await submit(
            change,
            actor: context.actor,
            reason: Self.reason(request, body: bodyReason),
            request: request
        )
        logChange(change.action, model: change.model, actor: context.actor, generation: generation)
        let route: RouteConfiguration? =
            if case .delete = change { nil } else { control.routing.route(for: change.model) }
        return Self.json(RouteResponse(generation: generation, route: route))
    }
}
