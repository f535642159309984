// A seedable random source for routing, load schedules, simulations and tests: one generator, so that equal seeds
// give equal sequences everywhere.

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, seedable generator with good statistical quality.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed`; equal seeds give equal sequences.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= SplitMix64.increment
        return SplitMix64.mix(state)
    }

    /// What the state advances by on every draw (2^64 / φ, odd).
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The SplitMix64 output function: a bijective avalanche of 64 bits.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension RandomNumberGenerator {
    /// A uniform double in [0, 1) from 53 random bits.
    @inline(__always)
    public mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
