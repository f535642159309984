// Tenants named by the verified client certificate (mutual TLS), refused at load without client certificates; bearer
// tokens compared in constant time; each tenant's share for the pools' fair sharing; usage slots charged lock-free.

import SwitchyardCore
import Testing

@testable import SwitchyardRouting

@Suite struct TenantCertificateTests {
    private let certificate = PeerCertificate(
        subjectCommonName: "acme",
        dnsNames: ["lab.example.com", "other.example.com"],
        uris: ["spiffe://example.com/public"]
    )

    @Test(arguments: [
        (TenantsConfiguration.Identity.Field.subjectCN, "acme"), (.sanDNS, "lab.example.com"),
        (.sanURI, "spiffe://example.com/public"),
    ])
    func theConfiguredFieldOfTheCertificateNamesTheTenant(field: TenantsConfiguration.Identity.Field, tenant: String)
        throws
    {
        let configuration = TenantsConfiguration(
            identity: .init(field: field),
            defaultTenant: nil,
            limits: ["acme": .init(), "lab.example.com": .init(), "spiffe://example.com/public": .init()]
        )
        #expect(configuration.header == nil)
        #expect(configuration.validate(clientCertificatesRequired: true).isEmpty)
        let admission = TenantAdmission(configuration)
        #expect(admission.certificateField == field)
        let ticket = try admission.admit(tenant: certificate.name(field), model: "digits")
        #expect(ticket.name == tenant)
    }

    @Test func aCertificateWithoutTheFieldIsRefusedNamingTheSource() {
        let admission = TenantAdmission(
            TenantsConfiguration(identity: .init(field: .sanURI), defaultTenant: nil, limits: ["acme": .init()])
        )
        let refusal = #expect(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(tenant: PeerCertificate(subjectCommonName: "acme").name(.sanURI), model: "digits")
        }
        #expect(refusal?.error.code == .permissionDenied)
        #expect(
            refusal?.error.message
                == "the call names no tenant (expected its client certificate's first SAN URI) and there is no default "
                + "tenant; listed: acme"
        )
    }

    @Test func aCertificateIdentityNeedsTLSThatRequiresClientCertificates() {
        let configuration = TenantsConfiguration(identity: .init(), defaultTenant: nil, limits: ["acme": .init()])
        #expect(
            configuration.validate(clientCertificatesRequired: false) == [
                "tenants.identity: source client_certificate needs TLS that requires client certificates; expected "
                    + "tls: {cert, key, client_ca} (the server does not ask clients for a certificate)"
            ]
        )
        var both = configuration
        both.header = "x-tenant-id"
        #expect(
            both.validate(clientCertificatesRequired: true) == [
                "tenants: expected one of header and parameter (or identity), got more than one"
            ]
        )
    }

    @Test(arguments: [
        ("acme-0123456789abcdef", true), ("acme-0123456789abcdeg", false), ("acme-0123456789abcde", false),
        ("acme-0123456789abcdef0", false), ("", false), ("Acme-0123456789abcdef", false),
    ])
    func tokensAreComparedWholeAndOnlyEqualBytesMatch(presented: String, matches: Bool) {
        let tokens = [
            BearerToken(token: Array("zzzz-0123456789abcdef".utf8), tenant: "lab"),
            BearerToken(token: Array("acme-0123456789abcdef".utf8), tenant: "acme"),
        ]
        #expect(BearerToken.match(presented, in: tokens) == (matches ? "acme" : nil))
    }

    @Test func eachTenantHasItsOwnLaneAndWeight() throws {
        let admission = TenantAdmission(
            TenantsConfiguration(
                defaultTenant: "public",
                limits: ["public": .init(), "acme": .init(weight: 3), "lab": .init(weight: 0.5)]
            )
        )
        let acme = try admission.admit(tenant: "acme", model: "m").share
        let lab = try admission.admit(tenant: "lab", model: "m").share
        let anonymous = try admission.admit(tenant: nil, model: "m").share
        #expect((acme.weight, lab.weight, anonymous.weight) == (3, 0.5, 1))
        #expect(Set([acme.index, lab.index, anonymous.index]).count == 3)
        #expect(try admission.admit(tenant: "acme", model: "m").share === acme)
    }

    @Test func aUsageSlotIsResolvedOncePerVersionAndChargedWithoutALock() throws {
        let admission = TenantAdmission(TenantsConfiguration(defaultTenant: nil, limits: ["acme": .init()]))
        let ticket = try admission.admit(tenant: "acme", model: "m")
        let slot = try #require(ticket.usage(model: "m", version: "1"))
        #expect(ticket.usage(model: "m", version: "1") === slot)
        #expect(ticket.usage(model: "m", version: "2") !== slot)
        slot.charge(rows: 2, batchRows: 4, batchComputeNanoseconds: 1_000)
        slot.chargeFailure(shed: true)
        slot.chargeFailure(shed: false)
        let usage = try #require(admission.snapshots.first?.usage.first { $0.key.version == "1" })
        #expect(usage.usage == TenantAdmission.Usage(calls: 1, rows: 2, shed: 1, failed: 1, computeNanoseconds: 500))
    }
}
