// A scenario's admin API calls (weight changes, shadow on/off, a rollout), made on a thread of their own at
// their set times while the load runs, so the report can show what each change did to latency, errors and
// the share of traffic per version.

import Foundation
import SwitchyardAdminClient
import SwitchyardCore
import SwitchyardLoad
import Synchronization

/// Makes the calls of a scenario at their times and keeps what each answered.
final class AdminActions: Sendable {
    private let client: AdminClient
    private let actions: [Scenario.Action]
    private let events = Mutex<[LoadEvent]>([])
    private let done = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - base: the admin API's base URL.
    ///   - actions: the calls, with their times from the start of the measured phase.
    /// - Throws: `invalidArgument` when `base` is not a URL.
    init(base: String, actions: [Scenario.Action]) throws(SwitchyardError) {
        self.client = try AdminClient(baseURL: base)
        self.actions = actions.sorted { $0.at < $1.at }
    }

    /// Starts calling: `measureStart` is when the measured phase begins.
    func start(measureStart: MonotonicInstant) {
        Thread.detachNewThread { [self] in
            for action in actions {
                let due = measureStart.advanced(byNanoseconds: UInt64(action.at * 1e9))
                let now = MonotonicInstant.now()
                if due > now { Thread.sleep(forTimeInterval: Double(due.nanoseconds(since: now)) / 1e9) }
                let event = call(action, measureStart: measureStart)
                events.withLock { $0.append(event) }
                FileHandle.standardError.write(
                    Data(
                        "\n[\(String(format: "%.1f", event.t)) s] \(event.label): \(event.request) → \(event.status)\n"
                            .utf8
                    )
                )
            }
            done.signal()
        }
    }

    /// The calls made, after waiting up to `timeout` seconds for those still due.
    func finish(timeout: Double) -> [LoadEvent] {
        _ = done.wait(timeout: .now() + timeout)
        return events.withLock { $0 }
    }

    private func call(_ action: Scenario.Action, measureStart: MonotonicInstant) -> LoadEvent {
        let method = action.method ?? "POST"
        let label = action.label ?? "\(method) \(action.path)"
        var status = 0
        var answer: String
        do {
            let reply = try client.send(
                method,
                action.path,
                body: action.body.map { Data($0.utf8) },
                reason: "switchyard-load scenario: \(label)",
                timeoutSeconds: 10
            )
            (status, answer) = (reply.status, reply.text)
        } catch {
            answer = error.message
        }
        let t = Double(Int64(bitPattern: MonotonicInstant.now().nanoseconds &- measureStart.nanoseconds)) / 1e9
        return LoadEvent(
            t: t,
            label: label,
            request: "\(method) \(action.path)",
            status: status,
            answer: String(answer.prefix(300))
        )
    }
}
