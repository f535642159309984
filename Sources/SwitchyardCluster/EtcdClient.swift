// A small etcd v3 client over etcd's JSON gateway (`/v3/kv/…`, `/v3/watch`, `/v3/lease/…`, served by etcd 3.4 and
// later on its client port), on AsyncHTTPClient. Control plane only: nothing on the request path calls it.

import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
public import SwitchyardCore
import Synchronization

/// One key and its value as etcd stores it.
@MemberwiseInit
public struct EtcdKeyValue: Sendable, Hashable {
    /// The key (UTF-8).
    public var key: String
    /// The value's bytes.
    public var value: [UInt8]
    /// The revision of the transaction that created the key (0: absent).
    public var createRevision: Int64 = 0
    /// The revision of the key's last change.
    public var modRevision: Int64 = 0
    /// How many times the key was written since it was created.
    public var version: Int64 = 0
    /// The lease the key is attached to (0: none).
    public var lease: Int64 = 0
}

/// The answer to a range read: the keys found and the store's revision when they were read.
public struct EtcdRange: Sendable, Hashable {
    /// The store's revision at the read.
    public var revision: Int64
    /// The keys found, in key order.
    public var kvs: [EtcdKeyValue]
}

/// A condition of a transaction on one key.
public struct EtcdCompare: Sendable, Hashable {
    enum Target: String, Sendable { case mod = "MOD", create = "CREATE", version = "VERSION" }
    let target: Target
    let key: String
    let revision: Int64

    /// The key's last change was at `revision` (0: the key does not exist).
    public static func modRevision(_ key: String, equals revision: Int64) -> EtcdCompare {
        EtcdCompare(target: .mod, key: key, revision: revision)
    }

    /// The key was created at `revision` (0: the key does not exist).
    public static func createRevision(_ key: String, equals revision: Int64) -> EtcdCompare {
        EtcdCompare(target: .create, key: key, revision: revision)
    }
}

/// One operation of a transaction branch.
public enum EtcdOperation: Sendable, Hashable {
    /// Write `value` at `key`, attached to `lease` when it is not 0.
    case put(key: String, value: [UInt8], lease: Int64 = 0)
    /// Delete `key`, or with `prefix` every key that starts with it.
    case delete(key: String, prefix: Bool = false)
    /// Read `key`, or with `prefix` every key that starts with it.
    case range(key: String, prefix: Bool = false)
}

/// The outcome of a transaction.
public struct EtcdTransactionResult: Sendable, Hashable {
    /// Whether every comparison held (the `success` branch ran) or not (`failure` ran).
    public var succeeded: Bool
    /// The store's revision after the transaction (its own revision when it wrote something).
    public var revision: Int64
    /// Per operation of the branch that ran: the keys a `range` read; empty for writes.
    public var ranges: [[EtcdKeyValue]]
}

/// A change seen by a watch.
public struct EtcdEvent: Sendable, Hashable {
    /// Whether the key was written or deleted.
    public enum Kind: Sendable, Hashable {
        /// The key was created or changed.
        case put
        /// The key was deleted (or its lease expired).
        case delete
    }

    /// Put or delete.
    public var kind: Kind
    /// The key after the change (for a delete: its key and the deleting revision).
    public var kv: EtcdKeyValue
}

/// What a watch stream yields.
public enum EtcdWatchUpdate: Sendable, Hashable {
    /// The watch is in place; changes after `revision` will follow.
    case created(revision: Int64)
    /// Changes of one revision (or of several, in order), then the store's revision.
    case events([EtcdEvent], revision: Int64)
    /// The start revision was compacted away: history before `compactRevision` is gone. The stream ends; read the
    /// current state again and watch from its revision.
    case compacted(compactRevision: Int64)
}

/// An etcd v3 client over the JSON gateway.
///
/// Endpoints are tried in order; the first that answers serves until it fails, then the next is tried. Every
/// failure is a `SwitchyardError`: `unavailable` when no endpoint could be reached or etcd refused for want of a
/// leader, `failedPrecondition` for a lease that expired, `internal` for an answer the client cannot read.
public final class EtcdClient: Sendable {
    private let http: HTTPClient
    private let endpoints: [String]
    private let current = Mutex<Int>(0)
    private let requestTimeout: TimeAmount
    private let logger: Logger

    /// Largest unary answer read, in bytes.
    static let maxResponseBytes = 64 << 20

    /// Creates a client; it connects on first use.
    /// - Parameters:
    ///   - settings: endpoints, TLS and the dial timeout (`cluster.etcd`).
    ///   - requestTimeout: how long one unary call may take before the next endpoint is tried. Default 5 s.
    ///   - logger: where endpoint failures are logged.
    /// - Throws: `invalidArgument` when a TLS file cannot be read.
    public init(
        settings: ClusterConfiguration.EtcdSettings,
        requestTimeout: Duration = .seconds(5),
        logger: Logger = Logger(label: "switchyard.etcd")
    ) throws(SwitchyardError) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(settings.dialTimeoutMilliseconds)), read: nil)
        configuration.httpVersion = .http1Only
        if let tls = settings.tls {
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            do {
                if let ca = tls.ca {
                    tlsConfiguration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
                }
                if let cert = tls.cert, let key = tls.key {
                    tlsConfiguration.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                    tlsConfiguration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                }
            } catch {
                throw .invalidArgument("cluster.etcd.tls: cannot read the PEM files (\(error)); expected readable PEM")
            }
            configuration.tlsConfiguration = tlsConfiguration
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        endpoints = settings.endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        let (seconds, attoseconds) = requestTimeout.components
        self.requestTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        self.logger = logger
    }

    /// Closes the client's connections. Call once, when done.
    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: KV

    /// Reads `key`, or with `prefix` every key that starts with it.
    /// - Throws: `SwitchyardError` (see the type).
    public func range(key: String, prefix: Bool = false) async throws(SwitchyardError) -> EtcdRange {
        let request = WireRangeRequest(key: base64(key), range_end: prefix ? prefixEnd(key) : nil)
        let response: WireRangeResponse = try await call("/v3/kv/range", request)
        return EtcdRange(
            revision: response.header?.revision?.value ?? 0,
            kvs: (response.kvs ?? []).map { $0.decoded() }
        )
    }

    /// Writes `value` at `key`, attached to `lease` when it is not 0.
    /// - Returns: the revision of the write.
    @discardableResult
    public func put(key: String, value: [UInt8], lease: Int64 = 0) async throws(SwitchyardError) -> Int64 {
        let request = WirePutRequest(key: base64(key), value: base64(value), lease: lease == 0 ? nil : WireInt(lease))
        let response: WirePutResponse = try await call("/v3/kv/put", request)
        return response.header?.revision?.value ?? 0
    }

    /// Deletes `key`, or with `prefix` every key that starts with it.
    /// - Returns: how many keys were deleted.
    @discardableResult
    public func delete(key: String, prefix: Bool = false) async throws(SwitchyardError) -> Int64 {
        let request = WireDeleteRangeRequest(key: base64(key), range_end: prefix ? prefixEnd(key) : nil)
        let response: WireDeleteRangeResponse = try await call("/v3/kv/deleterange", request)
        return response.deleted?.value ?? 0
    }

    /// Runs `success` if every comparison holds, `failure` otherwise, as one atomic step.
    public func transaction(
        compare: [EtcdCompare],
        success: [EtcdOperation],
        failure: [EtcdOperation] = []
    ) async throws(SwitchyardError) -> EtcdTransactionResult {
        let request = WireTxnRequest(
            compare: compare.map { comparison in
                var wire = WireCompare(target: comparison.target.rawValue, key: base64(comparison.key), result: "EQUAL")
                switch comparison.target {
                case .mod: wire.mod_revision = WireInt(comparison.revision)
                case .create: wire.create_revision = WireInt(comparison.revision)
                case .version: wire.version = WireInt(comparison.revision)
                }
                return wire
            },
            success: success.map(Self.wire),
            failure: failure.map(Self.wire)
        )
        let response: WireTxnResponse = try await call("/v3/kv/txn", request)
        return EtcdTransactionResult(
            succeeded: response.succeeded ?? false,
            revision: response.header?.revision?.value ?? 0,
            ranges: (response.responses ?? []).map { ($0.response_range?.kvs ?? []).map { $0.decoded() } }
        )
    }

    /// Discards the store's history before `revision` (watches from older revisions get `.compacted`).
    public func compact(revision: Int64) async throws(SwitchyardError) {
        let _: WirePutResponse = try await call(
            "/v3/kv/compaction",
            WireCompaction(revision: WireInt(revision), physical: true)
        )
    }

    private static func wire(_ operation: EtcdOperation) -> WireRequestOp {
        switch operation {
        case .put(let key, let value, let lease):
            WireRequestOp(
                request_put: WirePutRequest(
                    key: base64(key),
                    value: base64(value),
                    lease: lease == 0 ? nil : WireInt(lease)
                )
            )
        case .delete(let key, let prefix):
            WireRequestOp(
                request_delete_range: WireDeleteRangeRequest(key: base64(key), range_end: prefix ? prefixEnd(key) : nil)
            )
        case .range(let key, let prefix):
            WireRequestOp(request_range: WireRangeRequest(key: base64(key), range_end: prefix ? prefixEnd(key) : nil))
        }
    }

    // MARK: Leases

    /// Grants a lease of `ttlSeconds`.
    /// - Returns: the lease's ID.
    public func grantLease(ttlSeconds: Int) async throws(SwitchyardError) -> Int64 {
        let response: WireLeaseGrantResponse = try await call(
            "/v3/lease/grant",
            WireLeaseGrantRequest(TTL: WireInt(Int64(ttlSeconds)))
        )
        guard let id = response.ID?.value, id != 0 else {
            throw .init(.unavailable, "etcd granted no lease: \(response.error ?? "no ID in the answer")")
        }
        return id
    }

    /// Renews `lease` once.
    /// - Returns: the lease's TTL in seconds from now.
    /// - Throws: `failedPrecondition` when the lease expired or was revoked (its keys are gone).
    @discardableResult
    public func keepAlive(lease: Int64) async throws(SwitchyardError) -> Int64 {
        let response: WireLeaseKeepAliveResponse = try await call(
            "/v3/lease/keepalive",
            WireLeaseID(ID: WireInt(lease))
        )
        let ttl = response.result?.TTL?.value ?? 0
        guard ttl > 0 else {
            throw .init(.failedPrecondition, "etcd lease \(lease) expired or was revoked; grant a new one")
        }
        return ttl
    }

    /// Renews `lease` every `interval` until the task is cancelled or the lease is lost.
    /// - Throws: `failedPrecondition` when the lease expired; `unavailable` when etcd stayed unreachable past the
    ///   lease's TTL (the lease is then gone too).
    public func keepAliveLoop(lease: Int64, ttlSeconds: Int) async throws(SwitchyardError) {
        let interval = Duration.milliseconds(max(200, ttlSeconds * 1000 / 3))
        var lastRenewal = ContinuousClock.now
        while !Task.isCancelled {
            do {
                try await keepAlive(lease: lease)
                lastRenewal = .now
            } catch  where error.code == .unavailable {
                if ContinuousClock.now - lastRenewal > .seconds(ttlSeconds) { throw error }
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }

    /// Revokes `lease`: its keys are deleted at once.
    public func revoke(lease: Int64) async throws(SwitchyardError) {
        let _: WirePutResponse = try await call("/v3/lease/revoke", WireLeaseID(ID: WireInt(lease)))
    }

    // MARK: Watch

    /// Watches `key` (or with `prefix` every key under it) from `startRevision` (0: from now).
    ///
    /// The stream yields `.created` once, then `.events` in revision order. It ends after `.compacted` (history
    /// before the start revision is gone: read again, then watch from the read's revision + 1), and throws
    /// `unavailable` when the connection is lost (watch again from the last revision seen + 1). Cancelling the
    /// consuming task, or dropping the stream, closes the watch.
    public func watch(
        key: String,
        prefix: Bool = false,
        startRevision: Int64 = 0
    ) -> AsyncThrowingStream<EtcdWatchUpdate, any Error> {
        let request = WireWatchRequest(
            create_request: WireWatchCreate(
                key: base64(key),
                range_end: prefix ? prefixEnd(key) : nil,
                start_revision: startRevision > 0 ? WireInt(startRevision) : nil
            )
        )
        let (stream, continuation) = AsyncThrowingStream<EtcdWatchUpdate, any Error>.makeStream()
        let task = Task { [self] in
            do {
                try await streamWatch(request, into: continuation)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func streamWatch(
        _ request: WireWatchRequest,
        into continuation: AsyncThrowingStream<EtcdWatchUpdate, any Error>.Continuation
    ) async throws(SwitchyardError) {
        let body = try encode(request)
        let endpoint = endpoints[current.withLock { $0 }]
        var httpRequest = HTTPClientRequest(url: endpoint + "/v3/watch")
        httpRequest.method = .POST
        httpRequest.headers.add(name: "Content-Type", value: "application/json")
        httpRequest.body = .bytes(ByteBuffer(bytes: body))
        var pending: [UInt8] = []
        do {
            let response = try await http.execute(httpRequest, deadline: .distantFuture, logger: logger)
            guard response.status == .ok else {
                let text = String(buffer: try await response.body.collect(upTo: 1 << 16))
                throw unavailable(endpoint, "watch answered HTTP \(response.status.code): \(text)")
            }
            for try await chunk in response.body {
                pending += chunk.readableBytesView
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    guard !line.allSatisfy({ $0 == 32 || $0 == 13 }) else { continue }
                    let envelope = try JSONDecoder().decode(WireWatchEnvelope.self, from: Data(line))
                    if let error = envelope.error {
                        throw unavailable(endpoint, "watch failed: \(error.message ?? error.error ?? "unknown error")")
                    }
                    guard let result = envelope.result else { continue }
                    let revision = result.header?.revision?.value ?? 0
                    if let compacted = result.compact_revision?.value, compacted > 0 {
                        continuation.yield(.compacted(compactRevision: compacted))
                        return
                    }
                    if result.canceled == true {
                        throw unavailable(
                            endpoint,
                            "etcd cancelled the watch: \(result.cancel_reason ?? "no reason given")"
                        )
                    }
                    if result.created == true { continuation.yield(.created(revision: revision)) }
                    let events = (result.events ?? []).map { event in
                        EtcdEvent(
                            kind: event.type == "DELETE" ? .delete : .put,
                            kv: (event.kv ?? WireKeyValue()).decoded()
                        )
                    }
                    if !events.isEmpty { continuation.yield(.events(events, revision: revision)) }
                }
            }
            throw unavailable(endpoint, "the watch stream ended")
        } catch let error as SwitchyardError {
            throw error
        } catch is CancellationError {
            return
        } catch {
            if Task.isCancelled { return }
            failed(endpoint)
            throw unavailable(endpoint, "watch: \(error)")
        }
    }

    // MARK: Transport

    /// POSTs `request` as JSON to `path`, trying each endpoint in turn from the current one, and decodes the answer.
    private func call<Request: Encodable, Response: Decodable>(
        _ path: String,
        _ request: Request
    ) async throws(SwitchyardError) -> Response {
        let body = try encode(request)
        let start = current.withLock { $0 }
        var problems: [String] = []
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            let endpoint = endpoints[index]
            var httpRequest = HTTPClientRequest(url: endpoint + path)
            httpRequest.method = .POST
            httpRequest.headers.add(name: "Content-Type", value: "application/json")
            httpRequest.body = .bytes(ByteBuffer(bytes: body))
            let status: UInt
            let bytes: ByteBuffer
            do {
                let response = try await http.execute(httpRequest, timeout: requestTimeout, logger: logger)
                status = response.status.code
                bytes = try await response.body.collect(upTo: Self.maxResponseBytes)
            } catch {
                problems.append("\(endpoint): \(error)")
                logger.debug("etcd endpoint failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
                continue
            }
            if status == 200 {
                if offset > 0 { current.withLock { $0 = index } }
                do {
                    return try JSONDecoder().decode(Response.self, from: Data(bytes.readableBytesView))
                } catch {
                    throw .internal("etcd at \(endpoint) answered \(path) with JSON the client cannot read: \(error)")
                }
            }
            let wire = try? JSONDecoder().decode(WireError.self, from: Data(bytes.readableBytesView))
            let message = wire?.message ?? wire?.error ?? String(buffer: bytes)
            // gRPC codes 14 (unavailable) and 4 (deadline): no leader or no quorum here; another member may have one.
            if status >= 500 && (wire?.code == 14 || wire?.code == 4 || wire?.code == nil) {
                problems.append("\(endpoint): HTTP \(status): \(message)")
                continue
            }
            if message.contains("requested lease not found") {
                throw .init(.failedPrecondition, "etcd at \(endpoint): \(message); grant a new lease")
            }
            throw .init(.failedPrecondition, "etcd at \(endpoint) refused \(path): HTTP \(status): \(message)")
        }
        throw .init(.unavailable, "etcd unreachable: " + problems.joined(separator: "; "))
    }

    private func encode(_ value: some Encodable) throws(SwitchyardError) -> [UInt8] {
        do { return [UInt8](try JSONEncoder().encode(value)) } catch {
            throw .internal("cannot encode an etcd request: \(error)")
        }
    }

    private func failed(_ endpoint: String) {
        current.withLock { index in
            if endpoints[index] == endpoint { index = (index + 1) % endpoints.count }
        }
    }

    private func unavailable(_ endpoint: String, _ message: String) -> SwitchyardError {
        .init(.unavailable, "etcd at \(endpoint): \(message)")
    }
}
