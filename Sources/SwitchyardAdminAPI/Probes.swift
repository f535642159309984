// Probes: `GET /healthz` and `GET /readyz`.

/// `GET /healthz`: `{"status": "ok"}` while the process serves.
public struct HealthResponse: Sendable, Hashable, Codable {
    /// `ok`.
    public var status: String

    /// Creates the body.
    public init(status: String = "ok") { self.status = status }
}

/// `GET /readyz`: `ready` (200) or `not ready` (503), with the reasons when the caller may see them.
public struct ReadinessResponse: Sendable, Hashable, Codable {
    /// `ready` or `not ready`.
    public var status: String
    /// Why not: failed loads, models without a version, draining. Empty when ready or when the caller may not see.
    public var reasons: [String]

    /// Creates the body.
    public init(status: String, reasons: [String]) {
        self.status = status
        self.reasons = reasons
    }
}
