// Random sources for routing: a seedable SplitMix64 generator for tests and simulations, and a lock-free
// shared one for the hot path (one atomic add per draw, safe from every loop thread).

import Synchronization

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, seedable generator with good statistical quality.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed`; equal seeds give equal sequences.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 output function: a bijective avalanche of 64 bits.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A random source shared by threads: SplitMix64 over an atomic counter, so concurrent draws never lock
/// and never repeat. Seeded, a single thread sees the same sequence as `SplitMix64(seed:)`.
public final class SharedRandom: Sendable {
    private let state: Atomic<UInt64>

    /// Creates a source; without a seed it starts from the system's random source.
    public init(seed: UInt64? = nil) {
        state = Atomic(seed ?? UInt64.random(in: .min ... .max))
    }

    /// The next 64 random bits.
    @inline(__always)
    public func next() -> UInt64 {
        let value = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        return SplitMix64.mix(value)
    }

    /// A generator view of this source for APIs that take `inout some RandomNumberGenerator`.
    public var generator: Generator { Generator(source: self) }

    /// A `RandomNumberGenerator` drawing from a `SharedRandom`.
    public struct Generator: RandomNumberGenerator {
        let source: SharedRandom
        /// The next 64 random bits.
        public mutating func next() -> UInt64 { source.next() }
    }
}

extension RandomNumberGenerator {
    /// A uniform double in [0, 1) from 53 random bits.
    @inline(__always)
    mutating func unitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
