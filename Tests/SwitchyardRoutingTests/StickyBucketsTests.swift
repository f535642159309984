import SwitchyardCore
import Testing

@testable import SwitchyardRouting

@Suite struct StickyBucketsTests {
    @Test(arguments: [
        ([90.0, 10.0], [9_000, 10_000]),
        ([1.0, 1.0], [5_000, 10_000]),
        ([0.0, 1.0], [0, 10_000]),
        ([1.0, 0.0], [10_000, 10_000]),
        ([1.0, 2.0, 1.0], [2_500, 7_500, 10_000]),
    ])
    func allocatesBucketsByCumulativeWeight(weights: [Double], boundaries: [UInt64]) {
        #expect(StickyBuckets(weights: weights).boundaries == boundaries)
    }

    @Test func bucketOwnersFollowBoundaries() {
        let buckets = StickyBuckets(weights: [90, 10])
        #expect(buckets.version(ofBucket: 0) == 0)
        #expect(buckets.version(ofBucket: 8_999) == 0)
        #expect(buckets.version(ofBucket: 9_000) == 1)
        #expect(buckets.version(ofBucket: 9_999) == 1)
    }

    @Test(arguments: ["user-1", "alice", "", "🦊", String(repeating: "x", count: 500)])
    func sameKeySameBucket(key: String) {
        let seed = StickyBuckets.seed(forModel: "digits")
        let first = StickyBuckets.bucket(of: key, seed: seed)
        for _ in 0..<10 { #expect(StickyBuckets.bucket(of: key, seed: seed) == first) }
        #expect(first < StickyBuckets.bucketCount)
    }

    @Test func keysSpreadEvenlyOverBuckets() {
        // 100 000 keys into 10 deciles of the bucket range: each within 3% of 10 000.
        let seed = StickyBuckets.seed(forModel: "digits")
        var deciles = [Int](repeating: 0, count: 10)
        for n in 0..<100_000 { deciles[Int(StickyBuckets.bucket(of: "user-\(n)", seed: seed) / 1_000)] += 1 }
        for count in deciles { #expect(abs(count - 10_000) < 300, "decile counts \(deciles)") }
    }

    @Test func raisingTheCanaryOnlyMovesUsersFromStableToCanary() {
        let seed = StickyBuckets.seed(forModel: "digits")
        let keys = (0..<20_000).map { StickyBuckets.bucket(of: "user-\($0)", seed: seed) }
        var previous = [Int](repeating: 0, count: keys.count)
        for canary in [0.0, 1, 5, 10, 20, 35, 50, 80, 100] {
            let buckets = StickyBuckets(weights: [100 - canary, canary])
            let current = keys.map { buckets.version(ofBucket: $0) }
            for index in keys.indices {
                #expect(
                    !(previous[index] == 1 && current[index] == 0),
                    "user-\(index) moved canary → stable at \(canary)%"
                )
            }
            let share = Double(current.count { $0 == 1 }) / Double(keys.count)
            #expect(abs(share - canary / 100) < 0.015, "canary share \(share) for weight \(canary)%")
            previous = current
        }
    }

    @Test func randomBucketsAreUniform() {
        var generator = SplitMix64(seed: 7)
        var halves = [0, 0]
        for _ in 0..<100_000 { halves[StickyBuckets.randomBucket(using: &generator) < 5_000 ? 0 : 1] += 1 }
        #expect(abs(halves[0] - 50_000) < 1_000)
    }
}
