// Retiring model versions: a version taken out of service (unloaded, or unloaded to be loaded afresh) takes no new
// calls, is drained (the calls holding it reach zero) and has its pool stopped and joined on the registry's own
// retirement thread. Callers only ask and await; nobody guesses how long draining takes.
//
// States of one retiring version, and its moves:
//   draining  — retired, calls still hold it.            → stopping when the last hold goes (or at shutdown)
//             — past the drain bound: still draining;      waiters are answered `stillDraining` (the version is
//               out of service; the unload has taken effect) and it is logged once; it stops when the calls finish.
//   stopping  — its pool is being shut down and joined on the retirement thread, or, for a version retired after
//               the registry's shutdown stopped that thread, on the thread that retired it.
//   stopped   — joined: removed from the list, `poolStopped` set, waiters resumed with `stopped`.

import Logging
import SwitchyardCore
import SwitchyardWorkers
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How the retirement of an unloaded version went, as `ModelRegistry.waitUntilRetired` reports it.
public enum RetirementOutcome: Sendable, Hashable {
    /// The version drained and its pool was stopped and joined.
    case stopped
    /// The version is out of service, but calls still held it when the registry's drain bound passed; its pool
    /// stops once they finish. `note` says so, naming the version, the calls and the bound.
    case stillDraining(note: String)

    /// What an unload's answer should add, or `nil` when there is nothing to add.
    public var note: String? {
        switch self {
        case .stopped: nil
        case .stillDraining(let note): note
        }
    }
}

/// Owns the retirement of a registry's versions: a thread (`sy-retire`, started when the first version is about to
/// be retired) that sleeps until a retired version has drained or a drain bound passes, then stops its pool.
final class VersionRetirer: Sendable {
    typealias Waiter = CheckedContinuation<Result<RetirementOutcome, SwitchyardError>, Never>

    /// One version on its way out.
    struct Retiring {
        let version: ModelVersion
        /// When draining is overdue.
        let bound: MonotonicInstant
        /// Whether the overdue drain has been reported (logged, waiters answered).
        var overdue = false
        /// Whether the retirement thread is stopping its pool now.
        var stopping = false
        var waiters: [Waiter] = []
    }

    struct State {
        var retiring: [Retiring] = []
        /// Bumped on every change a sleeping retirement thread must look at.
        var changes: UInt64 = 0
        var thread: pthread_t?
        /// Set by `stop()`: stop every pool at once and exit.
        var stopping = false
    }

    private let state = ConditionLock(State())
    private let changed = MonotonicCondition()
    private let drainBoundNanoseconds: UInt64
    private let logger: Logger

    /// - Parameter drainBound: how long a retired version may take to drain before waiters are told it is overdue.
    init(drainBound: Duration, logger: Logger) {
        let (seconds, attoseconds) = drainBound.components
        self.drainBoundNanoseconds =
            UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
        self.logger = logger
    }

    /// Starts the retirement thread if it is not running yet, so that a retirement never fails half-way.
    /// - Throws: `internal` when the system refuses the thread, or `unavailable` once the registry has shut down.
    func ensureStarted() throws(SwitchyardError) {
        try state.withLock { state throws(SwitchyardError) in
            guard !state.stopping else {
                throw SwitchyardError(.unavailable, "the model registry is shutting down")
            }
            guard state.thread == nil else { return }
            state.thread = try startThread(name: "sy-retire") { [self] in run() }
        }
    }

    /// Whether the retirement thread is running.
    var isStarted: Bool { state.withLock { $0.thread != nil } }

    /// Takes `version` out of service: from now on it takes no new calls, and its pool stops once the calls holding
    /// it have finished. Call `ensureStarted()` first. When `stop()` has run meanwhile (an unload racing the
    /// gateway's shutdown), the pool is stopped here and now, as `stop()` stops those it finds, so that
    /// `waitUntilStopped` is answered.
    func retire(_ version: ModelVersion) {
        guard version.retire(by: self) else { return }
        let bound = MonotonicInstant.now().advanced(byNanoseconds: drainBoundNanoseconds)
        let stopHere = state.withLock { state in
            state.retiring.append(Retiring(version: version, bound: bound, stopping: state.stopping))
            state.changes &+= 1
            changed.signal()
            return state.stopping
        }
        if stopHere { stopPool(of: version) }
    }

    /// Wakes the retirement thread: a retired version's last hold was released.
    func versionDrained() {
        state.withLock { state in
            state.changes &+= 1
            changed.signal()
        }
    }

    /// Waits until `version` has drained and its pool has been joined, or until its drain bound has passed.
    /// - Returns: `stopped`, or `stillDraining` when calls still hold it after the drain bound (its pool stops once
    ///   they finish).
    /// - Throws: `failedPrecondition` for a version that was never retired.
    func waitUntilStopped(_ version: ModelVersion) async throws(SwitchyardError) -> RetirementOutcome {
        let result = await withCheckedContinuation { (waiter: Waiter) in
            let now: Result<RetirementOutcome, SwitchyardError>? = state.withLock { state in
                if version.poolStopped.load(ordering: .acquiring) { return .success(.stopped) }
                guard let index = state.retiring.firstIndex(where: { $0.version === version }) else {
                    return .failure(
                        SwitchyardError(
                            .failedPrecondition,
                            "model '\(version.model)' version \(version.version) is not being unloaded"
                        )
                    )
                }
                if state.retiring[index].overdue { return .success(overdueOutcome(version)) }
                state.retiring[index].waiters.append(waiter)
                return nil
            }
            if let now { waiter.resume(returning: now) }
        }
        return try result.get()
    }

    /// Stops every retiring version's pool at once (whether drained or not) and joins the retirement thread.
    func stop() {
        let thread: pthread_t? = state.withLock { state in
            state.stopping = true
            state.changes &+= 1
            changed.signal()
            defer { state.thread = nil }
            return state.thread
        }
        if let thread { pthread_join(thread, nil) }
    }

    private func overdueOutcome(_ version: ModelVersion) -> RetirementOutcome {
        let milliseconds = drainBoundNanoseconds / 1_000_000
        let bound = milliseconds % 1000 == 0 ? "\(milliseconds / 1000) s" : "\(milliseconds) ms"
        return .stillDraining(
            note: "model '\(version.model)' version \(version.version) is out of service, but "
                + "\(version.callsInFlight) calls still hold it after \(bound); its pool stops once they finish"
        )
    }

    /// The retirement thread: sleeps until a retired version drains, a drain bound passes or `stop()`; stops the
    /// drained versions' pools outside the lock.
    private func run() {
        var seen: UInt64 = 0
        while true {
            let wakeAt = state.withLock { state in
                state.retiring.lazy.filter { !$0.overdue }.map(\.bound).min()
            }
            var overdue: [(ModelVersion, [Waiter])] = []
            let (drained, exits): ([ModelVersion], Bool) = state.withLock(
                waitingOn: changed,
                while: { state in
                    state.changes == seen && !state.stopping
                        && !state.retiring.contains { !$0.stopping && $0.version.callsInFlight == 0 }
                },
                until: wakeAt
            ) { state in
                seen = state.changes
                let now = MonotonicInstant.now()
                var drained: [ModelVersion] = []
                for index in state.retiring.indices where !state.retiring[index].stopping {
                    let version = state.retiring[index].version
                    if version.callsInFlight == 0 || state.stopping {
                        state.retiring[index].stopping = true
                        drained.append(version)
                    } else if !state.retiring[index].overdue && now >= state.retiring[index].bound {
                        state.retiring[index].overdue = true
                        overdue.append((version, state.retiring[index].waiters))
                        state.retiring[index].waiters = []
                    }
                }
                return (drained, state.stopping && state.retiring.allSatisfy(\.stopping))
            }
            for (version, waiters) in overdue {
                let outcome = overdueOutcome(version)
                logger.error(
                    "retired model version has not drained",
                    metadata: [
                        "model": "\(version.model)", "version": "\(version.version)",
                        "calls": "\(version.callsInFlight)", "reason": "\(outcome.note ?? "")",
                    ]
                )
                for waiter in waiters { waiter.resume(returning: .success(outcome)) }
            }
            for version in drained { stopPool(of: version) }
            if exits { return }
        }
    }

    /// Stops and joins the pool of `version` (marked `stopping` in the list), then drops it from the list and
    /// answers its waiters. Called outside the lock.
    private func stopPool(of version: ModelVersion) {
        let calls = version.callsInFlight
        if calls > 0 {
            logger.warning(
                "stopping a retired model version's pool with calls still holding it",
                metadata: ["model": "\(version.model)", "version": "\(version.version)", "calls": "\(calls)"]
            )
        }
        // Finishes the queued work of the calls that held the version; refuses anything later.
        version.pool.shutdown()
        let waiters = state.withLock { state in
            version.poolStopped.store(true, ordering: .releasing)
            guard let index = state.retiring.firstIndex(where: { $0.version === version }) else { return [Waiter]() }
            return state.retiring.remove(at: index).waiters
        }
        logger.notice(
            "retired model version stopped",
            metadata: ["model": "\(version.model)", "version": "\(version.version)"]
        )
        for waiter in waiters { waiter.resume(returning: .success(.stopped)) }
    }
}
