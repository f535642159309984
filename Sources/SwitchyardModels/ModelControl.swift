// What the inference protocol's model-control RPCs (Triton's RepositoryModelLoad/Unload) need from the admin
// plane: its authorization policy and its audited load and unload. The admin plane implements it, so that a
// model loaded over gRPC is checked, audited and logged exactly like one loaded through the admin API.

public import SwitchyardCore

/// Whether a caller may change which models are loaded.
public enum ChangeAuthorization: Sendable, Hashable {
    /// Allowed; `actor` is what the audit log records.
    case allowed(actor: String)
    /// Refused for want of valid credentials (a missing or wrong token), with what to send instead.
    case unauthenticated(String)
    /// Refused whatever the caller sends (no token is configured and the caller is not on this machine).
    case permissionDenied(String)
}

/// Loads and unloads model versions on behalf of a remote caller, with the admin plane's policy and audit.
public protocol ModelControl: Sendable {
    /// Decides whether a caller may load or unload models.
    /// - Parameters:
    ///   - authorization: the caller's `authorization` value (`Bearer <token>`), if it sent one.
    ///   - peerIsLoopback: whether the caller connected from this machine.
    func authorizeChange(authorization: String?, peerIsLoopback: Bool) -> ChangeAuthorization

    /// Loads `version` of `model` from the repository, audited as `model.load` by `actor`.
    /// - Throws: the registry's load errors (`notFound`, `failedPrecondition` when already loaded, …).
    func loadVersion(model: String, version: String, actor: String, reason: String?) throws(SwitchyardError)

    /// Takes `version` of `model` out of service, audited as `model.unload` by `actor`; returns once the registry
    /// has drained it (the calls holding it finished) and stopped its pool, or once draining has outlasted the
    /// registry's bound (`stillDraining`: the version is out of service regardless, and its pool stops later).
    /// - Throws: `notFound` for an unknown model or version; `failedPrecondition` when a route uses it.
    @discardableResult
    func unloadVersion(
        model: String,
        version: String,
        actor: String,
        reason: String?
    ) async throws(SwitchyardError) -> RetirementOutcome
}
