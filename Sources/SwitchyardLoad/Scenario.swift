// Load scenarios as YAML files (loadtest/scenarios/*.yaml): a load shape plus the client settings, so a
// run is reproducible from one file. Every key is optional; command-line flags override them. Stages are
// also accepted in a compact text form for the command line: `10@500,30@500-5000,10@5000`
// (seconds@rate or seconds@from-to).

public import SwitchyardCore
import Yams

/// A load scenario read from YAML.
public struct Scenario: Sendable, Hashable, Decodable {
    /// One stage as written in YAML: `{duration, rate}` or `{duration, from, to}`.
    public struct Stage: Sendable, Hashable, Decodable {
        /// Seconds.
        public var duration: Double
        /// A constant rate.
        public var rate: Double?
        /// A ramp's starting rate.
        public var from: Double?
        /// A ramp's ending rate.
        public var to: Double?
    }

    /// A name for reports.
    public var name: String?
    /// What the scenario shows.
    public var description: String?
    /// "open" or "closed".
    public var mode: String?
    /// "constant" or "poisson".
    public var arrival: String?
    /// Open-loop stages.
    public var stages: [Stage]?
    /// Warm-up seconds.
    public var warmup: Double?
    /// Closed-loop concurrency.
    public var concurrency: Int?
    /// Closed-loop duration in seconds.
    public var duration: Double?
    /// Request limit.
    public var requests: Int?
    /// Connections.
    public var connections: Int?
    /// Streams per connection.
    public var streams: Int?
    /// Generator threads.
    public var threads: Int?
    /// Model name.
    public var model: String?
    /// Model version.
    public var version: String?
    /// Rows per request.
    public var batch: Int?
    /// "random" or a data file path (relative to the repository root).
    public var input: String?
    /// Deadline in ms.
    public var timeout_ms: Double?
    /// Reporting interval in seconds.
    public var interval: Double?
    /// The gateway configuration file `loadtest/run-scenario.sh` starts the gateway with (routes, admin).
    public var gateway: String?
    /// The model repository `loadtest/run-scenario.sh` serves (default: the bundled `models`).
    public var repository: String?
    /// Admin API calls made at set times during the run (weight changes, shadow on/off, a rollout).
    public var actions: [Action]?

    /// An admin API call at a set time of the run.
    @MemberwiseInit
    public struct Action: Sendable, Hashable, Decodable {
        /// Seconds from the start of the measured phase.
        public var at: Double
        /// What it does, for the report.
        public var label: String?
        /// HTTP method. Default POST.
        public var method: String?
        /// Path on the admin API, e.g. `/v1/routes/digits/weights`.
        public var path: String
        /// JSON body.
        public var body: String?
    }

    /// An empty scenario (every setting from flags or defaults).
    public init() {}

    /// Parses a scenario, naming the file and the problem on failure.
    public static func parse(yaml: String, source: String) throws(SwitchyardError) -> Scenario {
        let scenario: Scenario
        do { scenario = try YAMLDecoder().decode(Scenario.self, from: yaml) } catch {
            throw .invalidArgument("\(source): not a valid scenario: \(error)")
        }
        for (i, stage) in (scenario.stages ?? []).enumerated() {
            let ramp = stage.from != nil || stage.to != nil
            if ramp == (stage.rate != nil) || (ramp && (stage.from == nil || stage.to == nil)) {
                throw .invalidArgument(
                    "\(source): stages[\(i)]: expected either 'rate' or both 'from' and 'to' (requests/s)"
                )
            }
        }
        if let mode = scenario.mode, mode != "open" && mode != "closed" {
            throw .invalidArgument("\(source): mode: expected 'open' or 'closed', got '\(mode)'")
        }
        for (i, action) in (scenario.actions ?? []).enumerated() {
            if !(action.at >= 0) {
                throw .invalidArgument("\(source): actions[\(i)].at: expected seconds ≥ 0, got \(action.at)")
            }
            if !action.path.hasPrefix("/") {
                throw .invalidArgument("\(source): actions[\(i)].path: expected an admin API path like /v1/routes/M")
            }
            if let method = action.method, !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(method) {
                throw .invalidArgument(
                    "\(source): actions[\(i)].method: expected GET, POST, PUT, PATCH or DELETE, got '\(method)'"
                )
            }
        }
        if let arrival = scenario.arrival, ArrivalProcess(rawValue: arrival) == nil {
            throw .invalidArgument("\(source): arrival: expected 'constant' or 'poisson', got '\(arrival)'")
        }
        return scenario
    }

    /// The stages as load stages.
    public var loadStages: [LoadStage]? {
        stages?.map {
            LoadStage(duration: $0.duration, startRate: $0.rate ?? $0.from ?? 0, endRate: $0.rate ?? $0.to ?? 0)
        }
    }

    /// Parses the compact stage form `seconds@rate` / `seconds@from-to`, comma-separated.
    public static func parseStages(_ text: String) throws(SwitchyardError) -> [LoadStage] {
        var stages: [LoadStage] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "@")
            let rates = pieces.count == 2 ? pieces[1].split(separator: "-") : []
            guard pieces.count == 2, let duration = Double(pieces[0].trimmingSuffix("s")),
                (1...2).contains(rates.count),
                let from = Double(rates[0]), let to = Double(rates[rates.count - 1])
            else {
                throw .invalidArgument(
                    "stages: cannot read '\(part)'; expected SECONDS@RATE or SECONDS@FROM-TO, e.g. 10@500,30@500-5000"
                )
            }
            stages.append(LoadStage(duration: duration, startRate: from, endRate: to))
        }
        return stages
    }
}

extension Substring {
    fileprivate func trimmingSuffix(_ suffix: String) -> Substring { hasSuffix(suffix) ? dropLast(suffix.count) : self }
}
