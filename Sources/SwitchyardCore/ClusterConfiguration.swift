// Fleet mode as `switchyard.yaml` spells it (`cluster:`): where the fleet's etcd is, how to reach it, and who this
// replica is. Without the section a replica is on its own, as before.

/// Fleet mode: the replicas that share one etcd prefix share one routing table.
///
/// ```yaml
/// cluster:
///   replica_id: gateway-0            # default: the host name
///   advertise_admin: 10.1.2.3:8002   # default: admin.listen (a wildcard host there cannot be reached by peers)
///   etcd:
///     endpoints: ["http://etcd-0:2379", "http://etcd-1:2379"]
///     prefix: /switchyard/prod
///     tls: {ca: /etc/etcd/ca.pem, cert: /etc/etcd/client.pem, key: /etc/etcd/client-key.pem}
///     dial_timeout_ms: 2000
///     lease_ttl_s: 10
/// ```
public struct ClusterConfiguration: Sendable, Hashable, Codable {
    /// How to reach the fleet's etcd.
    public var etcd: EtcdSettings
    /// This replica's name in the fleet (audit records, leases). Default: the host name.
    public var replicaID: String
    /// The admin address (`HOST:PORT`) peers reach this replica at, published in its presence key: feedback for a
    /// call it routed is forwarded there. Default `nil`: `admin.listen`, which peers can only use when its host is
    /// not a wildcard (`0.0.0.0`, `::`). In Kubernetes the pod IP (`--advertise-admin $(POD_IP):8002`).
    public var advertiseAdmin: String?

    /// Connection settings of the etcd client.
    @MemberwiseInit
    public struct EtcdSettings: Sendable, Hashable, Codable {
        /// Client URLs of the etcd members (`http://host:2379`, or `https://` with `tls`); tried in order, the
        /// first that answers is used until it fails. No default: at least one is required.
        public var endpoints: [String]
        /// Key prefix of this fleet; every key the fleet writes lies below it. Default `/switchyard/default`.
        public var prefix: String = "/switchyard/default"
        /// TLS towards etcd; `nil` speaks plain HTTP.
        public var tls: TLS?
        /// Milliseconds to connect to one endpoint before trying the next. Default 2000.
        public var dialTimeoutMilliseconds: Int = 2000
        /// Seconds of the leases this replica holds (its presence key); it is gone this long after the replica
        /// stops renewing. Default 10.
        public var leaseTTLSeconds: Int = 10

        /// PEM files of a TLS connection to etcd.
        @MemberwiseInit
        public struct TLS: Sendable, Hashable, Codable {
            /// CA bundle that signed etcd's server certificates; `nil` trusts the system's roots.
            public var ca: String?
            /// Client certificate chain, for etcd's `--client-cert-auth`; `nil` presents none.
            public var cert: String?
            /// The client certificate's private key; required with `cert`.
            public var key: String?
        }

        enum CodingKeys: String, CodingKey {
            case endpoints, prefix, tls
            case dialTimeoutMilliseconds = "dial_timeout_ms"
            case leaseTTLSeconds = "lease_ttl_s"
        }

        public init(from decoder: any Decoder) throws {
            let d = EtcdSettings(endpoints: [])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            endpoints = try c.decodeIfPresent([String].self, forKey: .endpoints) ?? []
            prefix = try c.decodeIfPresent(String.self, forKey: .prefix) ?? d.prefix
            tls = try c.decodeIfPresent(TLS.self, forKey: .tls)
            dialTimeoutMilliseconds =
                try c.decodeIfPresent(Int.self, forKey: .dialTimeoutMilliseconds) ?? d.dialTimeoutMilliseconds
            leaseTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .leaseTTLSeconds) ?? d.leaseTTLSeconds
        }

        /// Every problem with these settings, each prefixed with `path` (`cluster.etcd`).
        public func validate(path: String) -> [String] {
            var problems: [String] = []
            if endpoints.isEmpty {
                problems.append("\(path).endpoints: expected at least one etcd client URL (http://host:2379)")
            }
            for (index, endpoint) in endpoints.enumerated() {
                let scheme = endpoint.hasPrefix("http://") ? "http" : endpoint.hasPrefix("https://") ? "https" : nil
                guard let scheme else {
                    problems.append(
                        "\(path).endpoints[\(index)]: expected http://HOST:PORT or https://HOST:PORT, got '\(endpoint)'"
                    )
                    continue
                }
                let rest = endpoint.dropFirst(scheme.count + 3).split(separator: "/", omittingEmptySubsequences: false)
                if (try? HostAndPort(parsing: String(rest.first ?? ""))) == nil {
                    problems.append(
                        "\(path).endpoints[\(index)]: expected \(scheme)://HOST:PORT, got '\(endpoint)'"
                    )
                }
                if scheme == "https" && tls == nil {
                    problems.append("\(path).endpoints[\(index)]: an https endpoint needs \(path).tls (at least {})")
                }
            }
            if !prefix.hasPrefix("/") || prefix.hasSuffix("/") || prefix.count < 2 || prefix.contains("//") {
                problems.append(
                    "\(path).prefix: expected an absolute key path without a trailing slash "
                        + "(e.g. /switchyard/prod), got '\(prefix)'"
                )
            }
            if let tls {
                if (tls.cert == nil) != (tls.key == nil) {
                    problems.append("\(path).tls: expected both cert and key, or neither; got only one")
                }
                for (key, value) in [("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)] where value?.isEmpty == true
                {
                    problems.append("\(path).tls.\(key): expected a PEM file path, got ''")
                }
            }
            if !(100...60_000).contains(dialTimeoutMilliseconds) {
                problems.append("\(path).dial_timeout_ms: expected 100…60000, got \(dialTimeoutMilliseconds)")
            }
            if !(2...3600).contains(leaseTTLSeconds) {
                problems.append("\(path).lease_ttl_s: expected 2…3600, got \(leaseTTLSeconds)")
            }
            return problems
        }
    }

    /// Creates a cluster section; `replicaID` `nil` takes the host name.
    public init(etcd: EtcdSettings, replicaID: String? = nil, advertiseAdmin: String? = nil) {
        self.etcd = etcd
        self.replicaID = replicaID ?? SystemInfo.hostName
        self.advertiseAdmin = advertiseAdmin
    }

    enum CodingKeys: String, CodingKey {
        case etcd
        case replicaID = "replica_id"
        case advertiseAdmin = "advertise_admin"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        etcd = try c.decode(EtcdSettings.self, forKey: .etcd)
        replicaID = try c.decodeIfPresent(String.self, forKey: .replicaID) ?? SystemInfo.hostName
        advertiseAdmin = try c.decodeIfPresent(String.self, forKey: .advertiseAdmin)
    }

    /// The problem with `address` as an advertised admin address (`key` names where it came from), `nil` when
    /// peers can use it: `HOST:PORT` with a host that is not a wildcard.
    public static func advertiseProblem(_ address: String, key: String) -> String? {
        guard let parsed = try? HostAndPort(parsing: address), parsed.port > 0 else {
            return "\(key): expected HOST:PORT that peers can reach (e.g. 10.1.2.3:8002), got '\(address)'"
        }
        if ["0.0.0.0", "::", "[::]", ""].contains(parsed.host) {
            return "\(key): '\(address)' is a wildcard address, which peers cannot reach; "
                + "expected this replica's own address (in Kubernetes the pod IP)"
        }
        return nil
    }

    /// Every problem with this section, each prefixed with its key path (`cluster.…`).
    public func validate() -> [String] {
        var problems = etcd.validate(path: "cluster.etcd")
        let allowed = replicaID.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        if replicaID.isEmpty || replicaID.count > 128 || !allowed {
            problems.append(
                "cluster.replica_id: expected 1…128 characters of letters, digits, '-', '_' or '.', got '\(replicaID)'"
            )
        }
        if let advertiseAdmin, let problem = Self.advertiseProblem(advertiseAdmin, key: "cluster.advertise_admin") {
            problems.append(problem)
        }
        return problems
    }
}
