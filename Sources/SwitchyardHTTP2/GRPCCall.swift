// One gRPC call (one HTTP/2 stream): the request state the connection builds from HEADERS and DATA, the
// response queue nghttp2's data provider reads from, and the `GRPCResponder` services answer through.
// Everything except `responder` is confined to the owning loop (asserted in debug builds); `send`/`fail` from
// other threads read only that atomic and go through the loop's queue.

import SwitchyardCore
import Synchronization

/// A call's stream and responder.
package final class GRPCCall: GRPCResponder, DeadlineHeapElement, @unchecked Sendable {
    /// `responder` values: what an answer from any thread may still do. The loop moves it; services' threads
    /// only read it or compare-and-swap it away from `unaryOpen`/`streamOpen`.
    enum Responder {
        /// A unary call (or one whose method is not known yet) waits for its one answer.
        static let unaryOpen: UInt8 = 0
        /// A streaming call takes any number of messages until it ends.
        static let streamOpen: UInt8 = 3
        /// The final answer was queued; later ones are dropped.
        static let answered: UInt8 = 1
        /// The call ended without it (reset, deadline, refusal, connection closed): answers are dropped and work
        /// for it may be skipped.
        static let cancelled: UInt8 = 2
    }

    let loop: EventLoop
    let streamID: Int32
    /// Cross-thread part: whether answers are still wanted, and whether more than one is (see `Responder`).
    /// Set to `streamOpen` on the loop before the service first sees the call, so `send` needs nothing else.
    let responder = Atomic<UInt8>(Responder.unaryOpen)

    // MARK: Loop-confined state
    /// The owning connection. Unowned and unchecked: a call never outlives its connection's teardown, which
    /// closes every stream first; loop messages for a call check `stream.isClosed` before reaching it here.
    private unowned(unsafe) let owner: Connection
    /// Intrusive list of the connection's live calls, for teardown.
    @exclusivity(unchecked) var previous: GRPCCall?
    @exclusivity(unchecked) var next: GRPCCall?
    /// Position in the loop's deadline heap, or -1.
    @exclusivity(unchecked) var heapIndex = -1
    @exclusivity(unchecked) var deadline: MonotonicInstant?
    @exclusivity(unchecked) private var _stream = GRPCStreamStateMachine()

    // Request side.
    @exclusivity(unchecked) var path = ""
    @exclusivity(unchecked) var method: GRPCMethod?
    @exclusivity(unchecked) var isPost = false
    @exclusivity(unchecked) var contentTypeOK = false
    @exclusivity(unchecked) var contentTypeSeen = ""
    @exclusivity(unchecked) var headerBytes = 0
    @exclusivity(unchecked) var badTimeout: String?
    @exclusivity(unchecked) var encoding: GRPCCompression = .identity
    @exclusivity(unchecked) var unsupportedEncoding: String?
    @exclusivity(unchecked) var metadata: [(name: String, value: String)] = []
    @exclusivity(unchecked) var deframer: MessageDeframer
    @exclusivity(unchecked) var head: GRPCRequestHead?
    @exclusivity(unchecked) var messagesReceived = 0
    @exclusivity(unchecked) var messagesAnswered = 0
    /// Bytes this call holds in `AtomicFrontEndStatistics.bufferedRequestBytes` for a partly received message.
    @exclusivity(unchecked) var reservedBytes = 0

    // Response side.
    /// Response messages not yet copied into DATA frames, and how far into the first one we are
    /// (offsets 0–4 are its 5-byte prefix).
    @exclusivity(unchecked) var outQueue = MessageQueue()
    @exclusivity(unchecked) var outOffset = 0
    @exclusivity(unchecked) var queuedBytes = 0
    /// Metadata sent with the final status (the status itself is in `stream`).
    @exclusivity(unchecked) var finalMetadata: [(name: String, value: String)] = []
    /// A compressed message of this call is with the inflater; later messages wait in `waiting`, in order.
    @exclusivity(unchecked) var inflating = false
    @exclusivity(unchecked) var waiting: [(compressed: Bool, message: [UInt8])] = []
    /// Compressed bytes this call holds in `AtomicFrontEndStatistics.bufferedRequestBytes` while they are inflated.
    @exclusivity(unchecked) var inflateReservation = 0

    init(loop: EventLoop, connection: Connection, streamID: Int32, limit: Int) {
        self.loop = loop
        self.owner = connection
        self.streamID = streamID
        self.deframer = MessageDeframer(limit: limit)
    }

    /// The call's phases (see `GRPCStreamStateMachine`); on the loop only.
    var stream: GRPCStreamStateMachine {
        _read {
            loop.assertOnLoop()
            yield _stream
        }
        _modify {
            loop.assertOnLoop()
            yield &_stream
        }
    }

    /// The owning connection, while the stream is open; on the loop only.
    var connection: Connection {
        loop.assertOnLoop()
        assert(!_stream.isClosed, "a closed stream's connection may be gone")
        return owner
    }

    // MARK: GRPCResponder

    package var isCancelled: Bool { responder.load(ordering: .relaxed) == Responder.cancelled }

    package func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        let state = responder.load(ordering: .relaxed)
        if state == Responder.unaryOpen {
            guard
                responder.compareExchange(
                    expected: Responder.unaryOpen,
                    desired: Responder.answered,
                    ordering: .relaxed
                ).exchanged
            else { return loop.countDropped() }
        } else if state != Responder.streamOpen {
            return loop.countDropped()
        }
        loop.enqueue(.send(self, message, metadata))
    }

    package func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        var expected = responder.load(ordering: .relaxed)
        while expected == Responder.unaryOpen || expected == Responder.streamOpen {
            let (exchanged, original) = responder.compareExchange(
                expected: expected,
                desired: Responder.answered,
                ordering: .relaxed
            )
            if exchanged { return loop.enqueue(.fail(self, status, metadata)) }
            expected = original
        }
        loop.countDropped()
    }
}

/// A FIFO of response messages that holds the common single message (every unary call) without
/// allocating, and pops from the front in O(1) for streams.
struct MessageQueue {
    private var first: [UInt8]?
    private var more: [[UInt8]] = []
    private var moreHead = 0

    var isEmpty: Bool { first == nil }
    /// The oldest message (`isEmpty` must be false).
    var front: [UInt8] { first! }

    mutating func append(_ message: [UInt8]) {
        if first == nil { first = message } else { more.append(message) }
    }

    mutating func removeFirst() {
        if moreHead < more.count {
            first = more[moreHead]
            more[moreHead] = []
            moreHead += 1
            if moreHead == more.count {
                more.removeAll(keepingCapacity: true)
                moreHead = 0
            }
        } else {
            first = nil
        }
    }

    mutating func removeAll() {
        first = nil
        more.removeAll()
        moreHead = 0
    }
}
