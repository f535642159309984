// Experiments on the admin plane: `GET /v1/experiments/{model}` compares every version of a model's route with the
// route's baseline (its first version) on everything each has served since it was loaded, with the same always-valid
// intervals as the rollout gates (BaselineComparison.swift), so the report can be read as often as wanted.

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardModels
import SwitchyardRouting
import Synchronization

extension AdminServer {
    /// `GET /v1/experiments/:model` (`?confidence=0.95&max_increase=0.02&max_slower_probability=0.6`).
    func experimentEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/experiments/:model") { request, context -> Response in
            let model = try context.parameters.require("model")
            guard let route = server.control.routing.route(for: model) else {
                let routed = server.control.routing.routes.map(\.model).joined(separator: ", ")
                throw AdminHTTPError(
                    .notFound,
                    "model '\(model)' has no route to compare versions on; routed models: "
                        + (routed.isEmpty ? "none" : routed)
                )
            }
            let query = request.uri.queryParameters
            let settings = try ExperimentSettings(
                confidence: query.get("confidence"),
                maxIncrease: query.get("max_increase"),
                maxSlowerProbability: query.get("max_slower_probability")
            )
            let versions = server.registry.model(named: model)?.versions ?? []
            let counters = { (name: String) in RolloutCounters(versions.first { $0.version == name }?.statistics) }
            return Self.json(
                ExperimentReport.compare(
                    model: model,
                    policy: route.policy.rawValue,
                    versions: route.versions.map { ($0.version, counters($0.version)) },
                    settings: settings
                )
            )
        }
        return routes
    }
}

/// The report's settings from its query, each checked with its name.
struct ExperimentSettings {
    var confidence = 0.95
    var maxIncrease = 0.02
    var maxSlowerProbability = 0.6

    init(confidence: String? = nil, maxIncrease: String? = nil, maxSlowerProbability: String? = nil) throws {
        func parse(_ text: String?, _ name: String, _ range: ClosedRange<Double>, _ open: Bool) throws -> Double? {
            guard let text else { return nil }
            guard let value = Double(text), range.contains(value),
                !open || (value != range.lowerBound && value != range.upperBound)
            else {
                let bounds = "(\(number(range.lowerBound)), \(number(range.upperBound)))"
                throw AdminHTTPError(.badRequest, "\(name): expected a number in \(bounds), got '\(text)'")
            }
            return value
        }
        self.confidence = try parse(confidence, "confidence", 0.5...1, true) ?? self.confidence
        self.maxIncrease = try parse(maxIncrease, "max_increase", 0...1, true) ?? self.maxIncrease
        self.maxSlowerProbability =
            try parse(maxSlowerProbability, "max_slower_probability", 0.5...1, true) ?? self.maxSlowerProbability
    }
}

extension ExperimentReport {
    /// Compares every version after the first with the first. Pure: the counters are the caller's.
    static func compare(
        model: String,
        policy: String,
        versions: [(name: String, counters: RolloutCounters)],
        settings: ExperimentSettings
    ) -> ExperimentReport {
        let alpha = 1 - settings.confidence
        let baseline = versions.first
        let arms = versions.enumerated().map { index, entry -> ExperimentArm in
            let counters = entry.counters
            let errorRate = counters.calls > 0 ? Double(counters.failures) / Double(counters.calls) : nil
            guard index > 0, let baseline else {
                return ExperimentArm(
                    version: entry.name,
                    calls: counters.calls,
                    failures: counters.failures,
                    errorRate: errorRate,
                    errorRateDifference: nil,
                    slowerProbability: nil,
                    verdict: "baseline"
                )
            }
            let errors = BaselineComparison.errorRateDifference(
                canary: counters,
                baseline: baseline.counters,
                tau: settings.maxIncrease,
                alpha: alpha
            )
            let latency = BaselineComparison.slowerProbability(
                canary: counters.latencyBuckets,
                baseline: baseline.counters.latencyBuckets,
                tau: settings.maxSlowerProbability - 0.5,
                alpha: alpha
            )
            return ExperimentArm(
                version: entry.name,
                calls: counters.calls,
                failures: counters.failures,
                errorRate: errorRate,
                errorRateDifference: errors.map { .init(estimate: $0.estimate, lower: $0.lower, upper: $0.upper) },
                slowerProbability: latency.map { .init(estimate: $0.estimate, lower: $0.lower, upper: $0.upper) },
                verdict: verdict(errors: errors, latency: latency, settings: settings)
            )
        }
        return ExperimentReport(
            model: model,
            policy: policy,
            baseline: baseline?.name ?? "",
            confidence: settings.confidence,
            maxIncrease: settings.maxIncrease,
            maxSlowerProbability: settings.maxSlowerProbability,
            versions: arms
        )
    }

    /// What the intervals say of a version against the baseline.
    static func verdict(errors: BaselineEffect?, latency: BaselineEffect?, settings: ExperimentSettings) -> String {
        guard let errors else { return "not yet conclusive: no calls to compare" }
        var worse: [String] = []
        if errors.lower > 0 { worse.append("more errors") }
        if let latency, latency.lower > 0.5 { worse.append("slower") }
        if !worse.isEmpty { return "worse: " + worse.joined(separator: ", ") }
        var better: [String] = []
        if errors.upper < 0 { better.append("fewer errors") }
        if let latency, latency.upper < 0.5 { better.append("faster") }
        if !better.isEmpty { return "better: " + better.joined(separator: ", ") }
        let tolerance = settings.maxSlowerProbability
        let errorsWithin = errors.lower > -settings.maxIncrease && errors.upper < settings.maxIncrease
        let latencyWithin = latency.map { $0.lower > 1 - tolerance && $0.upper < tolerance } ?? true
        return errorsWithin && latencyWithin ? "no difference beyond the tolerance" : "not yet conclusive"
    }
}
