// Who a call belongs to: a bearer token mapped to a tenant, the header's name, the default tenant, and the refusal of
// a call that names no listed tenant when there is no default, naming where the tenant was looked for.

import SwitchyardCore
import SwitchyardRouting
import Testing

private let acmeToken = "acme-0123456789abcdef"

@Suite struct TenantIdentityTests {
    private func admission(default defaultTenant: String?, tokens: [String: String] = [:]) -> TenantAdmission {
        TenantAdmission(
            TenantsConfiguration(
                header: "x-tenant-id",
                bearerTokens: tokens,
                defaultTenant: defaultTenant,
                limits: ["acme": .init(), "lab": .init(), "public": .init()]
            )
        )
    }

    @Test(arguments: ["Bearer \(acmeToken)", "bearer \(acmeToken)", "BEARER   \(acmeToken)"])
    func aListedBearerTokenNamesItsTenantWhateverTheHeaderClaims(authorization: String) throws {
        let admission = admission(default: "public", tokens: [acmeToken: "acme"])
        let ticket = try admission.admit(authorization: authorization, named: "lab", model: "digits")
        #expect(ticket.name == "acme")
    }

    @Test(arguments: ["Bearer wrong-token-0000000000", "Basic YWNtZTpzZWNyZXQ=", "Bearer", acmeToken])
    func anUnlistedOrMalformedTokenIsRefusedWithoutEchoingIt(authorization: String) {
        let admission = admission(default: "public", tokens: [acmeToken: "acme"])
        let refusal = #expect(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(authorization: authorization, named: nil, model: "digits")
        }
        #expect(refusal?.error.code == .permissionDenied)
        #expect(refusal?.error.message.contains("tenants.bearer_tokens") == true)
        #expect(refusal?.error.message.contains("wrong-token") == false)
        #expect(admission.unidentified == 1)
    }

    @Test func withoutATokenTheHeaderOrTheDefaultNamesTheTenant() throws {
        let admission = admission(default: "public", tokens: [acmeToken: "acme"])
        #expect(try admission.admit(authorization: nil, named: "lab", model: "m").name == "lab")
        #expect(try admission.admit(authorization: nil, named: nil, model: "m").name == "public")
        #expect(try admission.admit(authorization: nil, named: "stranger", model: "m").name == "public")
    }

    @Test func withoutADefaultAnUnknownTenantIsRefusedNamingTheSource() {
        let admission = admission(default: nil)
        let stranger = #expect(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(authorization: nil, named: "stranger", model: "digits")
        }
        #expect(stranger?.error.code == .permissionDenied)
        #expect(
            stranger?.error.message
                == "tenant 'stranger' (from the header 'x-tenant-id') is not listed and there is no default tenant; "
                + "listed: acme, lab, public"
        )
        let nobody = #expect(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(authorization: nil, named: nil, model: "digits")
        }
        #expect(
            nobody?.error.message
                == "the call names no tenant (expected its header 'x-tenant-id') and there is no default tenant; "
                + "listed: acme, lab, public"
        )
        #expect(admission.unidentified == 2)
        #expect(admission.snapshots.allSatisfy { $0.admitted == 0 })
    }

    @Test func tokensAreCheckedAtLoad() {
        let configuration = TenantsConfiguration(
            bearerTokens: ["short": "acme", "0123456789abcdef-ghost": "ghost"],
            defaultTenant: nil,
            limits: ["acme": .init()]
        )
        let problems = configuration.validate()
        #expect(
            problems == [
                "tenants.bearer_tokens: the token of tenant 'acme' has 5 characters; expected at least 16",
                "tenants.bearer_tokens: a token (22 characters) names tenant 'ghost', which is not under tenants.limits",
            ]
        )
        #expect(problems.allSatisfy { !$0.contains("short") && !$0.contains("0123456789abcdef") })
        #expect(
            TenantsConfiguration(defaultTenant: nil, limits: [:]).validate()
                == ["tenants.limits: expected at least one tenant (or a default tenant)"]
        )
    }
}
