// The life of one HTTP/2 connection, as a value: handshake, serving, draining after our GOAWAY, closing once
// the output is written, closed. `Connection` and the event loop feed it events and perform what it returns
// (submit GOAWAY, count, close); the verdict that ends a connection by policy lives in its closing state.

/// Why the front end ends a connection it would otherwise keep: its own policy, not nghttp2's.
enum ConnectionVerdict: Hashable {
    /// Over a frame budget, flooding, or not reading responses: GOAWAY ENHANCE_YOUR_CALM.
    case calm
    /// Handshake, header-block or idle timeout: GOAWAY NO_ERROR.
    case timeout
}

/// The phases of one server connection.
///
/// ```
/// awaitingPreface ──first SETTINGS──▶ active ──final GOAWAY──▶ draining
///        │                              │                         │
///        └────────────── end(verdict) / protocol error / peer gone ┴──▶ closing ──written──▶ closed
/// ```
/// Any state may go straight to `closed` (the socket failed, the loop stopped). Events that do not apply in the
/// current state return `.none` and change nothing: a second GOAWAY, a verdict after a verdict, a notice while
/// closing.
struct ConnectionStateMachine {
    enum State: Hashable {
        /// Accepted (under TLS: possibly still in the handshake); the client's preface and first SETTINGS have
        /// not arrived. The handshake timeout applies. Moves to `active` on that SETTINGS frame.
        case awaitingPreface
        /// Serving streams. Moves to `draining` with our final GOAWAY (graceful shutdown).
        case active
        /// Our final GOAWAY is queued: no new streams; those in flight finish, and nghttp2 reports the session
        /// finished once they have. `prefaceReceived`: whether the handshake completed before the drain.
        case draining(prefaceReceived: Bool)
        /// Ending: the connection closes once its output is written (`flush`), or at once when the peer is not
        /// reading (`flush == false`). `verdict`: set when our policy ended it (with a GOAWAY naming the reason);
        /// nil after a protocol error or the peer's close, where nghttp2 or TLS wrote the last word.
        case closing(verdict: ConnectionVerdict?, flush: Bool)
        /// The socket is closed and the session freed. Final.
        case closed
    }

    private(set) var state: State = .awaitingPreface
    /// This connection's protocol failure was counted (it is counted once, however many ways it shows).
    private var protocolErrorCounted = false

    // MARK: Queries

    /// The verdict that ended the connection, if our policy did.
    var verdict: ConnectionVerdict? {
        if case .closing(let verdict, _) = state { return verdict }
        return nil
    }

    var isClosed: Bool { state == .closed }

    /// Whether the connection is ending: nothing more is read, it closes once written (or at once).
    var isClosing: Bool {
        switch state {
        case .closing, .closed: true
        case .awaitingPreface, .active, .draining: false
        }
    }

    /// Whether the peer is being cut off without waiting for its output.
    var closesImmediately: Bool {
        if case .closing(_, flush: false) = state { return true }
        return false
    }

    /// Whether the handshake (preface and first SETTINGS) is still outstanding.
    var isAwaitingPreface: Bool { state == .awaitingPreface || state == .draining(prefaceReceived: false) }

    /// Whether the loop's sweep applies its timeouts (handshake, header block, idle) to this connection.
    var isSwept: Bool {
        switch state {
        case .awaitingPreface, .active, .draining: true
        case .closing(let verdict, _): verdict == nil
        case .closed: false
        }
    }

    /// Whether frames may still be charged to the budgets (false once a verdict ended the connection: every
    /// further frame is refused, which stops nghttp2's parsing).
    var acceptsFrames: Bool { verdict == nil && !isClosed }

    // MARK: Events

    /// A SETTINGS frame (not an ACK) arrived. Returns true for the first, which completes the handshake and is
    /// free; later ones are charged to the control-frame budget.
    mutating func settingsReceived() -> Bool {
        switch state {
        case .awaitingPreface:
            state = .active
            return true
        case .draining(prefaceReceived: false):
            state = .draining(prefaceReceived: true)
            return true
        case .active, .draining(prefaceReceived: true), .closing, .closed:
            return false
        }
    }

    /// What to do for the first half of a graceful shutdown.
    enum NoticeAction: Hashable {
        /// Submit nghttp2's shutdown notice (GOAWAY with the largest stream id).
        case sendNotice
        case none
    }

    /// The server begins to drain: tell the client no new streams will be accepted soon.
    func shutdownNoticeRequested() -> NoticeAction {
        switch state {
        case .awaitingPreface, .active: .sendNotice
        case .draining, .closing, .closed: .none
        }
    }

    /// What to do for the final GOAWAY of a graceful shutdown.
    enum GoawayAction: Hashable {
        /// Submit GOAWAY NO_ERROR with the last stream id processed.
        case sendGoaway
        case none
    }

    /// The drain's final GOAWAY is due.
    mutating func finalGoawayRequested() -> GoawayAction {
        switch state {
        case .awaitingPreface:
            state = .draining(prefaceReceived: false)
            return .sendGoaway
        case .active:
            state = .draining(prefaceReceived: true)
            return .sendGoaway
        case .draining, .closing, .closed:
            return .none
        }
    }

    /// What to do when our policy ends the connection.
    enum EndAction: Hashable {
        /// Count the verdict, log the reason, and submit GOAWAY (ENHANCE_YOUR_CALM or NO_ERROR) with it.
        case sendGoaway(ConnectionVerdict)
        /// A verdict was already given, or the connection is closed.
        case none
    }

    /// Our policy ends the connection (a budget, a timeout, a peer not reading).
    mutating func end(_ verdict: ConnectionVerdict) -> EndAction {
        switch state {
        case .awaitingPreface, .active, .draining, .closing(verdict: nil, _):
            let flush = state != .closing(verdict: nil, flush: false)
            state = .closing(verdict: verdict, flush: flush)
            return .sendGoaway(verdict)
        case .closing, .closed:
            return .none
        }
    }

    /// The peer must be cut off without waiting for our output (it is not reading it).
    mutating func closeImmediately() {
        switch state {
        case .awaitingPreface, .active, .draining:
            state = .closing(verdict: nil, flush: false)
        case .closing(let verdict, _):
            state = .closing(verdict: verdict, flush: false)
        case .closed:
            break
        }
    }

    /// Input ended the connection (a protocol error nghttp2 answered, TLS closed or failed): close once the last
    /// frames (GOAWAY, an alert, close_notify) are written.
    mutating func closeAfterFlush() {
        switch state {
        case .awaitingPreface, .active, .draining:
            state = .closing(verdict: nil, flush: true)
        case .closing, .closed:
            break
        }
    }

    /// A protocol failure was noticed. Returns true the first time, when it is to be counted.
    mutating func protocolErrorSeen() -> Bool {
        if protocolErrorCounted { return false }
        protocolErrorCounted = true
        return true
    }

    /// What to do after the output was written out completely.
    enum FlushedAction: Hashable {
        /// Close the socket.
        case close
        /// Keep going.
        case none
    }

    /// Everything produced was written. `sessionFinished`: nghttp2 neither reads nor writes any more (GOAWAY
    /// exchanged and the last stream done, or a fatal error).
    func flushed(sessionFinished: Bool) -> FlushedAction {
        if sessionFinished { return .close }
        if case .closing = state { return .close }
        return .none
    }

    /// The socket was closed and the session freed. Returns false when it already was.
    mutating func closed() -> Bool {
        if state == .closed { return false }
        state = .closed
        return true
    }
}
