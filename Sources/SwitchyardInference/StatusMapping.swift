// The edge where Switchyard's errors become gRPC statuses — the only place that mapping happens.

import SwitchyardCore
import SwitchyardHTTP2

extension GRPCStatus {
    /// The gRPC status for a Switchyard error.
    init(_ error: SwitchyardError) {
        let code: GRPCStatusCode =
            switch error.code {
            case .invalidArgument: .invalidArgument
            case .notFound: .notFound
            case .resourceExhausted: .resourceExhausted
            case .unavailable: .unavailable
            case .deadlineExceeded: .deadlineExceeded
            case .cancelled: .cancelled
            case .unimplemented: .unimplemented
            case .failedPrecondition: .failedPrecondition
            case .permissionDenied: .permissionDenied
            default: .internal
            }
        self.init(code, error.message)
    }
}
