// The token bucket behind the stream-reset and control-frame budgets, on an injected clock.

import Testing

@testable import SwitchyardHTTP2

@Suite struct FrameBudgetTests {
    static let second: UInt64 = 1_000_000_000

    @Test(arguments: [1, 10, 1000])
    func aFullBucketAllowsItsBurstThenRefuses(burst: Int) {
        var budget = FrameBudget(burst: burst, perSecond: 1, now: 0)
        var granted = 0
        for _ in 0..<burst where budget.take(now: 0) { granted += 1 }
        #expect(granted == burst)
        let over = budget.take(now: 0)
        #expect(!over)
    }

    @Test(arguments: [(perSecond: 200, elapsedMilliseconds: 50, regained: 10), (1, 999, 0), (1, 1000, 1), (1000, 1, 1)])
    func tokensComeBackAtTheRate(perSecond: Int, elapsedMilliseconds: UInt64, regained: Int) {
        var budget = FrameBudget(burst: 100, perSecond: perSecond, now: 0)
        for _ in 0..<100 { _ = budget.take(now: 0) }
        let later = elapsedMilliseconds * 1_000_000
        var taken = 0
        while budget.take(now: later) { taken += 1 }
        #expect(taken == regained)
    }

    @Test func slowRefillsAccumulateAcrossFrequentChecks() {
        // One token per second, checked every millisecond: the fractions must add up, not be lost.
        var budget = FrameBudget(burst: 1, perSecond: 1, now: 0)
        let first = budget.take(now: 0)
        #expect(first)
        var granted = 0
        for ms in 1...3000 where budget.take(now: UInt64(ms) * 1_000_000) { granted += 1 }
        #expect(granted == 3)
    }

    @Test func theBucketNeverHoldsMoreThanItsBurst() {
        var budget = FrameBudget(burst: 5, perSecond: 1000, now: 0)
        #expect(budget.available == 5)
        _ = budget.take(now: 3600 * Self.second)  // an hour idle refills to the burst, not beyond
        #expect(budget.available == 4)
    }

    @Test func aSteadyRateAtTheLimitIsNeverRefused() {
        var budget = FrameBudget(burst: 10, perSecond: 100, now: 0)
        var refused = 0
        for i in 1...10_000 where !budget.take(now: UInt64(i) * 10_000_000) { refused += 1 }  // 100/s for 100 s
        #expect(refused == 0)
    }
}
