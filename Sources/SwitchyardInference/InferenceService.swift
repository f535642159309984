// The KServe v2 / Open Inference Protocol service (plus the Triton extensions stock clients need and
// grpc.health.v1): resolves each RPC, runs inference calls through the worker pools and answers.

public import SwitchyardCore
public import SwitchyardHTTP2
public import SwitchyardModels
public import SwitchyardMonitor
import SwitchyardProto
public import SwitchyardRouting
public import SwitchyardSink
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The gRPC methods Switchyard serves.
enum InferenceMethod: Int, CaseIterable {
    case serverLive, serverReady, modelReady, serverMetadata, modelMetadata, modelConfig, modelStatistics
    case modelInfer, modelStreamInfer, healthCheck, feedbackReport
    case repositoryIndex, repositoryModelLoad, repositoryModelUnload
    case systemSharedMemoryStatus, systemSharedMemoryRegister, systemSharedMemoryUnregister
    case cudaSharedMemoryStatus, cudaSharedMemoryRegister, cudaSharedMemoryUnregister, traceSetting, logSettings

    var path: String {
        switch self {
        case .healthCheck: return "/grpc.health.v1.Health/Check"
        case .feedbackReport: return "/switchyard.v1.Feedback/Report"
        default: return "/inference.GRPCInferenceService/" + name
        }
    }

    private var name: String {
        switch self {
        case .serverLive: "ServerLive"
        case .serverReady: "ServerReady"
        case .modelReady: "ModelReady"
        case .serverMetadata: "ServerMetadata"
        case .modelMetadata: "ModelMetadata"
        case .modelConfig: "ModelConfig"
        case .modelStatistics: "ModelStatistics"
        case .modelInfer: "ModelInfer"
        case .modelStreamInfer: "ModelStreamInfer"
        case .healthCheck: "Check"
        case .feedbackReport: "Report"
        case .repositoryIndex: "RepositoryIndex"
        case .repositoryModelLoad: "RepositoryModelLoad"
        case .repositoryModelUnload: "RepositoryModelUnload"
        case .systemSharedMemoryStatus: "SystemSharedMemoryStatus"
        case .systemSharedMemoryRegister: "SystemSharedMemoryRegister"
        case .systemSharedMemoryUnregister: "SystemSharedMemoryUnregister"
        case .cudaSharedMemoryStatus: "CudaSharedMemoryStatus"
        case .cudaSharedMemoryRegister: "CudaSharedMemoryRegister"
        case .cudaSharedMemoryUnregister: "CudaSharedMemoryUnregister"
        case .traceSetting: "TraceSetting"
        case .logSettings: "LogSettings"
        }
    }

    static let byPath: [String: GRPCMethod] = Dictionary(
        uniqueKeysWithValues: allCases.map {
            ($0.path, GRPCMethod(id: $0.rawValue, kind: $0 == .modelStreamInfer ? .bidirectionalStreaming : .unary))
        }
    )
}

/// The response trailer naming the routing generation, served version and policy of a call.
let routeTrailerName = "switchyard-route"

/// Serves the inference protocol over a model registry, routing calls by a routing table and mirroring
/// shadow traffic into a comparison sink.
public final class InferenceService: GRPCService {
    /// The server name reported by ServerMetadata.
    public static let serverName = "switchyard"
    /// The server version reported by ServerMetadata.
    public static let serverVersion = "0.1.0"

    let registry: ModelRegistry
    /// The traffic policies; `nil` serves every call from the requested or default version.
    let routing: RoutingTable?
    /// Where shadow results are compared; `nil` mirrors nothing.
    let sink: ComparisonSink?
    /// Where sampled calls go for drift detection and payload capture; `nil` samples nothing.
    let monitor: ModelMonitor?
    /// Admission per tenant (`tenants:`); `nil` admits every call.
    let tenants: TenantAdmission?
    /// The log level LogSettings reports and changes; `nil` reports the defaults and refuses changes.
    let logLevel: LogLevelSwitch?
    /// Head sampling and spans (`tracing:`); `nil` traces nothing and costs a call one nil check per step.
    let tracer: (any CallTracer)?
    /// The admin plane's audited model loading, for RepositoryModelLoad/Unload; attached once the admin plane
    /// exists (it reads the service's readiness, so it is made after the service).
    private let modelControlSlot = Mutex<(any ModelControl)?>(nil)
    /// RepositoryIndex/Load/Unload calls running off the event loop (bounded by `RepositoryRPCs.maxInFlight`).
    let repositoryCallsInFlight = Atomic<Int>(0)
    /// The system shared-memory regions clients on this machine registered.
    let sharedMemory = SharedMemoryRegions()
    private let draining = Atomic<Bool>(false)

    /// Creates the service over `registry`.
    /// - Parameters:
    ///   - routing: the routing table; with one, every response carries a `switchyard-route` trailer and
    ///     `switchyard.v1.Feedback/Report` is served.
    ///   - sink: the comparison sink shadow results go to; without one, no call is mirrored.
    ///   - monitor: drift detection and payload capture of the models whose config.yaml asks for them.
    ///   - tenants: admission per tenant; refused calls never reach routing or a pool.
    ///   - logLevel: the process's log level, which Triton's LogSettings reports and changes.
    ///   - tracer: traces the calls head sampling chooses (W3C `traceparent` in, spans out).
    public init(
        registry: ModelRegistry,
        routing: RoutingTable? = nil,
        sink: ComparisonSink? = nil,
        monitor: ModelMonitor? = nil,
        tenants: TenantAdmission? = nil,
        logLevel: LogLevelSwitch? = nil,
        tracer: (any CallTracer)? = nil
    ) {
        self.registry = registry
        self.routing = routing
        self.sink = sink
        self.monitor = monitor
        self.tenants = tenants
        self.logLevel = logLevel
        self.tracer = tracer
    }

    /// In fleet mode, where reports of calls another replica routed go; attached once the fleet exists.
    private let feedbackForwarderSlot = Mutex<FeedbackForwarder?>(nil)

    /// Delivers `Feedback/Report`s for calls this replica did not route through `forwarder` (fleet mode).
    public func attach(feedbackForwarder forwarder: @escaping FeedbackForwarder) {
        feedbackForwarderSlot.withLock { $0 = forwarder }
    }

    /// Serves RepositoryModelLoad/Unload through `control` (the admin plane's audited path and token policy).
    /// Without it they are refused with FAILED_PRECONDITION.
    public func attach(modelControl control: any ModelControl) { modelControlSlot.withLock { $0 = control } }

    /// The model control attached, if any.
    var modelControl: (any ModelControl)? { modelControlSlot.withLock { $0 } }

    /// Marks the server as draining: readiness turns false so load balancers stop sending new calls.
    public func beginDraining() { draining.store(true, ordering: .relaxed) }

    /// Whether the server is ready: not draining and every repository model loaded.
    public var isReady: Bool { !draining.load(ordering: .relaxed) && registry.allReady }

    public func method(for path: String) -> GRPCMethod? { InferenceMethod.byPath[path] }

    /// The front end's call answers inference itself; another responder is wrapped.
    @inline(__always)
    private static func inferResponder(_ responder: any GRPCResponder) -> any InferResponder {
        (responder as? GRPCCall) ?? ProtobufInferResponder(responder)
    }

    public func handle(
        message: UnsafeRawBufferPointer,
        method: GRPCMethod,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) {
        guard let rpc = InferenceMethod(rawValue: method.id) else {
            responder.fail(GRPCStatus(.unimplemented, "method \(head.path) is not implemented"))
            return
        }
        do throws(SwitchyardError) {
            switch rpc {
            case .modelInfer:
                try infer(message, head: head, responder: Self.inferResponder(responder), streaming: false)
            case .modelStreamInfer:
                do throws(SwitchyardError) {
                    try infer(message, head: head, responder: Self.inferResponder(responder), streaming: true)
                } catch {
                    responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
                }
            case .feedbackReport:
                try StringFieldCheck.check(message, schema: .feedback)
                try FeedbackRPC.handle(
                    message,
                    routing: routing,
                    forwarder: feedbackForwarderSlot.withLock { $0 },
                    responder: responder
                )
            case .repositoryIndex, .repositoryModelLoad, .repositoryModelUnload:
                if let schema = rpc.stringFields { try StringFieldCheck.check(message, schema: schema) }
                try RepositoryRPCs(service: self).handle(rpc, message: message, head: head, responder: responder)
            case .systemSharedMemoryStatus, .systemSharedMemoryRegister, .systemSharedMemoryUnregister:
                if let schema = rpc.stringFields { try StringFieldCheck.check(message, schema: schema) }
                // Only a process on this machine can share memory with this one; refusing others also keeps
                // remote callers from mapping this machine's shared-memory objects.
                guard head.peerIsLoopback || rpc == .systemSharedMemoryStatus else {
                    responder.fail(
                        GRPCStatus(
                            .permissionDenied,
                            "system shared memory is for clients on this machine; this call came from beyond loopback"
                        )
                    )
                    return
                }
                responder.send(message: try SharedMemoryRPCs(regions: sharedMemory).answer(rpc, message: message))
            case .cudaSharedMemoryStatus, .cudaSharedMemoryRegister, .cudaSharedMemoryUnregister, .traceSetting,
                .logSettings:
                if let schema = rpc.stringFields { try StringFieldCheck.check(message, schema: schema) }
                responder.send(message: try SettingsRPCs(service: self).answer(rpc, message: message))
            default:
                if let schema = rpc.stringFields { try StringFieldCheck.check(message, schema: schema) }
                responder.send(message: try ControlRPCs(service: self).answer(rpc, message: message))
            }
        } catch {
            responder.fail(GRPCStatus(error))
        }
    }

    public func eventLoopDidProcessBatch() { registry.releaseDeferredWakeUps() }

    // MARK: ModelInfer, step by step
    //
    // decode → admit (tenant) → route (the version, held) → validate → deadline → submit → answer and record.
    // Each step has one owner below; what runs when the work is done (the reply, statistics, the bandit's reward,
    // the shadow comparison, the monitor) is `InferAnswer`'s.

    private func infer(
        _ message: UnsafeRawBufferPointer,
        head: GRPCRequestHead,
        responder: any InferResponder,
        streaming: Bool
    ) throws(SwitchyardError) {
        let started = MonotonicInstant.now()
        try StringFieldCheck.check(message, schema: .inferRequest)
        try infer(started: started, head: head, responder: responder, streaming: streaming) {
            arena throws(SwitchyardError) in try InferRequestDecoder.decode(message, arena: &arena).pointee
        }
    }

    /// ModelInfer for a request another front end read into the structure protobuf-c decodes into (REST: JSON and
    /// binary tensor data, `RESTInfer`), built by `request` in the call's arena: no protobuf packed only to be
    /// decoded again. The call then takes the gRPC call's path, step by step.
    /// - Throws: what `request` throws, and the refusals the gRPC path throws (unknown model, unroutable call).
    func infer(
        head: GRPCRequestHead,
        responder: any InferResponder,
        request: (inout BumpAllocator) throws(SwitchyardError) -> Inference__ModelInferRequest
    ) throws(SwitchyardError) {
        try infer(started: .now(), head: head, responder: responder, streaming: false, request: request)
    }

    private func infer(
        started: MonotonicInstant,
        head: GRPCRequestHead,
        responder callResponder: any InferResponder,
        streaming: Bool,
        request decode: (inout BumpAllocator) throws(SwitchyardError) -> Inference__ModelInferRequest
    ) throws(SwitchyardError) {
        // Sampling is decided once, here; an untraced call carries nil through every step below. From here on every
        // path ends the trace: refused ones below, the others in `InferAnswer.complete`.
        let trace = tracer?.begin(
            traceparent: head.metadata("traceparent"),
            tracestate: head.metadata("tracestate"),
            operation: streaming ? "ModelStreamInfer" : "ModelInfer",
            started: started
        )
        let responder: any InferResponder = trace.map { TracedResponder(callResponder, trace: $0) } ?? callResponder
        // The tenant's place among its calls in flight, held until the call is answered.
        var ticket: TenantAdmission.Ticket?
        let outcome = withBumpAllocator(capacity: 8192) { arena in
            Result { () throws(SwitchyardError) -> RoutedCall in
                let request = try decode(&arena)
                guard admit(request, head: head, responder: responder, streaming: streaming, ticket: &ticket) else {
                    return .answered
                }
                trace?.decoded = .now()
                let routed = try route(request, head: head)
                if let trace { Self.stamp(trace, routed: routed, request: request) }
                return validate(request, routed: routed, head: head, responder: responder, streaming: streaming)
            }
        }
        guard case .success(.routed(let routed, let call)) = outcome else {
            // Refused, unroutable or invalid: the call is over, and so is its tenant's hold.
            ticket?.release()
            if let trace, let tracer { Self.finishRefused(trace, outcome, tracer: tracer) }
            _ = try outcome.get()
            return
        }
        trace?.submitted = .now()
        trace?.rows = call.rows
        let deadline = Self.deadline(
            transport: head.deadline,
            timeoutMicroseconds: call.parameters.timeoutMicroseconds,
            started: started
        )
        submit(
            routed,
            call,
            deadline: deadline,
            started: started,
            ticket: ticket,
            head: head,
            responder: responder,
            streaming: streaming,
            tracing: trace.flatMap { trace in tracer.map { (tracer: $0, trace: trace) } }
        )
    }

    /// A traced call's routing: when, to which version, why and under which generation.
    private static func stamp(_ trace: CallTrace, routed: RoutedVersion, request: Inference__ModelInferRequest) {
        trace.routed = .now()
        trace.model = routed.version.model
        trace.version = routed.version.version
        trace.route = routed.reason.rawValue
        trace.generation = routed.decision?.generation ?? 0
        trace.requestID = swiftString(request.id)
    }

    /// A traced call that never reached a pool (refused, unroutable or invalid): its spans end here.
    private static func finishRefused(
        _ trace: CallTrace,
        _ outcome: Result<RoutedCall, SwitchyardError>,
        tracer: any CallTracer
    ) {
        switch outcome {
        case .failure(let error):
            // Thrown: the front end answers it after this returns.
            let status = GRPCStatus(error)
            trace.statusCode = status.code.rawValue
            trace.statusMessage = status.message
            trace.responded = .now()
        default:
            // Answered already (tenant refusal, invalid inputs): the traced responder stamped the answer.
            break
        }
        trace.completed = trace.completed ?? .now()
        tracer.finish(trace)
    }

    /// Tenant admission (`tenants:`): takes the tenant's ticket, or answers the refusal (with its retry pushback)
    /// and returns false.
    private func admit(
        _ request: Inference__ModelInferRequest,
        head: GRPCRequestHead,
        responder: any GRPCResponder,
        streaming: Bool,
        ticket: inout TenantAdmission.Ticket?
    ) -> Bool {
        guard let tenants else { return true }
        let name =
            tenants.header.flatMap { head.metadata($0) }
            ?? tenants.parameter.flatMap { stringParameter($0, of: request) }
            ?? tenants.certificateField.flatMap { head.peerCertificate?.name($0) }
        do throws(TenantAdmission.Refusal) {
            ticket = try tenants.admit(
                authorization: head.metadata("authorization"),
                named: name,
                model: swiftString(request.model_name)
            )
            return true
        } catch {
            let pushback = error.retryAfterMilliseconds.map { [(name: "grpc-retry-pushback-ms", value: String($0))] }
            if streaming {
                responder.send(message: InferResponseEncoder.encodeStream(.failure(error.error.bounded())))
            } else {
                responder.fail(GRPCStatus(error.error), metadata: pushback ?? [])
            }
            return false
        }
    }

    /// Routing: the routing table's decision (or the requested version without one), resolved to a loaded version
    /// that the call now holds until it is answered.
    private func route(_ request: Inference__ModelInferRequest, head: GRPCRequestHead) throws(SwitchyardError)
        -> RoutedVersion
    {
        let modelName = swiftString(request.model_name)
        let requestedVersion = swiftString(request.model_version)
        let decision = routing?.decide(
            model: modelName,
            requestedVersion: requestedVersion,
            requestID: swiftString(request.id),
            key: { source in
                if let header = source.header { return head.metadata(header) }
                if let parameter = source.parameter { return stringParameter(parameter, of: request) }
                return nil
            }
        )
        let version = try registry.hold(model: modelName, version: decision?.version ?? requestedVersion)
        // Without a routing table (tests) the reason is what a table without this model's route says.
        let reason = decision?.reason ?? (requestedVersion.isEmpty ? .default : .explicit)
        return RoutedVersion(version: version, decision: decision, reason: reason)
    }

    /// Validation against the routed version's signature. A refusal is counted for the version, answered naming
    /// it (the trailer says which version refused), and ends the call's hold.
    private func validate(
        _ request: Inference__ModelInferRequest,
        routed: RoutedVersion,
        head: GRPCRequestHead,
        responder: any GRPCResponder,
        streaming: Bool
    ) -> RoutedCall {
        do throws(SwitchyardError) {
            // Regions belong to clients on this machine: a remote caller cannot name one, as it cannot register one.
            let call = try InferRequestValidator.validate(
                request,
                for: routed.version,
                regions: head.peerIsLoopback ? sharedMemory : nil
            )
            return .routed(routed, call)
        } catch {
            routed.version.statistics.recordRefused(route: routed.reason, code: GRPCStatus(error).code.rawValue)
            if let taken = FallbackRetry.validateOnFallback(
                request,
                refused: error,
                by: routed,
                registry: registry,
                deadline: head.deadline,
                regions: head.peerIsLoopback ? sharedMemory : nil
            ) {
                routed.version.release()
                return .routed(taken.0, taken.1)
            }
            if streaming {
                responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
            } else {
                responder.fail(GRPCStatus(error), metadata: routeMetadata(routed.decision, servedBy: routed.version))
            }
            routed.version.release()
            return .answered
        }
    }

    /// The call's deadline: the earlier of the transport's (`grpc-timeout`) and the request's `timeout` parameter
    /// (microseconds, counted from when the call started).
    static func deadline(
        transport: MonotonicInstant?,
        timeoutMicroseconds: Int64?,
        started: MonotonicInstant
    ) -> MonotonicInstant? {
        guard let timeout = timeoutMicroseconds else { return transport }
        let parameterDeadline = started.advanced(
            byNanoseconds: UInt64(timeout).multipliedReportingOverflow(by: 1000).partialValue
        )
        return min(transport ?? parameterDeadline, parameterDeadline)
    }

    /// Submission: prepares the answer (and the shadow and monitoring it carries), queues the call's work on its
    /// version, then its shadow.
    private func submit(
        _ routed: RoutedVersion,
        _ call: ValidatedInferCall,
        deadline: MonotonicInstant?,
        started: MonotonicInstant,
        ticket: TenantAdmission.Ticket?,
        head: GRPCRequestHead,
        responder: any InferResponder,
        streaming: Bool,
        tracing: (tracer: any CallTracer, trace: CallTrace)?
    ) {
        let version = routed.version
        // Monitoring costs unsampled calls one configuration check (and an atomic increment on monitored models).
        let sampled = monitor?.sample(version) ?? (drift: false, capture: false)
        // A call its route's fallback took over at validation is neither mirrored nor a bandit's to reward.
        let decision = routed.fellBack == nil ? routed.decision : nil
        let shadow = decision?.shadowVersion.flatMap { shadowVersion in
            ShadowPairing.prepare(
                call,
                deadline: deadline,
                started: started,
                primary: version,
                shadowVersion: shadowVersion,
                registry: registry,
                sink: sink
            )
        }
        let answer = InferAnswer(
            responder: responder,
            streaming: streaming,
            version: version,
            call: call,
            route: routed.reason,
            decision: decision,
            trailers: routed.fellBack?.trailers(routed.decision) ?? routeMetadata(decision, servedBy: version),
            shadow: shadow,
            monitor: sampled.drift || sampled.capture ? monitor : nil,
            sampled: sampled,
            // One source for the trace id: the traced call's own (the caller's, or the trace it started), else the
            // caller's traceparent.
            traceID: sampled.capture
                ? (tracing?.trace.traceID ?? TraceParent.traceID(head.metadata("traceparent"))) : "",
            started: started,
            ticket: ticket,
            usage: ticket?.usage(model: version.model, version: version.version),
            retry: routed.fellBack == nil ? FallbackRetry.of(decision, registry: registry, deadline: deadline) : nil,
            fellBack: routed.fellBack,
            tracing: tracing
        )
        // Called on an event loop: the pool is woken once per batch of socket events, in eventLoopDidProcessBatch.
        version.submit(
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            enqueuedAt: started,
            tenant: ticket?.share,
            deferWakeUp: true,
            isCancelled: { [responder] in responder.isCancelled },
            completion: { result in answer.complete(result) }
        )
        shadow?.submit(tracing: tracing)
    }
}

/// What runs once a routed call's work is done, on the thread that finished it: the reply, then (after the reply
/// is on its way) the bandit's reward, the shadow comparison's primary side, the monitor and the version's
/// statistics.
struct InferAnswer: Sendable {
    let responder: any InferResponder
    let streaming: Bool
    let version: ModelVersion
    let call: ValidatedInferCall
    let route: RouteReason
    let decision: RoutingDecision?
    let trailers: [(name: String, value: String)]
    let shadow: ShadowPairing?
    /// The monitor, only for a sampled call.
    let monitor: ModelMonitor?
    let sampled: (drift: Bool, capture: Bool)
    let traceID: String
    let started: MonotonicInstant
    let ticket: TenantAdmission.Ticket?
    /// The tenant's counters for this version, resolved when the call was submitted (charging them is a few atomic
    /// adds on whichever thread answers).
    let usage: TenantAdmission.UsageSlot?
    /// The route's fallback for this call, if the chosen version fails it.
    var retry: FallbackRetry? = nil
    /// Set when this answer is the fallback's, after another version failed the call.
    var fellBack: FellBack? = nil
    /// The tracer and the call's trace, only for a traced call.
    var tracing: (tracer: any CallTracer, trace: CallTrace)? = nil

    func complete(_ result: Result<VersionOutputs, SwitchyardError>) {
        // A failure the route falls back on is recorded against this version, and the fallback answers the call.
        if case .failure(let error) = result, let retry, retry.start(after: error, answer: self) { return }
        ticket?.release()
        fellBack?.record(succeeded: result.isSuccess)
        let now = MonotonicInstant.now()
        let elapsed = now.nanoseconds(since: started)
        if let tracing { Self.stamp(tracing.trace, result, completed: now, started: started) }
        // After the bookkeeping below, which the call's spans do not include.
        defer { if let tracing { tracing.tracer.finish(tracing.trace) } }
        switch result {
        case .success(let outputs):
            let inferResult = InferResult(
                modelName: version.model,
                modelVersion: version.version,
                id: call.id,
                rows: call.rows,
                outputs: call.returned(version.signature, outputs.tensors),
                placements: call.returnedPlacements
            )
            if streaming {
                responder.send(message: InferResponseEncoder.encodeStream(.success(inferResult)), metadata: trailers)
            } else {
                // Encoded by the call's own protocol: protobuf for gRPC, JSON or binary tensor data for REST.
                responder.send(result: inferResult, metadata: trailers)
            }
            // Bookkeeping after the response is on its way: the caller never waits for it.
            BanditReward.record(decision, succeeded: true, latencyNanoseconds: elapsed)
            // One copy of the outputs serves both the comparison and the monitor, made only when one wants it.
            let kept = shadow != nil || monitor != nil ? outputs.tensors.map(Array.init) : []
            shadow?.completePrimary(
                ComparisonSide(version: version.version, latencyNanoseconds: elapsed, result: .success(kept))
            )
            monitor?.submit(
                MonitoredCall(
                    version: version,
                    drift: sampled.drift,
                    capture: sampled.capture,
                    id: call.id,
                    route: route.rawValue,
                    generation: decision?.generation ?? 0,
                    latencyNanoseconds: elapsed,
                    traceID: traceID,
                    rows: call.rows,
                    inputs: call.inputs,
                    outputs: kept
                )
            )
            version.statistics.recordSuccess(route: route, elapsedNanoseconds: elapsed, outputs: outputs)
            TenantUsage.charge(usage, rows: call.rows, outputs)
        case .failure(let error):
            if streaming {
                responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
            } else {
                // Failed calls say which version failed them too (a broken canary shows in the trailer).
                responder.fail(GRPCStatus(error), metadata: trailers)
            }
            recordFailure(error, elapsedNanoseconds: elapsed)
        }
    }

    /// Counts a failure against this answer's version: its statistics (which the rollout gates read), the bandit's
    /// reward and the shadow comparison's primary side.
    func recordFailure(_ error: SwitchyardError, elapsedNanoseconds elapsed: UInt64) {
        version.statistics.recordFailure(
            route: route,
            code: GRPCStatus(error).code.rawValue,
            elapsedNanoseconds: elapsed
        )
        BanditReward.record(decision, succeeded: false, latencyNanoseconds: elapsed)
        TenantUsage.chargeFailure(usage, error)
        shadow?.completePrimary(
            ComparisonSide(
                version: version.version,
                latencyNanoseconds: elapsed,
                result: .failure(ComparisonError(error.description))
            )
        )
    }
}

extension Result {
    fileprivate var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}

/// Cost attribution per tenant (`tenants:`): an answered call is charged its rows and its share of its batch's
/// compute time; a failed one is counted as shed (refused for capacity) or failed. Calls without a tenant cost nothing
/// here.
enum TenantUsage {
    @inline(__always)
    static func charge(_ usage: TenantAdmission.UsageSlot?, rows: Int, _ outputs: VersionOutputs) {
        usage?.charge(rows: rows, batchRows: outputs.batchRows, batchComputeNanoseconds: outputs.computeNanoseconds)
    }

    @inline(__always)
    static func chargeFailure(_ usage: TenantAdmission.UsageSlot?, _ error: SwitchyardError) {
        usage?.chargeFailure(shed: error.code == .resourceExhausted || error.code == .unavailable)
    }
}

extension InferAnswer {
    /// A traced call's batch (when it started, how long it computed, its rows) and outcome.
    static func stamp(
        _ trace: CallTrace,
        _ result: Result<VersionOutputs, SwitchyardError>,
        completed: MonotonicInstant,
        started: MonotonicInstant
    ) {
        trace.completed = completed
        switch result {
        case .success(let outputs):
            // The job was queued at `started`: its batch began `queueNanoseconds` later.
            trace.batch = (
                start: started.advanced(byNanoseconds: outputs.queueNanoseconds),
                computeNanoseconds: outputs.computeNanoseconds,
                rows: outputs.batchRows
            )
        case .failure(let error):
            // A streaming call's failure travels as a message: the status is the error's.
            let status = GRPCStatus(error)
            trace.statusCode = status.code.rawValue
            trace.statusMessage = status.message
        }
    }
}

/// A bandit route's automatic reward: the outcome of the call it chose a version for (success within the route's
/// latency target). Other decisions want no outcome and record nothing.
enum BanditReward {
    @inline(__always)
    static func record(_ decision: RoutingDecision?, succeeded: Bool, latencyNanoseconds: UInt64) {
        guard let decision, decision.wantsOutcome else { return }
        decision.recordOutcome(succeeded: succeeded, latencyNanoseconds: latencyNanoseconds)
    }
}

/// A call's shadow: its pair in the comparison sink and the shadow version (held) to run it on once the primary is
/// queued. A shadow that cannot run is recorded as a shadow error and never touches the primary call.
struct ShadowPairing: Sendable {
    let pair: ShadowPair
    /// The shadow version the call holds; `nil` when the shadow already failed (its side is recorded).
    let shadow: ModelVersion?
    let shadowVersion: String
    let inputs: [[Float]]
    let rows: Int
    let deadline: MonotonicInstant?
    let priority: Int
    let started: MonotonicInstant

    /// Pairs a call with its shadow: resolves and holds the shadow version and checks it takes the primary's
    /// inputs. `nil` when there is no sink or the sink admits no mirror now.
    static func prepare(
        _ call: ValidatedInferCall,
        deadline: MonotonicInstant?,
        started: MonotonicInstant,
        primary: ModelVersion,
        shadowVersion: String,
        registry: ModelRegistry,
        sink: ComparisonSink?
    ) -> ShadowPairing? {
        guard let sink, sink.admitsMirror() else { return nil }
        let signature = primary.signature
        let pair = sink.makePair(
            requestID: call.id,
            model: primary.model,
            layout: OutputLayout(
                names: signature.outputs.map(\.name),
                elementsPerRow: signature.outputs.map(\.elementsPerRow)
            )
        )
        var shadow: ModelVersion?
        do throws(SwitchyardError) {
            let held = try registry.hold(model: primary.model, version: shadowVersion)
            if held.signature.inputs == signature.inputs {
                shadow = held
            } else {
                held.release()
                pair.completeShadow(
                    ComparisonSide(
                        version: shadowVersion,
                        latencyNanoseconds: 0,
                        result: .failure(
                            ComparisonError(
                                "invalid argument: shadow version \(shadowVersion) takes \(held.signature.inputs), "
                                    + "primary version \(primary.version) takes \(signature.inputs)"
                            )
                        )
                    )
                )
            }
        } catch {
            pair.completeShadow(
                ComparisonSide(
                    version: shadowVersion,
                    latencyNanoseconds: 0,
                    result: .failure(ComparisonError(error.description))
                )
            )
        }
        return ShadowPairing(
            pair: pair,
            shadow: shadow,
            shadowVersion: shadowVersion,
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            started: started
        )
    }

    func completePrimary(_ side: ComparisonSide) { pair.completePrimary(side) }

    /// Queues the shadow work (never blocks: a pool without room completes it at once with the reason). A traced
    /// call's shadow run gets a span of its own, linked to the call's.
    func submit(tracing: (tracer: any CallTracer, trace: CallTrace)? = nil) {
        guard let shadow else { return }
        let pair = pair
        let started = started
        let shadowVersion = shadowVersion
        let queued = tracing == nil ? started : MonotonicInstant.now()
        shadow.submitShadow(
            inputs: inputs,
            rows: rows,
            deadline: deadline,
            priority: priority,
            enqueuedAt: started,
            completion: { result in
                let ended = MonotonicInstant.now()
                let elapsed = ended.nanoseconds(since: started)
                if let tracing {
                    var failure: String?
                    if case .failure(let error) = result { failure = error.message }
                    tracing.tracer.finishShadow(
                        of: tracing.trace,
                        version: shadowVersion,
                        started: queued,
                        ended: ended,
                        error: failure
                    )
                }
                pair.completeShadow(
                    ComparisonSide(
                        version: shadowVersion,
                        latencyNanoseconds: elapsed,
                        result: result.map { $0.tensors.map(Array.init) }.mapError { ComparisonError($0.description) }
                    )
                )
            }
        )
    }
}

/// A version chosen for a call (which holds it), with the decision and why that version.
struct RoutedVersion {
    let version: ModelVersion
    let decision: RoutingDecision?
    let reason: RouteReason
    /// Set when the route's fallback took the call over from the chosen version, which refused it.
    var fellBack: FellBack? = nil
}

/// A decoded call: routed to a version and validated, or already answered.
private enum RoutedCall {
    case routed(RoutedVersion, ValidatedInferCall)
    case answered
}

/// The `switchyard-route` trailer of a call `version` answered, or none without a routing table.
private func routeMetadata(_ decision: RoutingDecision?, servedBy version: ModelVersion) -> [(
    name: String, value: String
)] {
    guard let decision else { return [] }
    return [(name: routeTrailerName, value: decision.trailer(servedVersion: version.version))]
}
