// The arrival schedule alone, deterministic: constant spacing, Poisson statistics, ramps from zero, steps,
// request limits, thread phases, and the compact stage syntax.

import SwitchyardCore
import SwitchyardLoad
import Testing

@Suite struct ArrivalScheduleTests {
    private func drain(_ schedule: ArrivalSchedule) -> [UInt64] {
        var s = schedule
        var times: [UInt64] = []
        while let t = s.next() { times.append(t) }
        return times
    }

    @Test(arguments: [1.0, 250.0, 1000.0, 20_000.0])
    func constantRateIsExact(rate: Double) {
        let times = drain(ArrivalSchedule(stages: [.steady(rate, for: 2)], process: .constant))
        #expect(times.count == Int(rate * 2))
        #expect(times.first == 0)
        let gap = 1e9 / rate
        for (a, b) in zip(times, times.dropFirst()) { #expect(abs(Double(b - a) - gap) <= 1.5) }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func poissonMatchesRateAndVariance(seed: UInt64) {
        let rate = 5000.0
        let times = drain(ArrivalSchedule(stages: [.steady(rate, for: 40)], process: .poisson, seed: seed))
        // 200 000 expected; a Poisson count's sd is √200000 ≈ 447, so ±1% is > 4 sd.
        #expect(abs(Double(times.count) - 200_000) < 2000)
        let gaps = zip(times, times.dropFirst()).map { Double($1 - $0) / 1e9 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let variance = gaps.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(gaps.count)
        #expect(abs(mean * rate - 1) < 0.02)
        // Exponential gaps: standard deviation equals the mean.
        #expect(abs(variance.squareRoot() / mean - 1) < 0.03)
    }

    @Test(arguments: ArrivalProcess.allCases)
    func rampFromZeroFollowsTheIntegratedRate(process: ArrivalProcess) {
        // 0 → 1000 req/s over 10 s: 5000 arrivals, a quarter of them in the first half.
        let times = drain(
            ArrivalSchedule(stages: [LoadStage(duration: 10, startRate: 0, endRate: 1000)], process: process)
        )
        let firstHalf = times.filter { $0 < 5_000_000_000 }.count
        let tolerance = process == .constant ? 2.0 : 250.0
        #expect(abs(Double(times.count) - 5000) <= tolerance)
        #expect(abs(Double(firstHalf) - 1250) <= tolerance)
        #expect(times == times.sorted())
    }

    @Test func stepsAndRampDownKeepPerStageCounts() {
        let stages = [
            LoadStage.steady(100, for: 2), .steady(400, for: 1), LoadStage(duration: 2, startRate: 400, endRate: 0),
        ]
        let times = drain(ArrivalSchedule(stages: stages, process: .constant))
        #expect(times.filter { $0 < 2_000_000_000 }.count == 200)
        #expect(times.filter { $0 >= 2_000_000_000 && $0 < 3_000_000_000 }.count == 400)
        #expect(abs(times.filter { $0 >= 3_000_000_000 }.count - 400) <= 1)
        #expect(times.last! <= 5_000_000_000)
    }

    @Test func limitStopsEarly() {
        let times = drain(ArrivalSchedule(stages: [.steady(1000, for: 100)], process: .poisson, limit: 123))
        #expect(times.count == 123)
    }

    @Test func phasesInterleaveSplitSchedules() {
        let a = drain(ArrivalSchedule(stages: [.steady(100, for: 1)], process: .constant, phase: 0))
        let b = drain(ArrivalSchedule(stages: [.steady(100, for: 1)], process: .constant, phase: 0.5))
        #expect(a.count == 100 && b.count == 100)
        #expect(b[0] == 5_000_000)
        #expect(b[1] - a[1] == 5_000_000)
    }

    @Test func compactStageSyntax() throws {
        let stages = try Scenario.parseStages("10@500,30s@500-5000")
        #expect(stages == [.steady(500, for: 10), LoadStage(duration: 30, startRate: 500, endRate: 5000)])
        #expect(throws: SwitchyardError.self) { try Scenario.parseStages("10x500") }
    }

    @Test func invalidStagesAreNamed() {
        #expect(throws: SwitchyardError.self) {
            try LoadStage(duration: 0, startRate: 1, endRate: 1).validate(index: 2)
        }
        do {
            try LoadStage(duration: 5, startRate: -1, endRate: 1).validate(index: 3)
            Issue.record("expected a failure")
        } catch { #expect(error.message.contains("stage 3")) }
    }
}
