// The drift tests over fixed-bin histograms: population stability index, the two-sample Kolmogorov–Smirnov
// statistic with its asymptotic p-value, and Pearson's chi-squared goodness of fit against the reference's
// category mix. Pure functions of counts, so the detector thread and the offline benchmark share them.

#if canImport(Glibc)
    import Glibc
#endif

/// Drift statistics over histograms that share their bins.
public enum DriftStatistics {
    /// Proportions of `counts` after adding `pseudocount` to every bin, so that an empty bin never makes a
    /// logarithm or a quotient infinite. An all-zero histogram becomes uniform.
    public static func smoothedProportions(_ counts: [Double], pseudocount: Double = 0.5) -> [Double] {
        let total = counts.reduce(0, +) + pseudocount * Double(counts.count)
        guard total > 0 else { return counts.map { _ in 1 / Double(max(counts.count, 1)) } }
        return counts.map { ($0 + pseudocount) / total }
    }

    /// The population stability index Σ (c − r) · ln(c / r) of the current histogram against the reference,
    /// both smoothed by `pseudocount` per bin. 0 when they agree; about 0.1 is a moderate shift, 0.25 a large one.
    /// - Parameters:
    ///   - reference: reference counts per bin.
    ///   - current: current counts over the same bins.
    public static func psi(reference: [Double], current: [Double], pseudocount: Double = 0.5) -> Double {
        precondition(reference.count == current.count, "histograms must share their bins")
        let r = smoothedProportions(reference, pseudocount: pseudocount)
        let c = smoothedProportions(current, pseudocount: pseudocount)
        var sum = 0.0
        for i in r.indices { sum += (c[i] - r[i]) * log(c[i] / r[i]) }
        return sum
    }

    /// The two-sample Kolmogorov–Smirnov statistic over ordered bins: the largest gap between the two
    /// empirical distribution functions at a bin edge (values in one bin count as tied). 0 when a side is empty.
    public static func ksStatistic(reference: [Double], current: [Double]) -> Double {
        precondition(reference.count == current.count, "histograms must share their bins")
        let n = reference.reduce(0, +)
        let m = current.reduce(0, +)
        guard n > 0, m > 0 else { return 0 }
        var a = 0.0
        var b = 0.0
        var gap = 0.0
        for i in reference.indices {
            a += reference[i]
            b += current[i]
            gap = max(gap, abs(a / n - b / m))
        }
        return gap
    }

    /// The asymptotic p-value of a two-sample KS statistic `d` between samples of `n` and `m` values:
    /// Kolmogorov's Q(λ) = 2 Σ (−1)^(k−1) e^(−2k²λ²) with λ = d·√(nm/(n+m)) (the form scipy's `ks_2samp`
    /// uses with `method="asymp"`, without its small-sample correction).
    public static func ksPValue(statistic d: Double, n: Double, m: Double) -> Double {
        guard n > 0, m > 0, d > 0 else { return 1 }
        let lambda = d * (n * m / (n + m)).squareRoot()
        return kolmogorovSurvival(lambda)
    }

    /// Kolmogorov's survival function Q(λ) = P(K > λ).
    public static func kolmogorovSurvival(_ lambda: Double) -> Double {
        guard lambda > 0.2 else { return 1 }
        var sum = 0.0
        var sign = 1.0
        for k in 1...100 {
            let term = exp(-2 * Double(k * k) * lambda * lambda)
            sum += sign * term
            if term < 1e-300 || term < sum.magnitude * 1e-17 { break }
            sign = -sign
        }
        return min(1, max(0, 2 * sum))
    }

    /// Pearson's chi-squared statistic of the current counts against the reference's proportions (smoothed by
    /// `pseudocount`), with its degrees of freedom (bins − 1): what scipy's `chisquare(current, expected)`
    /// computes with `expected` the smoothed reference proportions times the current total.
    public static func chiSquared(
        reference: [Double],
        current: [Double],
        pseudocount: Double = 0.5
    ) -> (statistic: Double, degreesOfFreedom: Int) {
        precondition(reference.count == current.count, "histograms must share their bins")
        let total = current.reduce(0, +)
        guard total > 0, reference.count > 1 else { return (0, max(reference.count - 1, 0)) }
        let r = smoothedProportions(reference, pseudocount: pseudocount)
        var sum = 0.0
        for i in r.indices {
            let expected = r[i] * total
            let gap = current[i] - expected
            sum += gap * gap / expected
        }
        return (sum, reference.count - 1)
    }

    /// P(X > `statistic`) for X chi-squared with `degreesOfFreedom`: the regularized upper incomplete gamma
    /// function Q(k/2, x/2).
    public static func chiSquaredPValue(statistic: Double, degreesOfFreedom: Int) -> Double {
        guard degreesOfFreedom > 0, statistic > 0 else { return 1 }
        return regularizedUpperGamma(Double(degreesOfFreedom) / 2, statistic / 2)
    }

    /// Q(a, x) = Γ(a, x) / Γ(a), by its series below a + 1 and Lentz's continued fraction above.
    static func regularizedUpperGamma(_ a: Double, _ x: Double) -> Double {
        guard x > 0 else { return 1 }
        let logPrefix = a * log(x) - x - lgamma(a)
        if x < a + 1 {
            var term = 1 / a
            var sum = term
            var n = a
            for _ in 0..<1000 {
                n += 1
                term *= x / n
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
            }
            return max(0, 1 - sum * exp(logPrefix))
        }
        let tiny = 1e-300
        var b = x + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var h = d
        for i in 1...1000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return min(1, exp(logPrefix) * h)
    }
}
