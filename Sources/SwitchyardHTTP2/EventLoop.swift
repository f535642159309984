// An epoll reactor on its own pthread. It owns its connections outright; other threads reach it only
// through its MPSC inbox, and wake it with its eventfd only when the inbox goes from empty to non-empty,
// so a batch of answers costs one wake-up. Deadlines live in a min-heap that drives epoll_wait's timeout.

internal import CEpoll
package import Logging
package import SwitchyardCore
import SwitchyardTLS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Work handed to a loop.
enum LoopMessage: Sendable {
    /// A service answered (unary response or one streaming message).
    case send(GRPCCall, [UInt8], [(name: String, value: String)])
    /// A service ended a call with a status.
    case fail(GRPCCall, GRPCStatus, [(name: String, value: String)])
    /// Loop 0 accepted a socket for this loop (from this address, when the per-address limit counts it).
    case adopt(Int32, PeerAddress?)
    /// The inflater finished a call's compressed message (`Int`: the inflated bytes it charged).
    case inflated(GRPCCall, InflateOutcome, Int)
    /// Stop accepting, GOAWAY everyone, drain until the deadline.
    case shutdown(MonotonicInstant)
    /// Loop 0 accepted a socket of the REST listener (HTTP/1.1) for this loop.
    case adoptHTTP1(Int32, PeerAddress?)
    /// An HTTP service answered one HTTP/1.1 request.
    case respondHTTP1(HTTP1Exchange, HTTPResponse)
    /// An HTTP service answered one REST request on an HTTP/2 stream.
    case respondHTTP2(HTTP2Exchange, HTTPResponse)
}

/// State shared read-only by every loop of one server.
package final class ServerCore: Sendable {
    let service: any GRPCService
    let limits: ServerConfiguration.Limits
    let tls: TLSContext?
    /// The REST port's TLS context: the same certificate, key and client CAs as `tls`, with HTTP/1.1's ALPN.
    let restTLS: TLSContext?
    package let counters = AtomicFrontEndStatistics()
    let logger: Logger
    let sessionOptions: HTTP2SessionOptions
    /// Connections open per client address (used only when `limits.maxConnectionsPerAddress` is set).
    let addressCounts = AddressCounts()
    /// Decompression of compressed request messages, off the loops.
    let inflater: Inflater
    /// The service behind the REST (HTTP/1.1) listener, if there is one.
    let http: (any HTTPService)?

    init(
        service: any GRPCService,
        http: (any HTTPService)? = nil,
        limits: ServerConfiguration.Limits,
        tls: TLSContext?,
        restTLS: TLSContext? = nil,
        logger: Logger
    ) {
        self.service = service
        self.http = http
        self.limits = limits
        self.tls = tls
        self.restTLS = restTLS
        self.logger = logger
        self.sessionOptions = HTTP2SessionOptions(limits: limits)
        self.inflater = Inflater(limit: limits.maxRequestBytes, perSecond: limits.maxInflatedBytesPerSecond)
    }

    /// A server core without TLS or REST, for loops driven without sockets (SwitchyardHTTP2TestSupport).
    package convenience init(service: any GRPCService, limits: ServerConfiguration.Limits, logger: Logger) {
        self.init(service: service, http: nil, limits: limits, tls: nil, logger: logger)
    }
}

/// Something with a deadline that remembers its place in a `DeadlineHeap`.
protocol DeadlineHeapElement: AnyObject {
    /// Position in the heap, or -1 when not in one.
    var heapIndex: Int { get set }
    /// When it expires.
    var deadline: MonotonicInstant? { get set }
}

/// A min-heap by deadline; each element knows its index so finished calls leave in O(log n) instead of
/// lingering until their (possibly far) deadline.
struct DeadlineHeap<Element: DeadlineHeapElement> {
    private var calls: [Element] = []

    var earliest: MonotonicInstant? { calls.first?.deadline }
    var count: Int { calls.count }

    mutating func insert(_ call: Element, deadline: MonotonicInstant) {
        remove(call)
        call.deadline = deadline
        call.heapIndex = calls.count
        calls.append(call)
        siftUp(calls.count - 1)
    }

    mutating func remove(_ call: Element) {
        let index = call.heapIndex
        guard index >= 0 else { return }
        call.heapIndex = -1
        let last = calls.removeLast()
        if index < calls.count {
            calls[index] = last
            last.heapIndex = index
            siftDown(index)
            siftUp(index)
        }
    }

    /// Removes and returns the calls whose deadline is at or before `now`.
    mutating func popExpired(now: MonotonicInstant, into expired: inout [Element]) {
        while let first = calls.first, let deadline = first.deadline, deadline <= now {
            remove(first)
            expired.append(first)
        }
    }

    private func key(_ i: Int) -> UInt64 { calls[i].deadline?.nanoseconds ?? .max }

    private mutating func swapAt(_ i: Int, _ j: Int) {
        calls.swapAt(i, j)
        calls[i].heapIndex = i
        calls[j].heapIndex = j
    }

    private mutating func siftUp(_ start: Int) {
        var i = start
        while i > 0 {
            let parent = (i - 1) / 2
            if key(i) >= key(parent) { return }
            swapAt(i, parent)
            i = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let left = 2 * i + 1
            if left >= calls.count { return }
            var smallest = left
            if left + 1 < calls.count && key(left + 1) < key(left) { smallest = left + 1 }
            if key(smallest) >= key(i) { return }
            swapAt(i, smallest)
            i = smallest
        }
    }
}

/// One reactor thread.
package final class EventLoop: @unchecked Sendable {
    let index: Int
    /// CPUs the loop's thread runs on; empty: any.
    let cpus: [Int]
    let core: ServerCore
    let epfd: Int32
    private let wakeFD: Int32
    private let inbox = Mutex<[LoopMessage]>([])
    private let threadID = Atomic<UInt>(0)
    private let stopped = Atomic<Bool>(false)
    /// Loops that accepted sockets are handed to, round-robin (set on loop 0 only).
    @exclusivity(unchecked) var peers: [EventLoop] = []
    @exclusivity(unchecked) var listenFD: Int32 = -1
    /// The REST listener (HTTP/1.1), on loop 0 beside the gRPC one; -1 when off.
    @exclusivity(unchecked) var restListenFD: Int32 = -1

    // MARK: Loop-confined
    @exclusivity(unchecked) var connections: [Int32: Connection] = [:]
    @exclusivity(unchecked) var http1Connections: [Int32: HTTP1Connection] = [:]
    @exclusivity(unchecked) var dirtyHTTP1: [HTTP1Connection] = []
    @exclusivity(unchecked) private var local: [LoopMessage] = []
    @exclusivity(unchecked) private var spare: [LoopMessage] = []
    @exclusivity(unchecked) var dirty: [Connection] = []
    @exclusivity(unchecked) var timers = DeadlineHeap<GRPCCall>()
    @exclusivity(unchecked) private var expired: [GRPCCall] = []
    @exclusivity(unchecked) private var nextPeer = 0
    @exclusivity(unchecked) private var stalledConnections = 0
    @exclusivity(unchecked) var draining = false
    @exclusivity(unchecked) private var drainDeadline = MonotonicInstant(nanoseconds: .max)
    @exclusivity(unchecked) private var finalGoawayAt: MonotonicInstant?
    /// Next visit of every connection for the handshake and idle timeouts.
    @exclusivity(unchecked) var nextSweep = MonotonicInstant(nanoseconds: 0)
    /// Accepting paused (out of file descriptors) until then; the listener is out of epoll meanwhile.
    @exclusivity(unchecked) private var acceptResumeAt: MonotonicInstant?
    @exclusivity(unchecked) private var lastAcceptWarning: MonotonicInstant?
    /// Bytes of large request buffers (messages assembled across DATA frames, inflated messages) freed since
    /// the allocator was last asked to return free memory to the system. glibc keeps such memory in its arenas
    /// otherwise, so RSS stays up after an attack that made the gateway buffer a lot.
    @exclusivity(unchecked) var bytesFreedSinceTrim = 0
    @exclusivity(unchecked) private var lastTrim = MonotonicInstant(nanoseconds: 0)
    let handshakeTimeoutNanoseconds: UInt64
    let headerTimeoutNanoseconds: UInt64
    let idleTimeoutNanoseconds: UInt64?
    let stallTimeoutNanoseconds: UInt64
    private let sweepIntervalNanoseconds: UInt64
    let readBuffer: UnsafeMutableRawBufferPointer
    let tlsScratch: UnsafeMutableRawBufferPointer

    private static let wakeToken = UInt64.max
    private static let listenToken = UInt64.max - 1
    private static let restListenToken = UInt64.max - 2

    package init(index: Int, core: ServerCore, cpus: [Int] = []) throws {
        self.index = index
        self.core = core
        self.cpus = cpus
        let limits = core.limits
        handshakeTimeoutNanoseconds = UInt64(limits.handshakeTimeoutSeconds * 1e9)
        headerTimeoutNanoseconds = UInt64(limits.headerTimeoutSeconds * 1e9)
        idleTimeoutNanoseconds = limits.idleTimeoutSeconds > 0 ? UInt64(limits.idleTimeoutSeconds * 1e9) : nil
        stallTimeoutNanoseconds = UInt64(limits.writeStallTimeoutSeconds * 1e9)
        // A quarter of the shortest timeout, between 100 ms and 1 s: timeouts fire at most 25% late.
        let shortest = min(handshakeTimeoutNanoseconds, headerTimeoutNanoseconds, idleTimeoutNanoseconds ?? .max)
        sweepIntervalNanoseconds = min(max(shortest / 4, 100_000_000), 1_000_000_000)
        epfd = cswitchyard_epoll_create()
        wakeFD = cswitchyard_eventfd()
        guard epfd >= 0, wakeFD >= 0 else {
            throw SwitchyardError.internal("cannot create epoll/eventfd for event loop \(index): errno \(errno)")
        }
        _ = cswitchyard_epoll_ctl(
            epfd,
            Int32(CSWITCHYARD_EPOLL_CTL_ADD),
            wakeFD,
            UInt32(CSWITCHYARD_EPOLLIN),
            Self.wakeToken
        )
        readBuffer = .allocate(byteCount: 256 << 10, alignment: 16)
        tlsScratch = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit {
        close(epfd)
        close(wakeFD)
        readBuffer.deallocate()
        tlsScratch.deallocate()
    }

    // MARK: Cross-thread entry points

    var isOnLoop: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Traps in debug builds when called off this loop's thread; compiles to nothing in release. Guards the
    /// loop-confined state of connections and calls, which has no lock because only this thread touches it.
    @inline(__always)
    func assertOnLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(isOnLoop, "loop-confined state touched off event loop \(index)", file: file, line: line)
    }

    /// Makes the calling thread this loop's own without running the reactor: the in-memory driver
    /// (SwitchyardHTTP2TestSupport) turns the loop by hand from one thread.
    package func adoptCurrentThread() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
    }

    /// Hands work to the loop. On the loop itself this is a plain append; elsewhere the eventfd is
    /// written only when the inbox was empty.
    func enqueue(_ message: LoopMessage) {
        if isOnLoop {
            local.append(message)
            return
        }
        if stopped.load(ordering: .acquiring) {
            dropLate(message)
            return
        }
        let wasEmpty = inbox.withLock { queue in
            let wasEmpty = queue.isEmpty
            queue.append(message)
            return wasEmpty
        }
        if wasEmpty {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    func countDropped() { core.counters.responsesDropped.add(1, ordering: .relaxed) }

    /// A message that arrived after the loop stopped: sockets are closed, answers counted as dropped.
    private func dropLate(_ message: LoopMessage) {
        switch message {
        case .adopt(let fd, let address), .adoptHTTP1(let fd, let address):
            close(fd)
            releaseSlot(address)
        default:
            countDropped()
        }
    }

    /// Registers the REST listening socket (loop 0).
    func attachRESTListener(_ fd: Int32) {
        restListenFD = fd
        _ = cswitchyard_epoll_ctl(
            epfd,
            Int32(CSWITCHYARD_EPOLL_CTL_ADD),
            fd,
            UInt32(CSWITCHYARD_EPOLLIN),
            Self.restListenToken
        )
    }

    /// Registers the listening socket (loop 0).
    func attachListener(_ fd: Int32) {
        listenFD = fd
        _ = cswitchyard_epoll_ctl(
            epfd,
            Int32(CSWITCHYARD_EPOLL_CTL_ADD),
            fd,
            UInt32(CSWITCHYARD_EPOLLIN),
            Self.listenToken
        )
    }

    // MARK: The loop

    func run() {
        threadID.store(UInt(pthread_self()), ordering: .relaxed)
        if !cpus.isEmpty {
            let rc = SystemInfo.pinCurrentThread(to: cpus)
            if rc != 0 {
                core.logger.error(
                    "cannot pin an event loop to io_cpus; it runs on any CPU",
                    metadata: ["loop": "\(index)", "io_cpus": "\(SystemInfo.describeCPUList(cpus))", "errno": "\(rc)"]
                )
            }
        }
        let maxEvents = 256
        let events = UnsafeMutablePointer<UInt32>.allocate(capacity: maxEvents)
        let tokens = UnsafeMutablePointer<UInt64>.allocate(capacity: maxEvents)
        defer {
            events.deallocate()
            tokens.deallocate()
        }
        while true {
            let count = cswitchyard_epoll_wait(epfd, events, tokens, Int32(maxEvents), timeoutMilliseconds())
            if count < 0 && errno != EINTR {
                core.logger.error("epoll_wait failed", metadata: ["loop": "\(index)", "errno": "\(errno)"])
                break
            }
            for i in 0..<max(Int(count), 0) {
                let token = tokens[i]
                if token == Self.wakeToken {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                } else if token == Self.listenToken {
                    acceptConnections(from: listenFD, http1: false)
                } else if token == Self.restListenToken {
                    acceptConnections(from: restListenFD, http1: true)
                } else if let connection = connections[Int32(truncatingIfNeeded: token)] {
                    handle(connection, events: events[i])
                } else if let connection = http1Connections[Int32(truncatingIfNeeded: token)] {
                    handleHTTP1(connection, events: events[i])
                }
            }
            core.service.eventLoopDidProcessBatch()
            processMessages()
            fireTimers()
            if stalledConnections > 0 { checkStalled() }
            if !connections.isEmpty || !http1Connections.isEmpty || acceptResumeAt != nil { sweep() }
            if bytesFreedSinceTrim >= Self.trimThreshold { trimIfDue() }
            flushDirty()
            if draining {
                let now = MonotonicInstant.now()
                if let at = finalGoawayAt, now >= at {
                    finalGoawayAt = nil
                    for connection in connections.values {
                        connection.sendFinalGoaway()
                        connection.markDirty()
                    }
                    flushDirty()
                }
                if connections.isEmpty && http1Connections.isEmpty { break }
                if now >= drainDeadline {
                    for connection in Array(connections.values) { closeConnection(connection) }
                    for connection in Array(http1Connections.values) { closeHTTP1(connection) }
                    break
                }
            }
        }
        stopped.store(true, ordering: .releasing)
        if listenFD >= 0 {
            close(listenFD)
            listenFD = -1
        }
        if restListenFD >= 0 {
            close(restListenFD)
            restListenFD = -1
        }
        for connection in Array(connections.values) { closeConnection(connection) }
        for connection in Array(http1Connections.values) { closeHTTP1(connection) }
        // Answers that raced with the stop are dropped (and counted).
        let late = inbox.withLock { queue in
            let late = queue
            queue.removeAll()
            return late
        }
        for message in late {
            dropLate(message)
        }
    }

    /// Freed buffer bytes after which the allocator is trimmed (at most once a second).
    static let trimThreshold = 4 << 20
    /// What a closed connection is counted as freeing towards `trimThreshold`: its nghttp2 session, buffers and
    /// bookkeeping (about 14 KiB each, measured over 2000 idle connections), rounded up so that a burst of a few
    /// dozen closes (a connection flood timing out) gives its memory back too.
    static let closedConnectionTrimCredit = 128 << 10

    private func trimIfDue() {
        let now = MonotonicInstant.now()
        guard now.nanoseconds(since: lastTrim) >= 1_000_000_000 else { return }
        lastTrim = now
        bytesFreedSinceTrim = 0
        _ = cswitchyard_trim_heap()
    }

    private func timeoutMilliseconds() -> Int32 {
        if !local.isEmpty || !dirty.isEmpty || !dirtyHTTP1.isEmpty { return 0 }
        var until: UInt64 = .max
        let now = MonotonicInstant.now()
        if let earliest = timers.earliest { until = earliest.nanoseconds(since: now) }
        if stalledConnections > 0 { until = min(until, 1_000_000_000) }
        if !connections.isEmpty || !http1Connections.isEmpty {
            until = min(until, nextSweep.nanoseconds(since: now))
        }
        if let at = acceptResumeAt { until = min(until, at.nanoseconds(since: now)) }
        if bytesFreedSinceTrim >= Self.trimThreshold {
            until = min(until, lastTrim.advanced(byNanoseconds: 1_000_000_000).nanoseconds(since: now))
        }
        if draining {
            until = min(until, drainDeadline.nanoseconds(since: now))
            if let at = finalGoawayAt { until = min(until, at.nanoseconds(since: now)) }
            until = min(until, 100_000_000)
        }
        if until == .max { return -1 }
        return Int32(min((until + 999_999) / 1_000_000, 60_000))
    }

    private func processMessages() {
        var batch = spare
        inbox.withLock { swap(&$0, &batch) }
        for message in batch { apply(message) }
        batch.removeAll(keepingCapacity: true)
        spare = batch
        while !local.isEmpty {
            var work = local
            local = []
            for message in work { apply(message) }
            work.removeAll(keepingCapacity: true)
            if local.isEmpty { local = work }
        }
    }

    private func apply(_ message: LoopMessage) {
        switch message {
        // A call's stream may have closed since its answer was queued, and its connection may be gone with it:
        // `isClosed` is checked before `connection` is reached.
        case .send(let call, let bytes, let metadata):
            guard !call.stream.isClosed else { return countDropped() }
            call.connection.deliverSend(call, message: bytes, metadata: metadata)
        case .fail(let call, let status, let metadata):
            guard !call.stream.isClosed else { return countDropped() }
            call.connection.finish(call, status: status, metadata: metadata)
        case .inflated(let call, let outcome, let produced):
            bytesFreedSinceTrim += produced + call.inflateReservation
            if call.inflateReservation != 0 {
                core.counters.bufferedRequestBytes.subtract(call.inflateReservation, ordering: .relaxed)
                call.inflateReservation = 0
            }
            call.inflating = false
            guard !call.stream.isClosed else { return }  // the connection may be gone: do not touch it
            call.connection.inflated(call, outcome: outcome)
        case .adopt(let fd, let address):
            adopt(fd, address: address)
        case .shutdown(let deadline):
            beginDrain(deadline: deadline)
        case .adoptHTTP1(let fd, let address):
            adoptHTTP1(fd, address: address)
        case .respondHTTP1(let exchange, let response):
            guard !exchange.connectionGone else { return countDropped() }
            exchange.connection.answered(exchange, response)
        case .respondHTTP2(let exchange, let response):
            guard let connection = exchange.connection else { return countDropped() }
            connection.restAnswered(exchange, response)
        }
    }

    // MARK: Without sockets

    /// What one iteration does besides epoll and socket writes: the service's batch hook, queued messages and due
    /// deadlines. Connections that asked for a flush are left to the caller, which has no socket to write
    /// (SwitchyardHTTP2TestSupport drives loops this way, from the thread that adopted them).
    package func runPendingWorkWithoutSockets() {
        assertOnLoop()
        core.service.eventLoopDidProcessBatch()
        processMessages()
        fireTimers()
        for connection in dirty { connection.isDirty = false }
        dirty.removeAll(keepingCapacity: true)
    }

    /// Calls with an armed deadline.
    package var armedDeadlines: Int { timers.count }

    private func fireTimers() {
        guard let earliest = timers.earliest else { return }
        let now = MonotonicInstant.now()
        guard earliest <= now else { return }
        timers.popExpired(now: now, into: &expired)
        for call in expired where call.stream.deadlineExpired() == .finishDeadlineExceeded {
            call.responder.store(GRPCCall.Responder.cancelled, ordering: .relaxed)
            call.connection.finish(call, status: GRPCStatus(.deadlineExceeded, "deadline exceeded"), metadata: [])
        }
        expired.removeAll(keepingCapacity: true)
    }

    private func flushDirty() {
        if !dirtyHTTP1.isEmpty { flushDirtyHTTP1() }
        var rounds = 0
        while !dirty.isEmpty && rounds < 4 {
            rounds += 1
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for connection in batch {
                connection.isDirty = false
                if !connection.isClosed { flush(connection) }
            }
        }
    }

    // MARK: Connections

    /// Connections accepted per loop turn. The listener is level-triggered, so a longer backlog is taken on the next
    /// turns, between the established connections' work: a flood of 2000 connections used to be accepted (and their
    /// prefaces read) in one go, holding every other call on the loop for up to 150 ms (about 80 µs per connection
    /// on the 2-core development machine). Four keep a turn's accept work well under a call's own latency.
    static let maxAcceptsPerTurn = 4

    private func acceptConnections(from listener: Int32, http1: Bool) {
        for _ in 0..<Self.maxAcceptsPerTurn {
            let fd = cswitchyard_accept4(listener)
            if fd < 0 {
                let error = errno
                if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM { pauseAccepting(error) }
                return
            }
            let counters = core.counters
            if counters.connectionsOpen.load(ordering: .relaxed) >= core.limits.maxConnections || draining {
                counters.connectionsRejected.add(1, ordering: .relaxed)
                close(fd)
                continue
            }
            var address: PeerAddress?
            if core.limits.maxConnectionsPerAddress > 0 {
                address = PeerAddress(socket: fd)
                if let key = address, !core.addressCounts.open(key, limit: core.limits.maxConnectionsPerAddress) {
                    counters.connectionsRejected.add(1, ordering: .relaxed)
                    close(fd)
                    continue
                }
            }
            counters.connectionsOpen.add(1, ordering: .relaxed)
            counters.connectionsAccepted.add(1, ordering: .relaxed)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let target = peers.isEmpty ? self : peers[nextPeer % peers.count]
            nextPeer &+= 1
            if http1 {
                if target === self {
                    adoptHTTP1(fd, address: address)
                } else {
                    target.enqueue(.adoptHTTP1(fd, address))
                }
            } else {
                if target === self { adopt(fd, address: address) } else { target.enqueue(.adopt(fd, address)) }
            }
        }
    }

    /// Out of file descriptors: the pending connection stays in the backlog and the level-triggered
    /// listener would wake the loop at once, forever. Take it out of epoll for 100 ms instead.
    private func pauseAccepting(_ error: Int32) {
        guard listenFD >= 0 || restListenFD >= 0, acceptResumeAt == nil else { return }
        if listenFD >= 0 { _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), listenFD, 0, 0) }
        if restListenFD >= 0 { _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), restListenFD, 0, 0) }
        let now = MonotonicInstant.now()
        acceptResumeAt = now.advanced(byNanoseconds: 100_000_000)
        core.counters.acceptPauses.add(1, ordering: .relaxed)
        if lastAcceptWarning.map({ now.nanoseconds(since: $0) > 10_000_000_000 }) ?? true {
            lastAcceptWarning = now
            core.logger.warning(
                "cannot accept connections, pausing the listener for 100 ms",
                metadata: [
                    "error": "\(String(cString: strerror(error)))",
                    "open": "\(core.counters.connectionsOpen.load(ordering: .relaxed))",
                ]
            )
        }
    }

    /// Connections a sweep ends or closes per loop turn; past it, the sweep goes on in the next turn. Ending one
    /// costs a GOAWAY and a close, about 40 µs: 2000 idle connections timing out together used to hold the loop for
    /// 70–90 ms.
    static let maxTimeoutsPerSweep = 16

    /// Handshake and idle timeouts, and the paused listener. Visits every connection once per sweep
    /// interval; a busy connection costs a counter comparison.
    private func sweep() {
        let now = MonotonicInstant.now()
        guard now >= nextSweep else { return }
        nextSweep = now.advanced(byNanoseconds: sweepIntervalNanoseconds)
        var budget = Self.maxTimeoutsPerSweep
        if let at = acceptResumeAt, now >= at {
            acceptResumeAt = nil
            if listenFD >= 0 && !draining {
                _ = cswitchyard_epoll_ctl(
                    epfd,
                    Int32(CSWITCHYARD_EPOLL_CTL_ADD),
                    listenFD,
                    UInt32(CSWITCHYARD_EPOLLIN),
                    Self.listenToken
                )
            }
            if restListenFD >= 0 && !draining {
                _ = cswitchyard_epoll_ctl(
                    epfd,
                    Int32(CSWITCHYARD_EPOLL_CTL_ADD),
                    restListenFD,
                    UInt32(CSWITCHYARD_EPOLLIN),
                    Self.restListenToken
                )
            }
        }
        if draining { return }
        sweepHTTP1(now: now, budget: &budget)
        var unhandshaken: [Connection] = []
        for connection in connections.values where connection.lifecycle.isSwept {
            if budget == 0 {
                nextSweep = now  // the rest next turn
                break
            }
            if connection.lifecycle.isAwaitingPreface {
                if now.nanoseconds(since: connection.acceptedAt) > handshakeTimeoutNanoseconds {
                    unhandshaken.append(connection)
                    budget -= 1
                }
                continue
            }
            if let since = connection.headerBlockSince, now.nanoseconds(since: since) > headerTimeoutNanoseconds {
                budget -= 1
                connection.end(
                    .timeout,
                    reason:
                        "header block not completed within \(core.limits.headerTimeoutSeconds) s (limits.header_timeout_seconds)"
                )
                continue
            }
            guard let idle = idleTimeoutNanoseconds else { continue }
            if connection.calls != nil || connection.restAwaitingAnswers > 0
                || connection.progress != connection.progressAtLastSweep
            {
                connection.progressAtLastSweep = connection.progress
                connection.idleSince = now
            } else if now.nanoseconds(since: connection.idleSince) > idle {
                budget -= 1
                connection.end(
                    .timeout,
                    reason: "no stream for \(core.limits.idleTimeoutSeconds) s (limits.idle_timeout_seconds)"
                )
            }
        }
        for connection in unhandshaken {
            if let tls = connection.tls, !tls.established {
                // No TLS session to carry a GOAWAY: just close.
                core.counters.connectionsTimedOut.add(1, ordering: .relaxed)
                closeConnection(connection)
            } else {
                connection.end(
                    .timeout,
                    reason:
                        "HTTP/2 preface not received within \(core.limits.handshakeTimeoutSeconds) s (limits.handshake_timeout_seconds)"
                )
            }
        }
    }

    /// Gives back a connection's place in the per-address count.
    func releaseSlot(_ address: PeerAddress?) {
        if let address { core.addressCounts.close(address) }
    }

    /// What an accepted socket starts with: its TLS session when `context` is set (the gRPC or the REST port's).
    enum Admission {
        case admitted(TLSSession?)
        /// OpenSSL could not make a session: the socket was closed and counted.
        case refused
    }

    /// The TLS session for an accepted socket, if its port serves TLS; closes and counts the socket when OpenSSL
    /// cannot make one.
    func admit(_ fd: Int32, address: PeerAddress?, context: TLSContext?) -> Admission {
        guard let context else { return .admitted(nil) }
        if let session = TLSSession(context: context) { return .admitted(session) }
        core.logger.error("cannot create a TLS session; closing connection", metadata: ["fd": "\(fd)"])
        close(fd)
        releaseSlot(address)
        core.counters.connectionsOpen.subtract(1, ordering: .relaxed)
        core.counters.connectionsClosed.add(1, ordering: .relaxed)
        return .refused
    }

    /// Registers an adopted connection's socket for reads; one getpeername per connection (none when the
    /// per-address limit already asked), never per call, says whether the peer is on loopback.
    func register(_ fd: Int32, address: PeerAddress?) -> (events: UInt32, loopback: Bool) {
        let events = UInt32(CSWITCHYARD_EPOLLIN)
        _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_ADD), fd, events, UInt64(fd))
        return (events, (address ?? PeerAddress(socket: fd))?.isLoopback ?? false)
    }

    private func adopt(_ fd: Int32, address: PeerAddress?) {
        guard case .admitted(let tls) = admit(fd, address: address, context: core.tls) else { return }
        let connection = Connection(fd: fd, loop: self, tls: tls)
        connection.peerAddress = address
        connections[fd] = connection
        (connection.registeredEvents, connection.peerIsLoopback) = register(fd, address: address)
        if draining {
            connection.sendShutdownNotice()
            if finalGoawayAt == nil { connection.sendFinalGoaway() }
            connection.markDirty()
        }
        // Otherwise our SETTINGS go out with the answer to the client's preface (its SETTINGS ACK), one write instead of two:
        // a write on loopback carries the receiver's TCP work too, a third of the cost of a new connection. A client
        // sends its preface without waiting for ours (RFC 9113, section 3.4); under TLS they follow the handshake.
    }

    private func handle(_ connection: Connection, events: UInt32) {
        if events & UInt32(CSWITCHYARD_EPOLLIN) != 0
            || events & UInt32(CSWITCHYARD_EPOLLHUP | CSWITCHYARD_EPOLLERR) != 0
        {
            readable(connection)
        }
        if connection.isClosed { return }
        if events & UInt32(CSWITCHYARD_EPOLLOUT) != 0 { connection.markDirty() }
    }

    private func readable(_ connection: Connection) {
        for _ in 0..<4 {
            let count = read(connection.fd, readBuffer.baseAddress, readBuffer.count)
            if count == 0 {
                closeConnection(connection)
                return
            }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { break }
                closeConnection(connection)
                return
            }
            let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<count])
            var ok = true
            if let tls = connection.tls {
                var http2OK = true
                let result = tls.receive(bytes, scratch: tlsScratch) { plaintext in
                    http2OK = connection.receive(plaintext)
                    return http2OK
                }
                ok = survives(result, countError: connection.countProtocolError) && http2OK
                if !ok {
                    // Send the alert (or close_notify) before closing.
                    connection.lifecycle.closeAfterFlush()
                }
            } else {
                ok = connection.receive(bytes)
                if !ok { connection.lifecycle.closeAfterFlush() }
            }
            if connection.lifecycle.closesImmediately {
                closeConnection(connection)
                return
            }
            connection.markDirty()
            if !ok || connection.readingPaused || count < readBuffer.count { break }
        }
    }

    /// Whether a connection's TLS session survived a read: a close_notify ends it; a failure ends it and is counted
    /// (by `countError`) and logged.
    func survives(_ outcome: TLSSession.Outcome, countError: () -> Void) -> Bool {
        switch outcome {
        case .ok:
            return true
        case .closed:
            return false
        case .failed(let reason):
            countError()
            core.logger.debug("closing TLS connection", metadata: ["reason": "\(reason)"])
            return false
        }
    }

    /// Produces frames, writes what the socket takes, and keeps epoll interest and backpressure right.
    private func flush(_ connection: Connection) {
        // Produce and write in rounds: `produce` stops at the output limit, so when the socket takes it
        // all, nghttp2 may still have frames. A few rounds, then yield to other connections.
        for _ in 0..<8 {
            if !connection.produce() {
                connection.countProtocolError()
                closeConnection(connection)
                return
            }
            guard Self.sendPending(connection.fd, connection.out, sent: &connection.outSent) else {
                closeConnection(connection)
                return
            }
            if connection.pendingOutput > 0 { break }  // EPOLLOUT resumes
            Self.settle(&connection.out, sent: &connection.outSent)
            if connection.lifecycle.flushed(sessionFinished: connection.sessionFinished) == .close {
                closeConnection(connection)
                return
            }
            if !connection.sessionWantsWrite { break }
        }
        if connection.pendingOutput == 0 && connection.sessionWantsWrite {
            connection.markDirty()
        } else {
            Self.settle(&connection.out, sent: &connection.outSent)
        }
        updateInterest(connection)
    }

    /// Writes what the socket takes of `out` past `sent`, advancing `sent`; false when the socket failed (a full
    /// socket is not a failure: EPOLLOUT resumes). send(MSG_NOSIGNAL), not write(): a peer that vanished must cost
    /// EPIPE, not the process. HTTP/2 and HTTP/1.1 connections alike.
    static func sendPending(_ fd: Int32, _ out: [UInt8], sent: inout Int) -> Bool {
        while sent < out.count {
            let offset = sent
            let written = out.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                sent += written
                continue
            }
            return written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        }
        return true
    }

    /// After a write: an emptied buffer is reset (keeping up to 1 MiB of capacity), and one more than half sent past
    /// its first MiB drops its sent part, so a slow reader's buffer does not keep what it already took.
    static func settle(_ out: inout [UInt8], sent: inout Int) {
        if sent == out.count {
            out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
            sent = 0
        } else if sent > 1 << 20 && sent > out.count / 2 {
            out.removeFirst(sent)
            sent = 0
        }
    }

    /// Backpressure. Two ways a client can leave responses piling up: it stops reading the socket
    /// (`pendingOutput` grows: stop reading its requests until it drains to half the limit), or it stops
    /// opening HTTP/2 flow-control windows (`queuedBytes` grows: keep reading, since WINDOW_UPDATEs arrive
    /// that way, but refuse new messages). Over the limit for `stallTimeoutNanoseconds`, it is closed.
    private func updateInterest(_ connection: Connection) {
        let limit = core.limits.maxOutputBufferBytes
        if !connection.readingPaused && connection.pendingOutput >= limit {
            connection.readingPaused = true
        } else if connection.readingPaused && connection.pendingOutput < limit / 2 {
            connection.readingPaused = false
            connection.markDirty()  // produce what was held back
        }
        let finishing = connection.lifecycle.isClosing || !connection.sessionWantsRead
        // Paused counts as stalled until the client drains below half the limit: the kernel may take the last
        // bytes that pushed the buffer over the limit, leaving it between half and the limit, where reading stays
        // paused and nothing else would ever time the connection out.
        let stalled =
            connection.readingPaused || connection.pendingOutput >= limit || connection.queuedBytes >= limit
            || (finishing && connection.pendingOutput > 0)
        if stalled && connection.stalledSince == nil {
            connection.stalledSince = .now()
            stalledConnections += 1
        } else if !stalled && connection.stalledSince != nil {
            connection.stalledSince = nil
            stalledConnections -= 1
        }
        if let since = connection.stalledSince,
            MonotonicInstant.now().nanoseconds(since: since) > stallTimeoutNanoseconds
        {
            let buffered = connection.pendingOutput + connection.queuedBytes
            connection.end(
                .calm,
                reason:
                    "client stopped reading responses: \(buffered) bytes waiting for more than \(core.limits.writeStallTimeoutSeconds) s (limits.write_stall_timeout_seconds)"
            )
            // One try to get the GOAWAY out (it goes through when only flow-control windows were withheld),
            // then close without waiting.
            _ = connection.produce()
            if connection.pendingOutput > 0 {
                _ = Self.sendPending(connection.fd, connection.out, sent: &connection.outSent)
            }
            closeConnection(connection)
            return
        }
        var wanted: UInt32 = connection.readingPaused || finishing ? 0 : UInt32(CSWITCHYARD_EPOLLIN)
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

    /// Re-checks stalled connections (called from the loop's periodic wake-ups).
    private func checkStalled() {
        guard stalledConnections > 0 else { return }
        for connection in Array(connections.values) where connection.stalledSince != nil {
            flush(connection)
        }
    }

    func closeConnection(_ connection: Connection) {
        guard !connection.isClosed else { return }
        if connection.stalledSince != nil { stalledConnections -= 1 }
        _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), connection.fd, 0, 0)
        connections[connection.fd] = nil
        close(connection.fd)
        releaseSlot(connection.peerAddress)
        connection.peerAddress = nil
        connection.teardown()
        bytesFreedSinceTrim += Self.closedConnectionTrimCredit
        core.counters.connectionsOpen.subtract(1, ordering: .relaxed)
        core.counters.connectionsClosed.add(1, ordering: .relaxed)
    }

    private func beginDrain(deadline: MonotonicInstant) {
        guard !draining else { return }
        draining = true
        drainDeadline = deadline
        if listenFD >= 0 {
            _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), listenFD, 0, 0)
            close(listenFD)
            listenFD = -1
        }
        if restListenFD >= 0 {
            _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), restListenFD, 0, 0)
            close(restListenFD)
            restListenFD = -1
        }
        for connection in http1Connections.values { connection.beginDrain() }
        // Two-step GOAWAY: a notice now, the final one (with the last stream id) a moment later, so
        // requests already in flight from the client are not refused.
        for connection in connections.values {
            connection.sendShutdownNotice()
            connection.markDirty()
        }
        finalGoawayAt = MonotonicInstant.now().advanced(byNanoseconds: 50_000_000)
    }
}
