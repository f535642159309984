// Fleet mode: `GET /v1/fleet`, every replica present in the fleet and whether they run the same routes.

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

    /// Creates the body.
    public init(replica: String, generation: UInt64, converged: Bool, replicas: [FleetReplica]) {
        self.replica = replica
        self.generation = generation
        self.converged = converged
        self.replicas = replicas
    }
}

/// One replica as it publishes itself.
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
        address: String,
        build: String,
        startedAt: String,
        ready: Bool,
        routeGeneration: UInt64,
        models: [String: [String]]
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
