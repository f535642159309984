// The admin plane's policy for model control over the inference port (RepositoryModelLoad/Unload): callers on
// this machine may, beyond it only with the admin token, and a wrong token is refused everywhere.

import Logging
import SwitchyardAdmin
import SwitchyardCore
import SwitchyardModels
import Testing

@Suite struct ModelControlTests {
    @Test(
        arguments: [
            // (token configured, authorization sent, peer on loopback, expected)
            (nil, nil, true, ChangeAuthorization.allowed(actor: "anonymous")),
            ("s3cret", nil, true, .allowed(actor: "anonymous")),
            ("s3cret", "Bearer s3cret", false, .allowed(actor: "ops")),
            ("s3cret", "Bearer s3cret", true, .allowed(actor: "ops")),
            (
                "s3cret", nil, false,
                .unauthenticated("missing admin token: send metadata 'authorization: Bearer <token>'")
            ),
            ("s3cret", "Bearer wrong", false, .unauthenticated("invalid bearer token in 'authorization' metadata")),
            ("s3cret", "Bearer wrong", true, .unauthenticated("invalid bearer token in 'authorization' metadata")),
            ("s3cret", "s3cret", true, .unauthenticated("invalid bearer token in 'authorization' metadata")),
            (
                nil, nil, false,
                .permissionDenied(
                    "model control from beyond loopback needs the admin token, and none is configured "
                        + "(admin.token or SWITCHYARD_ADMIN_TOKEN); call from this machine or configure one"
                )
            ),
            (
                nil, "Bearer anything", false,
                .permissionDenied(
                    "model control from beyond loopback needs the admin token, and none is configured "
                        + "(admin.token or SWITCHYARD_ADMIN_TOKEN); call from this machine or configure one"
                )
            ),
        ] as [(String?, String?, Bool, ChangeAuthorization)]
    )
    func authorization(token: String?, authorization: String?, loopback: Bool, expected: ChangeAuthorization) throws {
        let workspace = try Workspace()
        let server = workspace.makeServer(control: try workspace.makeControl(), token: token)
        #expect(server.authorizeChange(authorization: authorization, peerIsLoopback: loopback) == expected)
    }

    @Test func loadsAndUnloadsWithoutARepositoryAreRefusedAndLeaveNoAuditEntry() async throws {
        let workspace = try Workspace()
        let server = workspace.makeServer(control: try workspace.makeControl())
        let load = #expect(throws: SwitchyardError.self) {
            try server.loadVersion(model: "digits", version: "1", actor: "anonymous", reason: nil)
        }
        #expect(load?.message == "this registry was not loaded from a repository")
        let unload = await #expect(throws: SwitchyardError.self) {
            try await server.unloadVersion(model: "digits", version: "1", actor: "anonymous", reason: nil)
        }
        #expect(unload?.message == "unknown model 'digits'; available models: none")
        #expect(((try? workspace.auditEntries()) ?? []).isEmpty)
    }

    @Test func theRepositoryIndexFollowsAuditedUnloadsAndLoads() async throws {
        let workspace = try Workspace()
        let registry = try RolloutControllerTests.registry()
        defer { registry.shutdown() }
        let server = AdminServer(
            configuration: AdminConfiguration(listen: "127.0.0.1:0", tokenName: "ops"),
            control: try workspace.makeControl(routes: []),
            registry: registry,
            sink: nil,
            isReady: { true },
            frontEnd: { nil },
            version: "test",
            logger: Logger(label: "test")
        )
        let ready = [
            RepositoryIndexEntry(model: "digits", version: "1", state: .ready, reason: ""),
            RepositoryIndexEntry(model: "digits", version: "2", state: .ready, reason: ""),
        ]
        #expect(try registry.repositoryIndex() == ready)
        try await server.unloadVersion(model: "digits", version: "2", actor: "seldon", reason: "over gRPC")
        #expect(
            try registry.repositoryIndex() == [
                ready[0], RepositoryIndexEntry(model: "digits", version: "2", state: .unavailable, reason: "unloaded"),
            ]
        )
        try server.loadVersion(model: "digits", version: "2", actor: "seldon", reason: "over gRPC")
        #expect(try registry.repositoryIndex() == ready)
        #expect(try registry.repositoryVersions(of: "digits") == ["1", "2"])
        let missing = #expect(throws: SwitchyardError.self) { try registry.repositoryVersions(of: "nope") }
        #expect(missing?.code == .notFound)
        #expect(missing?.message == "no model 'nope' in the model repository; it holds: digits")
        let entries = try workspace.auditEntries()
        #expect(entries.map(\.action) == ["model.unload", "model.load"])
        #expect(entries.allSatisfy { $0.actor == "seldon" && $0.version == "2" && $0.reason == "over gRPC" })
    }
}
