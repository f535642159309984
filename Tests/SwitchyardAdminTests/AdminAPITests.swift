// The admin API's bodies against JSON as the server writes it: each literal decodes into its SwitchyardAdminAPI
// type and encodes back to the same bytes, so renaming a field (or changing a number's form) fails here. Request
// bodies: the strict decoding's messages name the offending field.

import Foundation
import SwitchyardAdminAPI
import SwitchyardCore
import Testing

@Suite struct AdminAPITests {
    /// Decodes `json` as `T` and checks that the server's encoder writes exactly `json` back.
    func roundTrip<T: Codable>(_ type: T.Type, _ json: String) throws -> T {
        let value = try AdminJSON.decoder().decode(T.self, from: Data(json.utf8))
        let encoded = String(decoding: try AdminJSON.encoder().encode(value), as: UTF8.self)
        #expect(encoded == json)
        return value
    }

    @Test func routes() throws {
        let routes = try roundTrip(
            RoutesResponse.self,
            #"{"generation":3,"routes":[{"model":"digits","policy":"canary","shadow":{"explicit":true,"#
                + #""fraction":0.25,"version":"2"},"sticky":{"header":"x-user-id"},"versions":[{"version":"1","#
                + #""weight":90},{"version":"2","weight":10.5}]}]}"#
        )
        #expect(routes.generation == 3)
        #expect(routes.routes.first?.versions.map(\.weight) == [90, 10.5])
        #expect(routes.routes.first?.shadow?.fraction == 0.25)
        #expect(routes.routes.first?.sticky?.header == "x-user-id")
        let bandit = try roundTrip(
            RouteResponse.self,
            #"{"generation":7,"route":{"bandit":{"algorithm":"ucb1","discount":1,"epsilon":0.1,"#
                + #""exploration":1.5,"feedback_ttl_s":300,"reward":"latency","window":0},"model":"ranker","#
                + #""policy":"bandit","versions":[{"version":"1","weight":1},{"version":"3","weight":1}]}}"#
        )
        #expect(bandit.route?.bandit?.algorithm == "ucb1")
        // A deletion answers the route as null, not without the field.
        let deleted = try roundTrip(RouteResponse.self, #"{"generation":8,"route":null}"#)
        #expect(deleted.route == nil)
    }

    @Test func models() throws {
        let models = try roundTrip(
            ModelsResponse.self,
            #"{"models":[{"default_version":"2","failures":{"3":"no model.onnx"},"max_batch_size":32,"#
                + #""name":"digits","ready":true,"slo_ms":50,"versions":[{"batches":4,"queue_depth":0,"#
                + #""requests_failed":1,"requests_succeeded":12,"version":"2"}]},{"failures":{},"#
                + #""max_batch_size":8,"name":"ranker","ready":false,"slo_ms":12.5,"versions":[]}]}"#
        )
        #expect(models.models.map(\.defaultVersion) == ["2", nil])
        #expect(models.models.first?.versions.first?.requestsSucceeded == 12)
        let unloaded = try roundTrip(UnloadResponse.self, #"{"model":"digits","unloaded":true,"version":"1"}"#)
        #expect(unloaded.unloaded)
    }

    @Test func shadowReportAndBandits() throws {
        let report = try roundTrip(
            ShadowReport.self,
            #"{"pairs":[{"agreed":9,"agreement_rate":0.9,"classified":10,"compared":10,"divergence_max":0.5,"#
                + #""divergence_p50":0.01,"divergence_p99":0.25,"mean_latency_delta_ms":-0.125,"model":"digits","#
                + #""pairs":10,"primary_errors":0,"primary_version":"1","shadow_errors":1,"shadow_version":"2"}],"#
                + #""sink":{"dropped_queue_full":2,"dropped_write_failed":0,"queued":1,"recorded":12,"written":9}}"#
        )
        #expect(report.pairs.first?.meanLatencyDeltaMilliseconds == -0.125)
        #expect(report.sink?.droppedQueueFull == 2)
        _ = try roundTrip(
            ShadowReport.self,
            #"{"pairs":[{"agreed":0,"classified":0,"compared":0,"#
                + #""divergence_max":0,"model":"digits","pairs":0,"primary_errors":0,"primary_version":"1","#
                + #""shadow_errors":0,"shadow_version":"2"}]}"#
        )
        let bandit = try roundTrip(
            BanditState.self,
            #"{"algorithm":"thompson","arms":[{"mean_reward":0.75,"observations":4,"posterior_alpha":4,"#
                + #""posterior_beta":2,"pulls":5,"reward_sum":3,"rewards":4,"version":"1"},{"observations":0,"#
                + #""posterior_alpha":1,"posterior_beta":1,"pulls":0,"reward_sum":0,"rewards":0,"version":"3"}],"#
                + #""model":"ranker"}"#
        )
        #expect(bandit.arms.map(\.meanReward) == [0.75, nil])
    }

    @Test func rollouts() throws {
        let status = try roundTrip(
            RolloutStatus.self,
            #"{"actor":"ops","baseline":"1","canary":"2","canary_weight":25,"detail":"holding","events":[{"#
                + #""canary_weight":10,"detail":"started","event":"start","time":"2026-12-04T10:00:00Z"}],"#
                + #""gates":{"max_error_rate":0.01,"max_p99_ms":25,"min_requests":20},"model":"digits","#
                + #""phase":"rolled_back","started_at":"2026-12-04T10:00:00Z","step":2,"step_seconds":60,"#
                + #""steps":[10,25,50,100],"window":{"agreement":0.97,"calls":40,"compared":30,"elapsed_s":12.5,"#
                + #""error_rate":0.025,"failures":1,"input_drift":0.1,"output_drift":0.2,"p99_ms":3.25}}"#
        )
        #expect(status.phase == .rolledBack)
        #expect(status.gates.maxP99Milliseconds == 25)
        #expect(status.window.elapsedSeconds == 12.5)
        let all = try roundTrip(RolloutsResponse.self, #"{"rollouts":[]}"#)
        #expect(all.rollouts.isEmpty)
    }

    @Test func driftFleetProbesErrors() throws {
        let drift = try roundTrip(
            DriftReport.self,
            #"{"model":"digits","versions":[{"features":[{"bins":["< 0","≥ 0"],"current":[0.25,0.75],"#
                + #""flagged":true,"kind":"input","name":"pixels[3]","p_value":0.001,"psi":0.3,"reference":[0.5,"#
                + #"0.5],"statistic":0.4,"test":"ks"}],"inputs_flagged":1,"max_input_psi":0.3,"max_output_psi":0,"#
                + #""outputs_flagged":0,"reference":"samples","reference_rows":1000,"rows_observed":500,"#
                + #""status":"drifting","version":"1","window_rows":256}]}"#
        )
        #expect(drift.versions.first?.features.first?.pValue == 0.001)
        let fleet = try roundTrip(
            FleetStatus.self,
            #"{"converged":false,"generation":12,"replica":"a","replicas":[{"address":"10.0.0.1:8001","#
                + #""admin":"10.0.0.1:8002","build":"0.1.0","models":{"digits":["1","2"]},"ready":true,"replica":"a","#
                + #""route_generation":12,"started_at":"2026-12-04T10:00:00Z"}],"#
                + #""shadow":[{"agreed":9,"agreement":0.9,"compared":10,"model":"digits","primary_version":"1","#
                + #""replicas":[{"agreed":9,"compared":10,"replica":"a"}],"shadow_version":"2"}],"#
                + #""versions":[{"calls":5,"failures":1,"model":"digits","p99_ms":2.5,"#
                + #""replicas":[{"calls":5,"failures":1,"replica":"a"}],"version":"1"}]}"#
        )
        #expect(fleet.replicas.first?.routeGeneration == 12)
        #expect(fleet.replicas.first?.admin == "10.0.0.1:8002")
        #expect(fleet.versions?.first?.replicas.first?.calls == 5)
        _ = try roundTrip(
            ReadinessResponse.self,
            #"{"reasons":["draining: the gateway is shutting down"],"#
                + #""status":"not ready"}"#
        )
        _ = try roundTrip(HealthResponse.self, #"{"status":"ok"}"#)
        _ = try roundTrip(AdminErrorBody.self, #"{"error":"invalid bearer token"}"#)
    }

    // MARK: Requests

    func decodeError<T: Decodable>(_ type: T.Type, _ json: String) -> String? {
        do {
            _ = try AdminJSON.decoder().decode(T.self, from: Data(json.utf8))
            return nil
        } catch let error as AdminRequestError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func requestsRoundTripAsTheClientSendsThem() throws {
        let route = RouteRequest(
            policy: "canary",
            versions: [.init(version: "1", weight: 90), .init(version: "2", weight: 10)],
            shadow: .init(version: "2", fraction: 0.5),
            reason: "canary 10%"
        )
        let decoded = try AdminJSON.decoder().decode(RouteRequest.self, from: AdminJSON.encoder().encode(route))
        #expect(decoded == route)
        #expect(try decoded.route(model: "digits").versions.map(\.weight) == [90, 10])
        let shadow = ShadowRequest(.init(version: "2", fraction: 0.25), reason: "why")
        #expect(
            String(decoding: try AdminJSON.encoder().encode(shadow), as: UTF8.self)
                == #"{"explicit":true,"fraction":0.25,"reason":"why","version":"2"}"#
        )
        #expect(try AdminJSON.decoder().decode(ShadowRequest.self, from: AdminJSON.encoder().encode(shadow)) == shadow)
        #expect(try AdminJSON.decoder().decode(ShadowRequest.self, from: Data(#"{"reason":"off"}"#.utf8)).shadow == nil)
        let rollout = RolloutRequest(
            baseline: "1",
            canary: "2",
            steps: [10, 100],
            stepSeconds: 30,
            gates: RolloutGates(maxErrorRate: 0.01, minRequests: 5)
        )
        #expect(
            String(decoding: try AdminJSON.encoder().encode(rollout), as: UTF8.self)
                == #"{"baseline":"1","canary":"2","gates":{"max_error_rate":0.01,"min_requests":5},"#
                + #""step_seconds":30,"steps":[10,100]}"#
        )
        let weights = try AdminJSON.decoder().decode(
            WeightsRequest.self,
            from: Data(#"{"weights":{"1":50,"2":50.5},"reason":"even"}"#.utf8)
        )
        #expect(weights == WeightsRequest(weights: ["1": 50, "2": 50.5], reason: "even"))
    }

    @Test(arguments: [
        (#"{"wieghts": {"1": 1}}"#, "body.wieghts: unknown field; expected one of reason, weights"),
        (#"{"reason": "x"}"#, "weights: required field missing"),
        (#"{"weights": [1]}"#, "weights: expected an object"),
        (#"{"weights": {"1": "x"}}"#, "weights.1: expected a number, got x"),
        (#"{"weights": {"1": true}}"#, "weights.1: expected a number, got true"),
        (#"{"weights": {"1": 1}, "reason": 5}"#, "reason: expected a string"),
    ])
    func weightsRequestsNameTheField(json: String, message: String) {
        #expect(decodeError(WeightsRequest.self, json)?.hasPrefix(message) == true)
    }

    @Test func aReasonInTheHeaderLeavesTheBodysFieldUnread() throws {
        let decoder = AdminJSON.decoder()
        decoder.userInfo[AdminJSON.reasonInHeader] = true
        let body = Data(#"{"weights": {"1": 1}, "reason": 5}"#.utf8)
        #expect(try decoder.decode(WeightsRequest.self, from: body).reason == nil)
    }

    @Test func routeAndRolloutRequestsRefuseUnknownFields() throws {
        #expect(
            decodeError(RouteRequest.self, #"{"policy": "canary", "versions": [{"version": "1", "weigth": 5}]}"#)
                == "route.versions[0].weigth: unknown field; expected one of version, weight"
        )
        #expect(
            decodeError(RouteRequest.self, #"{"polcy": "canary"}"#)
                == "route.polcy: unknown field; expected one of bandit, fallback, model, policy, shadow, sticky, versions"
        )
        #expect(
            decodeError(RolloutRequest.self, #"{"baseline": "1", "canary": "2", "gatez": {}}"#)?
                .hasPrefix("rollout.gatez: unknown field") == true
        )
        #expect(
            decodeError(RolloutRequest.self, #"{"baseline": "1", "canary": "2", "gates": {"max_p99": 1}}"#)?
                .hasPrefix("rollout.gates.max_p99: unknown field") == true
        )
        #expect(decodeError(BanditRequest.self, #"{"algoritm": "ucb1"}"#)?.hasPrefix("bandit.algoritm") == true)
        #expect(decodeError(ShadowRequest.self, #"{"fracton": 1}"#)?.hasPrefix("shadow.fracton") == true)
        let named = try AdminJSON.decoder().decode(RouteRequest.self, from: Data(#"{"model": "ranker"}"#.utf8))
        #expect(throws: AdminRequestError.self) { try named.route(model: "digits") }
        // An unknown policy stays for the route's validation to report with its other problems.
        let unknown = try AdminJSON.decoder().decode(RouteRequest.self, from: Data(#"{"policy": "fastest"}"#.utf8))
        #expect(
            try unknown.route(model: "digits").validate(path: "route").first?.hasPrefix(
                "route.policy: unknown policy 'fastest'"
            ) == true
        )
    }
}
