// `switchyard.v1.Feedback/Report`: explicit rewards for bandit routes, joined to their routing decision
// by request id (in fleet mode, at the replica that routed the call). Decoding and encoding with protobuf-c, like
// the inference RPCs.

import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardProto
public import SwitchyardRouting

/// In fleet mode, delivers a report of a call this replica did not route to the replica that did: the outcome
/// there (`applied` or `late`), `nil` when no replica knew the call.
public typealias FeedbackForwarder = @Sendable (_ requestID: String, _ reward: Double) async -> FeedbackOutcome?

enum FeedbackRPC {
    /// Answers one ReportRequest: from this replica's ledger, or, for a call it does not know and with a
    /// `forwarder` (fleet mode), from the replica that routed it (answered off the event loop).
    /// - Throws: `invalidArgument` for a malformed message, an empty id or a reward outside [0, 1];
    ///   `unimplemented` when the server has no routing table.
    static func handle(
        _ message: UnsafeRawBufferPointer,
        routing: RoutingTable?,
        forwarder: FeedbackForwarder?,
        responder: any GRPCResponder
    ) throws(SwitchyardError) {
        guard let routing else { throw SwitchyardError(.unimplemented, "this server has no routing table") }
        guard
            let request = switchyard__v1__report_request__unpack(
                nil,
                message.count,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            )
        else {
            throw .invalidArgument(
                "malformed ReportRequest: \(message.count) bytes are not a valid protobuf encoding of it"
            )
        }
        let requestID = swiftString(request.pointee.request_id)
        let reward = request.pointee.reward
        switchyard__v1__report_request__free_unpacked(request, nil)
        let outcome = try routing.report(requestID: requestID, reward: reward)
        guard outcome == .unknown, let forwarder else {
            responder.send(message: encode(outcome))
            return
        }
        Task {
            let delivered = await forwarder(requestID, reward)
            responder.send(message: encode(delivered ?? .unknown))
        }
    }

    private static func encode(_ outcome: FeedbackOutcome) -> [UInt8] {
        var response = Switchyard__V1__ReportResponse()
        switchyard__v1__report_response__init(&response)
        switch outcome {
        case .applied: response.outcome = SWITCHYARD__V1__REPORT_RESPONSE__OUTCOME__APPLIED
        case .late: response.outcome = SWITCHYARD__V1__REPORT_RESPONSE__OUTCOME__LATE
        case .unknown: response.outcome = SWITCHYARD__V1__REPORT_RESPONSE__OUTCOME__UNKNOWN
        }
        return withUnsafeMutablePointer(to: &response) { packMessage($0) }
    }
}

/// The value of a string or integer request parameter named `name`, for sticky routing keys.
func stringParameter(_ name: String, of message: Inference__ModelInferRequest) -> String? {
    for index in 0..<message.n_parameters {
        guard let entry = message.parameters[index], let value = entry.pointee.value?.pointee else { continue }
        guard swiftString(entry.pointee.key) == name else { continue }
        switch value.parameter_choice_case {
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM: return swiftString(value.string_param)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM: return String(value.int64_param)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM: return String(value.uint64_param)
        default: return nil
        }
    }
    return nil
}
