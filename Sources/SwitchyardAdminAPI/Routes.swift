// Routes: `GET /v1/routes[/{model}]`, `PUT|DELETE /v1/routes/{model}`, `PATCH /v1/routes/{model}/weights`,
// `PUT /v1/routes/{model}/shadow`, `PUT /v1/routes/{model}/bandit`, `POST /v1/config/reload`. A change may carry
// `If-Match: <generation>` (the generation its author read) and answers the new generation with the route.

import Foundation
public import SwitchyardCore

/// `GET /v1/routes` and `POST /v1/config/reload`: every route and the table's generation.
@MemberwiseInit
public struct RoutesResponse: Sendable, Hashable, Codable {
    /// The routing table's generation (in fleet mode an etcd revision).
    public var generation: UInt64
    /// Every route, by model.
    public var routes: [RouteConfiguration]
}

/// `GET /v1/routes/{model}` and every route change: the generation and the model's route (`null` once deleted).
@MemberwiseInit
public struct RouteResponse: Sendable, Hashable, Codable {
    /// The generation after the change (or the one read).
    public var generation: UInt64
    /// The model's route; `null` when it has none.
    public var route: RouteConfiguration?

    enum CodingKeys: String, CodingKey { case generation, route }

    /// Writes `route` as `null` when there is none, so that a deletion says so.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(generation, forKey: .generation)
        try c.encode(route, forKey: .route)
    }
}

/// `PUT /v1/routes/{model}`: a whole route (as `GET /v1/routes/{model}` shows it) and the change's reason. The path
/// names the model; the body may name it too, and then the two must agree.
@MemberwiseInit
public struct RouteRequest: Sendable, Hashable, Codable {
    /// The model the body names, if it names one.
    public var model: String?
    /// The policy name (`fixed`, `canary`, `bandit`); absent: `fixed`. Kept as text so that an unknown name is
    /// reported by the route's validation with the other problems.
    public var policy: String?
    /// The versions, in allocation order.
    public var versions: [RouteConfiguration.VersionWeight]?
    /// The sticky key's source.
    public var sticky: RouteConfiguration.StickyKey?
    /// Bandit settings.
    public var bandit: RouteConfiguration.BanditSettings?
    /// Mirroring.
    public var shadow: RouteConfiguration.ShadowSettings?
    /// The fallback of calls the chosen version fails.
    public var fallback: RouteConfiguration.FallbackSettings?
    /// Why: the audit log's reason.
    public var reason: String?

    /// The fields a route body may carry (besides `reason`).
    public static let fields = ["model", "policy", "versions", "sticky", "bandit", "shadow", "fallback"]

    /// A request for `route`.
    public init(_ route: RouteConfiguration, reason: String? = nil) {
        model = route.model
        policy = route.policy.rawValue
        versions = route.versions
        sticky = route.sticky
        bandit = route.bandit
        shadow = route.shadow
        fallback = route.fallback
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey { case model, policy, versions, sticky, bandit, shadow, fallback, reason }

    /// Decodes the body, refusing fields a route does not have (at the top and in each version).
    /// - Throws: `AdminRequestError` for an unknown field or a `reason` that is not text; `DecodingError` for a
    ///   field of the wrong type.
    public init(from decoder: any Decoder) throws {
        reason = try decodeReason(decoder)
        try rejectUnknownFields(decoder, expected: Self.fields, alsoAccepted: ["reason"], path: "route")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if var entries = try? c.nestedUnkeyedContainer(forKey: .versions) {
            var index = 0
            while !entries.isAtEnd {
                try rejectUnknownFields(
                    try entries.superDecoder(),
                    expected: ["version", "weight"],
                    path: "route.versions[\(index)]"
                )
                index += 1
            }
        }
        model = try c.decodeIfPresent(String.self, forKey: .model)
        policy = try c.decodeIfPresent(String.self, forKey: .policy)
        versions = try c.decodeIfPresent([RouteConfiguration.VersionWeight].self, forKey: .versions)
        sticky = try c.decodeIfPresent(RouteConfiguration.StickyKey.self, forKey: .sticky)
        bandit = try c.decodeIfPresent(RouteConfiguration.BanditSettings.self, forKey: .bandit)
        shadow = try c.decodeIfPresent(RouteConfiguration.ShadowSettings.self, forKey: .shadow)
        if (try? c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .fallback)) != nil {
            try rejectUnknownFields(
                try c.superDecoder(forKey: .fallback),
                expected: ["to", "on", "deadline_margin_ms"],
                path: "route.fallback"
            )
        }
        fallback = try c.decodeIfPresent(RouteConfiguration.FallbackSettings.self, forKey: .fallback)
    }

    /// The route for `model` (the path's), an unknown policy name kept for the route's validation to report.
    /// - Throws: `AdminRequestError` when the body names another model.
    public func route(model: String) throws -> RouteConfiguration {
        if let named = self.model, named != model {
            throw AdminRequestError("route.model: the body names '\(named)' but the path names '\(model)'")
        }
        // The policy through RouteConfiguration's own decoding, which keeps a name it does not know for validate().
        struct Head: Encodable {
            var model: String
            var policy: String?
        }
        var route = try AdminJSON.decoder().decode(
            RouteConfiguration.self,
            from: AdminJSON.encoder().encode(Head(model: model, policy: policy))
        )
        route.versions = versions ?? []
        route.sticky = sticky
        route.bandit = bandit
        route.shadow = shadow
        route.fallback = fallback
        return route
    }
}

/// `PATCH /v1/routes/{model}/weights`: new weights of some of the route's versions; the others keep theirs.
@MemberwiseInit
public struct WeightsRequest: Sendable, Hashable, Codable {
    /// Weight by version name.
    public var weights: [String: Double]
    /// Why: the audit log's reason.
    public var reason: String?

    enum CodingKeys: String, CodingKey { case weights, reason }

    /// Decodes the body.
    /// - Throws: `AdminRequestError` naming the field: an unknown field, `weights` missing or not an object, a
    ///   weight that is not a number (`true` is not 1).
    public init(from decoder: any Decoder) throws {
        reason = try decodeReason(decoder)
        try rejectUnknownFields(decoder, expected: ["weights", "reason"], path: "body")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard c.contains(.weights) else {
            throw AdminRequestError("weights: required field missing; expected {\"version\": weight, …}")
        }
        guard let table = try? c.nestedContainer(keyedBy: AnyCodingKey.self, forKey: .weights) else {
            throw AdminRequestError("weights: expected an object {\"version\": weight, …}")
        }
        var weights: [String: Double] = [:]
        for key in table.allKeys {
            guard let weight = try? table.decode(Double.self, forKey: key) else {
                throw AdminRequestError(
                    "weights.\(key.stringValue): expected a number, got \(Self.describeValue(table, key))"
                )
            }
            weights[key.stringValue] = weight
        }
        self.weights = weights
    }

    private static func describeValue(_ table: KeyedDecodingContainer<AnyCodingKey>, _ key: AnyCodingKey) -> String {
        if let text = try? table.decode(String.self, forKey: key) { return text }
        if let flag = try? table.decode(Bool.self, forKey: key) { return "\(flag)" }
        if (try? table.decodeNil(forKey: key)) == true { return "null" }
        return "an array or object"
    }
}

/// `PUT /v1/routes/{model}/shadow`: mirror a share of the model's calls to a version; an empty body (or fraction 0)
/// stops mirroring.
public struct ShadowRequest: Sendable, Hashable, Codable {
    /// The mirroring; `nil` (an empty body) stops it.
    public var shadow: RouteConfiguration.ShadowSettings?
    /// Why: the audit log's reason.
    public var reason: String?

    /// The fields a shadow body may carry (besides `reason`).
    public static let fields = ["version", "fraction", "explicit"]

    /// Creates the request.
    public init(_ shadow: RouteConfiguration.ShadowSettings?, reason: String? = nil) {
        self.shadow = shadow
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey { case reason }

    /// Decodes the body.
    /// - Throws: `AdminRequestError` for an unknown field; `DecodingError` for a field of the wrong type.
    public init(from decoder: any Decoder) throws {
        reason = try decodeReason(decoder)
        try rejectUnknownFields(decoder, expected: Self.fields, alsoAccepted: ["reason"], path: "shadow")
        let keys = try decoder.container(keyedBy: AnyCodingKey.self).allKeys.filter { $0.stringValue != "reason" }
        shadow = keys.isEmpty ? nil : try RouteConfiguration.ShadowSettings(from: decoder)
    }

    /// Writes the settings' fields and the reason in one object.
    public func encode(to encoder: any Encoder) throws {
        try shadow?.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(reason, forKey: .reason)
    }
}

/// `PUT /v1/routes/{model}/bandit`: the bandit parameters of a bandit route.
public struct BanditRequest: Sendable, Hashable, Codable {
    /// The parameters; absent fields take their defaults.
    public var bandit: RouteConfiguration.BanditSettings
    /// Why: the audit log's reason.
    public var reason: String?

    /// The fields a bandit body may carry (besides `reason`).
    public static let fields = [
        "algorithm", "epsilon", "exploration", "discount", "window", "reward", "latency_target_ms", "feedback_ttl_s",
    ]

    /// Creates the request.
    public init(_ bandit: RouteConfiguration.BanditSettings, reason: String? = nil) {
        self.bandit = bandit
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey { case reason }

    /// Decodes the body.
    /// - Throws: `AdminRequestError` for an unknown field; `DecodingError` for a field of the wrong type.
    public init(from decoder: any Decoder) throws {
        reason = try decodeReason(decoder)
        try rejectUnknownFields(decoder, expected: Self.fields, alsoAccepted: ["reason"], path: "bandit")
        bandit = try RouteConfiguration.BanditSettings(from: decoder)
    }

    /// Writes the settings' fields and the reason in one object.
    public func encode(to encoder: any Encoder) throws {
        try bandit.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(reason, forKey: .reason)
    }
}
