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
        /// The tenant's lane and weight in the pools' fair sharing.
        public let share: TenantShare
        /// Tokens and the time (monotonic nanoseconds) they were counted at.
        private let bucket: Mutex<(tokens: Double, at: UInt64)>
        let inFlight = Atomic<Int>(0)
        let admitted = Atomic<UInt64>(0)
        let rateLimited = Atomic<UInt64>(0)
        let concurrencyLimited = Atomic<UInt64>(0)
        let denied = Atomic<UInt64>(0)
        /// What the tenant's admitted calls used, one slot per model version, made on the version's first call.
        let usage = Mutex<[UsageKey: UsageSlot]>([:])
        /// Calls not accounted because the tenant's usage reached `maxUsageKeys` model versions.
        let usageDropped = Atomic<UInt64>(0)

        init(name: String, index: Int, limits: TenantsConfiguration.Limits, now: UInt64) {
            self.name = name
            self.limits = limits
            burst = limits.burst ?? max(1, limits.requestsPerSecond ?? 1)
            share = TenantShare(name: name, index: index, weight: limits.weight ?? 1)
            bucket = Mutex((burst, now))
        }

        /// The usage slot of `model` version `version`, made on its first call; `nil` (and the call counted as
        /// dropped) once the tenant has `maxUsageKeys` slots.
        func slot(model: String, version: String) -> UsageSlot? {
            let key = UsageKey(model: model, version: version)
            let slot = usage.withLock { usage -> UsageSlot? in
                if let slot = usage[key] { return slot }
                guard usage.count < TenantAdmission.maxUsageKeys else { return nil }
                let slot = UsageSlot()
                usage[key] = slot
                return slot
            }
            if slot == nil { usageDropped.add(1, ordering: .relaxed) }
            return slot
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

    /// One tenant's use of one model version: counters that calls add to from any thread, without a lock.
    public final class UsageSlot: Sendable {
        let calls = Atomic<UInt64>(0)
        let rows = Atomic<UInt64>(0)
        let shed = Atomic<UInt64>(0)
        let failed = Atomic<UInt64>(0)
        let computeNanoseconds = Atomic<UInt64>(0)

        init() {}

        /// Charges an answered call: one call, its rows, and its share of its batch's compute time
        /// (`rows × batch time / batch rows`).
        public func charge(rows: Int, batchRows: Int, batchComputeNanoseconds: UInt64) {
            calls.add(1, ordering: .relaxed)
            self.rows.add(UInt64(max(0, rows)), ordering: .relaxed)
            computeNanoseconds.add(
                TenantAdmission.share(rows: rows, of: batchRows, batchNanoseconds: batchComputeNanoseconds),
                ordering: .relaxed
            )
        }

        /// Records a call the version failed: shed (refused for capacity: queue full, deadline out of reach,
        /// draining) or failed otherwise. Nothing ran for it, so no compute is charged.
        public func chargeFailure(shed: Bool) {
            if shed {
                self.shed.add(1, ordering: .relaxed)
            } else {
                failed.add(1, ordering: .relaxed)
            }
        }

        /// The counters now, each read once.
        var usage: Usage {
            Usage(
                calls: calls.load(ordering: .relaxed),
                rows: rows.load(ordering: .relaxed),
                shed: shed.load(ordering: .relaxed),
                failed: failed.load(ordering: .relaxed),
                computeNanoseconds: computeNanoseconds.load(ordering: .relaxed)
            )
        }
    }

    /// An admitted call's hold on its tenant's concurrency; `release()` once the call is answered.
    public struct Ticket: Sendable {
        let tenant: Tenant
        /// The tenant's name.
        public var name: String { tenant.name }
        /// Frees the call's place among its tenant's calls in flight.
        public func release() { tenant.inFlight.subtract(1, ordering: .relaxed) }

        /// The tenant's lane and weight in the pools' fair sharing.
        public var share: TenantShare { tenant.share }

        /// The counters the call's use of `model` version `version` is charged to: resolved once per call and
        /// version (a lookup under the tenant's lock), so that charging it from a worker thread is a few atomic adds.
        /// `nil` when the tenant already has `maxUsageKeys` versions (the call is counted as dropped).
        public func usage(model: String, version: String) -> UsageSlot? {
            tenant.slot(model: model, version: version)
        }
    }

    /// A model version a tenant's calls used.
    public struct UsageKey: Sendable, Hashable {
        public var model: String
        public var version: String
    }

    /// What a tenant's calls used of one model version.
    @MemberwiseInit
    public struct Usage: Sendable, Hashable {
        /// Calls answered.
        public var calls: UInt64 = 0
        /// Their rows.
        public var rows: UInt64 = 0
        /// Calls refused for capacity (shed).
        public var shed: UInt64 = 0
        /// Calls failed otherwise.
        public var failed: UInt64 = 0
        /// The answered calls' share of their batches' compute time.
        public var computeNanoseconds: UInt64 = 0
    }

    /// Most model versions whose use is kept per tenant; calls to more are counted as dropped. Versions are few,
    /// but a long-lived process loading a new version every hour must not grow this without bound.
    public static let maxUsageKeys = 1024

    /// A call's share of its batch's compute time: `rows × batch time / batch rows` (all of it for a batch of one).
    public static func share(rows: Int, of batchRows: Int, batchNanoseconds: UInt64) -> UInt64 {
        guard rows > 0 else { return 0 }
        guard batchRows > rows else { return batchNanoseconds }
        let (product, overflow) = batchNanoseconds.multipliedReportingOverflow(by: UInt64(rows))
        return overflow
            ? UInt64(Double(batchNanoseconds) * Double(rows) / Double(batchRows)) : product / UInt64(batchRows)
    }

    /// A refused call: the error to answer with and, for limits that clear with time, when to retry.
    public struct Refusal: Error, Sendable {
        public var error: SwitchyardError
        public var retryAfterMilliseconds: Int?
    }

    /// One tenant's counters, for /metrics.
    public struct Snapshot: Sendable, Hashable {
        public var tenant: String
        /// Its weight in the pools' fair sharing.
        public var weight: Double
        public var inFlight: Int
        public var admitted: UInt64
        public var rateLimited: UInt64
        public var concurrencyLimited: UInt64
        public var denied: UInt64
        /// What its calls used, by model version, sorted by model then version.
        public var usage: [UsageEntry] = []
        /// Calls not accounted because the usage map was full.
        public var usageDropped: UInt64 = 0
    }

    /// One model version's usage in a snapshot.
    public struct UsageEntry: Sendable, Hashable {
        public var key: UsageKey
        public var usage: Usage
    }

    /// The request header naming the tenant, if the tenant comes from a header.
    public let header: String?
    /// The request parameter naming the tenant, if it comes from a parameter.
    public let parameter: String?
    /// The name of the verified client certificate naming the tenant, if it comes from the certificate.
    public let certificateField: TenantsConfiguration.Identity.Field?
    private let tenants: [String: Tenant]
    private let fallback: Tenant?
    private let clock: @Sendable () -> UInt64
    /// The bearer tokens and their tenants, compared in constant time (never looked up by the token's text).
    private let bearerTokens: [BearerToken]
    /// Where a call's header or parameter names its tenant, for refusals (`header 'x-tenant-id'`).
    private let namingSource: String
    private let unidentifiedCount = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - configuration: a validated `tenants:` section (its default tenant is listed).
    ///   - clock: monotonic nanoseconds.
    public init(
        _ configuration: TenantsConfiguration,
        clock: @escaping @Sendable () -> UInt64 = { MonotonicInstant.now().nanoseconds }
    ) {
        let now = clock()
        var tenants: [String: Tenant] = [:]
        for (index, (name, limits)) in configuration.limits.sorted(by: { $0.key < $1.key }).enumerated() {
            tenants[name] = Tenant(name: name, index: index, limits: limits, now: now)
        }
        self.tenants = tenants
        fallback = configuration.defaultTenant.map {
            tenants[$0] ?? Tenant(name: $0, index: tenants.count, limits: .init(), now: now)
        }
        header = configuration.header
        parameter = configuration.parameter
        certificateField = configuration.identity?.field
        bearerTokens = configuration.bearerTokens.sorted(by: { $0.key < $1.key }).map {
            BearerToken(token: Array($0.key.utf8), tenant: $0.value)
        }
        let sources =
            (configuration.header.map { ["header '\($0)'"] } ?? [])
            + (configuration.parameter.map { ["parameter '\($0)'"] } ?? [])
            + (configuration.identity.map { ["client certificate's \(Self.describe($0.field))"] } ?? [])
        namingSource = sources.first ?? "no header or parameter"
        self.clock = clock
    }

    /// How a refusal names a certificate field.
    static func describe(_ field: TenantsConfiguration.Identity.Field) -> String {
        switch field {
        case .subjectCN: "subject CN"
        case .sanDNS: "first SAN DNS name"
        case .sanURI: "first SAN URI"
        }
    }

    /// Calls refused because they named no known tenant and there is no default (or their bearer token was not
    /// listed).
    public var unidentified: UInt64 { unidentifiedCount.load(ordering: .relaxed) }

    /// Admits a call by its identity: its bearer token (the value of its `authorization` header) when
    /// `bearer_tokens` is configured and the call sends one, else the name its header or parameter gives (`named`).
    /// - Throws: `Refusal` with `permissionDenied` for a bearer token not listed, and as `admit(tenant:model:)`.
    public func admit(
        authorization: @autoclosure () -> String?,
        named: String?,
        model: String
    ) throws(Refusal) -> Ticket {
        guard !bearerTokens.isEmpty, let authorization = authorization() else {
            return try admit(tenant: named, source: namingSource, model: model)
        }
        guard let token = Self.bearerToken(authorization), let tenant = BearerToken.match(token, in: bearerTokens)
        else {
            unidentifiedCount.add(1, ordering: .relaxed)
            throw Refusal(
                error: SwitchyardError(
                    .permissionDenied,
                    "the call's authorization header is not a bearer token listed under tenants.bearer_tokens; "
                        + "expected 'Bearer <token>' with a token of a tenant"
                ),
                retryAfterMilliseconds: nil
            )
        }
        return try admit(tenant: tenant, source: "bearer token", model: model)
    }

    /// The token of an `authorization` value `Bearer <token>` (scheme case-insensitive), if it is one.
    static func bearerToken(_ authorization: String) -> String? {
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].drop { $0 == " " }
        return token.isEmpty ? nil : String(token)
    }

    /// Admits a call of tenant `name` (the default tenant for `nil` or a name not listed) to `model`.
    /// - Throws: `Refusal` with `permissionDenied` for a model the tenant may not call, or for a call naming no
    ///   listed tenant when there is no default; `resourceExhausted` naming the rate or concurrency limit it is over
    ///   and when to retry.
    public func admit(tenant name: String?, model: String) throws(Refusal) -> Ticket {
        try admit(tenant: name, source: namingSource, model: model)
    }

    private func admit(tenant name: String?, source: String, model: String) throws(Refusal) -> Ticket {
        guard let tenant = name.flatMap({ tenants[$0] }) ?? fallback else {
            unidentifiedCount.add(1, ordering: .relaxed)
            let claimed =
                name.map { "tenant '\(SwitchyardError.echo($0, limit: 64))' (from the \(source)) is not listed" }
                ?? "the call names no tenant (expected its \(source)\(bearerTokens.isEmpty ? "" : " or a bearer token"))"
            throw Refusal(
                error: SwitchyardError(
                    .permissionDenied,
                    claimed + " and there is no default tenant; listed: "
                        + tenants.keys.sorted().joined(separator: ", ")
                ),
                retryAfterMilliseconds: nil
            )
        }
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
                weight: tenant.share.weight,
                inFlight: tenant.inFlight.load(ordering: .relaxed),
                admitted: tenant.admitted.load(ordering: .relaxed),
                rateLimited: tenant.rateLimited.load(ordering: .relaxed),
                concurrencyLimited: tenant.concurrencyLimited.load(ordering: .relaxed),
                denied: tenant.denied.load(ordering: .relaxed),
                usage: tenant.usage.withLock { $0 }.map { UsageEntry(key: $0.key, usage: $0.value.usage) }.sorted {
                    ($0.key.model, $0.key.version) < ($1.key.model, $1.key.version)
                },
                usageDropped: tenant.usageDropped.load(ordering: .relaxed)
            )
        }
    }
}

/// A configured bearer token. A presented token is compared with every configured one, each byte by byte without an
/// early exit, so that how long the comparison takes says nothing about how much of a token an attacker guessed.
struct BearerToken: Sendable {
    let token: [UInt8]
    let tenant: String

    /// The tenant of `presented`, or `nil`. Every configured token is compared in full, whatever matches.
    static func match(_ presented: String, in tokens: [BearerToken]) -> String? {
        var found: String?
        var presented = presented
        presented.withUTF8 { bytes in
            for candidate in tokens where equalInConstantTime(bytes, candidate.token) {
                found = candidate.tenant
            }
        }
        return found
    }

    /// Whether `a` and `b` hold the same bytes; the time depends only on the lengths.
    static func equalInConstantTime(_ a: UnsafeBufferPointer<UInt8>, _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
        b.withUnsafeBufferPointer { b in
            for index in 0..<max(a.count, b.count) {
                let x = index < a.count ? a[index] : 0
                let y = index < b.count ? b[index] : 0
                difference |= x ^ y
            }
        }
        return difference == 0
    }
}
