// The connection state machine on its own: handshake, drain, verdicts, closing and closed, and the events each
// state refuses. No nghttp2, no sockets.

import Testing

@testable import SwitchyardHTTP2

@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine

    enum Phase: String, CaseIterable {
        case awaitingPreface, active, draining, drainingBeforePreface, closingAfterError, closingByVerdict
        case closingNow, closed
    }

    static func machine(in phase: Phase) -> Machine {
        var machine = Machine()
        switch phase {
        case .awaitingPreface: break
        case .active: _ = machine.settingsReceived()
        case .draining:
            _ = machine.settingsReceived()
            _ = machine.finalGoawayRequested()
        case .drainingBeforePreface: _ = machine.finalGoawayRequested()
        case .closingAfterError:
            _ = machine.settingsReceived()
            machine.closeAfterFlush()
        case .closingByVerdict:
            _ = machine.settingsReceived()
            _ = machine.end(.timeout)
        case .closingNow:
            _ = machine.end(.calm)
            machine.closeImmediately()
        case .closed: _ = machine.closed()
        }
        return machine
    }

    @Test func theFirstSettingsCompletesTheHandshakeAndIsFree() {
        var machine = Machine()
        #expect(machine.state == .awaitingPreface)
        #expect(machine.isAwaitingPreface)
        let handshake = machine.settingsReceived()
        #expect(handshake)
        #expect(machine.state == .active)
        #expect(!machine.isAwaitingPreface)
        // Later SETTINGS are charged to the control-frame budget.
        let charged = machine.settingsReceived()
        #expect(!charged)
    }

    @Test func aGracefulShutdownSendsANoticeThenOneFinalGoaway() {
        var machine = Self.machine(in: .active)
        #expect(machine.shutdownNoticeRequested() == .sendNotice)
        #expect(machine.state == .active)  // the notice does not refuse streams yet
        #expect(machine.finalGoawayRequested() == .sendGoaway)
        #expect(machine.state == .draining(prefaceReceived: true))
        #expect(machine.finalGoawayRequested() == .none)
        #expect(machine.shutdownNoticeRequested() == .none)
        #expect(!machine.isClosing)
        #expect(machine.acceptsFrames)  // streams in flight go on
    }

    @Test func drainingWaitsForNghttp2ToFinishTheStreamsInFlight() {
        let machine = Self.machine(in: .draining)
        #expect(machine.flushed(sessionFinished: false) == .none)
        #expect(machine.flushed(sessionFinished: true) == .close)
    }

    @Test func aConnectionDrainedBeforeItsPrefaceStillCompletesTheHandshake() {
        var machine = Self.machine(in: .drainingBeforePreface)
        #expect(machine.isAwaitingPreface)
        let handshake = machine.settingsReceived()
        #expect(handshake)
        #expect(machine.state == .draining(prefaceReceived: true))
        let charged = machine.settingsReceived()
        #expect(!charged)
    }

    @Test(arguments: [ConnectionVerdict.calm, .timeout])
    func aVerdictIsGivenOnceAndStopsTheBudgets(verdict: ConnectionVerdict) {
        var machine = Self.machine(in: .active)
        #expect(machine.end(verdict) == .sendGoaway(verdict))
        #expect(machine.verdict == verdict)
        #expect(machine.state == .closing(verdict: verdict, flush: true))
        #expect(!machine.acceptsFrames)
        #expect(!machine.isSwept)
        #expect(machine.isClosing)
        #expect(machine.end(.calm) == .none)
        #expect(machine.end(.timeout) == .none)
        #expect(machine.verdict == verdict)
        #expect(machine.finalGoawayRequested() == .none)
        #expect(machine.flushed(sessionFinished: false) == .close)
    }

    @Test func aVerdictDuringTheDrainReplacesIt() {
        var machine = Self.machine(in: .draining)
        #expect(machine.end(.calm) == .sendGoaway(.calm))
        #expect(machine.verdict == .calm)
    }

    @Test func aProtocolErrorClosesAfterTheFlushAndLeavesRoomForAVerdict() {
        var machine = Self.machine(in: .closingAfterError)
        #expect(machine.state == .closing(verdict: nil, flush: true))
        #expect(machine.isSwept)
        #expect(machine.acceptsFrames)
        #expect(machine.flushed(sessionFinished: false) == .close)
        #expect(machine.end(.calm) == .sendGoaway(.calm))
        #expect(machine.state == .closing(verdict: .calm, flush: true))
    }

    @Test func aPeerThatDoesNotReadIsCutOff() {
        var machine = Self.machine(in: .closingNow)
        #expect(machine.closesImmediately)
        #expect(machine.state == .closing(verdict: .calm, flush: false))
        machine.closeAfterFlush()  // does not bring the flush back
        #expect(machine.closesImmediately)
    }

    @Test func theProtocolErrorIsCountedOnce() {
        var machine = Machine()
        let counted = machine.protocolErrorSeen()
        #expect(counted)
        let countedAgain = machine.protocolErrorSeen()
        #expect(!countedAgain)
    }

    @Test(arguments: Phase.allCases)
    func everyPhaseCloses(phase: Phase) {
        var machine = Self.machine(in: phase)
        let closedNow = machine.closed()
        #expect(closedNow == (phase != .closed))
        #expect(machine.isClosed)
        #expect(machine.isClosing)
        #expect(!machine.isSwept)
        #expect(!machine.acceptsFrames)
        // A closed connection refuses everything.
        let closedAgain = machine.closed()
        #expect(!closedAgain)
        #expect(machine.end(.calm) == .none)
        #expect(machine.shutdownNoticeRequested() == .none)
        #expect(machine.finalGoawayRequested() == .none)
        let settingsAfterClose = machine.settingsReceived()
        #expect(!settingsAfterClose)
        machine.closeAfterFlush()
        machine.closeImmediately()
        #expect(machine.state == .closed)
    }

    @Test(arguments: Phase.allCases)
    func onlyServingConnectionsTakeAGracefulShutdown(phase: Phase) {
        var machine = Self.machine(in: phase)
        let serving = phase == .awaitingPreface || phase == .active
        #expect((machine.shutdownNoticeRequested() == .sendNotice) == serving)
        #expect((machine.finalGoawayRequested() == .sendGoaway) == serving)
    }
}
