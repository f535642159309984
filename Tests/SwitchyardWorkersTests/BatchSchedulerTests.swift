// The batching decision, driven with scripted clocks, queues and arrival patterns.

import SwitchyardCore
import Testing

@testable import SwitchyardWorkers

#if canImport(Glibc)
    import Glibc
#endif

private let ms: UInt64 = 1_000_000
private let us: UInt64 = 1_000

private func at(_ nanoseconds: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: nanoseconds) }

/// A scheduler whose cost model has seen exact a·n + b batches of several sizes.
private func warmScheduler(
    perRow: UInt64 = 50 * us,
    perBatch: UInt64 = 500 * us,
    maxBatch: Int = 64,
    slo: UInt64 = 10 * ms,
    workers: Int = 1,
    mode: BatchingMode = .adaptive
) -> BatchScheduler {
    var scheduler = BatchScheduler(
        settings: .init(maxBatchRows: maxBatch, sloNanoseconds: slo, workers: workers, mode: mode)
    )
    for rows in [1, 2, 4, 8, 16, 3, 6, 12, 1, 2, 4, 8] {
        scheduler.recordBatch(rows: rows, nanoseconds: UInt64(rows) * perRow + perBatch)
    }
    return scheduler
}

/// Records arrivals of one row each at `rate` per second for `seconds`, ending at `end`.
private func feed(_ scheduler: inout BatchScheduler, ratePerSecond: Double, until end: UInt64, seconds: Double = 0.2) {
    let count = Int(ratePerSecond * seconds)
    guard count > 0 else { return }
    let gap = UInt64(1e9 / ratePerSecond)
    let start = end - UInt64(count) * gap
    for index in 1...count { scheduler.recordArrival(rows: 1, at: at(start + UInt64(index) * gap)) }
}

@Suite struct BatchCostModelTests {
    static let costs: [(UInt64, UInt64)] = [
        (50_000, 500_000), (1_000, 20_000), (2_000_000, 0), (0, 3_000_000), (120_000, 40_000),
    ]

    @Test(arguments: costs)
    func recoversLinearCost(perRow: UInt64, perBatch: UInt64) throws {
        var model = BatchCostModel()
        for rows in [1, 3, 8, 2, 16, 5, 32, 1, 7, 64, 4, 9, 12, 20] {
            model.observe(rows: rows, nanoseconds: UInt64(rows) * perRow + perBatch)
        }
        #expect(model.isIdentified)
        for rows in [1, 10, 64] {
            let expected = Double(UInt64(rows) * perRow + perBatch)
            let estimate = try #require(model.estimate(rows: rows))
            #expect(abs(estimate - max(expected, 1_000)) <= max(0.02 * expected, 2_000))
        }
    }

    @Test func followsAChangeInCost() throws {
        var model = BatchCostModel()
        for _ in 0..<20 {
            for rows in [1, 8, 32] { model.observe(rows: rows, nanoseconds: UInt64(rows) * 10 * us + 100 * us) }
        }
        for _ in 0..<60 {
            for rows in [1, 8, 32] { model.observe(rows: rows, nanoseconds: UInt64(rows) * 40 * us + 400 * us) }
        }
        let estimate = try #require(model.estimate(rows: 32))
        #expect(abs(estimate - Double(32 * 40 * us + 400 * us)) < 0.05 * Double(32 * 40 * us + 400 * us))
    }

    @Test func knowsNothingBeforeTheFirstBatch() {
        #expect(BatchCostModel().estimate(rows: 4) == nil)
        #expect(!BatchCostModel().isIdentified)
    }
}

@Suite struct ArrivalRateTests {
    @Test(arguments: [100.0, 1_000.0, 10_000.0, 50_000.0])
    func measuresSteadyRates(rate: Double) {
        var estimator = ArrivalRateEstimator(timeConstantNanoseconds: 200_000_000)
        let gap = 1e9 / rate
        var time = 0.0
        for _ in 0..<Int(rate * 2) {
            time += gap
            estimator.record(rows: 1, at: at(UInt64(time)))
        }
        let measured = estimator.rowsPerNanosecond(at: at(UInt64(time))) * 1e9
        #expect(abs(measured - rate) < 0.1 * rate)
    }

    @Test func decaysWhenArrivalsStop() {
        var estimator = ArrivalRateEstimator(timeConstantNanoseconds: 10_000_000)
        for index in 1...1000 { estimator.record(rows: 1, at: at(UInt64(index) * 100 * us)) }
        let busy = estimator.rowsPerNanosecond(at: at(100 * ms))
        let later = estimator.rowsPerNanosecond(at: at(200 * ms))
        #expect(later < busy / 1000)
    }
}

@Suite struct BatchSchedulerDecisionTests {
    @Test(arguments: [1, 2, 5, 63])
    func coldSchedulerDispatchesAtOnce(rows: Int) {
        let scheduler = BatchScheduler(settings: .init(maxBatchRows: 64, sloNanoseconds: 10 * ms, workers: 1))
        let decision = scheduler.decide(
            now: at(ms),
            queue: .init(jobs: rows, rows: rows, oldestEnqueuedAt: at(ms)),
            workers: .init(idle: 1)
        )
        #expect(decision == .dispatch(rows: 64))
    }

    @Test func idleWithoutWorkOrWithoutAWorker() {
        let scheduler = warmScheduler()
        #expect(scheduler.decide(now: at(ms), queue: .empty, workers: .init(idle: 1)) == .idle)
        #expect(
            scheduler.decide(
                now: at(ms),
                queue: .init(jobs: 3, rows: 3, oldestEnqueuedAt: at(0)),
                workers: .init(idle: 0)
            )
                == .idle
        )
    }

    /// Low load: one request at a time, at rates far below batch-1 capacity (about 1 800/s here).
    @Test(arguments: [10.0, 100.0, 500.0, 1_000.0])
    func workConservingAtLowLoad(rate: Double) {
        var scheduler = warmScheduler()
        let now: UInt64 = 1_000 * ms
        feed(&scheduler, ratePerSecond: rate, until: now)
        #expect(scheduler.targetRows(at: at(now)) == 1)
        let decision = scheduler.decide(
            now: at(now),
            queue: .init(jobs: 1, rows: 1, oldestEnqueuedAt: at(now)),
            workers: .init(idle: 1)
        )
        #expect(decision == .dispatch(rows: scheduler.batchCap))
    }

    /// Under load the target batch grows with the rate, from one row to the cap.
    @Test func targetGrowsWithLoadUpToTheCap() {
        var previous = 0
        var targets: [Int] = []
        for rate in [500.0, 2_000.0, 4_000.0, 8_000.0, 12_000.0, 16_000.0, 30_000.0] {
            var scheduler = warmScheduler()
            feed(&scheduler, ratePerSecond: rate, until: 1_000 * ms)
            let target = scheduler.targetRows(at: at(1_000 * ms))
            targets.append(target)
            #expect(target >= previous)
            #expect(target <= scheduler.batchCap)
            previous = target
        }
        #expect(targets.first == 1)
        #expect(targets.last == warmScheduler().batchCap)
        // At 8 000/s the worker only keeps up (ρ < 0.9) from rate·b / (0.9 − rate·a) = 8 rows on, and
        // the latency optimum lies above that but far below the cap.
        #expect(targets[3] >= 8 && targets[3] < 40)
    }

    @Test(arguments: [4_000.0, 8_000.0, 12_000.0])
    func waitsForTheTargetWithinTheBudget(rate: Double) throws {
        var scheduler = warmScheduler()
        let now: UInt64 = 1_000 * ms
        feed(&scheduler, ratePerSecond: rate, until: now)
        let target = scheduler.targetRows(at: at(now))
        try #require(target > 1)
        let decision = scheduler.decide(
            now: at(now),
            queue: .init(jobs: 1, rows: 1, oldestEnqueuedAt: at(now)),
            workers: .init(idle: 1)
        )
        guard case .wait(let until) = decision else {
            Issue.record("expected a wait, got \(decision)")
            return
        }
        #expect(until > at(now))
        // No later than the time the missing rows are expected, nor than the oldest job's budget allows.
        let fill = Double(now) + Double(target - 1) / (rate / 1e9)
        #expect(Double(until.nanoseconds) <= fill * 1.01 + 1)
        #expect(until.nanoseconds <= now + UInt64(scheduler.waitBudgetNanoseconds))
        // With the target queued it dispatches.
        #expect(
            scheduler.decide(
                now: at(now),
                queue: .init(jobs: target, rows: target, oldestEnqueuedAt: at(now)),
                workers: .init(idle: 1)
            ) == .dispatch(rows: scheduler.batchCap)
        )
    }

    @Test func stopsWaitingWhenTheBudgetIsSpent() {
        var scheduler = warmScheduler()
        let now: UInt64 = 1_000 * ms
        feed(&scheduler, ratePerSecond: 10_000, until: now)
        let oldest = now - UInt64(scheduler.waitBudgetNanoseconds)
        let decision = scheduler.decide(
            now: at(now),
            queue: .init(jobs: 2, rows: 2, oldestEnqueuedAt: at(oldest)),
            workers: .init(idle: 1)
        )
        #expect(decision == .dispatch(rows: scheduler.batchCap))
    }

    @Test(arguments: [100 * us, 500 * us, 1 * ms])
    func stopsWaitingForAnEarlyDeadline(remaining: UInt64) {
        var scheduler = warmScheduler()
        let now: UInt64 = 1_000 * ms
        feed(&scheduler, ratePerSecond: 10_000, until: now)
        let decision = scheduler.decide(
            now: at(now),
            queue: .init(jobs: 1, rows: 1, oldestEnqueuedAt: at(now), earliestDeadline: at(now + remaining)),
            workers: .init(idle: 1)
        )
        #expect(decision == .dispatch(rows: scheduler.batchCap))
    }

    @Test func drainingNeverWaits() {
        var scheduler = warmScheduler()
        feed(&scheduler, ratePerSecond: 10_000, until: 1_000 * ms)
        let decision = scheduler.decide(
            now: at(1_000 * ms),
            queue: .init(jobs: 1, rows: 1, oldestEnqueuedAt: at(1_000 * ms)),
            workers: .init(idle: 1, draining: true)
        )
        #expect(decision == .dispatch(rows: scheduler.batchCap))
    }

    /// The cap keeps one batch within half the latency target: (slo/2 − b) / a rows.
    static let caps: [(UInt64, UInt64, UInt64, Int, Int)] = [
        (1_000_000, 0, 10_000_000, 64, 5),
        (50_000, 500_000, 10_000_000, 64, 64),
        (100_000, 1_000_000, 10_000_000, 64, 40),
        (100_000, 1_000_000, 10_000_000, 16, 16),
        (10_000_000, 0, 5_000_000, 64, 1),
    ]

    @Test(arguments: caps)
    func capFollowsTheLatencyTarget(perRow: UInt64, perBatch: UInt64, slo: UInt64, maxBatch: Int, cap: Int) {
        let scheduler = warmScheduler(perRow: perRow, perBatch: perBatch, maxBatch: maxBatch, slo: slo)
        #expect(scheduler.batchCap == cap)
        #expect(
            scheduler.decide(
                now: at(ms),
                queue: .init(jobs: 100, rows: 100, oldestEnqueuedAt: at(0)),
                workers: .init(idle: 1)
            )
                == .dispatch(rows: cap)
        )
    }

    @Test func fixedWindowWaitsForTheWindowWhateverTheLoad() {
        let scheduler = warmScheduler(mode: .fixedWindow(nanoseconds: 2 * ms))
        let queue = BatchScheduler.QueueState(jobs: 1, rows: 1, oldestEnqueuedAt: at(10 * ms))
        #expect(scheduler.decide(now: at(10 * ms), queue: queue, workers: .init(idle: 1)) == .wait(until: at(12 * ms)))
        #expect(scheduler.decide(now: at(12 * ms), queue: queue, workers: .init(idle: 1)) == .dispatch(rows: 64))
        let full = BatchScheduler.QueueState(jobs: 64, rows: 64, oldestEnqueuedAt: at(10 * ms))
        #expect(scheduler.decide(now: at(10 * ms), queue: full, workers: .init(idle: 1)) == .dispatch(rows: 64))
    }

    @Test func missedTargetsShrinkTheWaitBudgetAndRecoveryRestoresIt() {
        var scheduler = warmScheduler()
        let capBefore = scheduler.batchCap
        for _ in 0..<400 { scheduler.recordLatency(nanoseconds: 20 * ms) }
        #expect(scheduler.feedback.scale < 0.5)
        #expect(scheduler.waitBudgetNanoseconds < Double(5 * ms) * 0.5)
        #expect(scheduler.batchCap == capBefore)
        #expect(scheduler.sheddingThresholdNanoseconds == Double(8 * ms))
        // 100 rows ahead (about 9.5 ms) fit the full target but not the lowered one.
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 100, workers: .init(idle: 1)) != nil)
        for _ in 0..<4_000 { scheduler.recordLatency(nanoseconds: 1 * ms) }
        #expect(scheduler.feedback.scale == 1)
        #expect(scheduler.batchCap == capBefore)
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 100, workers: .init(idle: 1)) == nil)
    }
}

@Suite struct BatchSchedulerSheddingTests {
    @Test func neverShedsAnUnknownModel() {
        let scheduler = BatchScheduler(settings: .init(maxBatchRows: 8, sloNanoseconds: 1 * ms, workers: 1))
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 100_000, workers: .init(idle: 0)) == nil)
    }

    /// A full batch of 64 takes 3.7 ms here, so the queue drains about 17 rows per ms.
    @Test(arguments: [(0, false), (50, false), (100, false), (200, true), (1_000, true)])
    func shedsWhenTheQueueWaitBreaksTheTarget(rowsAhead: Int, sheds: Bool) throws {
        let scheduler = warmScheduler()
        let overload = scheduler.overload(now: at(0), rows: 1, rowsAhead: rowsAhead, workers: .init(idle: 1))
        #expect((overload != nil) == sheds)
        if let overload { #expect(overload.waitNanoseconds + overload.computeNanoseconds > Double(10 * ms)) }
    }

    @Test func countsTheRunningBatchWhenNoWorkerIsIdle() {
        let scheduler = warmScheduler()
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 10, workers: .init(idle: 1)) == nil)
        let busy = BatchScheduler.WorkerState(idle: 0, earliestExpectedFree: at(9 * ms))
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 10, workers: busy) != nil)
    }

    /// A batch stalled by a busy machine once spoiled the fit so that every job looked too slow; with
    /// nothing queued and the worker idle a job must still be admitted, and the batches it runs mend the fit.
    @Test func anIdlePoolAdmitsWorkWhateverTheEstimateAndItsBatchesMendTheFit() {
        var scheduler = warmScheduler()
        for rows in [1, 2, 1, 2, 1, 2, 1, 2] { scheduler.recordBatch(rows: rows, nanoseconds: 30 * ms) }
        let idle = BatchScheduler.WorkerState(idle: 1)
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 0, workers: idle) == nil)
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 1, workers: idle) != nil)
        for rows in [1, 2, 4, 8, 16, 32, 64, 1, 2, 4, 8, 16, 32, 64] {
            for _ in 0..<5 { scheduler.recordBatch(rows: rows, nanoseconds: 500_000 + UInt64(rows) * 50_000) }
        }
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 1, workers: idle) == nil)
    }

    @Test func sheddingCanBeTurnedOff() {
        var scheduler = BatchScheduler(
            settings: .init(maxBatchRows: 64, sloNanoseconds: 10 * ms, workers: 1, shedding: false)
        )
        for rows in [1, 2, 4, 8, 16, 32, 64, 1, 2] { scheduler.recordBatch(rows: rows, nanoseconds: UInt64(rows) * ms) }
        #expect(scheduler.overload(now: at(0), rows: 1, rowsAhead: 10_000, workers: .init(idle: 0)) == nil)
    }
}

/// A discrete-event run of the decision against a simulated worker whose batches take exactly
/// a·n + b: many arrival patterns, checked for work conservation, growth and the latency target.
@Suite struct BatchSchedulerSimulationTests {
    struct Result {
        var meanBatch: Double
        var maxBatch: Int
        var p99Latency: UInt64
        var idleWaits: Int
    }

    /// Arrivals: a seeded Poisson stream at `rate` per second for `count` jobs.
    static func poisson(rate: Double, count: Int, seed: UInt64) -> [UInt64] {
        var state = seed
        var time = 1_000.0 * Double(ms)
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let uniform = (Double(state >> 11) + 0.5) / Double(1 << 53)
            time += -log(uniform) / rate * 1e9
            return UInt64(time)
        }
    }

    static func simulate(arrivals: [UInt64], perRow: UInt64 = 50 * us, perBatch: UInt64 = 500 * us) -> Result {
        var scheduler = warmScheduler(perRow: perRow, perBatch: perBatch)
        var queue: [UInt64] = []
        var next = 0
        var now = arrivals[0]
        var busyUntil: UInt64?
        var batches: [Int] = []
        var latencies: [UInt64] = []
        var idleWaits = 0
        while next < arrivals.count || !queue.isEmpty || busyUntil != nil {
            while next < arrivals.count && arrivals[next] <= now {
                queue.append(arrivals[next])
                scheduler.recordArrival(rows: 1, at: at(arrivals[next]))
                next += 1
            }
            if let end = busyUntil, end <= now { busyUntil = nil }
            let decision = scheduler.decide(
                now: at(now),
                queue: .init(jobs: queue.count, rows: queue.count, oldestEnqueuedAt: queue.first.map(at)),
                workers: .init(idle: busyUntil == nil ? 1 : 0, earliestExpectedFree: busyUntil.map(at))
            )
            var wakeAt = min(busyUntil ?? .max, next < arrivals.count ? arrivals[next] : .max)
            switch decision {
            case .dispatch(let rows):
                let taken = Array(queue.prefix(rows))
                queue.removeFirst(taken.count)
                let cost = UInt64(taken.count) * perRow + perBatch
                scheduler.recordBatch(rows: taken.count, nanoseconds: cost)
                for arrival in taken {
                    latencies.append(now + cost - arrival)
                    scheduler.recordLatency(nanoseconds: now + cost - arrival)
                }
                batches.append(taken.count)
                busyUntil = now + cost
                wakeAt = min(wakeAt, now + cost)
            case .wait(let until):
                idleWaits += 1
                wakeAt = min(wakeAt, max(until.nanoseconds, now + 1))
            case .idle:
                break
            }
            if wakeAt == .max { break }
            now = max(now, wakeAt)
        }
        latencies.sort()
        return Result(
            meanBatch: Double(batches.reduce(0, +)) / Double(batches.count),
            maxBatch: batches.max() ?? 0,
            p99Latency: latencies[latencies.count * 99 / 100],
            idleWaits: idleWaits
        )
    }

    @Test(arguments: [1 as UInt64, 2, 3])
    func lowLoadRunsEveryJobAtOnce(seed: UInt64) {
        // 200/s against a 550 µs batch-1: the worker is nearly always free when a job arrives.
        let result = Self.simulate(arrivals: Self.poisson(rate: 200, count: 2_000, seed: seed))
        #expect(result.idleWaits == 0)
        #expect(result.meanBatch < 1.2)
        #expect(result.p99Latency < 2 * ms)
    }

    @Test(arguments: [(3_000.0, 1 as UInt64), (6_000.0, 2), (10_000.0, 3), (14_000.0, 4)])
    func heavyLoadBatchesAndHoldsTheTarget(rate: Double, seed: UInt64) {
        // Beyond batch-1 capacity (≈1 800/s) and up to ≈85 % of the batch-64 capacity (≈17 000/s).
        let result = Self.simulate(arrivals: Self.poisson(rate: rate, count: 20_000, seed: seed))
        #expect(result.meanBatch > 1.5)
        #expect(result.maxBatch <= 64)
        #expect(result.p99Latency <= 10 * ms)
    }

    @Test func batchesGrowWithTheRate() {
        let rates = [2_000.0, 5_000.0, 10_000.0, 15_000.0]
        let means = rates.map { Self.simulate(arrivals: Self.poisson(rate: $0, count: 10_000, seed: 7)).meanBatch }
        for (lower, higher) in zip(means, means.dropFirst()) { #expect(higher > lower) }
    }

    @Test func burstsAreBatchedTogether() {
        // 40 jobs at the same instant every 20 ms.
        let arrivals = (0..<50).flatMap { burst in
            Array(repeating: 1_000 * ms + UInt64(burst) * 20 * ms, count: 40)
        }
        let result = Self.simulate(arrivals: arrivals)
        #expect(result.meanBatch >= 20)
        #expect(result.p99Latency <= 10 * ms)
    }
}
