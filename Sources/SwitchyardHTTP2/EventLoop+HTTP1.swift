// The event loop's side of HTTP/1.1 connections (the REST listener): adopting sockets, reading into the
// parser, writing responses with backpressure, and the header, idle and write-stall timeouts — the same limits
// the HTTP/2 connections on this loop live under.

internal import CEpoll
import Logging
import SwitchyardCore
import SwitchyardTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension EventLoop {
    func adoptHTTP1(_ fd: Int32, address: PeerAddress?) {
        guard case .admitted(let tls) = admit(fd, address: address, context: core.restTLS) else { return }
        let connection = HTTP1Connection(fd: fd, loop: self, tls: tls)
        connection.peerAddress = address
        http1Connections[fd] = connection
        (connection.registeredEvents, connection.peerIsLoopback) = register(fd, address: address)
        if draining { connection.beginDrain() }
    }

    func handleHTTP1(_ connection: HTTP1Connection, events: UInt32) {
        if events & UInt32(CSWITCHYARD_EPOLLIN | CSWITCHYARD_EPOLLHUP | CSWITCHYARD_EPOLLERR) != 0 {
            readableHTTP1(connection)
        }
        if connection.isClosed { return }
        if events & UInt32(CSWITCHYARD_EPOLLOUT) != 0 { connection.markDirty() }
    }

    private func readableHTTP1(_ connection: HTTP1Connection) {
        for _ in 0..<4 {
            let count = read(connection.fd, readBuffer.baseAddress, readBuffer.count)
            if count == 0 {
                // The client half-closed. Answers already owed still go out (a client may send its requests and
                // shut down its side); with nothing owed the connection is done.
                if connection.inFlight == 0 && connection.pendingOutput == 0 {
                    closeHTTP1(connection)
                } else {
                    connection.stopReading = true
                    connection.closeAfterFlush = true
                    connection.markDirty()
                    updateInterestHTTP1(connection, reading: false)
                }
                return
            }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                closeHTTP1(connection)
                return
            }
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
            if let tls = connection.tls {
                var http2: Connection?
                var http2OK = true
                let outcome = tls.receive(bytes, scratch: tlsScratch) { plaintext in
                    if let http2 {
                        http2OK = http2.receive(plaintext)
                        return http2OK
                    }
                    connection.receive(plaintext)
                    if connection.http2Start != nil {
                        (http2, http2OK) = switchToHTTP2(connection)
                        return http2OK
                    }
                    return true
                }
                if let http2 {
                    return settleSwitched(http2, ok: survives(outcome, countError: http2.countProtocolError) && http2OK)
                }
                tls.drain(into: &connection.out)  // handshake records, alerts
                if !survives(outcome, countError: { core.counters.protocolErrors.add(1, ordering: .relaxed) }) {
                    // After close_notify, as after a half-close, answers already owed still go out; after a failure
                    // the alert goes out, then the connection closes.
                    connection.stopReading = true
                    connection.closeAfterFlush = true
                    connection.markDirty()
                    return
                }
            } else {
                connection.receive(bytes)
                if connection.http2Start != nil {
                    let (http2, ok) = switchToHTTP2(connection)
                    return settleSwitched(http2, ok: ok)
                }
            }
            connection.markDirty()
            if connection.stopReading || connection.readingPaused || connection.parserHeld || count < readBuffer.count {
                break
            }
        }
    }

    /// The client sent the HTTP/2 preface: the socket (and its TLS session and unsent bytes) goes on as an HTTP/2
    /// connection whose streams are REST requests. Returns it and whether the bytes so far were valid HTTP/2.
    private func switchToHTTP2(_ connection: HTTP1Connection) -> (Connection, Bool) {
        let start = connection.http2Start ?? []
        let http2 = Connection(fd: connection.fd, loop: self, tls: connection.tls, rest: core.http)
        http2.out = connection.out
        http2.outSent = connection.outSent
        http2.peerAddress = connection.peerAddress
        http2.peerIsLoopback = connection.peerIsLoopback
        http2.registeredEvents = connection.registeredEvents
        http1Connections[connection.fd] = nil
        connection.handOver()
        connections[http2.fd] = http2
        if draining {
            http2.sendShutdownNotice()
            http2.sendFinalGoaway()
        }
        let ok = start.withUnsafeBytes { http2.receive($0) }
        return (http2, ok)
    }

    /// After a switch to HTTP/2, what the HTTP/2 read path does with the outcome of the bytes read.
    private func settleSwitched(_ http2: Connection, ok: Bool) {
        if !ok { http2.lifecycle.closeAfterFlush() }
        if http2.lifecycle.closesImmediately { return closeConnection(http2) }
        http2.markDirty()
    }

    func flushDirtyHTTP1() {
        var rounds = 0
        while !dirtyHTTP1.isEmpty && rounds < 4 {
            rounds += 1
            let batch = dirtyHTTP1
            dirtyHTTP1.removeAll(keepingCapacity: true)
            for connection in batch {
                connection.isDirty = false
                if !connection.isClosed { flushHTTP1(connection) }
            }
        }
    }

    private func flushHTTP1(_ connection: HTTP1Connection) {
        let before = connection.outSent
        guard Self.sendPending(connection.fd, connection.out, sent: &connection.outSent) else {
            closeHTTP1(connection)
            return
        }
        if connection.outSent != before { connection.lastActivity = .now() }
        Self.settle(&connection.out, sent: &connection.outSent)
        if connection.pendingOutput == 0 && connection.closeAfterFlush && connection.inFlight == 0 {
            closeHTTP1(connection)
            return
        }
        updateInterestHTTP1(connection, reading: !connection.stopReading && !connection.parserHeld)
    }

    /// Backpressure: a client that does not read its responses stops being read once the output buffer reaches
    /// `max_output_buffer_bytes` (until it drains to half), and is closed after `write_stall_timeout_seconds`.
    private func updateInterestHTTP1(_ connection: HTTP1Connection, reading: Bool) {
        let limit = core.limits.maxOutputBufferBytes
        if !connection.readingPaused && connection.pendingOutput >= limit {
            connection.readingPaused = true
        } else if connection.readingPaused && connection.pendingOutput < limit / 2 {
            connection.readingPaused = false
        }
        let stalled = connection.readingPaused || (connection.closeAfterFlush && connection.pendingOutput > 0)
        if stalled && connection.stalledSince == nil {
            connection.stalledSince = .now()
        } else if !stalled {
            connection.stalledSince = nil
        }
        var wanted: UInt32 = reading && !connection.readingPaused ? UInt32(CSWITCHYARD_EPOLLIN) : 0
        if connection.pendingOutput > 0 { wanted |= UInt32(CSWITCHYARD_EPOLLOUT) }
        if wanted != connection.registeredEvents {
            connection.registeredEvents = wanted
            _ = cswitchyard_epoll_ctl(
                epfd,
                Int32(CSWITCHYARD_EPOLL_CTL_MOD),
                connection.fd,
                wanted,
                UInt64(connection.fd)
            )
        }
    }

    /// Timeouts of HTTP/1.1 connections, visited once per sweep interval.
    /// The HTTP/1.1 half of the sweep: ends at most `budget` connections (counting it down), like the HTTP/2 half.
    func sweepHTTP1(now: MonotonicInstant, budget: inout Int) {
        guard !http1Connections.isEmpty else { return }
        let limits = core.limits
        var closing: [HTTP1Connection] = []
        let start = budget
        var refused = 0
        defer { budget = start - closing.count - refused }
        for connection in http1Connections.values where !connection.isClosed {
            if closing.count + refused >= start {
                nextSweep = now  // the rest next turn
                break
            }
            if let since = connection.stalledSince, now.nanoseconds(since: since) > stallTimeoutNanoseconds {
                core.counters.connectionsThrottled.add(1, ordering: .relaxed)
                closing.append(connection)
                continue
            }
            if connection.stopReading { continue }
            if let since = connection.headBegunAt, now.nanoseconds(since: since) > headerTimeoutNanoseconds {
                core.counters.connectionsTimedOut.add(1, ordering: .relaxed)
                refused += 1
                connection.refuse(
                    (
                        408,
                        "request headers not completed within \(limits.headerTimeoutSeconds) s "
                            + "(limits.header_timeout_seconds)"
                    )
                )
                continue
            }
            guard connection.inFlight == 0 else { continue }
            let quiet = now.nanoseconds(since: connection.lastActivity)
            if connection.inBody, let idle = idleTimeoutNanoseconds, quiet > idle {
                core.counters.connectionsTimedOut.add(1, ordering: .relaxed)
                refused += 1
                connection.refuse(
                    (
                        408,
                        "request body stalled: no bytes for \(limits.idleTimeoutSeconds) s (limits.idle_timeout_seconds)"
                    )
                )
            } else if !connection.inBody && connection.headBegunAt == nil {
                // Between requests: a connection that never sent a byte gets the handshake timeout, a kept-alive
                // one the idle timeout; both close without a response, as no request is outstanding.
                let neverUsed = connection.lastActivity == connection.acceptedAt
                let limit = neverUsed ? handshakeTimeoutNanoseconds : idleTimeoutNanoseconds
                if let limit, quiet > limit {
                    core.counters.connectionsTimedOut.add(1, ordering: .relaxed)
                    closing.append(connection)
                }
            }
        }
        for connection in closing { closeHTTP1(connection) }
    }

    func closeHTTP1(_ connection: HTTP1Connection) {
        guard !connection.isClosed else { return }
        _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), connection.fd, 0, 0)
        http1Connections[connection.fd] = nil
        close(connection.fd)
        releaseSlot(connection.peerAddress)
        connection.peerAddress = nil
        connection.teardown()
        bytesFreedSinceTrim += Self.closedConnectionTrimCredit
        core.counters.connectionsOpen.subtract(1, ordering: .relaxed)
        core.counters.connectionsClosed.add(1, ordering: .relaxed)
    }
}
