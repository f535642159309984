// Admission per tenant on a scripted clock: the token bucket's burst, refill and retry hint, the concurrency limit
// and its release, the model allowlist, the default tenant, and the section's validation.

import SwitchyardCore
import SwitchyardRouting
import Synchronization
import Testing

/// A clock the test moves by hand.
private final class ScriptedClock: Sendable {
    private let now = Atomic<UInt64>(1_000_000_000)
    func read() -> UInt64 { now.load(ordering: .relaxed) }
    func advance(milliseconds: UInt64) { now.add(milliseconds * 1_000_000, ordering: .relaxed) }
}

private let configuration = TenantsConfiguration(
    defaultTenant: "public",
    limits: [
        "public": .init(requestsPerSecond: 10, burst: 2),
        "acme": .init(maxConcurrent: 2, models: ["digits"]),
    ]
)

@Suite struct TenantAdmissionTests {
    @Test func theBucketAdmitsItsBurstThenOneCallPerRefill() throws {
        let clock = ScriptedClock()
        let admission = TenantAdmission(configuration, clock: clock.read)
        _ = try admission.admit(tenant: "public", model: "digits")
        _ = try admission.admit(tenant: "public", model: "digits")
        let refusal = try #require(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(tenant: "public", model: "digits")
        }
        #expect(refusal.error.code == .resourceExhausted)
        #expect(refusal.error.message == "tenant 'public' is over its rate of 10 calls/s (burst 2); retry in 100 ms")
        #expect(refusal.retryAfterMilliseconds == 100)
        clock.advance(milliseconds: 40)
        #expect(
            (try? admission.admit(tenant: "public", model: "digits")) == nil,
            "0.4 of a token after 40 ms at 10/s"
        )
        clock.advance(milliseconds: 60)
        _ = try admission.admit(tenant: "public", model: "digits")
        // A long quiet spell refills up to the burst, not beyond it.
        clock.advance(milliseconds: 10_000)
        _ = try admission.admit(tenant: "public", model: "digits")
        _ = try admission.admit(tenant: "public", model: "digits")
        #expect((try? admission.admit(tenant: "public", model: "digits")) == nil)
        let counters = try #require(admission.snapshots.first { $0.tenant == "public" })
        #expect(counters.admitted == 5 && counters.rateLimited == 3)
    }

    @Test func callsInFlightAreBoundedAndReleasedWhenAnswered() throws {
        let admission = TenantAdmission(configuration, clock: ScriptedClock().read)
        let first = try admission.admit(tenant: "acme", model: "digits")
        _ = try admission.admit(tenant: "acme", model: "digits")
        let refusal = try #require(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(tenant: "acme", model: "digits")
        }
        #expect(refusal.error.message.contains("has 2 calls in flight, its max_concurrent"))
        #expect(refusal.retryAfterMilliseconds == 10)
        first.release()
        _ = try admission.admit(tenant: "acme", model: "digits")
        #expect(admission.snapshots.first { $0.tenant == "acme" }?.inFlight == 2)
    }

    @Test func aModelOutsideTheTenantsListIsDeniedAndUnknownTenantsGetTheDefault() throws {
        let admission = TenantAdmission(configuration, clock: ScriptedClock().read)
        let refusal = try #require(throws: TenantAdmission.Refusal.self) {
            _ = try admission.admit(tenant: "acme", model: "iris")
        }
        #expect(refusal.error.code == .permissionDenied)
        #expect(refusal.error.message == "tenant 'acme' may not call model 'iris'; its models: digits")
        #expect(refusal.retryAfterMilliseconds == nil)
        #expect(try admission.admit(tenant: "nobody", model: "iris").name == "public")
        #expect(try admission.admit(tenant: nil, model: "iris").name == "public")
    }

    @Test func theSectionNamesEveryProblem() {
        let bad = TenantsConfiguration(
            header: "x-tenant",
            parameter: "tenant",
            defaultTenant: "missing",
            limits: [
                "a": .init(requestsPerSecond: 0, burst: 0.5, maxConcurrent: 0, models: [], weight: 0),
                "b": .init(weight: -2),
            ]
        )
        let problems = bad.validate().joined(separator: "\n")
        for fragment in [
            "tenants: expected one of header and parameter", "tenants.default: tenant 'missing' is not under",
            "tenants.limits.a.requests_per_second", "tenants.limits.a.burst", "tenants.limits.a.max_concurrent",
            "tenants.limits.a.models",
            "tenants.limits.a.weight: expected a number > 0 (a share of a pool's capacity), got 0.0",
            "tenants.limits.b.weight: expected a number > 0 (a share of a pool's capacity), got -2.0",
        ] {
            #expect(problems.contains(fragment), "missing \(fragment) in:\n\(problems)")
        }
        #expect(configuration.validate().isEmpty)
    }
}
