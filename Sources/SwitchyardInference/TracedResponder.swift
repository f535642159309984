// A traced call's responder: stamps when the answer was handed to the connection and with which status, whichever
// step answers (a refusal on the event loop, the completion on a worker). Only traced calls are wrapped.

import SwitchyardCore
import SwitchyardHTTP2

/// Forwards to the call's responder and records the answer on its trace.
final class TracedResponder: InferResponder {
    private let inner: any InferResponder
    private let trace: CallTrace

    init(_ inner: any InferResponder, trace: CallTrace) {
        self.inner = inner
        self.trace = trace
    }

    var isCancelled: Bool { inner.isCancelled }

    func send(message: [UInt8], metadata: [(name: String, value: String)]) {
        inner.send(message: message, metadata: metadata)
        trace.responded = .now()
    }

    func send(result: InferResult, metadata: [(name: String, value: String)]) {
        inner.send(result: result, metadata: metadata)
        trace.responded = .now()
    }

    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        inner.fail(status, metadata: metadata)
        trace.statusCode = status.code.rawValue
        trace.statusMessage = status.message
        trace.responded = .now()
    }
}
