// Cost attribution per tenant: a call's share of its batch's compute time, and what each tenant's calls used per
// model version (answered calls, rows, shed and failed calls).

import SwitchyardCore
import SwitchyardRouting
import Testing

@Suite struct TenantUsageTests {
    @Test(arguments: [
        (rows: 1, batchRows: 1, batch: UInt64(1_000), share: UInt64(1_000)),
        (3, 4, 1_000, 750),
        (1, 64, 6_400_000, 100_000),
        (5, 5, 77, 77),
        (0, 4, 1_000, 0),
        // A batch larger than the counters' range: computed in floating point rather than overflowing.
        (2, 4, UInt64.max / 2, UInt64.max / 4),
    ])
    func aCallIsChargedItsRowsShareOfItsBatch(rows: Int, batchRows: Int, batch: UInt64, share: UInt64) {
        let charged = TenantAdmission.share(rows: rows, of: batchRows, batchNanoseconds: batch)
        #expect(Double(charged) == Double(share) || abs(Double(charged) - Double(share)) / Double(share) < 1e-9)
    }

    @Test func usageIsKeptPerTenantAndModelVersion() throws {
        let admission = TenantAdmission(
            TenantsConfiguration(defaultTenant: "public", limits: ["public": .init(), "acme": .init()])
        )
        let acme = try admission.admit(tenant: "acme", model: "digits")
        // Two calls of 3 and 1 rows in one batch of 4 that took 8 µs, then a call alone.
        acme.usage(model: "digits", version: "2")?.charge(rows: 3, batchRows: 4, batchComputeNanoseconds: 8_000)
        acme.usage(model: "digits", version: "2")?.charge(rows: 1, batchRows: 4, batchComputeNanoseconds: 8_000)
        acme.usage(model: "digits", version: "1")?.charge(rows: 2, batchRows: 2, batchComputeNanoseconds: 5_000)
        acme.usage(model: "digits", version: "2")?.chargeFailure(shed: true)
        acme.usage(model: "digits", version: "2")?.chargeFailure(shed: false)
        let anonymous = try admission.admit(tenant: nil, model: "iris")
        anonymous.usage(model: "iris", version: "1")?.charge(rows: 1, batchRows: 1, batchComputeNanoseconds: 300)
        let snapshots = Dictionary(uniqueKeysWithValues: admission.snapshots.map { ($0.tenant, $0) })
        let usage = try #require(snapshots["acme"]).usage
        #expect(usage.map { "\($0.key.model):\($0.key.version)" } == ["digits:1", "digits:2"])
        #expect(
            usage[1].usage
                == TenantAdmission.Usage(calls: 2, rows: 4, shed: 1, failed: 1, computeNanoseconds: 8_000)
        )
        #expect(usage[0].usage == TenantAdmission.Usage(calls: 1, rows: 2, computeNanoseconds: 5_000))
        #expect(
            try #require(snapshots["public"]).usage.map(\.usage)
                == [TenantAdmission.Usage(calls: 1, rows: 1, computeNanoseconds: 300)]
        )
    }
}
