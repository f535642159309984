// Multi-armed bandits over a route's versions: ε-greedy, UCB1 and Thompson sampling (Beta-Bernoulli) on
// rewards in [0, 1], with a discount factor or a sliding window for traffic whose reward rates drift.
// A pure state machine: choices take an injected random source, rewards come from the caller.
// In a fleet, replicas share what each observed (`own`, cumulative and undiscounted) and `absorb` the others' new
// rewards as if recorded here, so that discounting and windows apply to every reward the fleet saw.

import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A bandit algorithm.
public enum BanditAlgorithm: String, Sendable, Hashable, CaseIterable {
    /// With probability ε a uniformly random arm, otherwise the arm with the best mean reward.
    case epsilonGreedy = "epsilon_greedy"
    /// The arm maximising `mean + c·√(ln N / n)` (Auer et al. 2002; c = √2 is the classic UCB1).
    case ucb1
    /// An arm drawn by sampling each arm's Beta(1 + successes, 1 + failures) posterior.
    case thompson
}

/// How old rewards fade.
public enum BanditMemory: Sendable, Hashable {
    /// Every reward counts forever.
    case unlimited
    /// At each new reward every arm's counts are multiplied by γ (0 < γ < 1): the effective memory is
    /// about 1 / (1 − γ) rewards.
    case discount(Double)
    /// Only the latest `n` rewards count.
    case window(Int)
}

/// One arm's state, for inspection.
public struct BanditArmState: Sendable, Hashable {
    /// Times the arm was chosen.
    public var pulls: UInt64
    /// Rewards received, undiscounted.
    public var rewards: UInt64
    /// Effective number of observations after discounting or windowing.
    public var observations: Double
    /// Effective sum of rewards after discounting or windowing.
    public var rewardSum: Double

    /// The mean reward, or `nil` before the first observation.
    public var meanReward: Double? { observations > 1e-12 ? rewardSum / observations : nil }
    /// The Beta posterior's α (1 + effective successes).
    public var posteriorAlpha: Double { 1 + rewardSum }
    /// The Beta posterior's β (1 + effective failures).
    public var posteriorBeta: Double { 1 + max(0, observations - rewardSum) }
}

/// The rewards one replica observed itself, per arm, cumulative and undiscounted: what it shares with its fleet.
/// A peer differences two of them (`since`) and absorbs the difference.
@MemberwiseInit
public struct BanditShare: Sendable, Hashable, Codable {
    /// Rewards received per arm.
    public var counts: [UInt64]
    /// Their sum per arm.
    public var sums: [Double]

    /// A share of `arms` arms with nothing observed.
    public init(arms: Int) {
        counts = Array(repeating: 0, count: arms)
        sums = Array(repeating: 0, count: arms)
    }

    /// What was observed between `earlier` and `self`, per arm; an arm whose count went backwards (only a restart
    /// explains it) counts from zero, an arm `earlier` lacks counts whole.
    public func since(_ earlier: BanditShare) -> BanditShare {
        var delta = self
        for arm in counts.indices where arm < earlier.counts.count && arm < earlier.sums.count && arm < sums.count {
            guard counts[arm] >= earlier.counts[arm] else { continue }
            delta.counts[arm] = counts[arm] - earlier.counts[arm]
            delta.sums[arm] = max(0, sums[arm] - earlier.sums[arm])
        }
        return delta
    }
}

/// A bandit's state and its decision rule.
public struct Bandit: Sendable {
    /// The decision rule.
    public let algorithm: BanditAlgorithm
    /// ε of ε-greedy.
    public let epsilon: Double
    /// c of UCB1.
    public let exploration: Double
    /// How old rewards fade.
    public let memory: BanditMemory
    /// Per-arm state, in the route's version order.
    public private(set) var arms: [BanditArmState]
    /// What this bandit observed itself (not absorbed from peers), for sharing.
    public private(set) var own: BanditShare
    /// The window's entries, oldest first from `windowHead`: an arm, how many rewards, and their sum (a local reward
    /// is one entry of weight 1; a peer's batch is one entry of its count).
    private var window: [(arm: Int, weight: Double, reward: Double)] = []
    private var windowHead = 0
    private var windowWeight = 0.0

    /// Creates a bandit with `arms` untried arms.
    public init(
        arms: Int,
        algorithm: BanditAlgorithm,
        epsilon: Double = 0.1,
        exploration: Double = 2.0.squareRoot(),
        memory: BanditMemory = .unlimited
    ) {
        precondition(arms > 0, "a bandit needs at least one arm")
        self.algorithm = algorithm
        self.epsilon = epsilon
        self.exploration = exploration
        self.memory = memory
        self.arms = Array(repeating: BanditArmState(pulls: 0, rewards: 0, observations: 0, rewardSum: 0), count: arms)
        self.own = BanditShare(arms: arms)
        if case .window(let size) = memory { window.reserveCapacity(size) }
    }

    /// Chooses an arm and counts the pull.
    public mutating func choose(using generator: inout some RandomNumberGenerator) -> Int {
        let arm = pick(using: &generator)
        arms[arm].pulls &+= 1
        return arm
    }

    private func pick(using generator: inout some RandomNumberGenerator) -> Int {
        // Arms never observed go first (fewest pulls first, so concurrent first calls spread out).
        var untried = -1
        for index in arms.indices where arms[index].observations <= 1e-12 {
            if untried < 0 || arms[index].pulls < arms[untried].pulls { untried = index }
        }
        switch algorithm {
        case .epsilonGreedy:
            if generator.unitDouble() < epsilon {
                return Int(generator.next().multipliedFullWidth(by: UInt64(arms.count)).high)
            }
            if untried >= 0 { return untried }
            return argmax { $0.rewardSum / $0.observations }
        case .ucb1:
            if untried >= 0 { return untried }
            let total = arms.reduce(0) { $0 + $1.observations }
            let logTotal = total > 1 ? log(total) : 0
            return argmax { arm in
                arm.rewardSum / arm.observations + exploration * (logTotal / arm.observations).squareRoot()
            }
        case .thompson:
            return argmax { arm in
                BetaSampler.sample(alpha: arm.posteriorAlpha, beta: arm.posteriorBeta, using: &generator)
            }
        }
    }

    private func argmax(_ score: (BanditArmState) -> Double) -> Int {
        var best = 0
        var bestScore = -Double.infinity
        for index in arms.indices {
            let value = score(arms[index])
            if value > bestScore {
                best = index
                bestScore = value
            }
        }
        return best
    }

    /// Records a reward in [0, 1] (clamped) for `arm`.
    public mutating func record(arm: Int, reward: Double) {
        guard arms.indices.contains(arm) else { return }
        let reward = reward.isNaN ? 0 : min(1, max(0, reward))
        add(arm: arm, count: 1, sum: reward)
        arms[arm].rewards &+= 1
        own.counts[arm] &+= 1
        own.sums[arm] += reward
    }

    /// Adds rewards a peer observed: `delta.counts[arm]` rewards summing to `delta.sums[arm]` per arm, as if
    /// recorded here: discounting advances by their number, a window keeps only the latest `n` rewards of all.
    /// Arms beyond this bandit's are ignored.
    public mutating func absorb(_ delta: BanditShare) {
        for arm in arms.indices where arm < delta.counts.count && arm < delta.sums.count && delta.counts[arm] > 0 {
            let count = Double(delta.counts[arm])
            add(arm: arm, count: count, sum: min(count, max(0, delta.sums[arm].isNaN ? 0 : delta.sums[arm])))
        }
    }

    private mutating func add(arm: Int, count: Double, sum: Double) {
        var count = count
        var sum = sum
        if case .window(let size) = memory, count > Double(size) {
            // A batch larger than the window keeps only as many of its rewards as the window holds.
            sum *= Double(size) / count
            count = Double(size)
        }
        switch memory {
        case .unlimited:
            break
        case .discount(let gamma):
            let factor = count == 1 ? gamma : pow(gamma, count)
            for index in arms.indices {
                arms[index].observations *= factor
                arms[index].rewardSum *= factor
            }
        case .window(let size):
            guard size > 0 else { return }
            window.append((arm, count, sum))
            windowWeight += count
            // Forget the oldest rewards until the window holds `size`; a batch straddling the edge loses the
            // forgotten part at its mean.
            while windowWeight > Double(size) + 1e-9, windowHead < window.count {
                let excess = windowWeight - Double(size)
                let old = window[windowHead]
                let dropped = min(excess, old.weight)
                let droppedReward = old.weight > 0 ? old.reward * dropped / old.weight : 0
                arms[old.arm].observations = max(0, arms[old.arm].observations - dropped)
                arms[old.arm].rewardSum = max(0, arms[old.arm].rewardSum - droppedReward)
                windowWeight -= dropped
                if dropped >= old.weight - 1e-12 {
                    windowHead += 1
                } else {
                    window[windowHead] = (old.arm, old.weight - dropped, old.reward - droppedReward)
                }
            }
            if windowHead > 64 && windowHead * 2 > window.count {
                window.removeFirst(windowHead)
                windowHead = 0
            }
        }
        arms[arm].observations += count
        arms[arm].rewardSum += sum
    }
}

/// Beta and Gamma variates for Thompson sampling.
enum BetaSampler {
    /// A Beta(α, β) variate as X / (X + Y) with X ~ Gamma(α), Y ~ Gamma(β).
    static func sample(alpha: Double, beta: Double, using generator: inout some RandomNumberGenerator) -> Double {
        let x = gamma(shape: alpha, using: &generator)
        let y = gamma(shape: beta, using: &generator)
        return x + y > 0 ? x / (x + y) : 0.5
    }

    /// A Gamma(k, 1) variate by Marsaglia and Tsang (2000); shapes below 1 use the k + 1 boost.
    static func gamma(shape: Double, using generator: inout some RandomNumberGenerator) -> Double {
        if shape < 1 {
            let u = max(generator.unitDouble(), 0x1.0p-53)
            return gamma(shape: shape + 1, using: &generator) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = normal(using: &generator)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = generator.unitDouble()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return d * v }
            if log(max(u, 0x1.0p-53)) < 0.5 * x2 + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// A standard normal variate (Box–Muller, one of the pair).
    static func normal(using generator: inout some RandomNumberGenerator) -> Double {
        let u1 = max(generator.unitDouble(), 0x1.0p-53)
        let u2 = generator.unitDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}
