// One generator thread: an epoll reactor with a timerfd for the next intended send time, owning its share
// of the connections, the schedule and a recorder. Open loop: every arrival that is due is handed a free
// stream at once or waits in a backlog — its latency still counts from the intended time. Closed loop: each
// completion starts the next request. Nothing here is shared; live counters are published with relaxed
// atomic stores once per loop turn.

internal import CEpoll
import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Counters a worker publishes for the live progress line.
final class LiveCounters: Sendable {
    let offered = Atomic<Int>(0)
    let completed = Atomic<Int>(0)
    let ok = Atomic<Int>(0)
    let inFlight = Atomic<Int>(0)
    let backlog = Atomic<Int>(0)
    /// p99 latency in µs of the last finished interval.
    let lastP99 = Atomic<Int>(0)
    let finished = Atomic<Bool>(false)
}

/// A stop request shared by the runner and its workers.
final class StopSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    var requested: Bool { flag.load(ordering: .relaxed) }
    func request() { flag.store(true, ordering: .relaxed) }
}

/// A monotonic timer with nanosecond resolution (timerfd). Swift's Glibc module does not import
/// <sys/timerfd.h>, so the two functions are looked up once in the C library.
struct PreciseTimer {
    private typealias Create = @convention(c) (Int32, Int32) -> Int32
    private typealias SetTime =
        @convention(c) (Int32, Int32, UnsafePointer<itimerspec>?, UnsafeMutablePointer<itimerspec>?) -> Int32
    private static let functions: (Create, SetTime)? = {
        guard let handle = dlopen(nil, RTLD_NOW), let create = dlsym(handle, "timerfd_create"),
            let set = dlsym(handle, "timerfd_settime")
        else { return nil }
        return (unsafeBitCast(create, to: Create.self), unsafeBitCast(set, to: SetTime.self))
    }()

    let fd: Int32

    init() throws(SwitchyardError) {
        guard let functions = Self.functions else { throw .internal("timerfd_create is not available") }
        // TFD_NONBLOCK | TFD_CLOEXEC have O_NONBLOCK's and O_CLOEXEC's values.
        fd = functions.0(CLOCK_MONOTONIC, Int32(O_NONBLOCK) | Int32(O_CLOEXEC))
        guard fd >= 0 else { throw .internal("timerfd_create: \(String(cString: strerror(errno)))") }
    }

    /// Arms the timer for an absolute CLOCK_MONOTONIC time in nanoseconds.
    func arm(at nanoseconds: UInt64) {
        let ns = max(nanoseconds, 1)
        var spec = itimerspec(
            it_interval: timespec(tv_sec: 0, tv_nsec: 0),
            it_value: timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        )
        _ = Self.functions!.1(fd, 1, &spec, nil)  // TFD_TIMER_ABSTIME
    }

    func drain() {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }
}

/// What one worker does.
struct WorkerPlan: Sendable {
    enum Load: Sendable {
        case open(ArrivalSchedule)
        case closed(concurrency: Int, limit: Int?)
    }
    var load: Load
    var connections: Int
    var streamsPerConnection: Int
    /// Measurement starts here (ns since run start).
    var measureStart: UInt64
    /// Closed loop: no new requests after this (ns since run start).
    var endTime: UInt64
    /// How long to wait for stragglers after the last send.
    var drainNanoseconds: UInt64
    var intervalNanoseconds: UInt64
    var maxBacklog: Int
    var firstBody: Int
    var timerResolutionNanoseconds: UInt64
    /// The per-request deadline (0: none). A request still waiting for a stream when it passes fails here,
    /// as a gRPC client's call would, without being sent.
    var deadlineNanoseconds: UInt64 = 0
}

/// One generator thread's reactor.
final class LoadWorker: ClientConnectionDelegate {
    private let plan: WorkerPlan
    private let address: SocketAddress
    private let headers: RequestHeaders
    private let tls: ClientTLSContext?
    private let table: SlotTable
    private let live: LiveCounters
    private let stop: StopSignal
    private var start = MonotonicInstant.now()
    private(set) var recorder: RunRecorder
    private var connections: [ClientConnection?] = []
    private var schedule: ArrivalSchedule?
    private var nextArrival: UInt64?
    /// Intended times waiting for a free stream (a ring: `backlogHead` is the oldest).
    private var backlog: [UInt64] = []
    private var backlogHead = 0
    private var nextConnection = 0
    private var nextBody: Int
    private var closedStarted = 0
    private var inFlight = 0
    private var lastReconnect: UInt64 = 0
    private var versions: [([UInt8], String)] = []
    private var publishedInterval = 0

    init(
        plan: WorkerPlan,
        address: SocketAddress,
        headers: RequestHeaders,
        bodies: [[UInt8]],
        live: LiveCounters,
        stop: StopSignal,
        tls: ClientTLSContext?
    ) {
        self.tls = tls
        self.plan = plan
        self.address = address
        self.headers = headers
        self.table = SlotTable(capacity: plan.connections * plan.streamsPerConnection, bodies: bodies)
        self.live = live
        self.stop = stop
        self.recorder = RunRecorder(measureStart: plan.measureStart, intervalNanoseconds: plan.intervalNanoseconds)
        self.nextBody = plan.firstBody
        if case .open(let schedule) = plan.load { self.schedule = schedule }
    }

    private func now() -> UInt64 { MonotonicInstant.now().nanoseconds(since: start) }

    /// Opens the connections (before the run's clock starts).
    func connect() throws(SwitchyardError) {
        var opened: [ClientConnection] = []
        for i in 0..<plan.connections {
            let fd = try address.connect()
            opened.append(
                ClientConnection(
                    fd: fd,
                    index: i,
                    maxStreams: plan.streamsPerConnection,
                    table: table,
                    delegate: self,
                    tls: try tls.map { context throws(SwitchyardError) in try ClientTLSSession(context: context) }
                )
            )
        }
        if tls != nil { try ClientConnection.establish(opened, target: address.description) }
        connections = opened
    }

    /// Runs until the schedule ends and every request finished or the drain time passed.
    func run(runStart: MonotonicInstant) throws(SwitchyardError) {
        start = runStart
        defer { live.finished.store(true, ordering: .releasing) }
        let epfd = cswitchyard_epoll_create()
        guard epfd >= 0 else { throw .internal("epoll_create: \(String(cString: strerror(errno)))") }
        defer { close(epfd) }
        let timer = try PreciseTimer()
        defer { close(timer.fd) }
        _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_ADD), timer.fd, UInt32(CSWITCHYARD_EPOLLIN), 0)
        for case let c? in connections {
            _ = cswitchyard_epoll_ctl(
                epfd,
                Int32(CSWITCHYARD_EPOLL_CTL_ADD),
                c.fd,
                UInt32(CSWITCHYARD_EPOLLIN),
                UInt64(c.index + 1)
            )
        }
        let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
        defer { readBuffer.deallocate() }
        var events = [UInt32](repeating: 0, count: 256)
        var tokens = [UInt64](repeating: 0, count: 256)
        var writeRegistered = [Bool](repeating: false, count: connections.count)

        nextArrival = schedule?.next()
        if case .closed(let concurrency, _) = plan.load {
            let t = now()
            for _ in 0..<concurrency where startClosed(at: t) {}
        }
        var sendingEnded: UInt64? = nil
        while true {
            let t = now()
            let stopping = stop.requested
            if stopping { nextArrival = nil }
            while let a = nextArrival, a <= t {
                recorder.offered(intended: a, handled: t)
                enqueue(intended: a, now: t)
                nextArrival = schedule?.next()
            }
            dispatchBacklog(now: t)
            flushAll(epfd: epfd, writeRegistered: &writeRegistered)
            publish(now: t)

            let sending: Bool
            switch plan.load {
            case .open: sending = nextArrival != nil
            case .closed(_, let limit):
                sending = !stopping && t < plan.endTime && (limit.map { closedStarted < $0 } ?? true)
            }
            if !sending && sendingEnded == nil { sendingEnded = t }
            if let ended = sendingEnded {
                if inFlight == 0 && backlogCount == 0 { break }
                if t >= ended &+ plan.drainNanoseconds || (stopping && t >= ended &+ 200_000_000) {
                    abandonAll(now: t)
                    break
                }
            }
            // Sleep until the next arrival (precisely), else until the drain deadline or the next interval.
            var wake = t &+ 100_000_000
            // Arrivals closer together than the timer resolution are sent together: one wake-up per
            // resolution step instead of one per request. They go out up to that late, and the lateness is
            // in their latency (measured from the intended time) and in the scheduling-lag figure.
            if let a = nextArrival { wake = min(wake, max(a, t &+ plan.timerResolutionNanoseconds)) }
            if let ended = sendingEnded { wake = min(wake, ended &+ plan.drainNanoseconds) }
            timer.arm(at: start.nanoseconds &+ wake)
            let n = cswitchyard_epoll_wait(epfd, &events, &tokens, Int32(events.count), 1000)
            if n < 0 && errno != EINTR { throw .internal("epoll_wait: \(String(cString: strerror(errno)))") }
            for i in 0..<max(Int(n), 0) {
                let token = Int(tokens[i])
                if token == 0 {
                    timer.drain()
                    continue
                }
                guard let connection = connections[token - 1] else { continue }
                var alive = true
                if events[i] & UInt32(CSWITCHYARD_EPOLLIN | CSWITCHYARD_EPOLLERR | CSWITCHYARD_EPOLLHUP) != 0 {
                    alive = connection.readAvailable(buffer: readBuffer)
                }
                if alive && events[i] & UInt32(CSWITCHYARD_EPOLLOUT) != 0 { alive = connection.flush() }
                if !alive { drop(connection: connection, epfd: epfd, writeRegistered: &writeRegistered) }
            }
            if sendingEnded == nil { reconnect(epfd: epfd, now: now(), writeRegistered: &writeRegistered) }
        }
        for case let c? in connections { _ = c.flush() }
        publish(now: now())
    }

    // MARK: Sending

    private var backlogCount: Int { backlog.count - backlogHead }

    private func enqueue(intended: UInt64, now: UInt64) {
        if backlogCount == 0, start(intended: intended, now: now) { return }
        if backlogCount >= plan.maxBacklog {
            recorder.completed(
                intended: intended,
                sent: nil,
                done: now,
                outcome: ClientOutcome.dropped,
                version: nil,
                message: "backlog of \(plan.maxBacklog) requests waiting for a free stream was full"
            )
            return
        }
        backlog.append(intended)
        recorder.backlog(backlogCount)
    }

    private func dispatchBacklog(now: UInt64) {
        while backlogHead < backlog.count {
            if !start(intended: backlog[backlogHead], now: now) { break }
            backlogHead += 1
        }
        if backlogHead == backlog.count {
            backlog.removeAll(keepingCapacity: true)
            backlogHead = 0
        } else if backlogHead > 4096 && backlogHead * 2 > backlog.count {
            backlog.removeFirst(backlogHead)
            backlogHead = 0
        }
    }

    /// Starts a request on a connection with a free stream; false when none has one.
    private func start(intended: UInt64, now: UInt64) -> Bool {
        if plan.deadlineNanoseconds > 0 && now &- min(now, intended) >= plan.deadlineNanoseconds {
            recorder.completed(
                intended: intended,
                sent: nil,
                done: now,
                outcome: ClientOutcome.name(ofStatus: 4),
                version: nil,
                message: "deadline passed while the request waited for a free stream (in the generator)"
            )
            return true
        }
        let count = connections.count
        for step in 0..<count {
            let i = (nextConnection + step) % count
            guard let connection = connections[i], connection.hasCapacity, let slot = table.take() else { continue }
            table.slots[slot] = RequestSlot(
                intended: intended,
                sent: now,
                body: nextBody,
                bodyOffset: 0,
                httpStatus: 0,
                grpcStatus: -1,
                message: nil,
                headCount: 0,
                inUse: true,
                connection: i
            )
            nextBody = (nextBody + 1) % table.bodies.count
            guard connection.submit(slot: slot, headers: headers) else {
                table.release(slot)
                continue
            }
            nextConnection = (i + 1) % count
            inFlight += 1
            recorder.sent(intended: intended, at: now)
            return true
        }
        return false
    }

    private func startClosed(at t: UInt64) -> Bool {
        if case .closed(_, let limit) = plan.load, let limit, closedStarted >= limit { return false }
        recorder.offered(intended: t, handled: t)
        guard start(intended: t, now: t) else { return false }
        closedStarted += 1
        return true
    }

    private func flushAll(epfd: Int32, writeRegistered: inout [Bool]) {
        for case let c? in connections {
            if !c.flush() {
                drop(connection: c, epfd: epfd, writeRegistered: &writeRegistered)
                continue
            }
            if c.wantsWrite != writeRegistered[c.index] {
                writeRegistered[c.index] = c.wantsWrite
                let mask = UInt32(CSWITCHYARD_EPOLLIN) | (c.wantsWrite ? UInt32(CSWITCHYARD_EPOLLOUT) : 0)
                _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_MOD), c.fd, mask, UInt64(c.index + 1))
            }
            if c.closed && c.isDone { drop(connection: c, epfd: epfd, writeRegistered: &writeRegistered) }
        }
    }

    // MARK: Completions

    func streamClosed(slot: Int, errorCode: UInt32, connection: ClientConnection) {
        finish(slot: slot, errorCode: errorCode, outcomeOverride: nil, now: now())
    }

    private func finish(slot: Int, errorCode: UInt32, outcomeOverride: String?, now t: UInt64) {
        let s = table.slots[slot]
        guard s.inUse else { return }
        var version: String? = nil
        let outcome: String
        var message = s.message
        if let outcomeOverride {
            outcome = outcomeOverride
        } else if s.grpcStatus >= 0 {
            outcome = ClientOutcome.name(ofStatus: Int(s.grpcStatus))
            if s.grpcStatus == 0 { version = servedVersion(slot: slot) }
        } else if errorCode != 0 {
            outcome = ClientOutcome.streamReset
            message = message ?? "RST_STREAM with HTTP/2 error code \(errorCode)"
        } else if s.httpStatus != 200 && s.httpStatus != 0 {
            outcome = "HTTP_\(s.httpStatus)"
        } else {
            outcome = ClientOutcome.missingStatus
        }
        recorder.completed(
            intended: s.intended,
            sent: s.sent,
            done: t,
            outcome: outcome,
            version: version,
            message: message
        )
        table.release(slot)
        inFlight -= 1
        if case .closed = plan.load, t < plan.endTime, !stop.requested {
            _ = startClosed(at: t)
        }
    }

    /// The response's `model_version`, interned so a steady stream of one version allocates nothing.
    private func servedVersion(slot: Int) -> String {
        let head = table.head(slot)
        guard head.count > 5,
            let bytes = InferenceMessages.modelVersion(inResponsePrefix: UnsafeRawBufferPointer(rebasing: head[5...]))
        else {
            return ""
        }
        for (key, name) in versions where key.count == bytes.count && key.elementsEqual(bytes) { return name }
        let name = String(decoding: bytes, as: UTF8.self)
        versions.append((Array(bytes), name))
        return name
    }

    private func drop(connection: ClientConnection, epfd: Int32, writeRegistered: inout [Bool]) {
        guard connections[connection.index] === connection else { return }
        connection.fail()
        _ = cswitchyard_epoll_ctl(epfd, Int32(CSWITCHYARD_EPOLL_CTL_DEL), connection.fd, 0, 0)
        writeRegistered[connection.index] = false
        connections[connection.index] = nil
        // A dropped session reports nothing more, so its open requests end here.
        let t = now()
        for slot in 0..<table.slots.count
        where table.slots[slot].inUse && table.slots[slot].connection == connection.index {
            finish(slot: slot, errorCode: 0, outcomeOverride: ClientOutcome.connectionLost, now: t)
        }
    }

    private func reconnect(epfd: Int32, now t: UInt64, writeRegistered: inout [Bool]) {
        guard t &- lastReconnect > 100_000_000, let i = connections.firstIndex(where: { $0 == nil }) else { return }
        lastReconnect = t
        guard let fd = try? address.connect() else { return }
        let session = tls.flatMap { try? ClientTLSSession(context: $0) }
        if tls != nil && session == nil {
            close(fd)
            return
        }
        let c = ClientConnection(
            fd: fd,
            index: i,
            maxStreams: plan.streamsPerConnection,
            table: table,
            delegate: self,
            tls: session
        )
        connections[i] = c
        _ = cswitchyard_epoll_ctl(
            epfd,
            Int32(CSWITCHYARD_EPOLL_CTL_ADD),
            fd,
            UInt32(CSWITCHYARD_EPOLLIN),
            UInt64(i + 1)
        )
    }

    private func abandonAll(now t: UInt64) {
        for slot in 0..<table.slots.count where table.slots[slot].inUse {
            finish(slot: slot, errorCode: 0, outcomeOverride: ClientOutcome.unfinished, now: t)
        }
        while backlogHead < backlog.count {
            recorder.completed(
                intended: backlog[backlogHead],
                sent: nil,
                done: t,
                outcome: ClientOutcome.unfinished,
                version: nil
            )
            backlogHead += 1
        }
    }

    private func publish(now t: UInt64) {
        live.offered.store(recorder.offered + recorder.warmupCompleted, ordering: .relaxed)
        live.completed.store(recorder.completed + recorder.warmupCompleted, ordering: .relaxed)
        live.ok.store(recorder.ok, ordering: .relaxed)
        live.inFlight.store(inFlight, ordering: .relaxed)
        live.backlog.store(backlogCount, ordering: .relaxed)
        guard t > plan.measureStart else { return }
        let current = Int((t - plan.measureStart) / plan.intervalNanoseconds)
        if current > publishedInterval {
            publishedInterval = current
            if let p99 = recorder.intervalP99(current - 1) { live.lastP99.store(Int(p99), ordering: .relaxed) }
        }
    }
}
