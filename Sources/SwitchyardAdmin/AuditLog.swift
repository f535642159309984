// The admin audit log: one JSON object per change, appended and fsync'd before the change takes effect,
// so that every route in force has its entry on disk. An admin request carrying a W3C `traceparent` records its
// trace id with the change (`trace_id`), set for the request's task by `AuditTraceMiddleware`.

import Foundation
import HTTPTypes
public import Hummingbird
public import SwitchyardCore
import SwitchyardMonitor
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One audited change.
@MemberwiseInit
public struct AuditEntry: Sendable, Hashable, Codable {
    /// ISO 8601 UTC time of the change.
    public var time: String
    /// Who made it: the token's name, `anonymous`, or `sighup` for a configuration reload.
    public var actor: String
    /// What was done: `route.put`, `route.delete`, `route.weights`, `route.shadow`, `route.bandit`,
    /// `routes.reload`, `rollout.start|advance|complete|rollback|pause|resume|abort`, `model.load|unload`.
    public var action: String
    /// The model changed (`nil` for whole-table actions).
    public var model: String?
    /// The routes before (one element for per-model actions, empty when there was none).
    public var old: [RouteConfiguration]
    /// The routes after.
    public var new: [RouteConfiguration]
    /// Why, as the operator said (`X-Switchyard-Reason` header or `reason` field).
    public var reason: String?
    /// The routing table generation the change published (for model changes, the one in force).
    public var generation: UInt64
    /// The model version loaded or unloaded (model changes only).
    public var version: String?
    /// The W3C trace id of the admin request that made the change (its `traceparent`), if it carried one; by
    /// default the trace id of the request being handled.
    public var traceID: String? = AuditTrace.traceID

    enum CodingKeys: String, CodingKey {
        case time, actor, action, model, old, new, reason, generation, version
        case traceID = "trace_id"
    }
}

/// The trace id of the admin request being handled, for the audit entries it makes.
public enum AuditTrace {
    /// The 32-hex-digit trace id of the current request's valid `traceparent`; `nil` outside a request or
    /// without one (a malformed header records none).
    @TaskLocal public static var traceID: String?
}

/// Binds the request's `traceparent` trace id to `AuditTrace.traceID` while its handler runs.
public struct AuditTraceMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The middleware.
    public init() {}

    /// Runs `next` with the request's trace id bound, when it has a valid `traceparent`.
    public func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard let name = HTTPField.Name("traceparent"), let header = request.headers[name] else {
            return try await next(request, context)
        }
        let traceID = TraceParent.traceID(header)
        guard !traceID.isEmpty else { return try await next(request, context) }
        return try await AuditTrace.$traceID.withValue(traceID) { try await next(request, context) }
    }
}

/// An append-only JSON Lines file of `AuditEntry`, each line fsync'd before `append` returns.
public final class AuditLog: Sendable {
    /// The file's path.
    public let path: String
    private let descriptor: Mutex<Int32>

    /// Opens (creating if needed) the log for appending.
    /// - Throws: `failedPrecondition` naming the path and the system error.
    public init(path: String) throws(SwitchyardError) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw SwitchyardError(.failedPrecondition, "admin.audit_log \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        descriptor = Mutex(fd)
    }

    deinit { descriptor.withLock { _ = close($0) } }

    /// Appends one entry and fsyncs it. A write that fails part-way (a full disk) is cut off again, so the log
    /// only ever holds whole entries.
    /// - Returns: the log's length before the entry, for `retract(to:)`.
    /// - Throws: `internal` when the write or fsync fails.
    @discardableResult
    public func append(_ entry: AuditEntry) throws(SwitchyardError) -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(entry) else { throw .internal("audit entry could not be encoded") }
        line.append(0x0A)
        var start: Int64 = 0
        let failure: String? = descriptor.withLock { fd in
            start = Int64(lseek(fd, 0, SEEK_END))
            let ok = line.withUnsafeBytes { writeFully(fd, $0) == 0 }
            guard ok, fsync(fd) == 0 else {
                let reason = String(cString: strerror(errno))
                if start >= 0 { _ = ftruncate(fd, off_t(start)) }
                return reason
            }
            return nil
        }
        if let failure { throw .internal("audit log \(path): \(failure)") }
        return start
    }

    /// Removes the entries from `length` on: the last entry, when the change it records could not be made.
    public func retract(to length: Int64) {
        descriptor.withLock { fd in
            _ = ftruncate(fd, off_t(length))
            _ = fsync(fd)
        }
    }
}
