// The life of one gRPC call on its HTTP/2 stream, as a value: which way each side of the stream stands, and what
// the connection must do (submit headers, resume DATA, send trailers, reset, count) when something happens to
// it. No nghttp2, no sockets, no clock: `Connection` feeds it events and performs the actions it returns, and
// the tests drive it directly.

/// The phases of one gRPC call, one enum per direction of its stream.
///
/// The two directions move independently (a client may half-close before or after the answer starts; a service
/// may answer before the request is complete), as in gRPC's own stream state machines, so the state is the pair
/// plus whether nghttp2 has closed the stream. Each event is a mutating method; what it returns is what the
/// connection does next. An event that is not legal in the current state returns an action that does nothing
/// (`.ignore`, `.drop`): those arrive in practice (an answer after a reset, a deadline after the trailers) and are
/// counted or skipped, never applied.
struct GRPCStreamStateMachine {
    /// The client's side of the stream.
    enum Request: Hashable {
        /// HEADERS arrived; the header block is being decoded. Moves to `open` when it is complete and valid,
        /// to `refused` when it is not.
        case headers
        /// Headers accepted: each complete request message is handed to the service. Moves to `closed` on the
        /// client's END_STREAM, to `refused` when the call is refused mid-stream.
        case open
        /// The client half-closed (END_STREAM) after valid headers. Messages already received (or still being
        /// inflated) are still handed on. Moves to `refused` only when the call is refused.
        case closed
        /// Refused (a limit, a malformed request, an HTTP error, a reset): DATA is dropped unread from here on.
        /// `halfClosed`: whether the client has ended its side too. Final.
        case refused(halfClosed: Bool)
    }

    /// The server's side of the stream.
    enum Response: Hashable {
        /// Nothing of the answer submitted. Moves to `open` or `finishing` with the response HEADERS, to `done`
        /// with a Trailers-Only answer, an HTTP error or a reset.
        case idle
        /// Response HEADERS submitted with a data provider; queued messages go out as DATA.
        /// `deferred`: the provider found nothing to send and nghttp2 waits for a resume.
        case open(deferred: Bool)
        /// The final status is decided; the trailers follow once every queued message is framed.
        case finishing(GRPCStatus, deferred: Bool)
        /// The stream's final frame (trailers, Trailers-Only, an HTTP error or RST_STREAM) is with nghttp2:
        /// nothing more may be sent. `code`: the status it carried, when it carried one (the fallback keeps it).
        case done(code: GRPCStatusCode?)
        /// A header block of the answer could not be encoded and the short fallback status went out instead.
        /// If that one fails too, the stream is reset.
        case fallback
    }

    private(set) var request: Request = .headers
    private(set) var response: Response = .idle
    /// nghttp2 closed the stream (both sides done, or reset): the call is unlinked and released. Final.
    private(set) var isClosed = false

    // MARK: Queries

    /// Whether request headers are still being taken (the block is not complete and was not cut short).
    var acceptsHeaders: Bool { request == .headers && !isFinal }

    /// Whether request bytes and messages are still handed on: headers accepted, not refused, the answer not
    /// finished. After the client's END_STREAM this stays true for messages that were already in the pipeline.
    var isReceiving: Bool {
        switch request {
        case .open, .closed: !isFinal
        case .headers, .refused: false
        }
    }

    /// Whether the client has ended its side (END_STREAM).
    var requestHalfClosed: Bool {
        switch request {
        case .closed, .refused(halfClosed: true): true
        case .headers, .open, .refused(halfClosed: false): false
        }
    }

    /// Whether the response HEADERS have gone to nghttp2 (so an answer's status goes in trailers).
    var responseStarted: Bool {
        if case .idle = response { return false }
        return true
    }

    /// Whether the final status is decided (the service's or the front end's): later answers are dropped.
    var hasFinalStatus: Bool {
        switch response {
        case .idle, .open: false
        case .finishing, .done, .fallback: true
        }
    }

    /// Whether the stream's final frame is with nghttp2 (or the stream is gone): nothing more may be sent.
    var isFinal: Bool {
        if isClosed { return true }
        switch response {
        case .done, .fallback: return true
        case .idle, .open, .finishing: return false
        }
    }

    // MARK: Request events

    /// What to do when a header list grows far past its limit while it is decoded.
    enum HeaderOverflowAction: Hashable {
        /// Reset the stream with ENHANCE_YOUR_CALM, count the call as RESOURCE_EXHAUSTED, cancel the responder.
        case reset
        /// The stream is no longer taking headers.
        case ignore
    }

    /// The header list is so far over the limit that the rest of the block must not be looked at (an HPACK bomb).
    mutating func headerListOverflowed() -> HeaderOverflowAction {
        guard acceptsHeaders else { return .ignore }
        request = .refused(halfClosed: false)
        response = .done(code: .resourceExhausted)
        return .reset
    }

    /// What to do when a request's header block is complete.
    enum HeadersCompleteAction: Hashable {
        /// Validate the headers; the call is open unless validation refuses it.
        case validate
        /// The stream was reset while its headers were decoded.
        case ignore
    }

    /// The request's header block is complete.
    mutating func requestHeadersComplete() -> HeadersCompleteAction {
        guard acceptsHeaders else { return .ignore }
        request = .open
        return .validate
    }

    /// What to do when the client ends its side (END_STREAM).
    enum RequestEndAction: Hashable {
        /// Check the request is whole (no partial message, a unary call's one message) and whether a stream
        /// ends here.
        case check
        /// The call was refused or is finished: nothing to check.
        case ignore
    }

    /// The client half-closed its side.
    mutating func requestEnded() -> RequestEndAction {
        switch request {
        case .headers, .open:
            request = .closed
            return isFinal ? .ignore : .check
        case .closed, .refused(halfClosed: true):
            return .ignore  // nghttp2 reports END_STREAM once; a second one changes nothing
        case .refused(halfClosed: false):
            request = .refused(halfClosed: true)
            return .ignore
        }
    }

    // MARK: Response events

    /// What to do with an answer (a service's message or status, a deadline, a front-end refusal).
    enum AnswerAction: Hashable {
        /// Submit the response HEADERS with the data provider (the first message).
        case submitResponseHeaders
        /// Submit a Trailers-Only answer (one HEADERS frame with END_STREAM) and count the call by its status.
        case submitTrailersOnly
        /// Wake the data provider nghttp2 deferred.
        case resumeData
        /// The data provider is already scheduled: just flush.
        case flush
        /// The call already has its final status or final frame: count the answer as dropped.
        case drop
    }

    /// A service's response message was queued. `final`: it completes the call with OK (a unary answer, or a
    /// stream's last answer after the client half-closed).
    mutating func messageQueued(final: Bool) -> AnswerAction {
        guard !isClosed else { return .drop }
        switch response {
        case .idle:
            response = final ? .finishing(.ok, deferred: false) : .open(deferred: false)
            return .submitResponseHeaders
        case .open(let deferred):
            response = final ? .finishing(.ok, deferred: false) : .open(deferred: false)
            return deferred ? .resumeData : .flush
        case .finishing, .done, .fallback:
            return .drop
        }
    }

    /// The call ends with `status` (a service's failure, a deadline, a refusal, a stream's OK end).
    mutating func finish(_ status: GRPCStatus) -> AnswerAction {
        guard !isClosed else { return .drop }
        switch response {
        case .idle:
            response = .done(code: status.code)
            return .submitTrailersOnly
        case .open(let deferred):
            response = .finishing(status, deferred: false)
            return deferred ? .resumeData : .flush
        case .finishing, .done, .fallback:
            return .drop
        }
    }

    /// The front end refuses the call with `status`: the request side stops, the answer is `finish(status)`'s.
    mutating func refuse(_ status: GRPCStatus) -> AnswerAction {
        request = .refused(halfClosed: requestHalfClosed)
        return finish(status)
    }

    /// The front end answers with an HTTP error (405, 415) instead of gRPC: legal only before any answer.
    /// Returns false when the answer had already started (then nothing is sent).
    mutating func refuseWithHTTPError() -> Bool {
        guard !isClosed, case .idle = response else { return false }
        request = .refused(halfClosed: requestHalfClosed)
        response = .done(code: .internal)
        return true
    }

    /// What the data provider does once it has copied what was queued.
    enum DataDrainedAction: Hashable {
        /// Everything is framed and the status decided: end the DATA (without END_STREAM), submit the trailers
        /// with this status and count the call by it.
        case sendTrailers(GRPCStatus)
        /// Nothing was copied: defer until a resume.
        case deferData
        /// Return what was copied.
        case send
    }

    /// The data provider copied `written` bytes and the queue is `queueEmpty`.
    mutating func dataProvided(written: Int, queueEmpty: Bool) -> DataDrainedAction {
        switch response {
        case .finishing(let status, _) where queueEmpty:
            response = .done(code: status.code)
            return .sendTrailers(status)
        case .finishing(let status, _) where written == 0:
            response = .finishing(status, deferred: true)
            return .deferData
        case .open where written == 0:
            response = .open(deferred: true)
            return .deferData
        case .open, .finishing:
            return .send
        case .idle, .done, .fallback:
            // nghttp2 asks only for streams whose response HEADERS carried the provider, and stops once their
            // final frame is queued: nothing to send.
            return written == 0 ? .deferData : .send
        }
    }

    /// What to do when a header block of the answer could not be sent.
    enum HeadersNotSentAction: Hashable {
        /// Send the short fallback status with this code (Trailers-Only or trailers, as the failed block was).
        case sendFallback(GRPCStatusCode)
        /// The fallback failed too: reset the stream.
        case reset
        /// The stream is gone.
        case ignore
    }

    /// nghttp2 could not send one of the answer's header blocks (larger than it encodes, or invalid).
    mutating func headersNotSent() -> HeadersNotSentAction {
        guard !isClosed else { return .ignore }
        let code: GRPCStatusCode
        switch response {
        case .fallback:
            return .reset
        case .finishing(let status, _):
            code = status.code
        case .done(let sent):
            code = sent ?? .internal
        case .idle, .open:
            code = .internal
        }
        response = .fallback
        return .sendFallback(code == .ok ? .internal : code)
    }

    /// The answer could not go out at all: the stream is reset, nothing more is sent.
    mutating func reset() {
        guard !isFinal else { return }
        response = .done(code: nil)
    }

    /// What to do when a call's deadline passes.
    enum DeadlineAction: Hashable {
        /// Cancel the responder and finish the call with DEADLINE_EXCEEDED.
        case finishDeadlineExceeded
        /// The call is already finished.
        case ignore
    }

    /// The call's deadline passed.
    func deadlineExpired() -> DeadlineAction {
        isFinal ? .ignore : .finishDeadlineExceeded
    }

    // MARK: Stream end

    /// What to do when nghttp2 closes the stream (or the connection goes).
    enum CloseAction: Hashable {
        /// The call ended before its final frame (RST_STREAM, a stream error, the connection closing): cancel
        /// the responder and count the call as CANCELLED.
        case cancel
        /// The call had finished; just release it.
        case release
        /// The stream was closed already.
        case ignore
    }

    /// nghttp2 closed the stream, or the connection was torn down.
    mutating func streamClosed() -> CloseAction {
        guard !isClosed else { return .ignore }
        let finished = isFinal
        isClosed = true
        return finished ? .release : .cancel
    }

    /// What to do once our END_STREAM is on the wire.
    enum EndStreamSentAction: Hashable {
        /// The client is still sending: reset the stream with NO_ERROR so it stops (as gRPC servers do).
        case resetNoError
        case ignore
    }

    /// Our END_STREAM went out.
    func endStreamSent() -> EndStreamSentAction {
        isClosed || requestHalfClosed ? .ignore : .resetNoError
    }
}
