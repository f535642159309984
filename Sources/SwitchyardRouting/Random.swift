// The random source routing draws from on the hot path: lock-free and shared (one atomic add per draw, safe from
// every loop thread), over the same SplitMix64 sequence as the seedable generator in SwitchyardCore.

import SwitchyardCore
import Synchronization

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
        let value = state.wrappingAdd(SplitMix64.increment, ordering: .relaxed).newValue
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
