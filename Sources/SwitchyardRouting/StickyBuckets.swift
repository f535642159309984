// Sticky weighted splits: a key hashes into one of a fixed number of buckets, and buckets are handed to
// versions by cumulative weight in the route's listed order. Raising the weight of a later version
// (the canary) at the expense of an earlier one (the stable) only moves buckets stable → canary.

import SwitchyardCore

/// The bucket allocation of a weighted split.
public struct StickyBuckets: Sendable, Hashable {
    /// Buckets a key can hash to. Fixed so that assignments survive restarts and weight changes.
    public static let bucketCount: UInt64 = 10_000

    /// The exclusive upper bucket of each version, in listed order; the last equals `bucketCount`.
    public let boundaries: [UInt64]

    /// Allocates buckets to versions by cumulative weight: version `i` owns the buckets from
    /// `round(N·Σ_{j<i} w_j / W)` up to `round(N·Σ_{j≤i} w_j / W)`. Negative weights count as 0.
    /// - Precondition: the weights sum to more than 0.
    public init(weights: [Double]) {
        let total = weights.reduce(0) { $0 + max($1, 0) }
        precondition(total > 0, "canary weights must sum to more than 0")
        var cumulative = 0.0
        var boundaries: [UInt64] = []
        boundaries.reserveCapacity(weights.count)
        for weight in weights {
            cumulative += max(weight, 0)
            let bound = (Double(StickyBuckets.bucketCount) * cumulative / total).rounded()
            boundaries.append(min(StickyBuckets.bucketCount, UInt64(bound)))
        }
        boundaries[boundaries.count - 1] = StickyBuckets.bucketCount
        self.boundaries = boundaries
    }

    /// The index of the version owning `bucket`.
    @inline(__always)
    public func version(ofBucket bucket: UInt64) -> Int {
        var index = 0
        while index < boundaries.count - 1 && bucket >= boundaries[index] { index += 1 }
        return index
    }

    /// The bucket of a key: FNV-1a over its UTF-8 bytes, seeded per route so that one user's buckets in
    /// different models are independent, then a SplitMix64 finaliser so nearby keys spread evenly.
    @inline(__always)
    public static func bucket(of key: String, seed: UInt64) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        var key = key
        key.withUTF8 { bytes in
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
        }
        return SplitMix64.mix(hash) % bucketCount
    }

    /// A random bucket, for calls without a key.
    @inline(__always)
    public static func randomBucket(using generator: inout some RandomNumberGenerator) -> UInt64 {
        // Multiply-shift maps 64 random bits onto 0..<bucketCount without modulo bias worth counting.
        generator.next().multipliedFullWidth(by: bucketCount).high
    }

    /// A stable per-route seed from its model name.
    public static func seed(forModel model: String) -> UInt64 {
        var hash: UInt64 = 0x84_222_325
        for byte in model.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return SplitMix64.mix(hash)
    }
}
