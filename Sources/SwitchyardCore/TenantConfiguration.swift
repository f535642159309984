// The `tenants:` section: who a call belongs to and what each tenant may use. Without it every call is admitted as
// today; with it, calls are admitted per tenant by rate (a token bucket) and by concurrency, and only to the models
// the tenant may call.
//
//   tenants:
//     header: x-tenant-id          # where a call names its tenant (or parameter: tenant, a request parameter)
//     bearer_tokens: {"s3cret-token-of-acme": acme}   # `authorization: Bearer <token>` → tenant
//     identity: {source: client_certificate, field: subject_cn}   # instead of header/parameter: the tenant is the
//                                  # verified client certificate's subject CN (or san_dns, san_uri: its first SAN of
//                                  # that kind); needs tls.client_ca, so that every client presents one
//     default: public              # the tenant of calls that name none, or one not listed; absent: such calls
//                                  # are refused (PERMISSION_DENIED naming where the tenant was looked for)
//     limits:
//       public: {requests_per_second: 50, burst: 100, max_concurrent: 8}
//       acme: {requests_per_second: 500, max_concurrent: 64, models: [digits], weight: 3}
//
// `weight` (default 1) is the tenant's share of a pool's capacity under contention: each pool serves its queued
// tenants in proportion to their weights (start-time fair queuing over per-tenant queues, each in deadline order), and
// sheds the tenants over their share first.

/// Tenants and their limits.
public struct TenantsConfiguration: Sendable, Hashable, Codable {
    /// One tenant's limits; a limit left out is not enforced.
    @MemberwiseInit
    public struct Limits: Sendable, Hashable, Codable {
        /// Calls admitted per second on average.
        public var requestsPerSecond: Double?
        /// Calls admitted at once after a quiet spell (the bucket's size). Default: one second's worth, at least 1.
        public var burst: Double?
        /// Calls in flight at once.
        public var maxConcurrent: Int?
        /// The models the tenant may call; `nil`: every model.
        public var models: [String]?
        /// The tenant's share of a pool's capacity under contention, relative to the other tenants with queued
        /// work. Default 1; must be > 0.
        public var weight: Double?

        enum CodingKeys: String, CodingKey {
            case requestsPerSecond = "requests_per_second"
            case burst
            case maxConcurrent = "max_concurrent"
            case models
            case weight
        }
    }

    /// Where a call's tenant comes from when it is neither a header nor a parameter.
    @MemberwiseInit
    public struct Identity: Sendable, Hashable, Codable {
        /// The source of the identity.
        public enum Source: String, Sendable, Hashable, Codable {
            /// The client certificate that mutual TLS verified.
            case clientCertificate = "client_certificate"
        }

        /// Which name of the certificate names the tenant.
        public enum Field: String, Sendable, Hashable, Codable, CaseIterable {
            /// The subject's common name.
            case subjectCN = "subject_cn"
            /// The first subjectAltName DNS entry.
            case sanDNS = "san_dns"
            /// The first subjectAltName URI entry.
            case sanURI = "san_uri"
        }

        /// The source; `client_certificate`.
        public var source: Source = .clientCertificate
        /// The certificate's name to use. Default `subject_cn`.
        public var field: Field = .subjectCN

        enum CodingKeys: String, CodingKey { case source, field }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let source = try c.decode(String.self, forKey: .source)
            guard let known = Source(rawValue: source) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .source,
                    in: c,
                    debugDescription: "tenants.identity.source: expected client_certificate, got '\(source)'"
                )
            }
            self.source = known
            let field = try c.decodeIfPresent(String.self, forKey: .field) ?? Field.subjectCN.rawValue
            guard let knownField = Field(rawValue: field) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .field,
                    in: c,
                    debugDescription: "tenants.identity.field: expected one of "
                        + Field.allCases.map(\.rawValue).joined(separator: ", ") + ", got '\(field)'"
                )
            }
            self.field = knownField
        }
    }

    /// The request header naming the tenant (lower-case). Default `x-tenant-id` when no parameter is set.
    public var header: String?
    /// The ModelInferRequest string parameter naming the tenant, instead of a header.
    public var parameter: String?
    /// The tenant from the verified client certificate, instead of a header or parameter.
    public var identity: Identity?
    /// The tenant of calls that name none, or one that is not listed; `nil`: such calls are refused.
    public var defaultTenant: String?
    /// Bearer tokens by the tenant they identify: a call's `authorization: Bearer <token>` names its tenant, and a
    /// token not listed is refused. A call without the header falls back to `header`/`parameter`, if set.
    public var bearerTokens: [String: String]
    /// Limits by tenant name.
    public var limits: [String: Limits]

    /// Creates the section.
    public init(
        header: String? = nil,
        parameter: String? = nil,
        identity: Identity? = nil,
        bearerTokens: [String: String] = [:],
        defaultTenant: String?,
        limits: [String: Limits]
    ) {
        self.header = header?.lowercased()
        self.parameter = parameter
        self.identity = identity
        self.bearerTokens = bearerTokens
        self.defaultTenant = defaultTenant
        self.limits = limits
    }

    enum CodingKeys: String, CodingKey {
        case header, parameter, limits, identity
        case bearerTokens = "bearer_tokens"
        case defaultTenant = "default"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        parameter = try c.decodeIfPresent(String.self, forKey: .parameter)
        identity = try c.decodeIfPresent(Identity.self, forKey: .identity)
        bearerTokens = try c.decodeIfPresent([String: String].self, forKey: .bearerTokens) ?? [:]
        // With bearer tokens, a header names the tenant only when one is configured: the header is the client's
        // word, the token is a credential.
        header =
            try c.decodeIfPresent(String.self, forKey: .header)?.lowercased()
            ?? (parameter == nil && identity == nil && bearerTokens.isEmpty ? "x-tenant-id" : nil)
        limits = try c.decodeIfPresent([String: Limits].self, forKey: .limits) ?? [:]
        // Absent `default`: the tenant named `default` if one is listed (as before), else none.
        defaultTenant =
            try c.decodeIfPresent(String.self, forKey: .defaultTenant) ?? (limits["default"] != nil ? "default" : nil)
    }

    /// Every problem, each prefixed with its key path (`tenants.…`).
    /// - Parameter clientCertificatesRequired: whether the server's TLS requires client certificates
    ///   (`tls.client_ca`), without which a certificate identity names nobody.
    public func validate(clientCertificatesRequired: Bool = false) -> [String] {
        var problems: [String] = []
        if [header != nil, parameter != nil, identity != nil].filter({ $0 }).count > 1 {
            problems.append("tenants: expected one of header and parameter (or identity), got more than one")
        }
        if let identity, identity.source == .clientCertificate, !clientCertificatesRequired {
            problems.append(
                "tenants.identity: source client_certificate needs TLS that requires client certificates; expected "
                    + "tls: {cert, key, client_ca} (the server does not ask clients for a certificate)"
            )
        }
        if let defaultTenant, limits[defaultTenant] == nil {
            problems.append(
                "tenants.default: tenant '\(defaultTenant)' is not under tenants.limits; listed: "
                    + (limits.keys.sorted().joined(separator: ", ").nilIfEmpty ?? "none")
            )
        }
        if defaultTenant == nil && limits.isEmpty {
            problems.append("tenants.limits: expected at least one tenant (or a default tenant)")
        }
        for (token, tenant) in bearerTokens.sorted(by: { $0.value < $1.value }) {
            // The token itself is a secret: the message names its tenant and length, never its text.
            if limits[tenant] == nil {
                problems.append(
                    "tenants.bearer_tokens: a token (\(token.utf8.count) characters) names tenant '\(tenant)', which is "
                        + "not under tenants.limits"
                )
            }
            if token.utf8.count < 16 {
                problems.append(
                    "tenants.bearer_tokens: the token of tenant '\(tenant)' has \(token.utf8.count) characters; "
                        + "expected at least 16"
                )
            }
        }
        for (name, limit) in limits.sorted(by: { $0.key < $1.key }) {
            let path = "tenants.limits.\(name)"
            if let rate = limit.requestsPerSecond, !(rate > 0 && rate.isFinite) {
                problems.append("\(path).requests_per_second: expected a number > 0, got \(rate)")
            }
            if let burst = limit.burst {
                if !(burst >= 1 && burst.isFinite) { problems.append("\(path).burst: expected ≥ 1, got \(burst)") }
                if limit.requestsPerSecond == nil {
                    problems.append("\(path).burst: only used with requests_per_second")
                }
            }
            if let concurrent = limit.maxConcurrent, concurrent < 1 {
                problems.append("\(path).max_concurrent: expected ≥ 1, got \(concurrent)")
            }
            if let weight = limit.weight, !(weight > 0 && weight.isFinite) {
                problems.append("\(path).weight: expected a number > 0 (a share of a pool's capacity), got \(weight)")
            }
            if let models = limit.models, models.isEmpty {
                problems.append("\(path).models: expected at least one model (leave the key out for every model)")
            }
        }
        return problems
    }
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}
