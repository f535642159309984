// Fleet mode: `GET /v1/fleet`, every replica present in the fleet, whether they run the same routes, and the
// traffic and shadow comparisons each replica published, per replica and summed.

/// `GET /v1/fleet`.
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

    /// Creates the body.
    public init(
        replica: String,
        generation: UInt64,
        converged: Bool,
        replicas: [FleetReplica],
        versions: [FleetVersionTraffic]? = nil,
        shadow: [FleetShadowPair]? = nil
    ) {
        self.replica = replica
        self.generation = generation
        self.converged = converged
        self.replicas = replicas
        self.versions = versions
        self.shadow = shadow
    }
}

/// One model version's calls across the fleet.
public struct FleetVersionTraffic: Sendable, Hashable, Codable {
    /// One replica's part.
    public struct Replica: Sendable, Hashable, Codable {
        /// The replica's name.
        public var replica: String
        /// Finished calls.
        public var calls: UInt64
        /// Of those, failed.
        public var failures: UInt64

        /// Creates a part.
        public init(replica: String, calls: UInt64, failures: UInt64) {
            self.replica = replica
            self.calls = calls
            self.failures = failures
        }
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

    /// Creates an entry.
    public init(
        model: String,
        version: String,
        calls: UInt64,
        failures: UInt64,
        p99Milliseconds: Double?,
        replicas: [Replica]
    ) {
        self.model = model
        self.version = version
        self.calls = calls
        self.failures = failures
        self.p99Milliseconds = p99Milliseconds
        self.replicas = replicas
    }

    enum CodingKeys: String, CodingKey {
        case model, version, calls, failures, replicas
        case p99Milliseconds = "p99_ms"
    }
}

/// One shadow pair's comparisons across the fleet.
public struct FleetShadowPair: Sendable, Hashable, Codable {
    /// One replica's part.
    public struct Replica: Sendable, Hashable, Codable {
        /// The replica's name.
        public var replica: String
        /// Pairs with a classification verdict.
        public var compared: UInt64
        /// Of those, agreeing.
        public var agreed: UInt64

        /// Creates a part.
        public init(replica: String, compared: UInt64, agreed: UInt64) {
            self.replica = replica
            self.compared = compared
            self.agreed = agreed
        }
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
public struct FleetReplica: Sendable, Hashable, Codable {
    /// Its name (`cluster.replica_id`).
    public var replica: String
    /// Its gRPC listen address.
    public var address: String
    /// Its build.
    public var build: String
    /// When it started (ISO 8601).
    public var startedAt: String
    /// Every repository model loaded and not draining.
    public var ready: Bool
    /// The routing generation in force on it.
    public var routeGeneration: UInt64
    /// Loaded versions by model.
    public var models: [String: [String]]

    /// Creates a replica entry.
    public init(
        replica: String,
        address: String = "",
        build: String = "",
        startedAt: String = "",
        ready: Bool = false,
        routeGeneration: UInt64 = 0,
        models: [String: [String]] = [:]
    ) {
        self.replica = replica
        self.address = address
        self.build = build
        self.startedAt = startedAt
        self.ready = ready
        self.routeGeneration = routeGeneration
        self.models = models
    }

    enum CodingKeys: String, CodingKey {
        case replica, address, build, ready, models
        case startedAt = "started_at"
        case routeGeneration = "route_generation"
    }
}
