// One gRPC call (one HTTP/2 stream): the request state the connection builds from HEADERS and DATA, the
// response queue nghttp2's data provider reads from, and the `GRPCResponder` services answer through.
// Everything except `state` is confined to the owning loop; `send`/`fail` from other threads go through
// the loop's queue.

import SwitchyardCore
import Synchronization

/// A call's stream and responder.
final class GRPCCall: GRPCResponder, DeadlineHeapElement, @unchecked Sendable {
    /// `state` values: the responder may answer / a final answer was queued / the call ended without it.
    static let open: UInt8 = 0
    static let answered: UInt8 = 1
    static let cancelled: UInt8 = 2

    let loop: EventLoop
    let streamID: Int32
    /// Cross-thread part: whether answers are still wanted.
    let state = Atomic<UInt8>(GRPCCall.open)

    // MARK: Loop-confined state
    unowned(unsafe) var connection: Connection
    /// Intrusive list of the connection's live calls, for teardown.
    @exclusivity(unchecked) var previous: GRPCCall?
    @exclusivity(unchecked) var next: GRPCCall?
    /// Position in the loop's deadline heap, or -1.
    @exclusivity(unchecked) var heapIndex = -1
    @exclusivity(unchecked) var deadline: MonotonicInstant?

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
    @exclusivity(unchecked) var clientHalfClosed = false
    /// Requests were refused before dispatch (HTTP error or immediate status): ignore further DATA.
    @exclusivity(unchecked) var rejected = false
    /// Bytes this call holds in `FrontEndCounters.bufferedRequestBytes` for a partly received message.
    @exclusivity(unchecked) var reservedBytes = 0

    // Response side.
    @exclusivity(unchecked) var headersSent = false
    /// Response messages not yet copied into DATA frames, and how far into the first one we are
    /// (offsets 0–4 are its 5-byte prefix).
    @exclusivity(unchecked) var outQueue = MessageQueue()
    @exclusivity(unchecked) var outOffset = 0
    @exclusivity(unchecked) var queuedBytes = 0
    /// The final status, once decided; trailers go out when the queue drains.
    @exclusivity(unchecked) var finalStatus: GRPCStatus?
    @exclusivity(unchecked) var finalMetadata: [(name: String, value: String)] = []
    @exclusivity(unchecked) var dataDeferred = false
    /// The stream's final frame was handed to nghttp2 (or the stream is gone): nothing more may be sent.
    @exclusivity(unchecked) var wireDone = false
    @exclusivity(unchecked) var streamClosed = false
    /// A header block of the answer could not be sent and the short fallback status was submitted instead;
    /// if that fails too, the stream is reset.
    @exclusivity(unchecked) var fallbackSent = false
    /// A compressed message of this call is with the inflater; later messages wait in `waiting`, in order.
    @exclusivity(unchecked) var inflating = false
    @exclusivity(unchecked) var waiting: [(compressed: Bool, message: [UInt8])] = []
    /// Compressed bytes this call holds in `FrontEndCounters.bufferedRequestBytes` while they are inflated.
    @exclusivity(unchecked) var inflateReservation = 0

    init(loop: EventLoop, connection: Connection, streamID: Int32, limit: Int) {
        self.loop = loop
        self.connection = connection
        self.streamID = streamID
        self.deframer = MessageDeframer(limit: limit)
    }

    // MARK: GRPCResponder

    var isCancelled: Bool { state.load(ordering: .relaxed) == GRPCCall.cancelled }

    func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        if method?.kind == .bidirectionalStreaming {
            guard state.load(ordering: .relaxed) == GRPCCall.open else { return loop.countDropped() }
        } else {
            guard
                state.compareExchange(expected: GRPCCall.open, desired: GRPCCall.answered, ordering: .relaxed).exchanged
            else { return loop.countDropped() }
        }
        loop.enqueue(.send(self, message, metadata))
    }

    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        guard state.compareExchange(expected: GRPCCall.open, desired: GRPCCall.answered, ordering: .relaxed).exchanged
        else { return loop.countDropped() }
        loop.enqueue(.fail(self, status, metadata))
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
