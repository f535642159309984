// A scenario's admin API calls (weight changes, shadow on/off, a rollout), made on a thread of their own at
// their set times while the load runs, so the report can show what each change did to latency, errors and
// the share of traffic per version.

import Foundation
import SwitchyardCore
import SwitchyardLoad
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Makes the calls of a scenario at their times and keeps what each answered.
final class AdminActions: Sendable {
    private let base: String
    private let actions: [Scenario.Action]
    private let token: String?
    private let events = Mutex<[LoadEvent]>([])
    private let done = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - base: the admin API's base URL.
    ///   - actions: the calls, with their times from the start of the measured phase.
    init(base: String, actions: [Scenario.Action]) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.actions = actions.sorted { $0.at < $1.at }
        self.token = ProcessInfo.processInfo.environment["SWITCHYARD_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
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
        var answer = ""
        if let url = URL(string: base + action.path) {
            var request = URLRequest(url: url, timeoutInterval: 10)
            request.httpMethod = method
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            request.setValue("switchyard-load scenario: \(label)", forHTTPHeaderField: "X-Switchyard-Reason")
            if let body = action.body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            let reply = Reply()
            let finished = DispatchSemaphore(value: 0)
            URLSession.shared.dataTask(with: request) { data, response, error in
                reply.set(
                    status: (response as? HTTPURLResponse)?.statusCode ?? 0,
                    text: error.map { "\($0.localizedDescription)" } ?? String(decoding: data ?? Data(), as: UTF8.self)
                )
                finished.signal()
            }.resume()
            finished.wait()
            (status, answer) = reply.get()
        } else {
            answer = "not a URL: \(base + action.path)"
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

/// The answer of one URLSession task, handed from its callback thread.
private final class Reply: Sendable {
    private let value = Mutex<(Int, String)>((0, ""))
    func set(status: Int, text: String) { value.withLock { $0 = (status, text) } }
    func get() -> (Int, String) { value.withLock { $0 } }
}
