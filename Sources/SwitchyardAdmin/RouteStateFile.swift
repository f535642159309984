// The operator's routes on disk: written whole to a temporary file, fsync'd, renamed over the state file
// and the directory fsync'd, so that a crash leaves either the old routes or the new ones.

import Foundation
public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// The persisted routing table.
@MemberwiseInit
public struct RouteState: Sendable, Hashable, Codable {
    /// Every route in force.
    public var routes: [RouteConfiguration]
    /// The generation when written (informational: generations restart at each start).
    public var generation: UInt64
    /// ISO 8601 UTC time of the write.
    public var savedAt: String

    enum CodingKeys: String, CodingKey {
        case routes, generation
        case savedAt = "saved_at"
    }
}

/// Reads and atomically replaces the state file.
@MemberwiseInit
public struct RouteStateFile: Sendable {
    /// The file's path.
    public let path: String

    /// The persisted state, or `nil` when the file does not exist.
    /// - Throws: `failedPrecondition` when the file exists but cannot be read or parsed.
    public func load() throws(SwitchyardError) -> RouteState? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SwitchyardError(.failedPrecondition, "admin.state_file \(path): unreadable")
        }
        do {
            return try JSONDecoder().decode(RouteState.self, from: data)
        } catch {
            throw SwitchyardError(.failedPrecondition, "admin.state_file \(path): \(describe(error))")
        }
    }

    /// Writes `state` to `path.tmp`, fsyncs it, renames it over `path` and fsyncs the directory.
    /// - Throws: `internal` naming the step that failed; the previous file is then untouched.
    public func save(_ state: RouteState) throws(SwitchyardError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(state) else { throw .internal("route state could not be encoded") }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw .internal("state file \(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { writeFully(fd, $0) == 0 }
        let synced = written && fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        guard synced else {
            unlink(temporary)
            throw .internal("state file \(temporary): \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .internal("state file \(path): rename failed: \(reason)")
        }
        // The rename itself is durable only once the directory entry is.
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

/// A decoding error as `key.path: what was wrong`.
func describe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ keys: [any CodingKey]) -> String {
        let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return text.hasPrefix(".") ? String(text.dropFirst()) : text.isEmpty ? "body" : text
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "\(path(context.codingPath)): expected \(type), \(context.debugDescription)"
    case .valueNotFound(let type, let context):
        return "\(path(context.codingPath)): expected \(type), got null"
    case .keyNotFound(let key, let context):
        return "\(path(context.codingPath + [key])): required field missing"
    case .dataCorrupted(let context):
        let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
        return "\(path(context.codingPath)): \(underlying ?? context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}
