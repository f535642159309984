// The admin HTTP API driven through Hummingbird's router test client (no sockets): auth, status codes,
// error messages naming the field, body size limit, atomic changes, metrics exposition.

import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchyardAdmin
import SwitchyardCore
import SwitchyardRouting
import Testing

@Suite struct AdminServerTests {
    func withClient(
        token: String? = "s3cret",
        listen: String = "127.0.0.1:0",
        _ body: @Sendable (any TestClientProtocol, AdminControl, Workspace) async throws -> Void
    ) async throws {
        let workspace = try Workspace()
        let control = try workspace.makeControl()
        let server = workspace.makeServer(control: control, token: token, listen: listen)
        let app = Application(router: server.makeRouter())
        try await app.test(.router) { client in try await body(client, control, workspace) }
    }

    static func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static func object(_ response: TestResponse) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    }

    static let authorized: HTTPFields = [.authorization: "Bearer s3cret", .contentType: "application/json"]

    @Test func mutationsNeedTheTokenReadsOnLoopbackDoNot() async throws {
        try await withClient { client, control, _ in
            try await client.execute(uri: "/v1/routes", method: .get) { response in
                #expect(response.status == .ok)
                let object = try Self.object(response)
                #expect(object["generation"] as? Int == 1)
            }
            try await client.execute(
                uri: "/v1/routes/digits/weights",
                method: .patch,
                body: Self.json(#"{"weights": {"1": 50, "2": 50}}"#)
            ) { response in
                #expect(response.status == .unauthorized)
                let error = try Self.object(response)["error"] as? String
                #expect(error == "missing bearer token: send 'Authorization: Bearer <token>'")
            }
            try await client.execute(
                uri: "/v1/routes/digits/weights",
                method: .patch,
                headers: [.authorization: "Bearer s3cret-but-longer"],
                body: Self.json(#"{"weights": {"1": 50, "2": 50}}"#)
            ) { response in
                #expect(response.status == .unauthorized)
            }
            try await client.execute(uri: "/v1/routes", method: .get, headers: [.authorization: "Bearer wrong"]) {
                #expect($0.status == .unauthorized)
            }
            #expect(control.routing.generation == 1)
            try await client.execute(
                uri: "/v1/routes/digits/weights",
                method: .patch,
                headers: Self.authorized,
                body: Self.json(#"{"weights": {"1": 50, "2": 50}, "reason": "even"}"#)
            ) { response in
                #expect(response.status == .ok)
                let object = try Self.object(response)
                #expect(object["generation"] as? Int == 2)
            }
            #expect(control.routing.route(for: "digits")?.versions.map(\.weight) == [50, 50])
        }
    }

    @Test func everythingButTheProbesNeedsTheTokenBeyondLoopback() async throws {
        try await withClient(listen: "0.0.0.0:8002") { client, _, _ in
            for uri in ["/v1/routes", "/metrics", "/v1/models"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .unauthorized) }
            }
            try await client.execute(uri: "/v1/routes", method: .get, headers: Self.authorized) {
                #expect($0.status == .ok)
            }
            // Probes need no secret and say only the status; a wrong token is still refused.
            for uri in ["/healthz", "/readyz"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok)
                    let object = try Self.object(response)
                    #expect((object["reasons"] as? [Any])?.isEmpty ?? true)
                }
                try await client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer wrong"]) {
                    #expect($0.status == .unauthorized)
                }
            }
        }
    }

    @Test(arguments: [
        ("/v1/routes/digits/weights", HTTPRequest.Method.patch, "{\"weights\": ", "body: malformed JSON"),
        (
            "/v1/routes/digits/weights", .patch, #"{"weights": {"1": 0, "2": 0}}"#,
            "weights: canary weights must sum to more than 0"
        ),
        (
            "/v1/routes/digits/weights", .patch, #"{"weights": {"1": -5}}"#,
            "weights.1: expected a finite number ≥ 0, got -5.0"
        ),
        ("/v1/routes/digits/weights", .patch, #"{"weights": {"1": "x"}}"#, "weights.1: expected a number"),
        ("/v1/routes/digits/weights", .patch, #"{"wieghts": {"1": 1}}"#, "body.wieghts: unknown field"),
        (
            "/v1/routes/digits/shadow", .put, #"{"version": "2", "fraction": -0.5}"#,
            "route.shadow.fraction: expected 0…1, got -0.5"
        ),
        (
            "/v1/routes/digits/shadow", .put, #"{"version": "9"}"#,
            "route.shadow.version: model 'digits' has no loaded version '9'"
        ),
        (
            "/v1/routes/digits", .put, #"{"policy": "canary", "versions": [{"version": "1", "weigth": 5}]}"#,
            "route.versions[0].weigth: unknown field"
        ),
        (
            "/v1/routes/digits", .put, #"{"policy": "fixed", "versions": [{"version": "3"}]}"#,
            "route.versions[0].version: model 'digits' has no loaded version '3'"
        ),
        (
            "/v1/routes/digits", .put, #"{"policy": "fastest", "versions": [{"version": "1"}]}"#,
            "route.policy: unknown policy 'fastest'"
        ),
        ("/v1/routes/digits", .put, #"{"policy": "fixed", "versions": "1"}"#, "route.versions: expected"),
        (
            "/v1/routes/digits", .put, #"{"model": "ranker", "versions": [{"version": "1"}]}"#,
            "route.model: the body names 'ranker' but the path names 'digits'"
        ),
    ])
    func badInputIsA400NamingTheFieldAndChangesNothing(
        uri: String,
        method: HTTPRequest.Method,
        body: String,
        message: String
    ) async throws {
        try await withClient { client, control, workspace in
            try await client.execute(uri: uri, method: method, headers: Self.authorized, body: Self.json(body)) {
                response in
                #expect(response.status == .badRequest)
                let error = try Self.object(response)["error"] as? String ?? ""
                #expect(error.hasPrefix(message), "\(error)")
            }
            #expect(control.routing.generation == 1)
            #expect(control.routing.route(for: "digits") == canary)
            #expect(try workspace.auditEntries().isEmpty)
        }
    }

    @Test func unknownModelsAreA404() async throws {
        try await withClient { client, _, _ in
            for (uri, method) in [
                ("/v1/routes/nope", HTTPRequest.Method.get), ("/v1/routes/nope/weights", .patch),
                ("/v1/routes/nope", .delete), ("/v1/bandits/nope", .get), ("/v1/routes/ranker", .get),
            ] {
                try await client.execute(
                    uri: uri,
                    method: method,
                    headers: Self.authorized,
                    body: Self.json(#"{"weights": {"1": 1}}"#)
                ) { response in
                    #expect(response.status == .notFound, "\(method) \(uri)")
                    let error = try Self.object(response)["error"] as? String ?? ""
                    #expect(error.contains("nope") || error.contains("ranker"), "\(error)")
                }
            }
        }
    }

    @Test func oversizedBodiesAreA413() async throws {
        try await withClient { client, control, _ in
            let huge = #"{"weights": {"1": 1}, "reason": ""# + String(repeating: "x", count: 8192) + #""}"#
            try await client.execute(
                uri: "/v1/routes/digits/weights",
                method: .patch,
                headers: Self.authorized,
                body: Self.json(huge)
            ) { response in
                #expect(response.status == .contentTooLarge)
                let error = try Self.object(response)["error"] as? String
                #expect(error == "request body exceeds admin.max_body_bytes (4096 bytes)")
            }
            #expect(control.routing.generation == 1)
        }
    }

    @Test func putDeleteAndReasonHeaderAreAudited() async throws {
        try await withClient { client, control, workspace in
            var headers = Self.authorized
            headers[HTTPField.Name("X-Switchyard-Reason")!] = "try the bandit"
            try await client.execute(
                uri: "/v1/routes/ranker",
                method: .put,
                headers: headers,
                body: Self.json(
                    #"{"policy": "bandit", "versions": [{"version": 1}, {"version": "2"}], "bandit": {"algorithm": "ucb1"}}"#
                )
            ) { response in
                #expect(response.status == .ok)
                let route = try #require(try Self.object(response)["route"] as? [String: Any])
                #expect(route["model"] as? String == "ranker")
            }
            try await client.execute(uri: "/v1/bandits/ranker", method: .get) { response in
                #expect(response.status == .ok)
                let object = try Self.object(response)
                #expect(object["algorithm"] as? String == "ucb1")
                #expect((object["arms"] as? [Any])?.count == 2)
            }
            try await client.execute(uri: "/v1/routes/ranker", method: .delete, headers: Self.authorized) {
                #expect($0.status == .ok)
            }
            #expect(control.routing.route(for: "ranker") == nil)
            let entries = try workspace.auditEntries()
            #expect(entries.map(\.action) == ["route.put", "route.delete"])
            #expect(entries.map(\.actor) == ["ops", "ops"])
            #expect(entries.first?.reason == "try the bandit")
            #expect(entries.map(\.generation) == [2, 3])
        }
    }

    @Test func banditParametersChangeOnlyBanditRoutes() async throws {
        try await withClient { client, control, workspace in
            try await client.execute(
                uri: "/v1/routes/digits/bandit",
                method: .put,
                headers: Self.authorized,
                body: Self.json(#"{"algorithm": "ucb1"}"#)
            ) { response in
                #expect(response.status == .badRequest)
                let error = try Self.object(response)["error"] as? String
                #expect(error == "route.policy: model 'digits' routes by canary, not bandit")
            }
            try await client.execute(
                uri: "/v1/routes/ranker",
                method: .put,
                headers: Self.authorized,
                body: Self.json(#"{"policy": "bandit", "versions": [{"version": "1"}, {"version": "3"}]}"#)
            ) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/v1/routes/ranker/bandit",
                method: .put,
                headers: Self.authorized,
                body: Self.json(#"{"algorithm": "epsilon_greedy", "epsilon": 1.5}"#)
            ) { response in
                #expect(response.status == .badRequest)
                let error = try Self.object(response)["error"] as? String
                #expect(error == "route.bandit.epsilon: expected 0…1, got 1.5")
            }
            try await client.execute(
                uri: "/v1/routes/ranker/bandit",
                method: .put,
                headers: Self.authorized,
                body: Self.json(#"{"algorithm": "epsilon_greedy", "epsilon": 0.2, "reason": "explore more"}"#)
            ) { #expect($0.status == .ok) }
            #expect(control.routing.route(for: "ranker")?.bandit?.epsilon == 0.2)
            #expect(try workspace.auditEntries().map(\.action) == ["route.put", "route.bandit"])
            #expect(try workspace.auditEntries().last?.reason == "explore more")
        }
    }

    @Test func reloadWithoutAConfigurationFileIsAConflict() async throws {
        try await withClient { client, control, _ in
            try await client.execute(uri: "/v1/config/reload", method: .post, headers: Self.authorized) { response in
                #expect(response.status == .conflict)
            }
            #expect(control.routing.generation == 1)
        }
    }

    @Test func anonymousChangesWithoutAToken() async throws {
        try await withClient(token: nil) { client, _, workspace in
            try await client.execute(
                uri: "/v1/routes/digits/weights",
                method: .patch,
                body: Self.json(#"{"weights": {"2": 20}}"#)
            ) { #expect($0.status == .ok) }
            #expect(try workspace.auditEntries().map(\.actor) == ["anonymous"])
        }
    }

    @Test func metricsAndHealth() async throws {
        try await withClient { client, _, _ in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE switchyard_route_generation gauge\nswitchyard_route_generation 1\n"))
                #expect(text.contains("switchyard_build_info{version=\"test\"} 1\n"))
                #expect(text.contains("switchyard_grpc_calls_total{grpc_code=\"3\"} 1\n"))
                #expect(text.contains("# TYPE switchyard_requests_total counter"))
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
        }
    }
}
