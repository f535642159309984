// Traffic policies and the comparison sink as `switchyard.yaml` spells them (`routes:` and `sink:`).
// Structural checks live here; checks against the loaded models (unknown versions) live in the router.

/// How one model's traffic is spread over its versions, from one entry of `routes:`.
///
/// ```yaml
/// routes:
///   - model: digits
///     policy: canary                 # fixed | canary | bandit
///     sticky: {header: x-user-id}    # or {parameter: user}; canary only; absent = random split
///     versions:
///       - {version: "1", weight: 90}
///       - {version: "2", weight: 10}
///     shadow: {version: "2", fraction: 0.25, explicit: true}
///     fallback: {to: baseline, on: [unavailable, internal, resource_exhausted], deadline_margin_ms: 5}
/// ```
public struct RouteConfiguration: Sendable, Hashable, Codable {
    /// The model name the route applies to.
    public var model: String
    /// The policy choosing a version for each call.
    public var policy: Policy
    /// The versions the route may serve, in allocation order (canary buckets are handed out in this order).
    public var versions: [VersionWeight]
    /// Where canary calls find their sticky key; `nil` splits every call at random.
    public var sticky: StickyKey?
    /// A `policy` name from the file that is not a known policy (reported by `validate`).
    var unknownPolicy: String?
    /// Bandit settings (policy `bandit` only); defaults apply when absent.
    public var bandit: BanditSettings?
    /// Mirroring to a shadow version; `nil` mirrors nothing.
    public var shadow: ShadowSettings?
    /// Where a call goes when the version the policy chose fails or sheds it; `nil`: the failure is the answer.
    public var fallback: FallbackSettings?

    /// The policy kinds.
    public enum Policy: String, Sendable, Hashable, Codable, CaseIterable {
        /// Always the first listed version.
        case fixed
        /// Weighted split, sticky by key when `sticky` is set.
        case canary
        /// A multi-armed bandit over the listed versions.
        case bandit
    }

    /// One version of a route and its canary weight.
    @MemberwiseInit
    public struct VersionWeight: Sendable, Hashable, Codable {
        /// The version name, as in the model repository (`"1"`, `"2"` …).
        public var version: String
        /// Relative share of traffic under `canary` (≥ 0). Default 1; ignored by other policies.
        public var weight: Double = 1

        enum CodingKeys: String, CodingKey { case version, weight }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            version = try decodeVersionName(c, forKey: .version) ?? ""
            weight = try c.decodeIfPresent(Double.self, forKey: .weight) ?? 1
        }
    }

    /// Where the sticky key of a call comes from: a request header or a request parameter.
    public struct StickyKey: Sendable, Hashable, Codable {
        /// A request header (gRPC metadata), matched lower-case, e.g. `x-user-id`.
        public var header: String?
        /// A string or integer parameter of the ModelInferRequest.
        public var parameter: String?

        /// Creates a key source; set exactly one of the two.
        public init(header: String? = nil, parameter: String? = nil) {
            self.header = header?.lowercased()
            self.parameter = parameter
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            header = try c.decodeIfPresent(String.self, forKey: .header)?.lowercased()
            parameter = try c.decodeIfPresent(String.self, forKey: .parameter)
        }
    }

    /// Bandit settings.
    @MemberwiseInit
    public struct BanditSettings: Sendable, Hashable, Codable {
        /// The algorithm: `epsilon_greedy`, `ucb1` or `thompson`. Default `thompson`.
        public var algorithm: String = "thompson"
        /// Exploration probability for ε-greedy, 0…1. Default 0.1.
        public var epsilon: Double = 0.1
        /// UCB1 exploration constant `c` in `mean + c·√(ln N / n)`. Default √2.
        public var exploration: Double = 2.0.squareRoot()
        /// Weight kept by past observations at each new reward (0 < γ ≤ 1); 1 = no discounting. Default 1.
        public var discount: Double = 1
        /// Sliding window in rewards; 0 = no window. Default 0. Exclusive with `discount` < 1.
        public var window: Int = 0
        /// Reward source: `latency` (automatic: 1 when the call succeeds within `latency_target_ms`, else 0)
        /// or `feedback` (explicit, through `switchyard.v1.Feedback/Report`). Default `latency`.
        public var reward: String = "latency"
        /// The latency target of automatic rewards, in milliseconds; absent: the model's `slo_ms`.
        public var latencyTargetMilliseconds: Double?
        /// How long a routing decision waits for its explicit feedback, in seconds. Default 300.
        public var feedbackTTLSeconds: Double = 300

        /// The algorithm names accepted by `algorithm`.
        public static let algorithms = ["epsilon_greedy", "ucb1", "thompson"]
        /// The reward sources accepted by `reward`.
        public static let rewards = ["latency", "feedback"]

        enum CodingKeys: String, CodingKey {
            case algorithm, epsilon, exploration, discount, window, reward
            case latencyTargetMilliseconds = "latency_target_ms"
            case feedbackTTLSeconds = "feedback_ttl_s"
        }

        public init(from decoder: any Decoder) throws {
            let d = BanditSettings()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            algorithm = try c.decodeIfPresent(String.self, forKey: .algorithm) ?? d.algorithm
            epsilon = try c.decodeIfPresent(Double.self, forKey: .epsilon) ?? d.epsilon
            exploration = try c.decodeIfPresent(Double.self, forKey: .exploration) ?? d.exploration
            discount = try c.decodeIfPresent(Double.self, forKey: .discount) ?? d.discount
            window = try c.decodeIfPresent(Int.self, forKey: .window) ?? d.window
            reward = try c.decodeIfPresent(String.self, forKey: .reward) ?? d.reward
            latencyTargetMilliseconds = try c.decodeIfPresent(Double.self, forKey: .latencyTargetMilliseconds)
            feedbackTTLSeconds = try c.decodeIfPresent(Double.self, forKey: .feedbackTTLSeconds) ?? d.feedbackTTLSeconds
        }
    }

    /// Mirroring settings.
    @MemberwiseInit
    public struct ShadowSettings: Sendable, Hashable, Codable {
        /// The version that receives mirrored calls; `nil` mirrors each call to the route's first listed
        /// version other than the one that served it ("the other version" of a two-version canary).
        public var version: String?
        /// Share of calls mirrored, 0…1. Default 1.
        public var fraction: Double = 1
        /// Whether calls naming an explicit `model_version` are mirrored too. Default true.
        public var explicit: Bool = true

        enum CodingKeys: String, CodingKey { case version, fraction, explicit }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            version = try decodeVersionName(c, forKey: .version)
            fraction = try c.decodeIfPresent(Double.self, forKey: .fraction) ?? 1
            explicit = try c.decodeIfPresent(Bool.self, forKey: .explicit) ?? true
        }
    }

    /// A second chance for a call the chosen version fails: it is run once more on the fallback version, when the
    /// failure's code is one of `on` and the call's deadline leaves at least `deadline_margin_ms`. The failure still
    /// counts against the version that failed (its statistics, the bandit's reward, the rollout gates).
    @MemberwiseInit
    public struct FallbackSettings: Sendable, Hashable, Codable {
        /// The version that answers instead: a version of the route, or `baseline` (the route's first version).
        public var to: String = baseline
        /// The failure codes that fall back (snake case, as in `FallbackSettings.codes`). Default: unavailable,
        /// internal, resource_exhausted.
        public var on: [String] = defaultCodes
        /// The least time, in milliseconds, the call's deadline must still leave for the fallback to be tried.
        /// Calls without a deadline always fall back. Default 5.
        public var deadlineMarginMilliseconds: Double = 5

        /// The spelling of `to` that names the route's first version.
        public static let baseline = "baseline"
        /// The failure codes a route may fall back on, by their names in `on`. A cancelled call (the caller left)
        /// and a tenant's refusal never fall back.
        public static let codes: [String: SwitchyardError.Code] = [
            "invalid_argument": .invalidArgument, "not_found": .notFound, "resource_exhausted": .resourceExhausted,
            "unavailable": .unavailable, "deadline_exceeded": .deadlineExceeded, "unimplemented": .unimplemented,
            "failed_precondition": .failedPrecondition, "internal": .internal,
        ]
        /// The codes of `on` when it is left out.
        public static let defaultCodes = ["unavailable", "internal", "resource_exhausted"]

        enum CodingKeys: String, CodingKey {
            case to, on
            case deadlineMarginMilliseconds = "deadline_margin_ms"
        }

        public init(from decoder: any Decoder) throws {
            let d = FallbackSettings()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            to = try decodeVersionName(c, forKey: .to) ?? d.to
            on = try c.decodeIfPresent([String].self, forKey: .on) ?? d.on
            deadlineMarginMilliseconds =
                try c.decodeIfPresent(Double.self, forKey: .deadlineMarginMilliseconds) ?? d.deadlineMarginMilliseconds
        }

        /// The version `to` names in a route listing `versions` (`baseline`: the first).
        public func version(in versions: [String]) -> String? {
            to == Self.baseline ? versions.first : to
        }

        /// The codes `on` names (unknown names are `validate`'s to report).
        public var codeSet: Set<SwitchyardError.Code> { Set(on.compactMap { Self.codes[$0] }) }

        /// Every problem of these settings in a route listing `versions`, each prefixed with `path`.
        func validate(path: String, versions: [String]) -> [String] {
            var problems: [String] = []
            if to.isEmpty {
                problems.append("\(path).to: expected 'baseline' or a version of the route, got ''")
            } else if to != Self.baseline && !versions.contains(to) {
                problems.append(
                    "\(path).to: version '\(to)' is not in the route; expected 'baseline' or one of "
                        + (versions.isEmpty ? "the route's versions" : versions.joined(separator: ", "))
                )
            }
            if on.isEmpty { problems.append("\(path).on: expected at least one failure code") }
            for (index, name) in on.enumerated() where Self.codes[name] == nil {
                problems.append(
                    "\(path).on[\(index)]: unknown failure code '\(name)'; expected one of "
                        + Self.codes.keys.sorted().joined(separator: ", ")
                )
            }
            if !(deadlineMarginMilliseconds >= 0) || !deadlineMarginMilliseconds.isFinite {
                problems.append(
                    "\(path).deadline_margin_ms: expected a finite number ≥ 0, got \(deadlineMarginMilliseconds)"
                )
            }
            return problems
        }
    }

    /// Creates a route.
    public init(
        model: String,
        policy: Policy,
        versions: [VersionWeight],
        sticky: StickyKey? = nil,
        bandit: BanditSettings? = nil,
        shadow: ShadowSettings? = nil,
        fallback: FallbackSettings? = nil
    ) {
        self.model = model
        self.policy = policy
        self.versions = versions
        self.sticky = sticky
        self.bandit = bandit
        self.shadow = shadow
        self.fallback = fallback
    }

    enum CodingKeys: String, CodingKey { case model, policy, versions, sticky, bandit, shadow, fallback }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        let policyName = try c.decodeIfPresent(String.self, forKey: .policy) ?? Policy.fixed.rawValue
        // An unknown name is kept for `validate()`, which reports it with its key path among the other problems.
        policy = Policy(rawValue: policyName) ?? .fixed
        unknownPolicy = Policy(rawValue: policyName) == nil ? policyName : nil
        versions = try c.decodeIfPresent([VersionWeight].self, forKey: .versions) ?? []
        sticky = try c.decodeIfPresent(StickyKey.self, forKey: .sticky)
        bandit = try c.decodeIfPresent(BanditSettings.self, forKey: .bandit)
        shadow = try c.decodeIfPresent(ShadowSettings.self, forKey: .shadow)
        fallback = try c.decodeIfPresent(FallbackSettings.self, forKey: .fallback)
    }

    /// Every structural problem of this route, each prefixed with `path` (e.g. `routes[0]`).
    public func validate(path: String) -> [String] {
        var problems: [String] = []
        if model.isEmpty { problems.append("\(path).model: expected a model name, got ''") }
        if let unknownPolicy {
            problems.append(
                "\(path).policy: unknown policy '\(unknownPolicy)'; expected one of "
                    + Policy.allCases.map(\.rawValue).joined(separator: ", ")
            )
        }
        if versions.isEmpty { problems.append("\(path).versions: expected at least one version") }
        var seen: Set<String> = []
        for (index, entry) in versions.enumerated() {
            let at = "\(path).versions[\(index)]"
            if entry.version.isEmpty { problems.append("\(at).version: expected a version name, got ''") }
            if !seen.insert(entry.version).inserted {
                problems.append("\(at).version: version '\(entry.version)' is listed more than once")
            }
            if !(entry.weight >= 0) || !entry.weight.isFinite {
                problems.append("\(at).weight: expected a finite number ≥ 0, got \(entry.weight)")
            }
        }
        if policy == .canary && !versions.isEmpty && !(versions.reduce(0) { $0 + max($1.weight, 0) } > 0) {
            problems.append("\(path).versions: canary weights must sum to more than 0")
        }
        if let sticky {
            if (sticky.header == nil) == (sticky.parameter == nil) {
                problems.append("\(path).sticky: expected exactly one of 'header' or 'parameter'")
            } else if sticky.header?.isEmpty == true || sticky.parameter?.isEmpty == true {
                problems.append("\(path).sticky: expected a non-empty header or parameter name")
            }
            if policy != .canary { problems.append("\(path).sticky: applies to policy canary only, got \(policy)") }
        }
        if let bandit {
            let at = "\(path).bandit"
            if policy != .bandit { problems.append("\(at): applies to policy bandit only, got \(policy)") }
            if !BanditSettings.algorithms.contains(bandit.algorithm) {
                problems.append(
                    "\(at).algorithm: unknown algorithm '\(bandit.algorithm)'; expected one of "
                        + BanditSettings.algorithms.joined(separator: ", ")
                )
            }
            if !(0...1).contains(bandit.epsilon) {
                problems.append("\(at).epsilon: expected 0…1, got \(bandit.epsilon)")
            }
            if !(bandit.exploration >= 0) || !bandit.exploration.isFinite {
                problems.append("\(at).exploration: expected a finite number ≥ 0, got \(bandit.exploration)")
            }
            if !(bandit.discount > 0 && bandit.discount <= 1) {
                problems.append("\(at).discount: expected 0 < discount ≤ 1, got \(bandit.discount)")
            }
            if bandit.window < 0 { problems.append("\(at).window: expected ≥ 0 rewards, got \(bandit.window)") }
            if bandit.window > 0 && bandit.discount < 1 {
                problems.append("\(at): set either 'discount' or 'window', not both")
            }
            if !BanditSettings.rewards.contains(bandit.reward) {
                problems.append(
                    "\(at).reward: unknown reward '\(bandit.reward)'; expected one of "
                        + BanditSettings.rewards.joined(separator: ", ")
                )
            }
            if let target = bandit.latencyTargetMilliseconds, !(target > 0) {
                problems.append("\(at).latency_target_ms: expected a positive number, got \(target)")
            }
            if !(bandit.feedbackTTLSeconds > 0) {
                problems.append("\(at).feedback_ttl_s: expected a positive number, got \(bandit.feedbackTTLSeconds)")
            }
        }
        if let shadow {
            if !(0...1).contains(shadow.fraction) {
                problems.append("\(path).shadow.fraction: expected 0…1, got \(shadow.fraction)")
            }
            if shadow.version?.isEmpty == true {
                problems.append("\(path).shadow.version: expected a version name, got ''")
            }
            if shadow.version == nil && versions.count < 2 {
                problems.append("\(path).shadow.version: expected a version (the route lists no other version)")
            }
        }
        if let fallback {
            problems += fallback.validate(path: "\(path).fallback", versions: versions.map(\.version))
        }
        return problems
    }
}

/// Settings of the comparison sink that pairs shadow results with their primaries.
///
/// ```yaml
/// sink:
///   directory: comparisons        # absent: online aggregates only, no records written
///   max_file_bytes: 67108864
///   max_files: 8
///   queue_capacity: 65536
///   shadow_max_host_cpu: 1.0      # mirror only while the host's CPUs are at most this busy (1: always)
/// ```
@MemberwiseInit
public struct SinkConfiguration: Sendable, Hashable, Codable {
    /// Directory for JSON Lines records (`comparisons-NNNNNN.jsonl`); `nil` keeps aggregates only.
    public var directory: String?
    /// Size at which the current file is closed and the next one started. Default 64 MiB.
    public var maxFileBytes: Int = 64 << 20
    /// Files kept; the oldest is deleted when a new one would exceed this. Default 8.
    public var maxFiles: Int = 8
    /// Records waiting for the writer thread before new ones are dropped (and counted). Default 65 536.
    public var queueCapacity: Int = 65_536
    /// Busy share of the host's CPUs (over the last 100 ms) above which calls are not mirrored (and the
    /// skipped mirrors are counted), so that shadow traffic uses only spare capacity even where the pools
    /// are not the bottleneck (clients or other processes on the same cores). Default 1: always mirror.
    public var shadowMaxHostCPU: Double = 1

    enum CodingKeys: String, CodingKey {
        case directory
        case maxFileBytes = "max_file_bytes"
        case maxFiles = "max_files"
        case queueCapacity = "queue_capacity"
        case shadowMaxHostCPU = "shadow_max_host_cpu"
    }

    public init(from decoder: any Decoder) throws {
        let d = SinkConfiguration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        maxFileBytes = try c.decodeIfPresent(Int.self, forKey: .maxFileBytes) ?? d.maxFileBytes
        maxFiles = try c.decodeIfPresent(Int.self, forKey: .maxFiles) ?? d.maxFiles
        queueCapacity = try c.decodeIfPresent(Int.self, forKey: .queueCapacity) ?? d.queueCapacity
        shadowMaxHostCPU = try c.decodeIfPresent(Double.self, forKey: .shadowMaxHostCPU) ?? d.shadowMaxHostCPU
    }

    /// Every problem of these settings, each prefixed with `sink.`.
    public func validate() -> [String] {
        var problems: [String] = []
        if directory?.isEmpty == true { problems.append("sink.directory: expected a directory path, got ''") }
        if maxFileBytes < 4096 { problems.append("sink.max_file_bytes: expected at least 4096, got \(maxFileBytes)") }
        if maxFiles < 1 { problems.append("sink.max_files: expected at least 1, got \(maxFiles)") }
        if queueCapacity < 1 { problems.append("sink.queue_capacity: expected at least 1, got \(queueCapacity)") }
        if !(shadowMaxHostCPU > 0 && shadowMaxHostCPU <= 1) {
            problems.append("sink.shadow_max_host_cpu: expected a share of the CPUs in (0, 1], got \(shadowMaxHostCPU)")
        }
        return problems
    }
}

/// Version names are strings, but YAML authors write `version: 2`: accept both.
private func decodeVersionName<Key: CodingKey>(
    _ container: KeyedDecodingContainer<Key>,
    forKey key: Key
) throws -> String? {
    if let text = try? container.decodeIfPresent(String.self, forKey: key) { return text }
    if let number = try container.decodeIfPresent(Int.self, forKey: key) { return String(number) }
    return nil
}

/// Why a version serves a call: in the `switchyard-route` trailer and the `route` label of the request metrics.
public enum RouteReason: String, Sendable, Hashable, CaseIterable {
    /// The model has no route: its default version serves.
    case `default`
    /// The call named a version.
    case explicit
    /// A `fixed` route.
    case fixed
    /// A `canary` route's weighted split.
    case canary
    /// A `bandit` route's choice.
    case bandit

    /// A dense index 0..<5, for counters kept per reason.
    public var index: Int {
        switch self {
        case .default: 0
        case .explicit: 1
        case .fixed: 2
        case .canary: 3
        case .bandit: 4
        }
    }
}
