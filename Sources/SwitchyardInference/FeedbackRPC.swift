// `switchyard.v1.Feedback/Report`: explicit rewards for bandit routes, joined to their routing decision
// by request id. Decoding and encoding with protobuf-c, like the inference RPCs.

import SwitchyardCore
import SwitchyardProto
import SwitchyardRouting

enum FeedbackRPC {
    /// Answers one ReportRequest.
    /// - Throws: `invalidArgument` for a malformed message, an empty id or a reward outside [0, 1];
    ///   `unimplemented` when the server has no routing table.
    static func answer(_ message: UnsafeRawBufferPointer, routing: RoutingTable?) throws(SwitchyardError) -> [UInt8] {
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
        defer { switchyard__v1__report_request__free_unpacked(request, nil) }
        let outcome = try routing.report(
            requestID: swiftString(request.pointee.request_id),
            reward: request.pointee.reward
        )
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
