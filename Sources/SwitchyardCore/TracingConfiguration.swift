// The `tracing:` section of switchyard.yaml: W3C trace context in, OpenTelemetry spans out over OTLP/HTTP.

/// Distributed tracing (`tracing:`). Without the section, or with `otlp_endpoint` empty, nothing is traced and no
/// call pays for tracing.
@MemberwiseInit
public struct TracingConfiguration: Sendable, Hashable, Codable {
    /// Where spans go: an OTLP/HTTP (protobuf) traces URL, used as given (e.g. `http://collector:4318/v1/traces`).
    /// `""` (the default) turns tracing off.
    public var otlpEndpoint: String = ""
    /// The fraction of calls without a caller's trace decision that start a trace, 0…1. A call whose
    /// `traceparent` carries a decision follows it (parent-based sampling). Default 0.01.
    public var sampleRatio: Double = 0.01
    /// The `service.name` resource attribute of every span. Default `switchyard`.
    public var serviceName: String = "switchyard"
    /// Finished calls waiting for the tracing thread; past it, calls' spans are dropped and counted. Default 4096.
    public var queueCapacity: Int = 4096
    /// Spans swift-otel's batch processor holds before export; past it, spans are dropped and counted. Default 8192.
    public var maxQueuedSpans: Int = 8192
    /// Milliseconds one export may take before it is abandoned (its spans counted as dropped). Default 5000.
    public var exportTimeoutMilliseconds: Int = 5000
    /// Milliseconds between exports. Default 1000.
    public var exportIntervalMilliseconds: Int = 1000

    /// Whether calls are traced at all.
    public var isEnabled: Bool { !otlpEndpoint.isEmpty }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case otlpEndpoint = "otlp_endpoint"
        case sampleRatio = "sample_ratio"
        case serviceName = "service_name"
        case queueCapacity = "queue_capacity"
        case maxQueuedSpans = "max_queued_spans"
        case exportTimeoutMilliseconds = "export_timeout_ms"
        case exportIntervalMilliseconds = "export_interval_ms"
    }

    public init(from decoder: any Decoder) throws {
        let d = TracingConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let known = Set(CodingKeys.allCases.map(\.stringValue))
        let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter {
            !known.contains($0)
        }
        if let key = unknown.sorted().first {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription:
                        "tracing.\(key): unknown key; expected one of \(CodingKeys.allCases.map(\.stringValue).joined(separator: ", "))"
                )
            )
        }
        otlpEndpoint = try c.decodeIfPresent(String.self, forKey: .otlpEndpoint) ?? d.otlpEndpoint
        sampleRatio = try c.decodeIfPresent(Double.self, forKey: .sampleRatio) ?? d.sampleRatio
        serviceName = try c.decodeIfPresent(String.self, forKey: .serviceName) ?? d.serviceName
        queueCapacity = try c.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? d.queueCapacity
        maxQueuedSpans = try c.decodeIfPresent(Int.self, forKey: .maxQueuedSpans) ?? d.maxQueuedSpans
        exportTimeoutMilliseconds =
            try c.decodeIfPresent(Int.self, forKey: .exportTimeoutMilliseconds) ?? d.exportTimeoutMilliseconds
        exportIntervalMilliseconds =
            try c.decodeIfPresent(Int.self, forKey: .exportIntervalMilliseconds) ?? d.exportIntervalMilliseconds
    }

    /// Every problem with the section, each prefixed with its key path under `path`.
    public func validate(path: String = "tracing") -> [String] {
        var problems: [String] = []
        if !otlpEndpoint.isEmpty {
            let lower = otlpEndpoint.lowercased()
            let scheme = lower.hasPrefix("http://") ? 7 : lower.hasPrefix("https://") ? 8 : 0
            if scheme == 0 || otlpEndpoint.count <= scheme || otlpEndpoint.contains(where: \.isWhitespace) {
                problems.append(
                    "\(path).otlp_endpoint: expected an http:// or https:// OTLP/HTTP traces URL "
                        + "(e.g. http://collector:4318/v1/traces) or \"\" for off, got '\(otlpEndpoint)'"
                )
            }
        }
        if !(sampleRatio >= 0 && sampleRatio <= 1) {
            problems.append("\(path).sample_ratio: expected 0…1, got \(sampleRatio)")
        }
        if serviceName.isEmpty { problems.append("\(path).service_name: expected a name, got ''") }
        if queueCapacity < 1 || queueCapacity > 1 << 20 {
            problems.append("\(path).queue_capacity: expected 1…1048576, got \(queueCapacity)")
        }
        if maxQueuedSpans < 1 || maxQueuedSpans > 1 << 22 {
            problems.append("\(path).max_queued_spans: expected 1…4194304, got \(maxQueuedSpans)")
        }
        if exportTimeoutMilliseconds < 1 || exportTimeoutMilliseconds > 600_000 {
            problems.append("\(path).export_timeout_ms: expected 1…600000, got \(exportTimeoutMilliseconds)")
        }
        if exportIntervalMilliseconds < 1 || exportIntervalMilliseconds > 600_000 {
            problems.append("\(path).export_interval_ms: expected 1…600000, got \(exportIntervalMilliseconds)")
        }
        return problems
    }
}

/// Any key of a mapping, for finding the keys a section does not know.
@MemberwiseInit(.internal)
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}
