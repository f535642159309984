// The gateway's configuration file (`switchyard.yaml`). CLI flags override the same fields.

/// Top-level configuration of a Switchyard process.
@MemberwiseInit
public struct ServerConfiguration: Sendable, Hashable, Codable {
    /// The gRPC listener. Default `127.0.0.1:8001`.
    public var listen: String = "127.0.0.1:8001"
    /// The v2 REST (HTTP/1.1 + JSON) listener, on the same event loops as gRPC. Default `127.0.0.1:8000` (Triton's
    /// HTTP port, where `perf_analyzer` and tritonclient.http look); `""` turns it off.
    public var restListen: String = "127.0.0.1:8000"
    /// Event-loop threads of the front end. Default 1 (numeric work runs on the pools' own threads).
    public var threads: Int = 1
    /// Path of the model repository. Default `models`.
    public var modelRepository: String = "models"
    /// TLS settings; `nil` serves h2c (HTTP/2 over cleartext with prior knowledge).
    public var tls: TLSSettings?
    /// Per-connection and per-stream limits.
    public var limits: Limits = Limits()
    /// Grace period in seconds for in-flight calls when draining on SIGTERM/SIGINT. Default 30.
    public var drainSeconds: Double = 30
    /// Traffic policies per model (`routes:`); models without a route serve their default version.
    public var routes: [RouteConfiguration] = []
    /// The comparison sink for shadow traffic (`sink:`).
    public var sink: SinkConfiguration = SinkConfiguration()
    /// CPUs the event loops run on, as a list in `taskset -c` notation (`0`, `0-1`); `nil` (the default):
    /// any. With a model's `worker_cpus` on other CPUs, the loops and the workers stop taking turns on a core.
    public var ioCPUs: String?
    /// Fleet mode (`cluster:`): routes shared through etcd with the other replicas; `nil` (the default): this
    /// replica is on its own.
    public var cluster: ClusterConfiguration?
    /// Tenants and their limits (`tenants:`); `nil`: every call is admitted as one tenant.
    public var tenants: TenantsConfiguration?
    /// Distributed tracing (`tracing:`): W3C trace context in, OTLP spans out; `nil` (the default): off.
    public var tracing: TracingConfiguration?

    /// TLS settings.
    @MemberwiseInit
    public struct TLSSettings: Sendable, Hashable, Codable {
        /// PEM certificate chain.
        public var certificate: String
        /// PEM private key.
        public var key: String
        /// PEM CA bundle; when set, clients must present a certificate signed by it.
        public var clientCA: String?

        enum CodingKeys: String, CodingKey {
            case certificate = "cert"
            case key
            case clientCA = "client_ca"
        }
    }

    /// Resource limits of the front end, with safe defaults.
    @MemberwiseInit
    public struct Limits: Sendable, Hashable, Codable {
        /// Largest request message in bytes (after decompression). Default 64 MiB.
        public var maxRequestBytes: Int = 64 << 20
        /// SETTINGS_MAX_CONCURRENT_STREAMS per connection. Default 256.
        public var maxConcurrentStreams: Int = 256
        /// SETTINGS_MAX_HEADER_LIST_SIZE in bytes. Default 16 KiB.
        public var maxHeaderListBytes: Int = 16 << 10
        /// Response bytes buffered per connection for a client that stops reading before the connection
        /// stops producing. Default 16 MiB.
        public var maxOutputBufferBytes: Int = 16 << 20
        /// Most connections open at once, across loops. Default 10 000.
        public var maxConnections: Int = 10_000
        /// Most connections open at once from one client IP address, across loops; 0 turns the limit off.
        /// Connections past it are accepted and closed at once (counted as rejected). Default 0 (off).
        public var maxConnectionsPerAddress: Int = 0
        /// RST_STREAM frames a connection may send in a burst (token-bucket size; rapid reset, CVE-2023-44487).
        /// Server-sent stream errors count too. Past the budget: GOAWAY ENHANCE_YOUR_CALM. Default 1000.
        public var maxStreamResetBurst: Int = 1000
        /// Rate at which the reset budget refills, per second. Default 200.
        public var maxStreamResetsPerSecond: Int = 200
        /// PING, SETTINGS and PRIORITY frames (and empty DATA frames) a connection may send in a burst; each
        /// costs work and, for PING and SETTINGS, an acknowledgement. Past it: GOAWAY ENHANCE_YOUR_CALM.
        /// Default 1000.
        public var maxControlFrameBurst: Int = 1000
        /// Rate at which the control-frame budget refills, per second. Default 200.
        public var maxControlFramesPerSecond: Int = 200
        /// Seconds a new connection has to complete the TLS handshake and the HTTP/2 preface (the client's
        /// magic and first SETTINGS) before it is closed (slowloris). Default 10.
        public var handshakeTimeoutSeconds: Double = 10
        /// Seconds a connection may stay open without any stream before it gets GOAWAY NO_ERROR and is
        /// closed; 0 keeps idle connections forever. Default 300.
        public var idleTimeoutSeconds: Double = 300
        /// Seconds a request header block (HEADERS and its CONTINUATION frames) may take to arrive whole once its
        /// first frame began; a connection whose block is still incomplete then gets GOAWAY NO_ERROR and is
        /// closed (half-sent headers would otherwise hold it until the idle timeout). Default 10.
        public var headerTimeoutSeconds: Double = 10
        /// Seconds a connection may stay over `maxOutputBufferBytes` (a client that stops reading or stops
        /// granting flow-control window) before it gets GOAWAY ENHANCE_YOUR_CALM and is closed. Default 10.
        public var writeStallTimeoutSeconds: Double = 10
        /// Request bytes the whole front end may hold in partly received messages (a message that spans
        /// DATA frames reserves its declared length when it starts). A message that would exceed it fails
        /// with RESOURCE_EXHAUSTED. Default 1 GiB.
        public var maxBufferedRequestBytes: Int = 1 << 30
        /// Bytes per second that compressed request messages (gzip, deflate) may inflate to, across the whole
        /// server; decompression runs on a helper thread, and past this budget messages are refused with
        /// RESOURCE_EXHAUSTED until it refills. Default 512 MiB.
        public var maxInflatedBytesPerSecond: Int = 512 << 20
        /// The same budget for one connection. Default 128 MiB.
        public var maxInflatedBytesPerSecondPerConnection: Int = 128 << 20

        /// Every problem with these limits, each prefixed with its key path (`limits.…`).
        public func validate() -> [String] {
            var problems: [String] = []
            if maxRequestBytes < 1024 || maxRequestBytes > Int(Int32.max) {
                problems.append("limits.max_request_bytes: expected 1024…2147483647, got \(maxRequestBytes)")
            }
            if maxConcurrentStreams < 1 {
                problems.append("limits.max_concurrent_streams: expected at least 1, got \(maxConcurrentStreams)")
            }
            if maxHeaderListBytes < 1024 {
                problems.append("limits.max_header_list_bytes: expected at least 1024, got \(maxHeaderListBytes)")
            }
            if maxOutputBufferBytes < 65_536 {
                problems.append(
                    "limits.max_output_buffer_bytes: expected at least 65536, got \(maxOutputBufferBytes)"
                )
            }
            if maxConnections < 1 {
                problems.append("limits.max_connections: expected at least 1, got \(maxConnections)")
            }
            if maxConnectionsPerAddress < 0 || maxConnectionsPerAddress > maxConnections {
                problems.append(
                    "limits.max_connections_per_address: expected 0 (off) … max_connections (\(maxConnections)), got \(maxConnectionsPerAddress)"
                )
            }
            let budgets: [(String, Int)] = [
                ("max_stream_reset_burst", maxStreamResetBurst),
                ("max_stream_resets_per_second", maxStreamResetsPerSecond),
                ("max_control_frame_burst", maxControlFrameBurst),
                ("max_control_frames_per_second", maxControlFramesPerSecond),
            ]
            for (key, value) in budgets where value < 1 || value > 1_000_000 {
                problems.append("limits.\(key): expected 1…1000000, got \(value)")
            }
            if !(handshakeTimeoutSeconds > 0 && handshakeTimeoutSeconds <= 3600) {
                problems.append(
                    "limits.handshake_timeout_seconds: expected more than 0 and at most 3600, got \(handshakeTimeoutSeconds)"
                )
            }
            if !(idleTimeoutSeconds >= 0 && idleTimeoutSeconds <= 86_400) {
                problems.append(
                    "limits.idle_timeout_seconds: expected 0 (never) … 86400, got \(idleTimeoutSeconds)"
                )
            }
            if !(headerTimeoutSeconds > 0 && headerTimeoutSeconds <= 3600) {
                problems.append(
                    "limits.header_timeout_seconds: expected more than 0 and at most 3600, got \(headerTimeoutSeconds)"
                )
            }
            if !(writeStallTimeoutSeconds > 0 && writeStallTimeoutSeconds <= 3600) {
                problems.append(
                    "limits.write_stall_timeout_seconds: expected more than 0 and at most 3600, got \(writeStallTimeoutSeconds)"
                )
            }
            if maxBufferedRequestBytes < maxRequestBytes {
                problems.append(
                    "limits.max_buffered_request_bytes: expected at least max_request_bytes (\(maxRequestBytes)), got \(maxBufferedRequestBytes)"
                )
            }
            let inflation: [(String, Int)] = [
                ("max_inflated_bytes_per_second", maxInflatedBytesPerSecond),
                ("max_inflated_bytes_per_second_per_connection", maxInflatedBytesPerSecondPerConnection),
            ]
            for (key, value) in inflation where value < 65_536 || value > Int(Int32.max) {
                problems.append("limits.\(key): expected 65536…2147483647, got \(value)")
            }
            return problems
        }

        /// One line with every limit under its configuration key, for the start-up log.
        public var summary: String {
            "max_request_bytes=\(maxRequestBytes) max_concurrent_streams=\(maxConcurrentStreams) "
                + "max_header_list_bytes=\(maxHeaderListBytes) max_output_buffer_bytes=\(maxOutputBufferBytes) "
                + "max_connections=\(maxConnections) max_connections_per_address=\(maxConnectionsPerAddress) "
                + "max_stream_reset_burst=\(maxStreamResetBurst) "
                + "max_stream_resets_per_second=\(maxStreamResetsPerSecond) max_control_frame_burst=\(maxControlFrameBurst) "
                + "max_control_frames_per_second=\(maxControlFramesPerSecond) "
                + "handshake_timeout_seconds=\(handshakeTimeoutSeconds) idle_timeout_seconds=\(idleTimeoutSeconds) "
                + "header_timeout_seconds=\(headerTimeoutSeconds) "
                + "write_stall_timeout_seconds=\(writeStallTimeoutSeconds) max_buffered_request_bytes=\(maxBufferedRequestBytes) "
                + "max_inflated_bytes_per_second=\(maxInflatedBytesPerSecond) "
                + "max_inflated_bytes_per_second_per_connection=\(maxInflatedBytesPerSecondPerConnection)"
        }

        enum CodingKeys: String, CodingKey {
            case maxRequestBytes = "max_request_bytes"
            case maxConcurrentStreams = "max_concurrent_streams"
            case maxHeaderListBytes = "max_header_list_bytes"
            case maxOutputBufferBytes = "max_output_buffer_bytes"
            case maxConnections = "max_connections"
            case maxConnectionsPerAddress = "max_connections_per_address"
            case maxStreamResetBurst = "max_stream_reset_burst"
            case maxStreamResetsPerSecond = "max_stream_resets_per_second"
            case maxControlFrameBurst = "max_control_frame_burst"
            case maxControlFramesPerSecond = "max_control_frames_per_second"
            case handshakeTimeoutSeconds = "handshake_timeout_seconds"
            case idleTimeoutSeconds = "idle_timeout_seconds"
            case headerTimeoutSeconds = "header_timeout_seconds"
            case writeStallTimeoutSeconds = "write_stall_timeout_seconds"
            case maxBufferedRequestBytes = "max_buffered_request_bytes"
            case maxInflatedBytesPerSecond = "max_inflated_bytes_per_second"
            case maxInflatedBytesPerSecondPerConnection = "max_inflated_bytes_per_second_per_connection"
        }

        public init(from decoder: any Decoder) throws {
            let d = Limits()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            maxRequestBytes = try c.decodeIfPresent(Int.self, forKey: .maxRequestBytes) ?? d.maxRequestBytes
            maxConcurrentStreams =
                try c.decodeIfPresent(Int.self, forKey: .maxConcurrentStreams) ?? d.maxConcurrentStreams
            maxHeaderListBytes = try c.decodeIfPresent(Int.self, forKey: .maxHeaderListBytes) ?? d.maxHeaderListBytes
            maxOutputBufferBytes =
                try c.decodeIfPresent(Int.self, forKey: .maxOutputBufferBytes) ?? d.maxOutputBufferBytes
            maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections
            maxConnectionsPerAddress =
                try c.decodeIfPresent(Int.self, forKey: .maxConnectionsPerAddress) ?? d.maxConnectionsPerAddress
            maxStreamResetBurst =
                try c.decodeIfPresent(Int.self, forKey: .maxStreamResetBurst) ?? d.maxStreamResetBurst
            maxStreamResetsPerSecond =
                try c.decodeIfPresent(Int.self, forKey: .maxStreamResetsPerSecond) ?? d.maxStreamResetsPerSecond
            maxControlFrameBurst =
                try c.decodeIfPresent(Int.self, forKey: .maxControlFrameBurst) ?? d.maxControlFrameBurst
            maxControlFramesPerSecond =
                try c.decodeIfPresent(Int.self, forKey: .maxControlFramesPerSecond) ?? d.maxControlFramesPerSecond
            handshakeTimeoutSeconds =
                try c.decodeIfPresent(Double.self, forKey: .handshakeTimeoutSeconds) ?? d.handshakeTimeoutSeconds
            idleTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .idleTimeoutSeconds) ?? d.idleTimeoutSeconds
            headerTimeoutSeconds =
                try c.decodeIfPresent(Double.self, forKey: .headerTimeoutSeconds) ?? d.headerTimeoutSeconds
            writeStallTimeoutSeconds =
                try c.decodeIfPresent(Double.self, forKey: .writeStallTimeoutSeconds) ?? d.writeStallTimeoutSeconds
            maxBufferedRequestBytes =
                try c.decodeIfPresent(Int.self, forKey: .maxBufferedRequestBytes) ?? d.maxBufferedRequestBytes
            maxInflatedBytesPerSecond =
                try c.decodeIfPresent(Int.self, forKey: .maxInflatedBytesPerSecond) ?? d.maxInflatedBytesPerSecond
            maxInflatedBytesPerSecondPerConnection =
                try c.decodeIfPresent(Int.self, forKey: .maxInflatedBytesPerSecondPerConnection)
                ?? d.maxInflatedBytesPerSecondPerConnection
        }
    }

    enum CodingKeys: String, CodingKey {
        case listen, threads, tls, limits, routes, sink, cluster, tenants, tracing
        case modelRepository = "model_repository"
        case drainSeconds = "drain_seconds"
        case restListen = "rest_listen"
        case ioCPUs = "io_cpus"
    }

    public init(from decoder: any Decoder) throws {
        let d = ServerConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        listen = try c.decodeIfPresent(String.self, forKey: .listen) ?? d.listen
        restListen = try c.decodeIfPresent(String.self, forKey: .restListen) ?? d.restListen
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? d.threads
        modelRepository = try c.decodeIfPresent(String.self, forKey: .modelRepository) ?? d.modelRepository
        tls = try c.decodeIfPresent(TLSSettings.self, forKey: .tls)
        limits = try c.decodeIfPresent(Limits.self, forKey: .limits) ?? d.limits
        drainSeconds = try c.decodeIfPresent(Double.self, forKey: .drainSeconds) ?? d.drainSeconds
        routes = try c.decodeIfPresent([RouteConfiguration].self, forKey: .routes) ?? d.routes
        sink = try c.decodeIfPresent(SinkConfiguration.self, forKey: .sink) ?? d.sink
        ioCPUs = try c.decodeCPUListIfPresent(forKey: .ioCPUs)
        cluster = try c.decodeIfPresent(ClusterConfiguration.self, forKey: .cluster)
        tenants = try c.decodeIfPresent(TenantsConfiguration.self, forKey: .tenants)
        tracing = try c.decodeIfPresent(TracingConfiguration.self, forKey: .tracing)
    }

    /// Every problem with this configuration, each prefixed with its key path.
    public func validate() -> [String] {
        var problems: [String] = []
        if (try? HostAndPort(parsing: listen)) == nil {
            problems.append("listen: expected HOST:PORT (e.g. 127.0.0.1:8001), got '\(listen)'")
        }
        if !restListen.isEmpty && (try? HostAndPort(parsing: restListen)) == nil {
            problems.append(
                "rest_listen: expected HOST:PORT (e.g. 127.0.0.1:8000) or \"\" for none, got '\(restListen)'"
            )
        }
        if threads < 1 || threads > 256 { problems.append("threads: expected 1…256, got \(threads)") }
        if modelRepository.isEmpty { problems.append("model_repository: expected a directory path, got ''") }
        if let tls {
            if tls.certificate.isEmpty { problems.append("tls.cert: expected a PEM file path") }
            if tls.key.isEmpty { problems.append("tls.key: expected a PEM file path") }
        }
        problems += limits.validate()
        if !(drainSeconds >= 0) { problems.append("drain_seconds: expected ≥ 0, got \(drainSeconds)") }
        if let ioCPUs, let problem = SystemInfo.cpuListProblem(ioCPUs, key: "io_cpus") { problems.append(problem) }
        var routed: [String: Int] = [:]
        for (index, route) in routes.enumerated() {
            problems += route.validate(path: "routes[\(index)]")
            if let first = routed[route.model] {
                problems.append("routes[\(index)].model: model '\(route.model)' already has a route (routes[\(first)])")
            } else {
                routed[route.model] = index
            }
        }
        problems += sink.validate()
        if let cluster { problems += cluster.validate() }
        if let tenants { problems += tenants.validate(clientCertificatesRequired: tls?.clientCA != nil) }
        if let tracing { problems += tracing.validate() }
        return problems
    }
}

/// A `HOST:PORT` pair; IPv6 hosts in brackets (`[::1]:8001`).
@MemberwiseInit
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    /// Host name or address, without brackets.
    public var host: String
    /// Port, 0…65535 (0 asks the system for a free port).
    public var port: Int

    /// Parses `HOST:PORT`.
    /// - Throws: `SwitchyardError.invalidArgument` naming the text and the expected form.
    public init(parsing text: String) throws {
        let bad = SwitchyardError.invalidArgument("expected HOST:PORT (e.g. 127.0.0.1:8001), got '\(text)'")
        guard let colon = text.lastIndex(of: ":") else { throw bad }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw bad
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
