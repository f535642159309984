// `switchyard tenants report`: a running gateway's tenants, their admission counters and what their calls used per
// model version (calls, rows, shed and failed calls, compute time apportioned from the batches they ran in).

import ArgumentParser
import Foundation
import SwitchyardAdminAPI
import SwitchyardAdminClient
import SwitchyardCore

struct Tenants: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tenants of a running gateway: admission and cost per tenant.",
        subcommands: [Report.self]
    )

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each tenant's calls admitted and refused, and its usage and compute time per model version."
        )
        @OptionGroup var options: AdminOptions

        func run() async throws {
            guard
                let answer = try await options.call({ client async throws(AdminCallError) in
                    try await client.tenants()
                })
            else { return }
            print(describeTenants(answer))
        }
    }
}

/// The tenants report as text: a line per tenant, then a line per model version it used.
func describeTenants(_ report: TenantsReport) -> String {
    guard report.enabled else { return "no tenants: the gateway has no tenants: section" }
    var lines: [String] = []
    for tenant in report.tenants {
        lines.append(
            "\(tenant.tenant)  weight=\(tenant.weight.compactDescription) admitted=\(tenant.admitted) rate_limited=\(tenant.rateLimited) "
                + "concurrency_limited=\(tenant.concurrencyLimited) denied=\(tenant.denied) in_flight=\(tenant.inFlight)"
        )
        let total = tenant.usage.reduce(0) { $0 + $1.computeSeconds }
        for usage in tenant.usage {
            let share = total > 0 ? String(format: " (%.1f%%)", 100 * usage.computeSeconds / total) : ""
            lines.append(
                "  \(usage.model) version \(usage.version)  calls=\(usage.calls) rows=\(usage.rows) shed=\(usage.shed) "
                    + "failed=\(usage.failed) compute=" + String(format: "%.6f", usage.computeSeconds) + " s\(share)"
            )
        }
        if tenant.usageDropped > 0 { lines.append("  (\(tenant.usageDropped) calls not accounted: usage map full)") }
    }
    return lines.isEmpty ? "no tenant has called yet" : lines.joined(separator: "\n")
}
