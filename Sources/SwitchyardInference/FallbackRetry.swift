// A route's fallback on the request path: a call that the version its policy chose failed, shed or refused is run
// once more on the route's fallback version, when the failure's code is one the route names and the deadline leaves
// the margin. The failure is first recorded against the version that failed (its statistics, which the rollout gates
// read, the bandit's reward and the shadow comparison); the fallback's answer carries `fallback=<version>,<code>` in
// its `switchyard-route` trailer and rewards no bandit arm.

import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardModels
import SwitchyardProto
import SwitchyardRouting

/// What a routed call needs to fall back once its chosen version has failed it.
struct FallbackRetry: Sendable {
    let fallback: Fallback
    let registry: ModelRegistry
    let deadline: MonotonicInstant?

    /// The retry of a call routed by `decision`, when its route has a fallback for the chosen version.
    static func of(_ decision: RoutingDecision?, registry: ModelRegistry, deadline: MonotonicInstant?) -> FallbackRetry?
    {
        guard let fallback = decision?.fallback else { return nil }
        return FallbackRetry(fallback: fallback, registry: registry, deadline: deadline)
    }

    /// Takes over a failed call: records the failure against the version that failed and queues the call on the
    /// fallback version, whose answer is then the caller's. Returns false, leaving the failure to be answered,
    /// when the route does not fall back on this code, the deadline leaves too little time, the caller has gone,
    /// or the fallback version cannot take the call (each but the first two counted).
    func start(after error: SwitchyardError, answer: InferAnswer) -> Bool {
        let failed = answer.version
        let now = MonotonicInstant.now()
        switch fallback.verdict(after: error, now: now, deadline: deadline) {
        case .notOnThisCode: return false
        case .noTime:
            fallback.record(.noTime, from: failed.version, code: error.code)
            return false
        case .retry: break
        }
        guard !answer.responder.isCancelled else { return false }
        guard let target = holdTarget(compatibleWith: failed) else {
            fallback.record(.unavailable, from: failed.version, code: error.code)
            return false
        }
        answer.recordFailure(error, elapsedNanoseconds: now.nanoseconds(since: answer.started))
        let call = answer.call
        let fellBack = FellBack(fallback: fallback, from: failed.version, code: error.code)
        let next = InferAnswer(
            responder: answer.responder,
            streaming: answer.streaming,
            version: target,
            call: call,
            route: answer.route,
            decision: nil,
            trailers: fellBack.trailers(answer.decision),
            shadow: nil,
            monitor: nil,
            sampled: (drift: false, capture: false),
            traceID: "",
            started: answer.started,
            ticket: answer.ticket,
            usage: answer.ticket?.usage(model: target.model, version: target.version),
            fellBack: fellBack,
            // The trace goes on with the fallback's attempt and ends with its answer.
            tracing: answer.tracing
        )
        let responder = answer.responder
        target.submit(
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            enqueuedAt: now,
            tenant: answer.ticket?.share,
            deferWakeUp: false,
            isCancelled: { [responder] in responder.isCancelled },
            completion: { result in next.complete(result) }
        )
        return true
    }

    /// The fallback version, held, when it takes exactly the inputs and outputs of `failed` (the call was validated
    /// against that signature and names outputs by its indices).
    private func holdTarget(compatibleWith failed: ModelVersion) -> ModelVersion? {
        guard let target = try? registry.hold(model: failed.model, version: fallback.version) else { return nil }
        guard target.signature.inputs == failed.signature.inputs, target.signature.outputs == failed.signature.outputs
        else {
            target.release()
            return nil
        }
        return target
    }

    /// Validation's fallback: a request the chosen version refused (its signature differs from what callers send)
    /// is validated against the fallback version instead. The refusal is already recorded for the chosen version;
    /// this adds the bandit's failed reward. Returns the fallback version (held) and the call validated for it, or
    /// `nil` when the route does not fall back or the fallback refuses the request too (counted).
    static func validateOnFallback(
        _ request: Inference__ModelInferRequest,
        refused original: SwitchyardError,
        by routed: RoutedVersion,
        registry: ModelRegistry,
        deadline: MonotonicInstant?,
        regions: SharedMemoryRegions?
    ) -> (RoutedVersion, ValidatedInferCall)? {
        guard let decision = routed.decision, let fallback = decision.fallback else { return nil }
        let failed = routed.version.version
        switch fallback.verdict(after: original, now: .now(), deadline: deadline) {
        case .notOnThisCode: return nil
        case .noTime:
            fallback.record(.noTime, from: failed, code: original.code)
            return nil
        case .retry: break
        }
        guard let target = try? registry.hold(model: routed.version.model, version: fallback.version) else {
            fallback.record(.unavailable, from: failed, code: original.code)
            return nil
        }
        do throws(SwitchyardError) {
            let call = try InferRequestValidator.validate(request, for: target, regions: regions)
            BanditReward.record(decision, succeeded: false, latencyNanoseconds: 0)
            let fellBack = FellBack(fallback: fallback, from: failed, code: original.code)
            return (RoutedVersion(version: target, decision: decision, reason: routed.reason, fellBack: fellBack), call)
        } catch {
            target.release()
            fallback.record(.failed, from: failed, code: original.code)
            return nil
        }
    }
}

/// A call answered by its route's fallback version: which version failed it first, and with what code.
struct FellBack: Sendable {
    let fallback: Fallback
    let from: String
    let code: SwitchyardError.Code

    /// The `switchyard-route` trailer of the fallback's answer.
    func trailers(_ decision: RoutingDecision?) -> [(name: String, value: String)] {
        guard let decision else { return [] }
        return [(name: routeTrailerName, value: fallback.trailer(decision, failedVersion: from, code: code))]
    }

    /// Counts the fallback's outcome.
    func record(succeeded: Bool) { fallback.record(succeeded ? .answered : .failed, from: from, code: code) }
}
