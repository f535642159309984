// Probes: `GET /healthz` and `GET /readyz`.

import SwitchyardCore

/// `GET /healthz`: `{"status": "ok"}` while the process serves.
@MemberwiseInit
public struct HealthResponse: Sendable, Hashable, Codable {
    /// `ok`.
    public var status: String = "ok"
}

/// `GET /readyz`: `ready` (200) or `not ready` (503), with the reasons when the caller may see them.
@MemberwiseInit
public struct ReadinessResponse: Sendable, Hashable, Codable {
    /// `ready` or `not ready`.
    public var status: String
    /// Why not: failed loads, models without a version, draining. Empty when ready or when the caller may not see.
    public var reasons: [String]
}
