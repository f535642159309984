// Admission per tenant: before a call is routed, its tenant's token bucket must hold a token, its calls in flight
// must be under its limit, and the model must be one it may call. A refusal names the limit and when to retry; an
// admitted call holds a ticket until it is answered. The clock is injected, so every rule is tested without time.

public import SwitchyardCore
import Synchronization

/// Admits calls per tenant (`tenants:`).
public final class TenantAdmission: Sendable {
    /// One tenant's limits and live counters.
    public final class Tenant: Sendable {
        public let name: String
        let limits: TenantsConfiguration.Limits
        let burst: Double
        /// Tokens and the time (monotonic nanoseconds) they were counted at.
        private let bucket: Mutex<(tokens: Double, at: UInt64)>
        let inFlight = Atomic<Int>(0)
        let admitted = Atomic<UInt64>(0)
        let rateLimited = Atomic<UInt64>(0)
        let concurrencyLimited = Atomic<UInt64>(0)
        let denied = Atomic<UInt64>(0)

        init(name: String, limits: TenantsConfiguration.Limits, now: UInt64) {
            self.name = name
            self.limits = limits
            burst = limits.burst ?? max(1, limits.requestsPerSecond ?? 1)
            bucket = Mutex((burst, now))
        }

        /// Takes a token, or says in how many nanoseconds one will be there.
        func takeToken(now: UInt64) -> UInt64? {
            guard let rate = limits.requestsPerSecond else { return nil }
            return bucket.withLock { bucket -> UInt64? in
                let elapsed = Double(now &- bucket.at) / 1e9
                bucket.tokens = min(burst, bucket.tokens + max(0, elapsed) * rate)
                bucket.at = now
                if bucket.tokens >= 1 {
                    bucket.tokens -= 1
                    return nil
                }
                return UInt64(((1 - bucket.tokens) / rate * 1e9).rounded(.up))
            }
        }
    }

    /// An admitted call's hold on its tenant's concurrency; `release()` once the call is answered.
    public struct Ticket: Sendable {
        let tenant: Tenant
        /// The tenant's name.
        public var name: String { tenant.name }
        /// Frees the call's place among its tenant's calls in flight.
        public func release() { tenant.inFlight.subtract(1, ordering: .relaxed) }
    }

    /// A refused call: the error to answer with and, for limits that clear with time, when to retry.
    public struct Refusal: Error, Sendable {
        public var error: SwitchyardError
        public var retryAfterMilliseconds: Int?
    }

    /// One tenant's counters, for /metrics.
    public struct Snapshot: Sendable, Hashable {
        public var tenant: String
        public var inFlight: Int
        public var admitted: UInt64
        public var rateLimited: UInt64
        public var concurrencyLimited: UInt64
        public var denied: UInt64
    }

    /// The request header naming the tenant, if the tenant comes from a header.
    public let header: String?
    /// The request parameter naming the tenant, if it comes from a parameter.
    public let parameter: String?
    private let tenants: [String: Tenant]
    private let fallback: Tenant
    private let clock: @Sendable () -> UInt64

    /// - Parameters:
    ///   - configuration: a validated `tenants:` section (its default tenant is listed).
    ///   - clock: monotonic nanoseconds.
    public init(
        _ configuration: TenantsConfiguration,
        clock: @escaping @Sendable () -> UInt64 = { MonotonicInstant.now().nanoseconds }
    ) {
        let now = clock()
        var tenants: [String: Tenant] = [:]
        for (name, limits) in configuration.limits { tenants[name] = Tenant(name: name, limits: limits, now: now) }
        self.tenants = tenants
        fallback =
            tenants[configuration.defaultTenant]
            ?? Tenant(name: configuration.defaultTenant, limits: .init(), now: now)
        header = configuration.header
        parameter = configuration.parameter
        self.clock = clock
    }

    /// Admits a call of tenant `name` (the default tenant for `nil` or a name not listed) to `model`.
    /// - Throws: `Refusal` with `permissionDenied` for a model the tenant may not call, `resourceExhausted` naming
    ///   the rate or concurrency limit it is over and when to retry.
    public func admit(tenant name: String?, model: String) throws(Refusal) -> Ticket {
        let tenant = name.flatMap { tenants[$0] } ?? fallback
        if let models = tenant.limits.models, !models.contains(model) {
            tenant.denied.add(1, ordering: .relaxed)
            throw Refusal(
                error: SwitchyardError(
                    .permissionDenied,
                    "tenant '\(tenant.name)' may not call model '\(SwitchyardError.echo(model))'; its models: "
                        + models.joined(separator: ", ")
                ),
                retryAfterMilliseconds: nil
            )
        }
        if let wait = tenant.takeToken(now: clock()) {
            tenant.rateLimited.add(1, ordering: .relaxed)
            let milliseconds = Int((Double(wait) / 1e6).rounded(.up))
            throw Refusal(
                error: SwitchyardError(
                    .resourceExhausted,
                    "tenant '\(tenant.name)' is over its rate of \((tenant.limits.requestsPerSecond ?? 0).compactDescription) "
                        + "calls/s (burst \(tenant.burst.compactDescription)); retry in \(milliseconds) ms"
                ),
                retryAfterMilliseconds: milliseconds
            )
        }
        let inFlight = tenant.inFlight.add(1, ordering: .relaxed).newValue
        if let limit = tenant.limits.maxConcurrent, inFlight > limit {
            tenant.inFlight.subtract(1, ordering: .relaxed)
            tenant.concurrencyLimited.add(1, ordering: .relaxed)
            // When a call of the tenant will finish is unknown; a short pause lets one finish first.
            let milliseconds = tenant.limits.requestsPerSecond.map { max(1, Int((1000 / $0).rounded(.up))) } ?? 10
            throw Refusal(
                error: SwitchyardError(
                    .resourceExhausted,
                    "tenant '\(tenant.name)' has \(limit) calls in flight, its max_concurrent; retry when one "
                        + "finishes"
                ),
                retryAfterMilliseconds: milliseconds
            )
        }
        tenant.admitted.add(1, ordering: .relaxed)
        return Ticket(tenant: tenant)
    }

    /// Every tenant's counters, by name.
    public var snapshots: [Snapshot] {
        tenants.values.sorted { $0.name < $1.name }.map { tenant in
            Snapshot(
                tenant: tenant.name,
                inFlight: tenant.inFlight.load(ordering: .relaxed),
                admitted: tenant.admitted.load(ordering: .relaxed),
                rateLimited: tenant.rateLimited.load(ordering: .relaxed),
                concurrencyLimited: tenant.concurrencyLimited.load(ordering: .relaxed),
                denied: tenant.denied.load(ordering: .relaxed)
            )
        }
    }
}
