// The `admin:` section of switchyard.yaml: where the operator API listens, its bearer token, the audit log
// and the state file that keeps operator route changes across restarts.

import SwitchyardCore

/// Settings of the admin API.
///
/// ```yaml
/// admin:
///   listen: 127.0.0.1:8002
///   token: s3cret                 # or env SWITCHYARD_ADMIN_TOKEN; required beyond loopback
///   token_name: ops               # the actor recorded in the audit log for this token
///   audit_log: admin-audit.jsonl
///   state_file: routes-state.json
///   max_body_bytes: 1048576
///   idle_timeout_seconds: 10      # a request head must arrive within this; idle keep-alive ends after it
///   watch_config: false           # reload routes when the --config file changes
/// ```
public struct AdminConfiguration: Sendable, Hashable, Codable {
    /// Listen address of the admin HTTP server. Default `127.0.0.1:8002`.
    public var listen: String
    /// The bearer token; `nil` leaves a loopback admin port open to anyone on the machine.
    public var token: String?
    /// The actor name the audit log records for calls carrying the token. Default `operator`.
    public var tokenName: String
    /// Append-only JSON Lines audit log; `nil` keeps no audit log.
    public var auditLog: String?
    /// File holding the operator's routes; `nil` keeps changes in memory only.
    public var stateFile: String?
    /// Largest request body accepted, in bytes. Default 1 MiB.
    public var maxBodyBytes: Int
    /// Seconds a connection may go without a complete request head or body part, or stay idle between
    /// requests, before it is closed: half-sent request headers cannot hold a connection longer. Default 10.
    public var idleTimeoutSeconds: Double
    /// Whether a change of the `--config` file reloads the routes (checked every second). Default false.
    public var watchConfig: Bool

    /// The defaults.
    public init(
        listen: String = "127.0.0.1:8002",
        token: String? = nil,
        tokenName: String = "operator",
        auditLog: String? = nil,
        stateFile: String? = nil,
        maxBodyBytes: Int = 1 << 20,
        watchConfig: Bool = false,
        idleTimeoutSeconds: Double = 10
    ) {
        self.listen = listen
        self.token = token
        self.tokenName = tokenName
        self.auditLog = auditLog
        self.stateFile = stateFile
        self.maxBodyBytes = maxBodyBytes
        self.watchConfig = watchConfig
        self.idleTimeoutSeconds = idleTimeoutSeconds
    }

    enum CodingKeys: String, CodingKey {
        case listen, token
        case tokenName = "token_name"
        case auditLog = "audit_log"
        case stateFile = "state_file"
        case maxBodyBytes = "max_body_bytes"
        case watchConfig = "watch_config"
        case idleTimeoutSeconds = "idle_timeout_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let d = AdminConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? d.listen
        token = try c.decodeIfPresent(String.self, forKey: .token)
        tokenName = try c.decodeIfPresent(String.self, forKey: .tokenName) ?? d.tokenName
        auditLog = try c.decodeIfPresent(String.self, forKey: .auditLog)
        stateFile = try c.decodeIfPresent(String.self, forKey: .stateFile)
        maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? d.maxBodyBytes
        watchConfig = try c.decodeIfPresent(Bool.self, forKey: .watchConfig) ?? d.watchConfig
        idleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds) ?? d.idleTimeoutSeconds
    }

    /// Whether `listen` binds a loopback address only.
    public var isLoopback: Bool {
        guard let address = try? HostAndPort(parsing: listen) else { return false }
        return address.host == "localhost" || address.host == "::1" || address.host.hasPrefix("127.")
    }

    /// Every problem of these settings, each prefixed with `admin.`; a non-loopback listener without a
    /// token is one of them.
    public func validate() -> [String] {
        var problems: [String] = []
        if (try? HostAndPort(parsing: listen)) == nil {
            problems.append("admin.listen: expected HOST:PORT (e.g. 127.0.0.1:8002), got '\(listen)'")
        } else if !isLoopback && (token ?? "").isEmpty {
            problems.append(
                "admin.listen: '\(listen)' is reachable beyond loopback; set admin.token or SWITCHYARD_ADMIN_TOKEN"
            )
        }
        if token?.isEmpty == true { problems.append("admin.token: expected a non-empty token, got ''") }
        if tokenName.isEmpty { problems.append("admin.token_name: expected a name, got ''") }
        if auditLog?.isEmpty == true { problems.append("admin.audit_log: expected a file path, got ''") }
        if stateFile?.isEmpty == true { problems.append("admin.state_file: expected a file path, got ''") }
        if maxBodyBytes < 1024 { problems.append("admin.max_body_bytes: expected at least 1024, got \(maxBodyBytes)") }
        if !(idleTimeoutSeconds > 0 && idleTimeoutSeconds <= 3600) {
            problems.append(
                "admin.idle_timeout_seconds: expected more than 0 and at most 3600, got \(idleTimeoutSeconds)"
            )
        }
        return problems
    }
}

/// The part of switchyard.yaml the admin API reads (`admin:`); the rest of the file is `ServerConfiguration`.
@MemberwiseInit
public struct AdminSection: Sendable, Codable {
    /// The `admin:` settings, defaults when absent.
    public var admin: AdminConfiguration = AdminConfiguration()

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        admin = try c.decodeIfPresent(AdminConfiguration.self, forKey: .admin) ?? AdminConfiguration()
    }
}
