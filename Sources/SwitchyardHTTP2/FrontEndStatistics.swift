// Counters of the gRPC front end. Loop threads bump atomics; `GRPCServer.statistics` reads a snapshot.

import Synchronization

/// A snapshot of the front end's counters since the server started.
public struct FrontEndStatistics: Sendable, Hashable, CustomStringConvertible {
    /// Connections accepted from the listener.
    public var connectionsAccepted: Int
    /// Connections open now.
    public var connectionsOpen: Int
    /// Connections closed (by either side, or for a protocol error).
    public var connectionsClosed: Int
    /// Connections refused because `limits.maxConnections` were already open.
    public var connectionsRejected: Int
    /// HTTP/2 streams opened by clients.
    public var streamsOpened: Int
    /// Finished gRPC calls by the `grpc-status` they ended with (absent codes have count 0).
    public var callsByStatus: [GRPCStatusCode: Int]
    /// Requests refused at the HTTP level (wrong content-type → 415, wrong method → 405).
    public var httpRejections: Int
    /// Responses from services that arrived after their call had ended (cancelled, deadline, closed).
    public var responsesDropped: Int
    /// Connections closed for an HTTP/2 or TLS protocol error, or streams reset for one.
    public var protocolErrors: Int
    /// Connections sent GOAWAY ENHANCE_YOUR_CALM and closed: over the stream-reset or control-frame
    /// budget, flooding unread acknowledgements or CONTINUATION frames, or not reading responses.
    public var connectionsThrottled: Int
    /// Connections closed for not completing the handshake in time, or for staying idle too long.
    public var connectionsTimedOut: Int
    /// Times accepting paused because the process was out of file descriptors (or kernel memory).
    public var acceptPauses: Int
    /// Request bytes reserved now by partly received messages, across connections.
    public var bufferedRequestBytes: Int

    /// Total finished calls, whatever their status.
    public var calls: Int { callsByStatus.values.reduce(0, +) }

    /// One line with every counter, for logs.
    public var description: String {
        let statuses = callsByStatus.keys.sorted { $0.rawValue < $1.rawValue }
            .map { "\($0.rawValue):\(callsByStatus[$0]!)" }.joined(separator: ",")
        return
            "connections accepted=\(connectionsAccepted) open=\(connectionsOpen) closed=\(connectionsClosed) "
            + "rejected=\(connectionsRejected) streams=\(streamsOpened) calls=[\(statuses)] "
            + "http-rejections=\(httpRejections) dropped=\(responsesDropped) protocol-errors=\(protocolErrors) "
            + "throttled=\(connectionsThrottled) timed-out=\(connectionsTimedOut) accept-pauses=\(acceptPauses) "
            + "buffered-request-bytes=\(bufferedRequestBytes)"
    }
}

/// The live atomic counters behind `FrontEndStatistics` snapshots, shared by all loops of one server.
package final class AtomicFrontEndStatistics: Sendable {
    let connectionsAccepted = Atomic<Int>(0)
    let connectionsOpen = Atomic<Int>(0)
    let connectionsClosed = Atomic<Int>(0)
    let connectionsRejected = Atomic<Int>(0)
    let streamsOpened = Atomic<Int>(0)
    let httpRejections = Atomic<Int>(0)
    let responsesDropped = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
    let connectionsThrottled = Atomic<Int>(0)
    let connectionsTimedOut = Atomic<Int>(0)
    let acceptPauses = Atomic<Int>(0)
    let bufferedRequestBytes = Atomic<Int>(0)
    private let statusCounts: [StatusCounter] = (0...16).map { _ in StatusCounter() }

    /// One status code's counter, boxed so the array of them is copyable.
    private final class StatusCounter: Sendable {
        let value = Atomic<Int>(0)
    }

    func countCall(_ code: GRPCStatusCode) {
        let index = code.rawValue >= 0 && code.rawValue <= 16 ? code.rawValue : 2
        statusCounts[index].value.add(1, ordering: .relaxed)
    }

    package func snapshot() -> FrontEndStatistics {
        var byStatus: [GRPCStatusCode: Int] = [:]
        for (code, counter) in statusCounts.enumerated() {
            let value = counter.value.load(ordering: .relaxed)
            if value > 0 { byStatus[GRPCStatusCode(rawValue: code)] = value }
        }
        return FrontEndStatistics(
            connectionsAccepted: connectionsAccepted.load(ordering: .relaxed),
            connectionsOpen: connectionsOpen.load(ordering: .relaxed),
            connectionsClosed: connectionsClosed.load(ordering: .relaxed),
            connectionsRejected: connectionsRejected.load(ordering: .relaxed),
            streamsOpened: streamsOpened.load(ordering: .relaxed),
            callsByStatus: byStatus,
            httpRejections: httpRejections.load(ordering: .relaxed),
            responsesDropped: responsesDropped.load(ordering: .relaxed),
            protocolErrors: protocolErrors.load(ordering: .relaxed),
            connectionsThrottled: connectionsThrottled.load(ordering: .relaxed),
            connectionsTimedOut: connectionsTimedOut.load(ordering: .relaxed),
            acceptPauses: acceptPauses.load(ordering: .relaxed),
            bufferedRequestBytes: bufferedRequestBytes.load(ordering: .relaxed)
        )
    }
}
