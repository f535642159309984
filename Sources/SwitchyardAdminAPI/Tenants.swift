// Tenants: `GET /v1/tenants`, each tenant's admission counters and what its calls used per model version (calls,
// rows, shed and failed calls, and compute time apportioned from the batches they ran in).

import SwitchyardCore

/// `GET /v1/tenants`: every tenant of the `tenants:` section; empty without one.
@MemberwiseInit
public struct TenantsReport: Sendable, Hashable, Codable {
    /// Whether the gateway admits calls per tenant (a `tenants:` section).
    public var enabled: Bool
    /// The tenants, by name.
    public var tenants: [TenantReport]
}

/// One tenant: its admission counters and its usage.
@MemberwiseInit
public struct TenantReport: Sendable, Hashable, Codable {
    public var tenant: String
    /// Its weight: its share of a pool's capacity under contention, against the other tenants with queued calls.
    public var weight: Double = 1
    /// Admitted calls not yet answered.
    public var inFlight: Int
    /// Calls admitted, and refused by reason.
    public var admitted: UInt64
    public var rateLimited: UInt64
    public var concurrencyLimited: UInt64
    public var denied: UInt64
    /// What the admitted calls used, by model version.
    public var usage: [TenantUsage]
    /// Calls not accounted because the tenant's usage reached its limit of model versions.
    public var usageDropped: UInt64

    enum CodingKeys: String, CodingKey {
        case tenant, weight, admitted, denied, usage
        case inFlight = "in_flight"
        case rateLimited = "rate_limited"
        case concurrencyLimited = "concurrency_limited"
        case usageDropped = "usage_dropped"
    }
}

/// What one tenant's calls used of one model version.
@MemberwiseInit
public struct TenantUsage: Sendable, Hashable, Codable {
    public var model: String
    public var version: String
    /// Calls answered.
    public var calls: UInt64
    /// Their rows.
    public var rows: UInt64
    /// Calls refused for capacity (queue full, deadline out of reach, draining).
    public var shed: UInt64
    /// Calls failed otherwise.
    public var failed: UInt64
    /// The answered calls' share of their batches' compute time, in seconds: each call is charged
    /// `rows × batch time / batch rows`.
    public var computeSeconds: Double

    enum CodingKeys: String, CodingKey {
        case model, version, calls, rows, shed, failed
        case computeSeconds = "compute_seconds"
    }
}
