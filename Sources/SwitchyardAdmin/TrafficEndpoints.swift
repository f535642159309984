// What traffic did: `GET /v1/shadow/report` (shadow versions against their primaries, the sink's counters) and
// `GET /v1/bandits/{model}` (a bandit route's arms).

import Hummingbird
import SwitchyardAdminAPI
import SwitchyardCore
import SwitchyardRouting
import SwitchyardSink

extension AdminServer {
    /// `/v1/shadow/report` and `/v1/bandits/{model}`.
    func trafficEndpoints() -> RouteCollection<AdminRequestContext> {
        let routes = RouteCollection(context: AdminRequestContext.self)
        let server = self
        routes.get("/v1/shadow/report") { _, _ -> Response in
            let aggregates = server.sink?.aggregates ?? [:]
            let pairs = aggregates.sorted { $0.key.description < $1.key.description }.map(ShadowComparison.init)
            return Self.json(ShadowReport(pairs: pairs, sink: server.sink.map { SinkCounters($0.statistics) }))
        }
        routes.get("/v1/bandits/:model") { _, context -> Response in
            let model = try context.parameters.require("model")
            try server.perform { () throws(SwitchyardError) in
                try server.control.requireModel(model)
            }
            guard let report = server.control.routing.banditState(model: model) else {
                throw AdminHTTPError(.notFound, "model '\(model)' has no bandit route")
            }
            return Self.json(BanditState(model: model, report: report))
        }
        return routes
    }
}

extension ShadowComparison {
    /// One comparison aggregate.
    init(_ item: (key: ComparisonKey, value: ComparisonAggregate)) {
        let a = item.value
        self.init(
            model: item.key.model,
            primaryVersion: item.key.primaryVersion,
            shadowVersion: item.key.shadowVersion,
            pairs: a.pairs,
            compared: a.compared,
            classified: a.classified,
            agreed: a.agreed,
            agreementRate: a.agreementRate,
            divergenceP50: a.divergence.quantile(0.5),
            divergenceP99: a.divergence.quantile(0.99),
            divergenceMax: a.divergence.max,
            meanLatencyDeltaMilliseconds: a.meanLatencyDeltaMilliseconds,
            primaryErrors: a.primaryErrors,
            shadowErrors: a.shadowErrors
        )
    }
}

extension SinkCounters {
    /// The sink's statistics.
    init(_ s: SinkStatistics) {
        self.init(
            recorded: s.recorded,
            written: s.written,
            droppedQueueFull: s.droppedQueueFull,
            droppedWriteFailed: s.droppedWriteFailed,
            queued: s.queued
        )
    }
}

extension BanditState {
    /// The routing table's report of a bandit route.
    init(model: String, report: BanditReport) {
        self.init(
            model: model,
            algorithm: report.algorithm.rawValue,
            arms: zip(report.versions, report.arms).map { version, arm in
                Arm(
                    version: version,
                    pulls: arm.pulls,
                    rewards: arm.rewards,
                    observations: arm.observations,
                    rewardSum: arm.rewardSum,
                    meanReward: arm.meanReward,
                    posteriorAlpha: arm.posteriorAlpha,
                    posteriorBeta: arm.posteriorBeta
                )
            }
        )
    }
}
