// The drift statistics against hand-computed values and against scipy (values printed by
// Scripts/drift_constants.py, pasted here).

import Testing

@testable import SwitchyardMonitor

@Suite struct DriftStatisticsTests {
    // Hand-computed.

    @Test func psiOfAKnownShift() {
        // r = [.5, .5], c = [.25, .75]: −.25·ln(.5) + .25·ln(1.5) = .25·(ln 2 + ln 1.5) = .25·ln 3.
        let psi = DriftStatistics.psi(reference: [1, 1], current: [1, 3], pseudocount: 0)
        #expect(abs(psi - 0.25 * 1.0986122886681098) < 1e-12)
    }

    @Test func identicalHistogramsScoreZero() {
        #expect(DriftStatistics.psi(reference: [10, 20, 30], current: [1, 2, 3]) < 0.01)
        #expect(DriftStatistics.ksStatistic(reference: [10, 20, 30], current: [1, 2, 3]) < 1e-12)
        #expect(
            DriftStatistics.chiSquared(reference: [10, 20, 30], current: [10, 20, 30], pseudocount: 0).statistic < 1e-12
        )
    }

    @Test func ksStatisticIsTheLargestCDFGap() {
        // CDFs (.5, 1) and (0, 1).
        #expect(DriftStatistics.ksStatistic(reference: [1, 1], current: [0, 2]) == 0.5)
        #expect(DriftStatistics.ksStatistic(reference: [0, 0], current: [0, 2]) == 0)
    }

    @Test func chiSquaredOfAKnownSplit() {
        // Expected 20 and 20: (10² + 10²) / 20.
        let chi = DriftStatistics.chiSquared(reference: [1, 1], current: [30, 10], pseudocount: 0)
        #expect(abs(chi.statistic - 10) < 1e-12)
        #expect(chi.degreesOfFreedom == 1)
        // With two degrees of freedom the survival function is e^(−x/2).
        #expect(abs(DriftStatistics.chiSquaredPValue(statistic: 4, degreesOfFreedom: 2) - 0.1353352832366127) < 1e-12)
    }

    @Test func emptySidesNeverDivideByZero() {
        #expect(DriftStatistics.psi(reference: [0, 0, 0], current: [0, 0, 0]).isFinite)
        #expect(DriftStatistics.psi(reference: [5, 0, 0], current: [0, 0, 5]).isFinite)
        #expect(DriftStatistics.ksPValue(statistic: 0.3, n: 0, m: 10) == 1)
        #expect(DriftStatistics.chiSquared(reference: [0], current: [7]).statistic == 0)
    }

    // scipy 1.17.1 / numpy 2.4.6 (Scripts/drift_constants.py).

    static let reference: [Double] = [120, 300, 280, 200, 100]
    static let current: [Double] = [80, 250, 300, 250, 120]

    @Test func psiMatchesNumpy() {
        let psi = DriftStatistics.psi(reference: Self.reference, current: Self.current)
        #expect(abs(psi - 0.041271520389587445) < 1e-12)
    }

    @Test func ksMatchesScipy() {
        let d = DriftStatistics.ksStatistic(reference: Self.reference, current: Self.current)
        #expect(abs(d - 0.08999999999999997) < 1e-12)
        let p = DriftStatistics.ksPValue(statistic: d, n: 1000, m: 1000)
        #expect(abs(p - 0.0006070782761407577) / 0.0006070782761407577 < 1e-9)
    }

    @Test func chiSquaredMatchesScipy() {
        let chi = DriftStatistics.chiSquared(reference: Self.reference, current: Self.current)
        #expect(abs(chi.statistic - 39.55101390752285) < 1e-9)
        let p = DriftStatistics.chiSquaredPValue(statistic: chi.statistic, degreesOfFreedom: chi.degreesOfFreedom)
        #expect(abs(p - 5.3599172296884344e-08) / 5.3599172296884344e-08 < 1e-8)
    }

    @Test(arguments: [
        (30.0, 7, 9.495972508134177e-05),
        (3.5, 1, 0.0613688291394023),
        (150.0, 100, 0.0009039320423540184),
    ])
    func chiSquaredSurvivalMatchesScipy(statistic: Double, degreesOfFreedom: Int, expected: Double) {
        let p = DriftStatistics.chiSquaredPValue(statistic: statistic, degreesOfFreedom: degreesOfFreedom)
        #expect(abs(p - expected) / expected < 1e-9)
    }
}
