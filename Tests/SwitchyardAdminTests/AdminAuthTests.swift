// The admin API's auth: the token rules as a pure decision, and the middleware that applies them in front of every
// endpoint (missing or wrong token → 401 with the same body everywhere; reads on loopback and probes unaffected).

import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SwitchyardAdmin
import Testing

@Suite struct AdminAuthTests {
    typealias Access = AdminAuth.Access

    static let missing = "missing bearer token: send 'Authorization: Bearer <token>'"
    static let invalid = "invalid bearer token"

    @Test(
        arguments: [
            // (loopback, header, access, expected actor or error)
            (true, nil, Access.read, "anonymous"),
            (true, nil, .change, missing),
            (true, nil, .probe, "anonymous"),
            (false, nil, .read, missing),
            (false, nil, .change, missing),
            (false, nil, .probe, "anonymous"),
            (true, "Bearer s3cret", .change, "ops"),
            (false, "Bearer s3cret", .read, "ops"),
            (true, "Bearer wrong", .read, invalid),
            (true, "Bearer wrong", .probe, invalid),
            (false, "s3cret", .change, invalid),
            (true, "Bearer s3cret-but-longer", .change, invalid),
            (true, "", .read, invalid),
        ] as [(Bool, String?, Access, String)]
    )
    func tokenRules(loopback: Bool, header: String?, access: Access, expected: String) {
        let auth = AdminAuth(token: "s3cret", tokenName: "ops", isLoopback: loopback)
        do {
            let caller = try auth.caller(authorization: header, access: access)
            #expect(caller.actor == expected)
            // A probe without the token sees details only on loopback.
            #expect(caller.seesDetails == (header != nil || loopback))
        } catch {
            #expect("\(error)".contains(expected), "\(error)")
        }
    }

    @Test(arguments: [true, false])
    func withoutATokenEveryoneMayDoEverything(loopback: Bool) throws {
        let auth = AdminAuth(token: nil, tokenName: "ops", isLoopback: loopback)
        for access in [Access.probe, .read, .change] {
            for header in [nil, "Bearer anything"] {
                let caller = try auth.caller(authorization: header, access: access)
                #expect(caller.actor == "anonymous" && caller.seesDetails)
            }
        }
    }

    @Test func accessFollowsMethodAndPath() {
        #expect(AdminAuth.access(method: .get, path: "/healthz") == .probe)
        #expect(AdminAuth.access(method: .get, path: "/readyz") == .probe)
        #expect(AdminAuth.access(method: .get, path: "/v1/routes") == .read)
        #expect(AdminAuth.access(method: .get, path: "/metrics") == .read)
        for method in [HTTPRequest.Method.put, .patch, .post, .delete] {
            #expect(AdminAuth.access(method: method, path: "/v1/routes/digits") == .change)
        }
    }

    func withClient(listen: String, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let workspace = try Workspace()
        let server = workspace.makeServer(control: try workspace.makeControl(), token: "s3cret", listen: listen)
        try await Application(router: server.makeRouter()).test(.router) { try await body($0) }
    }

    static func error(_ response: TestResponse) throws -> String? {
        try JSONDecoder().decode([String: String].self, from: Data(response.body.readableBytesView))["error"]
    }

    @Test func everyChangeNeedsTheTokenWithTheSameAnswer() async throws {
        try await withClient(listen: "127.0.0.1:0") { client in
            for (uri, method) in [
                ("/v1/routes/digits", HTTPRequest.Method.put), ("/v1/routes/digits", .delete),
                ("/v1/routes/digits/weights", .patch), ("/v1/routes/digits/shadow", .put),
                ("/v1/routes/digits/bandit", .put), ("/v1/config/reload", .post),
                ("/v1/models/digits/versions/1/load", .post), ("/v1/models/digits/versions/1/unload", .post),
                ("/v1/rollouts/digits", .post), ("/v1/rollouts/digits/abort", .post),
            ] {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: "{}")) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                    let message = try Self.error(response)
                    #expect(message == Self.missing)
                    #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"switchyard-admin\"")
                }
                try await client.execute(uri: uri, method: method, headers: [.authorization: "Bearer nope"]) {
                    response in
                    #expect(response.status == .unauthorized)
                    let message = try Self.error(response)
                    #expect(message == Self.invalid)
                }
            }
        }
    }

    @Test func readsOnLoopbackAndProbesNeedNoToken() async throws {
        try await withClient(listen: "127.0.0.1:0") { client in
            for uri in [
                "/healthz", "/readyz", "/metrics", "/v1/routes", "/v1/routes/digits", "/v1/models", "/v1/rollouts",
                "/v1/shadow/report",
            ] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .ok, "\(uri)") }
            }
            // Unknown paths stay a plain 404, token or not.
            try await client.execute(uri: "/v1/nothing", method: .get) { #expect($0.status == .notFound) }
        }
    }
}
