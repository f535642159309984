// The drift detector's CPU budget. The monitor thread's CPU time spent on a version (observing and scoring its
// sampled rows, writing its captured payloads) is compared four times a second with the gateway's CPU time spent
// serving the version (the process's CPU time, shared among the monitored versions by their calls), and the share
// of calls the detector observes is scaled so that the first stays within `drift.max_cpu_share` of the second: a
// model whose calls are cheap next to binning its 784 features is watched on a sample of its calls rather than slowed
// down, and the share observed is reported with the scores.

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// One version's budget, kept by the monitor thread.
struct DriftBudget {
    /// The smallest share of calls the budget lowers the detector to.
    static let minimumFraction = 0.001
    /// How often the share is revised.
    static let intervalNanoseconds: UInt64 = 250_000_000

    /// `drift.fraction`: the share observed while the budget allows it.
    let configured: Double
    /// `drift.max_cpu_share`.
    let maxShare: Double
    private var spentNanoseconds: UInt64 = 0
    private var lastServing: UInt64
    private var lastRevised: MonotonicInstant

    /// A budget from now, when the CPU time spent serving the version so far is `servingNanoseconds`.
    init(configured: Double, maxShare: Double, servingNanoseconds: UInt64 = 0, now: MonotonicInstant = .now()) {
        self.configured = configured
        self.maxShare = maxShare
        lastServing = servingNanoseconds
        lastRevised = now
    }

    /// Adds monitor-thread CPU time spent on the version.
    mutating func charge(_ nanoseconds: UInt64) { spentNanoseconds &+= nanoseconds }

    /// Once an interval has passed since the last revision: the share to observe from now on (`nil`: keep it).
    /// - Parameters:
    ///   - current: the share observed since the last revision.
    ///   - servingNanoseconds: the CPU time spent serving the version so far (a running total).
    mutating func revise(current: Double, servingNanoseconds: UInt64, now: MonotonicInstant = .now()) -> Double? {
        guard now.nanoseconds(since: lastRevised) >= Self.intervalNanoseconds else { return nil }
        defer {
            lastRevised = now
            lastServing = servingNanoseconds
            spentNanoseconds = 0
        }
        guard servingNanoseconds > lastServing else { return nil }
        return Self.next(
            current: current,
            allowed: maxShare * Double(servingNanoseconds - lastServing),
            spent: Double(spentNanoseconds),
            configured: configured
        )
    }

    /// The share that would have spent `allowed` where `current` spent `spent` (the monitor's cost grows with the
    /// share observed), moved by at most ×2 up and ×0.1 down per revision, within [`minimumFraction`, `configured`].
    static func next(current: Double, allowed: Double, spent: Double, configured: Double) -> Double {
        let ratio = spent > 0 ? allowed / spent : 2
        return min(configured, max(minimumFraction, current * min(max(ratio, 0.1), 2)))
    }
}

/// The calling thread's CPU time in nanoseconds.
func threadCPUNanoseconds() -> UInt64 { cpuNanoseconds(CLOCK_THREAD_CPUTIME_ID) }

/// The process's CPU time (all its threads) in nanoseconds.
func processCPUNanoseconds() -> UInt64 { cpuNanoseconds(CLOCK_PROCESS_CPUTIME_ID) }

private func cpuNanoseconds(_ clock: clockid_t) -> UInt64 {
    var time = timespec()
    clock_gettime(clock, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
