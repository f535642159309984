// The gRPC front end's public face: binds the listener, runs N event-loop threads, drains on shutdown
// and exposes counters. Accepting happens on loop 0, which hands sockets to loops round-robin.

internal import CEpoll
public import Logging
public import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An HTTP/2 gRPC server: h2c with prior knowledge, or TLS 1.2/1.3 with ALPN "h2".
///
/// `eventLoops` threads each run an epoll reactor that owns its connections; loop 0 also accepts and
/// hands sockets out round-robin. With `restListen` set, the same loops also serve HTTP/1.1 connections of a
/// second listener and dispatch their requests to an `HTTPService`. Call `start()` once and `shutdown(gracePeriodSeconds:)` before
/// dropping the server (the loop threads keep it alive until then); never call `shutdown` from inside a
/// `GRPCService` callback, which runs on a loop thread.
public final class GRPCServer: Sendable {
    /// What to listen on and how.
    @MemberwiseInit
    public struct Configuration: Sendable {
        /// Address to bind; port 0 picks a free port (see `start()`'s result).
        public var listen: HostAndPort
        /// Event-loop threads (at least 1).
        public var eventLoops: Int = 1
        /// TLS settings; `nil` serves h2c.
        public var tls: ServerConfiguration.TLSSettings?
        /// Per-connection and per-stream limits.
        public var limits: ServerConfiguration.Limits = .init()
        /// CPUs the event-loop threads run on; empty: any.
        public var loopCPUs: [Int] = []
        /// The REST (HTTP/1.1) listener on the same loops; `nil`: none. Needs an `HTTPService`. With `tls` set it
        /// serves TLS too, with the same certificate, key and client CAs (ALPN "http/1.1").
        public var restListen: HostAndPort?
    }

    private enum Lifecycle: Sendable {
        case idle
        case running(threads: [UInt], restPort: Int?)
        case stopped
    }

    private let configuration: Configuration
    private let core: ServerCore
    private let loops: [EventLoop]
    private let lifecycle = Mutex<Lifecycle>(.idle)

    /// Creates a server; loads the TLS certificate and key when configured.
    /// - Parameters:
    ///   - service: what gRPC calls are dispatched to.
    ///   - httpService: what the REST listener's requests are dispatched to (needed when `restListen` is set).
    /// - Throws: `SwitchyardError.invalidArgument` for an unusable configuration or TLS file (naming it).
    public init(
        configuration: Configuration,
        service: any GRPCService,
        httpService: (any HTTPService)? = nil,
        logger: Logger
    ) throws {
        if configuration.restListen != nil && httpService == nil {
            throw SwitchyardError.invalidArgument("restListen: a REST listener needs an HTTP service")
        }
        guard configuration.eventLoops >= 1 && configuration.eventLoops <= 256 else {
            throw SwitchyardError.invalidArgument("eventLoops: expected 1…256, got \(configuration.eventLoops)")
        }
        let problems = configuration.limits.validate()
        if !problems.isEmpty { throw SwitchyardError.invalidArgument(problems.joined(separator: "; ")) }
        self.configuration = configuration
        let tls = try configuration.tls.map { try TLSContext(settings: $0) }
        // The REST port serves TLS whenever the gRPC port does, with the same certificate, key and client CAs.
        let restTLS =
            configuration.restListen == nil
            ? nil : try configuration.tls.map { try TLSContext(settings: $0, protocol: .http1) }
        core = ServerCore(
            service: service,
            http: httpService,
            limits: configuration.limits,
            tls: tls,
            restTLS: restTLS,
            logger: logger
        )
        var loops: [EventLoop] = []
        for index in 0..<configuration.eventLoops {
            loops.append(try EventLoop(index: index, core: core, cpus: configuration.loopCPUs))
        }
        loops[0].peers = loops
        self.loops = loops
    }

    deinit {
        // Loop 0 hands sockets to every loop, itself included: without this, that reference cycle would keep the
        // loops (their buffers, epoll and event descriptors) and the service alive after the server is gone. A
        // server dropped while running keeps them, as its threads still run them.
        if case .running = lifecycle.withLock({ $0 }) { return }
        loops[0].peers = []
    }

    /// Binds the listener and starts the loop threads.
    /// - Returns: the bound port (useful with port 0).
    /// - Throws: `SwitchyardError` when the address cannot be resolved or bound, or the server was started.
    public func start() throws -> Int {
        try lifecycle.withLock { state in
            guard case .idle = state else {
                throw SwitchyardError(
                    .failedPrecondition,
                    "GRPCServer.start: expected a new server, it was already started"
                )
            }
            Self.raiseDescriptorLimit(for: configuration.limits.maxConnections, logger: core.logger)
            // Request buffers of 1 MiB or more (messages assembled across frames, inflated messages) get their own
            // mappings and go back to the system when freed. By default glibc raises its thresholds as such
            // buffers are freed and then keeps tens of MiB per thread arena after a burst of large requests.
            _ = cswitchyard_set_mmap_threshold(1 << 20)
            // A flood of new connections (about 14 KiB each) grew the loop's arena 128 KiB at a time, and each step
            // (an mprotect) cost the loop more than the allocations it made room for: 13 % of its time while 2000
            // connections opened. 1 MiB steps; malloc_trim still gives the pad back.
            _ = cswitchyard_set_top_pad(1 << 20)
            try core.inflater.start()
            let (fd, port) = try Self.bind(configuration.listen, key: "listen")
            var restPort: Int?
            if let restListen = configuration.restListen {
                do {
                    let (restFD, bound) = try Self.bind(restListen, key: "rest_listen")
                    loops[0].attachRESTListener(restFD)
                    restPort = bound
                } catch {
                    close(fd)
                    throw error
                }
            }
            loops[0].attachListener(fd)
            var threads: [UInt] = []
            for loop in loops {
                threads.append(UInt(try startThread(name: "switchyard-io-\(loop.index)") { loop.run() }))
            }
            state = .running(threads: threads, restPort: restPort)
            core.logger.info(
                "gRPC front end listening",
                metadata: [
                    "address": "\(configuration.listen.host):\(port)", "loops": "\(loops.count)",
                    "tls": "\(configuration.tls != nil)", "limits": "\(configuration.limits.summary)",
                    "rest": "\(restPort.map { "\(configuration.restListen!.host):\($0)" } ?? "off")",
                    "cpus":
                        "\(configuration.loopCPUs.isEmpty ? "any" : SystemInfo.describeCPUList(configuration.loopCPUs))",
                ]
            )
            return port
        }
    }

    /// Drains and stops: stops accepting, sends GOAWAY on every connection, lets in-flight calls finish
    /// for up to `gracePeriodSeconds`, then closes what is left (those calls end cancelled) and joins the
    /// loop threads. Blocks until done; safe to call more than once.
    public func shutdown(gracePeriodSeconds: Double) {
        let threads: [UInt] = lifecycle.withLock { state in
            guard case .running(let threads, _) = state else {
                state = .stopped
                return []
            }
            state = .stopped
            return threads
        }
        guard !threads.isEmpty else { return }
        let grace = UInt64(max(0, min(gracePeriodSeconds, 86_400)) * 1e9)
        let deadline = MonotonicInstant.now().advanced(byNanoseconds: grace)
        for loop in loops { loop.enqueue(.shutdown(deadline)) }
        for thread in threads { pthread_join(pthread_t(thread), nil) }
        core.inflater.stop()
        core.logger.info("gRPC front end stopped", metadata: ["statistics": "\(statistics)"])
    }

    /// The port the REST listener is bound to, once started with one (useful with port 0).
    public var restPort: Int? {
        lifecycle.withLock { state in
            if case .running(_, let restPort) = state { return restPort }
            return nil
        }
    }

    /// A snapshot of the front end's counters.
    public var statistics: FrontEndStatistics { core.counters.snapshot() }

    /// Each connection costs a descriptor, and the soft limit is often 1024: raise it toward the hard limit
    /// so that `maxConnections` can be reached, and say so when it cannot.
    private static func raiseDescriptorLimit(for maxConnections: Int, logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let wanted = rlim_t(maxConnections) + 256  // listener, epoll, eventfds, model files, admin, logs
        if limit.rlim_cur < wanted && limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = min(wanted, limit.rlim_max)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        if limit.rlim_cur < wanted {
            logger.warning(
                "the descriptor limit is below limits.max_connections; accepting pauses when it is reached",
                metadata: ["limit": "\(limit.rlim_cur)", "max_connections": "\(maxConnections)"]
            )
        }
    }

    /// Resolves and binds a non-blocking listening socket.
    private static func bind(_ address: HostAndPort, key: String) throws -> (Int32, Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let host = address.host == "*" ? nil : address.host
        let rc = getaddrinfo(host, String(address.port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SwitchyardError.invalidArgument(
                "\(key): cannot resolve '\(address)': \(String(cString: gai_strerror(rc)))"
            )
        }
        defer { freeaddrinfo(result) }
        var lastError: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(
                info.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                0
            )
            if fd < 0 {
                lastError = errno
                continue
            }
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 || listen(fd, 4096) != 0 {
                lastError = errno
                close(fd)
                continue
            }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let port = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Int in
                    getsockname(fd, sa, &length)
                    if sa.pointee.sa_family == UInt16(AF_INET6) {
                        return sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                            Int(UInt16(bigEndian: $0.pointee.sin6_port))
                        }
                    }
                    return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin_port))
                    }
                }
            }
            return (fd, port)
        }
        throw SwitchyardError.invalidArgument(
            "\(key): cannot bind \(address): \(String(cString: strerror(lastError)))"
        )
    }
}
