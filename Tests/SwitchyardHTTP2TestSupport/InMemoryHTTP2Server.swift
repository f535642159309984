// HTTP/2 server connections with no sockets, for tests and the fuzz harness: the real `Connection` (nghttp2
// session, callbacks, gRPC framing, limits, state machines) on an event loop that is never started. The thread
// that creates the server becomes the loop's own and turns it by hand, doing what the reactor does between
// socket reads: feed bytes in, apply the answers services queued, fire due deadlines, take the frames out.
// Built only for tests and Fuzz/; no product binary links it.

public import Logging
public import SwitchyardCore
public import SwitchyardHTTP2

/// One never-started event loop and its server state; connections made with `connect()` live on it.
///
/// Confined to the thread that created it (as a loop is to its thread): every call must come from that thread.
/// A service may answer from any thread; answers from other threads wait in the loop's queue until the next
/// `runPendingWork()`.
public final class InMemoryHTTP2Server {
    let loop: EventLoop
    let core: ServerCore

    /// Creates the loop and makes the calling thread its own.
    /// - Throws: when the loop's epoll or eventfd cannot be created.
    public init(service: any GRPCService, limits: ServerConfiguration.Limits = .init(), logger: Logger) throws {
        core = ServerCore(service: service, limits: limits, logger: logger)
        loop = try EventLoop(index: 0, core: core)
        loop.adoptCurrentThread()
    }

    /// A new connection, as if just accepted (its SETTINGS are ready to be flushed).
    public func connect() -> InMemoryHTTP2Connection {
        InMemoryHTTP2Connection(server: self)
    }

    /// The front end's counters.
    public var statistics: FrontEndStatistics { core.counters.snapshot() }

    /// Calls with an armed deadline, across this server's connections.
    public var armedDeadlines: Int { loop.armedDeadlines }

    /// Applies the answers services queued and fires due deadlines (what the loop does after each batch of
    /// socket events). Connections flush their frames in `InMemoryHTTP2Connection.flush()`.
    public func runPendingWork() {
        loop.runPendingWorkWithoutSockets()
    }
}

/// One server connection fed from memory.
public final class InMemoryHTTP2Connection {
    private let server: InMemoryHTTP2Server
    private let connection: Connection
    /// False once the connection is closed: the server ended it (after writing its last frames, or at once for a
    /// peer that does not read), nghttp2 finished it (GOAWAY exchanged, no stream left), or `close()` was called.
    public var isOpen: Bool { !connection.isClosed }

    init(server: InMemoryHTTP2Server) {
        self.server = server
        connection = Connection(inMemoryOn: server.loop)
    }

    /// Feeds bytes as if read from the socket (after TLS, when there is one). Returns false when the input ended
    /// the connection: it closes after the next `flush()` (which carries its GOAWAY), or at once.
    @discardableResult
    public func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard isOpen else { return false }
        return connection.receiveWithoutSocket(bytes)
    }

    /// Feeds bytes as if read from the socket. Returns false when the input ended the connection.
    @discardableResult
    public func receive(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { receive($0) }
    }

    /// Runs the server's pending work, then takes every frame the connection has to send (up to `rounds`
    /// times its output buffer limit), as a socket that takes everything would.
    public func flush(rounds: Int = 8) -> [UInt8] {
        server.runPendingWork()
        var output: [UInt8] = []
        connection.flushWithoutSocket(into: &output, rounds: rounds)
        return output
    }

    /// The first half of a graceful shutdown: a GOAWAY that warns of the drain without refusing streams yet.
    public func beginGracefulShutdown() {
        connection.sendShutdownNotice()
        connection.markDirty()
    }

    /// The drain's final GOAWAY: no stream after the last one processed; those in flight finish.
    public func sendFinalGoaway() {
        connection.sendFinalGoaway()
        connection.markDirty()
    }

    /// Whether calls of this connection are still live (their streams not closed).
    public var hasLiveCalls: Bool { connection.hasLiveCalls }

    /// Bytes of response messages queued in calls but not yet framed.
    public var queuedResponseBytes: Int { connection.queuedBytes }

    /// Closes the connection as when its socket closes: every live call ends as cancelled.
    public func close() {
        connection.closeWithoutSocket()
    }

    deinit {
        connection.closeWithoutSocket()
    }
}
