// The per-call state machine on its own: every phase change, the answers it refuses, and a reset in each phase.
// No nghttp2, no sockets.

import Testing

@testable import SwitchyardHTTP2

@Suite struct GRPCStreamStateMachineTests {
    typealias Machine = GRPCStreamStateMachine

    /// A call whose headers were accepted.
    static func opened() -> Machine {
        var machine = Machine()
        _ = machine.requestHeadersComplete()
        return machine
    }

    /// A call whose response HEADERS are out (one streaming message queued and framed).
    static func responding() -> Machine {
        var machine = opened()
        _ = machine.messageQueued(final: false)
        _ = machine.dataProvided(written: 10, queueEmpty: true)
        return machine
    }

    /// A call with its final status decided and its trailers waiting behind a queued message.
    static func finishing() -> Machine {
        var machine = responding()
        _ = machine.finish(GRPCStatus(.notFound, "gone"))
        return machine
    }

    /// A call whose final frame is with nghttp2.
    static func done() -> Machine {
        var machine = finishing()
        _ = machine.dataProvided(written: 5, queueEmpty: true)
        return machine
    }

    // MARK: Request side

    @Test func aNewCallTakesHeadersOnly() {
        let machine = Machine()
        #expect(machine.request == .headers)
        #expect(machine.response == .idle)
        #expect(machine.acceptsHeaders)
        #expect(!machine.isReceiving)
        #expect(!machine.requestHalfClosed)
        #expect(!machine.isFinal)
    }

    @Test func completeHeadersOpenTheRequest() {
        var machine = Machine()
        #expect(machine.requestHeadersComplete() == .validate)
        #expect(machine.request == .open)
        #expect(machine.isReceiving)
        #expect(!machine.acceptsHeaders)
        // A second header block (the client's trailers) is not a request's.
        #expect(machine.requestHeadersComplete() == .ignore)
        #expect(machine.request == .open)
    }

    @Test func endStreamClosesTheRequestButKeepsDeliveringWhatIsInFlight() {
        var machine = Self.opened()
        #expect(machine.requestEnded() == .check)
        #expect(machine.request == .closed)
        #expect(machine.requestHalfClosed)
        #expect(machine.isReceiving)  // messages still being inflated are handed on
        #expect(machine.requestEnded() == .ignore)
    }

    @Test func anOverflowingHeaderListResetsTheStreamOnce() {
        var machine = Machine()
        #expect(machine.headerListOverflowed() == .reset)
        #expect(machine.request == .refused(halfClosed: false))
        #expect(machine.response == .done(code: .resourceExhausted))
        #expect(machine.isFinal)
        #expect(machine.headerListOverflowed() == .ignore)
        #expect(machine.requestHeadersComplete() == .ignore)
        #expect(machine.requestEnded() == .ignore)
        #expect(machine.request == .refused(halfClosed: true))
    }

    @Test func aRefusedCallReadsNothingMore() {
        var machine = Self.opened()
        #expect(machine.refuse(GRPCStatus(.resourceExhausted, "too big")) == .submitTrailersOnly)
        #expect(machine.request == .refused(halfClosed: false))
        #expect(machine.response == .done(code: .resourceExhausted))
        #expect(!machine.isReceiving)
        #expect(machine.requestEnded() == .ignore)
        #expect(machine.requestHalfClosed)
    }

    @Test func anHTTPErrorIsOnlyForACallNotYetAnswered() {
        var machine = Self.opened()
        let refused = machine.refuseWithHTTPError()
        #expect(refused)
        #expect(machine.response == .done(code: .internal))
        #expect(!machine.isReceiving)
        var answered = Self.responding()
        let refusedLate = answered.refuseWithHTTPError()
        #expect(!refusedLate)
        #expect(answered.response == .open(deferred: false))
    }

    // MARK: Response side

    @Test func aUnaryAnswerStartsTheResponseWithItsFinalStatus() {
        var machine = Self.opened()
        _ = machine.requestEnded()
        #expect(machine.messageQueued(final: true) == .submitResponseHeaders)
        #expect(machine.response == .finishing(.ok, deferred: false))
        #expect(machine.responseStarted)
        #expect(machine.hasFinalStatus)
        // A second answer (or a late failure) is dropped.
        #expect(machine.messageQueued(final: true) == .drop)
        #expect(machine.finish(GRPCStatus(.internal)) == .drop)
        #expect(machine.dataProvided(written: 20, queueEmpty: true) == .sendTrailers(.ok))
        #expect(machine.response == .done(code: .ok))
        #expect(machine.isFinal)
        #expect(machine.streamClosed() == .release)
    }

    @Test func aStreamAnswersManyTimesThenEndsWithOK() {
        var machine = Self.opened()
        #expect(machine.messageQueued(final: false) == .submitResponseHeaders)
        #expect(machine.dataProvided(written: 12, queueEmpty: true) == .send)
        #expect(machine.dataProvided(written: 0, queueEmpty: true) == .deferData)
        #expect(machine.response == .open(deferred: true))
        #expect(machine.messageQueued(final: false) == .resumeData)
        #expect(machine.response == .open(deferred: false))
        #expect(machine.messageQueued(final: false) == .flush)
        _ = machine.requestEnded()
        #expect(machine.finish(.ok) == .flush)
        #expect(machine.dataProvided(written: 3, queueEmpty: false) == .send)
        #expect(machine.dataProvided(written: 3, queueEmpty: true) == .sendTrailers(.ok))
        #expect(machine.endStreamSent() == .ignore)
    }

    @Test func aFailureBeforeAnyMessageIsTrailersOnly() {
        var machine = Self.opened()
        #expect(machine.finish(GRPCStatus(.invalidArgument, "bad")) == .submitTrailersOnly)
        #expect(machine.response == .done(code: .invalidArgument))
        #expect(machine.messageQueued(final: true) == .drop)
    }

    @Test func aFailureAfterMessagesGoesInTheTrailers() {
        var machine = Self.responding()
        _ = machine.dataProvided(written: 0, queueEmpty: true)
        #expect(machine.finish(GRPCStatus(.aborted, "stop")) == .resumeData)
        #expect(machine.dataProvided(written: 0, queueEmpty: true) == .sendTrailers(GRPCStatus(.aborted, "stop")))
    }

    @Test func aFinishingCallWithNothingFramedDefers() {
        var machine = Self.finishing()
        #expect(machine.dataProvided(written: 0, queueEmpty: false) == .deferData)
        #expect(machine.response == .finishing(GRPCStatus(.notFound, "gone"), deferred: true))
    }

    @Test func theDeadlineEndsOnlyAnUnfinishedCall() {
        #expect(Self.opened().deadlineExpired() == .finishDeadlineExceeded)
        #expect(Self.responding().deadlineExpired() == .finishDeadlineExceeded)
        #expect(Self.finishing().deadlineExpired() == .finishDeadlineExceeded)  // `finish` then drops it
        #expect(Self.done().deadlineExpired() == .ignore)
        var closed = Self.opened()
        _ = closed.streamClosed()
        #expect(closed.deadlineExpired() == .ignore)
    }

    @Test func endStreamResetsAClientThatIsStillSending() {
        #expect(Self.done().endStreamSent() == .resetNoError)
        var halfClosed = Self.opened()
        _ = halfClosed.requestEnded()
        #expect(halfClosed.endStreamSent() == .ignore)
    }

    // MARK: Header blocks that cannot be sent

    @Test func anUnsendableBlockFallsBackOnceThenResets() {
        var machine = Self.opened()
        _ = machine.finish(GRPCStatus(.notFound, "gone"))
        #expect(machine.headersNotSent() == .sendFallback(.notFound))
        #expect(machine.response == .fallback)
        #expect(machine.headersNotSent() == .reset)
        machine.reset()
        #expect(machine.response == .fallback)
    }

    @Test func aFallbackForAnOKCallSaysInternal() {
        var machine = Self.opened()
        _ = machine.messageQueued(final: true)
        #expect(machine.headersNotSent() == .sendFallback(.internal))
        var done = Self.done()
        _ = done.streamClosed()
        #expect(done.headersNotSent() == .ignore)
    }

    // MARK: Resets in each phase

    enum Phase: String, CaseIterable {
        case headers, open, halfClosed, responding, finishing, done, refused
    }

    static func machine(in phase: Phase) -> Machine {
        switch phase {
        case .headers: return Machine()
        case .open: return opened()
        case .halfClosed:
            var machine = opened()
            _ = machine.requestEnded()
            return machine
        case .responding: return responding()
        case .finishing: return finishing()
        case .done: return done()
        case .refused:
            var machine = opened()
            _ = machine.refuse(GRPCStatus(.internal))
            return machine
        }
    }

    @Test(arguments: Phase.allCases)
    func aResetInAnyPhaseClosesTheStream(phase: Phase) {
        var machine = Self.machine(in: phase)
        let finished = machine.isFinal
        let action = machine.streamClosed()
        // A call cut off before its final frame is cancelled (counted, responder told); a finished one released.
        #expect(action == (finished ? .release : .cancel))
        #expect([Phase.done, .refused].contains(phase) == finished)
        #expect(machine.isClosed)
        #expect(machine.isFinal)
        #expect(!machine.isReceiving)
        #expect(!machine.acceptsHeaders)
        // Everything after the close is refused explicitly.
        #expect(machine.streamClosed() == .ignore)
        #expect(machine.messageQueued(final: true) == .drop)
        #expect(machine.finish(GRPCStatus(.internal)) == .drop)
        #expect(machine.refuse(GRPCStatus(.internal)) == .drop)
        let refusedAfterClose = machine.refuseWithHTTPError()
        #expect(!refusedAfterClose)
        #expect(machine.headersNotSent() == .ignore)
        #expect(machine.deadlineExpired() == .ignore)
        #expect(machine.endStreamSent() == .ignore)
    }
}
