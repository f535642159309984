// Fleet mode: `GET /v1/fleet`, every replica present in the fleet, whether they run the same routes, and the
// traffic and shadow comparisons each replica published, per replica and summed.

import SwitchyardCore

/// `GET /v1/fleet`.
@MemberwiseInit
public struct FleetStatus: Sendable, Hashable, Codable {
    /// The replica that answered.
    public var replica: String
    /// The highest routing generation among the replicas.
    public var generation: UInt64
    /// Whether every replica runs that generation.
    public var converged: Bool
    /// Every replica present.
    public var replicas: [FleetReplica]
    /// Calls per model version since each replica started, per replica and summed (`nil`: none published).
    public var versions: [FleetVersionTraffic]?
    /// Shadow comparisons per (model, primary, shadow) since each replica started, per replica and summed.
    public var shadow: [FleetShadowPair]?
}

/// One model version's calls across the fleet.
@MemberwiseInit
public struct FleetVersionTraffic: Sendable, Hashable, Codable {
    /// One replica's part.
    @MemberwiseInit
    public struct Replica: Sendable, Hashable, Codable {
        /// The replica's name.
        public var replica: String
        /// Finished calls.
        public var calls: UInt64
        /// Of those, failed.
        public var failures: UInt64
    }

    /// The model.
    public var model: String
    /// The version.
    public var version: String
    /// Finished calls, summed over the replicas.
    public var calls: UInt64
    /// Failed calls, summed.
    public var failures: UInt64
    /// The p99 latency of the summed histograms in milliseconds (`nil` without calls).
    public var p99Milliseconds: Double?
    /// Per replica.
    public var replicas: [Replica]

    enum CodingKeys: String, CodingKey {
        case model, version, calls, failures, replicas
        case p99Milliseconds = "p99_ms"
    }
}

/// One shadow pair's comparisons across the fleet.
public struct FleetShadowPair: Sendable, Hashable, Codable {
    /// One replica's part.
    @MemberwiseInit
    public struct Replica: Sendable, Hashable, Codable {
        /// The replica's name.
        public var replica: String
        /// Pairs with a classification verdict.
        public var compared: UInt64
        /// Of those, agreeing.
        public var agreed: UInt64
    }

    /// The model.
    public var model: String
    /// The version that answered.
    public var primaryVersion: String
    /// The mirrored version.
    public var shadowVersion: String
    /// Classified pairs, summed over the replicas.
    public var compared: UInt64
    /// Of those, agreeing.
    public var agreed: UInt64
    /// `agreed / compared` (`nil` without pairs).
    public var agreement: Double?
    /// Per replica.
    public var replicas: [Replica]

    /// Creates an entry.
    public init(
        model: String,
        primaryVersion: String,
        shadowVersion: String,
        compared: UInt64,
        agreed: UInt64,
        replicas: [Replica]
    ) {
        self.model = model
        self.primaryVersion = primaryVersion
        self.shadowVersion = shadowVersion
        self.compared = compared
        self.agreed = agreed
        self.agreement = compared > 0 ? Double(agreed) / Double(compared) : nil
        self.replicas = replicas
    }

    enum CodingKeys: String, CodingKey {
        case model, compared, agreed, agreement, replicas
        case primaryVersion = "primary_version"
        case shadowVersion = "shadow_version"
    }
}

/// One replica as it publishes itself under its presence key in etcd (`<prefix>/replicas/<replica_id>`): the same
/// type is stored there and answered by `GET /v1/fleet`.
@MemberwiseInit
public struct FleetReplica: Sendable, Hashable, Codable {
    /// Its name (`cluster.replica_id`).
    public var replica: String
    /// Its gRPC listen address.
    public var address: String = ""
    /// Its admin listen address, where peers deliver feedback for calls it routed (`""`: unknown).
    public var admin: String = ""
    /// Its build.
    public var build: String = ""
    /// When it started (ISO 8601).
    public var startedAt: String = ""
    /// Every repository model loaded and not draining.
    public var ready: Bool = false
    /// The routing generation in force on it.
    public var routeGeneration: UInt64 = 0
    /// Loaded versions by model.
    public var models: [String: [String]] = [:]

    enum CodingKeys: String, CodingKey {
        case replica, address, admin, build, ready, models
        case startedAt = "started_at"
        case routeGeneration = "route_generation"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        replica = try c.decode(String.self, forKey: .replica)
        address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
        admin = try c.decodeIfPresent(String.self, forKey: .admin) ?? ""
        build = try c.decodeIfPresent(String.self, forKey: .build) ?? ""
        startedAt = try c.decodeIfPresent(String.self, forKey: .startedAt) ?? ""
        ready = try c.decodeIfPresent(Bool.self, forKey: .ready) ?? false
        routeGeneration = try c.decodeIfPresent(UInt64.self, forKey: .routeGeneration) ?? 0
        models = try c.decodeIfPresent([String: [String]].self, forKey: .models) ?? [:]
    }
}

/// `POST /v1/fleet/feedback`: a `Feedback/Report` another replica received for a call it did not route. The replica
/// answers from its own decision ledger and never forwards further.
@MemberwiseInit
public struct FleetFeedback: Sendable, Hashable, Codable {
    /// The id of the routed call.
    public var requestID: String
    /// The reward in [0, 1].
    public var reward: Double

    enum CodingKeys: String, CodingKey {
        case reward
        case requestID = "request_id"
    }
}

/// The answer to `POST /v1/fleet/feedback`.
@MemberwiseInit
public struct FleetFeedbackOutcome: Sendable, Hashable, Codable {
    /// `applied`, `late` or `unknown`, as the ledger of the replica that answered says.
    public var outcome: String
}
