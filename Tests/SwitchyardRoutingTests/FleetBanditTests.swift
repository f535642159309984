// Bandits shared by a fleet: what a replica absorbs from its peers counts as if recorded here (discounting and
// windows included), and a simulation of the fleet's regret: three replicas exchanging their rewards at an interval
// against one replica serving all the calls, and against three that learn alone. The regret figures print with
// `swift test --filter FleetBanditRegret`.

import SwitchyardCore
import Testing

@testable import SwitchyardRouting

@Suite struct FleetBanditTests {
    @Test func absorbingAPeersRewardsEqualsRecordingThem() {
        var local = Bandit(arms: 2, algorithm: .thompson)
        var peer = Bandit(arms: 2, algorithm: .thompson)
        var fleet = Bandit(arms: 2, algorithm: .thompson)
        for (arm, reward) in [(0, 1.0), (1, 0.0), (1, 1.0), (0, 1.0), (1, 0.0)] {
            peer.record(arm: arm, reward: reward)
            fleet.record(arm: arm, reward: reward)
        }
        local.record(arm: 0, reward: 0)
        fleet.record(arm: 0, reward: 0)
        local.absorb(peer.own.since(BanditShare(arms: 2)))
        #expect(local.arms.map(\.observations) == fleet.arms.map(\.observations))
        #expect(local.arms.map(\.rewardSum) == fleet.arms.map(\.rewardSum))
        // Only what the replica observed itself is shared: absorbed rewards never travel on.
        #expect(local.own == BanditShare(counts: [1, 0], sums: [0, 0]))
    }

    @Test func aPeersDeltaIsWhatItObservedSinceTheLastLook() {
        var peer = Bandit(arms: 2, algorithm: .ucb1)
        peer.record(arm: 0, reward: 1)
        let first = peer.own
        peer.record(arm: 1, reward: 1)
        peer.record(arm: 1, reward: 0)
        #expect(peer.own.since(first) == BanditShare(counts: [0, 2], sums: [0, 1]))
        // A restarted peer (its counts went backwards) counts from zero.
        #expect(first.since(BanditShare(counts: [5, 2], sums: [4, 1])) == BanditShare(counts: [1, 0], sums: [1, 0]))
    }

    @Test func discountingAdvancesByEveryRewardTheFleetSaw() {
        var bandit = Bandit(arms: 2, algorithm: .thompson, memory: .discount(0.9))
        bandit.record(arm: 0, reward: 1)
        bandit.absorb(BanditShare(counts: [0, 10], sums: [0, 10]))
        // Arm 0's one reward has been discounted by ten later rewards.
        #expect(abs(bandit.arms[0].observations - 0.9.power(10)) < 1e-12)
        #expect(bandit.arms[1].observations == 10)
    }

    @Test func aWindowKeepsTheLatestRewardsOfTheWholeFleet() {
        var bandit = Bandit(arms: 2, algorithm: .ucb1, memory: .window(10))
        for _ in 0..<6 { bandit.record(arm: 0, reward: 1) }
        bandit.absorb(BanditShare(counts: [0, 8], sums: [0, 4]))
        // 14 rewards, a window of 10: the 4 oldest (arm 0's) are gone.
        #expect(bandit.arms[0].observations == 2 && bandit.arms[0].rewardSum == 2)
        #expect(bandit.arms[1].observations == 8 && bandit.arms[1].rewardSum == 4)
        // A batch larger than the window keeps the window's worth, at the batch's mean.
        bandit.absorb(BanditShare(counts: [20, 0], sums: [5, 0]))
        #expect(bandit.arms[0].observations == 10 && abs(bandit.arms[0].rewardSum - 2.5) < 1e-9)
        #expect(bandit.arms[1].observations == 0)
    }
}

/// The fleet's regret with and without sharing, averaged over seeds.
@Suite struct FleetBanditRegret {
    static let rates = [0.50, 0.55, 0.60]

    /// Σ over all calls of (best rate − chosen arm's rate) for `replicas` bandits taking turns on `calls` calls,
    /// each absorbing its peers' new rewards every `exchangeEvery` of its own calls (0: never).
    static func regret(algorithm: BanditAlgorithm, replicas: Int, calls: Int, exchangeEvery: Int, seed: UInt64)
        -> Double
    {
        var bandits = (0..<replicas).map { _ in Bandit(arms: rates.count, algorithm: algorithm) }
        // seen[i][j]: what replica i last absorbed of replica j.
        var seen = Array(repeating: Array(repeating: BanditShare(arms: rates.count), count: replicas), count: replicas)
        var choices = SplitMix64(seed: seed)
        var outcomes = SplitMix64(seed: seed ^ 0x5EED)
        let best = rates.max()!
        var regret = 0.0
        for call in 0..<calls {
            let replica = call % replicas
            let arm = bandits[replica].choose(using: &choices)
            regret += best - rates[arm]
            bandits[replica].record(arm: arm, reward: outcomes.unitDouble() < rates[arm] ? 1 : 0)
            let own = call / replicas + 1
            if exchangeEvery > 0, own % exchangeEvery == 0 {
                for peer in 0..<replicas where peer != replica {
                    let share = bandits[peer].own
                    bandits[replica].absorb(share.since(seen[replica][peer]))
                    seen[replica][peer] = share
                }
            }
        }
        return regret
    }

    static func mean(_ body: (UInt64) -> Double) -> Double {
        let seeds: [UInt64] = Array(1...12)
        return seeds.map(body).reduce(0, +) / Double(seeds.count)
    }

    @Test(arguments: [BanditAlgorithm.thompson, .ucb1])
    func sharingReplicasExploreLikeOne(algorithm: BanditAlgorithm) {
        let calls = 6000
        let one = Self.mean { Self.regret(algorithm: algorithm, replicas: 1, calls: calls, exchangeEvery: 0, seed: $0) }
        let alone = Self.mean {
            Self.regret(algorithm: algorithm, replicas: 3, calls: calls, exchangeEvery: 0, seed: $0)
        }
        // Every 25 of a replica's own calls: at 100 calls/s per replica, the 250 ms exchange interval.
        let shared = Self.mean {
            Self.regret(algorithm: algorithm, replicas: 3, calls: calls, exchangeEvery: 25, seed: $0)
        }
        print(
            "fleet bandit regret (\(algorithm.rawValue), \(calls) calls, rates \(Self.rates), 12 seeds): "
                + "one replica \(Int(one)), 3 sharing \(Int(shared)) (\(ratio(shared, one))×), "
                + "3 alone \(Int(alone)) (\(ratio(alone, one))×)"
        )
        #expect(shared <= 1.5 * one)
        #expect(shared < alone)
    }

    private func ratio(_ value: Double, _ anchor: Double) -> String {
        let scaled = (value / anchor * 100).rounded() / 100
        return "\(scaled)"
    }
}

extension Double {
    fileprivate func power(_ exponent: Int) -> Double { (0..<exponent).reduce(1) { product, _ in product * self } }
}
