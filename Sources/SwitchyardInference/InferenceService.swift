// The KServe v2 / Open Inference Protocol service (plus the Triton extensions stock clients need and
// grpc.health.v1): resolves each RPC, runs inference calls through the worker pools and answers.

import SwitchyardCore
public import SwitchyardHTTP2
public import SwitchyardModels
public import SwitchyardMonitor
public import SwitchyardRouting
public import SwitchyardSink
import SwitchyardWorkers
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
    public init(
        registry: ModelRegistry,
        routing: RoutingTable? = nil,
        sink: ComparisonSink? = nil,
        monitor: ModelMonitor? = nil,
        tenants: TenantAdmission? = nil,
        logLevel: LogLevelSwitch? = nil
    ) {
        self.registry = registry
        self.routing = routing
        self.sink = sink
        self.monitor = monitor
        self.tenants = tenants
        self.logLevel = logLevel
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
                try infer(message, head: head, responder: responder, streaming: false)
            case .modelStreamInfer:
                do throws(SwitchyardError) {
                    try infer(message, head: head, responder: responder, streaming: true)
                } catch {
                    responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
                }
            case .feedbackReport:
                try StringFieldCheck.check(message, schema: .feedback)
                responder.send(message: try FeedbackRPC.answer(message, routing: routing))
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

    public func eventLoopDidProcessBatch() {
        for pool in registry.pools { pool.releaseDeferredWakeUp() }
    }

    private func infer(
        _ message: UnsafeRawBufferPointer,
        head: GRPCRequestHead,
        responder: any GRPCResponder,
        streaming: Bool
    ) throws(SwitchyardError) {
        let started = MonotonicInstant.now()
        try StringFieldCheck.check(message, schema: .inferRequest)
        // The tenant's place among its calls in flight, held until the call is answered.
        var ticket: TenantAdmission.Ticket?
        let outcome = withBumpAllocator(capacity: 8192) { arena in
            Result { () throws(SwitchyardError) -> RoutedCall in
                let request = try InferRequestDecoder.decode(message, arena: &arena).pointee
                let modelName = swiftString(request.model_name)
                if let tenants {
                    let name =
                        tenants.header.flatMap { head.metadata($0) }
                        ?? tenants.parameter.flatMap { stringParameter($0, of: request) }
                    do throws(TenantAdmission.Refusal) {
                        ticket = try tenants.admit(tenant: name, model: modelName)
                    } catch {
                        let pushback = error.retryAfterMilliseconds.map {
                            [(name: "grpc-retry-pushback-ms", value: String($0))]
                        }
                        if streaming {
                            responder.send(message: InferResponseEncoder.encodeStream(.failure(error.error.bounded())))
                        } else {
                            responder.fail(GRPCStatus(error.error), metadata: pushback ?? [])
                        }
                        return .answered
                    }
                }
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
                let version = try registry.resolve(model: modelName, version: decision?.version ?? requestedVersion)
                // Without a routing table (tests) the reason is what a table without this model's route says.
                let reason = decision?.reason ?? (requestedVersion.isEmpty ? .default : .explicit)
                do throws(SwitchyardError) {
                    // Regions belong to clients on this machine: a remote caller cannot name one, as it cannot register one.
                    let call = try InferRequestValidator.validate(
                        request,
                        for: version,
                        regions: head.peerIsLoopback ? sharedMemory : nil
                    )
                    return .routed(version, call, decision, reason)
                } catch {
                    version.statistics.failureCount.add(1, ordering: .relaxed)
                    version.statistics.recordCall(route: reason, code: GRPCStatus(error).code.rawValue)
                    // The call reached a version, so its refusal names the version like any answer does.
                    if streaming {
                        responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
                    } else {
                        responder.fail(GRPCStatus(error), metadata: routeMetadata(decision, servedBy: version))
                    }
                    return .answered
                }
            }
        }
        guard case .success(.routed(let version, let call, let decision, let route)) = outcome else {
            // Refused, unroutable or invalid: the call is over, and so is its tenant's hold.
            ticket?.release()
            _ = try outcome.get()
            return
        }
        let admitted = ticket
        var deadline = head.deadline
        if let timeout = call.parameters.timeoutMicroseconds {
            let parameterDeadline = started.advanced(
                byNanoseconds: UInt64(timeout).multipliedReportingOverflow(by: 1000).partialValue
            )
            deadline = min(deadline ?? parameterDeadline, parameterDeadline)
        }
        let signature = version.signature
        let trailers = routeMetadata(decision, servedBy: version)
        // Monitoring costs unsampled calls one configuration check (and an atomic increment on monitored models).
        let sampled = monitor?.sample(version) ?? (drift: false, capture: false)
        let traceID = sampled.capture ? TraceParent.traceID(head.metadata("traceparent")) : ""
        let monitor = sampled.drift || sampled.capture ? self.monitor : nil
        let pair = decision?.shadowVersion.flatMap { shadowVersion in
            mirror(call, deadline: deadline, started: started, primary: version, shadowVersion: shadowVersion)
        }
        let job = InferenceJob(
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            workClass: .primary,
            enqueuedAt: started,
            isCancelled: { [responder] in responder.isCancelled },
            completion: { [responder] result in
                admitted?.release()
                let statistics = version.statistics
                let elapsed = MonotonicInstant.now().nanoseconds(since: started)
                switch result {
                case .success(let outputs):
                    let inferResult = InferResult(
                        modelName: version.model,
                        modelVersion: version.version,
                        id: call.id,
                        rows: call.rows,
                        outputs: call.returned(signature, outputs.tensors),
                        placements: call.returnedPlacements
                    )
                    responder.send(
                        message: streaming
                            ? InferResponseEncoder.encodeStream(.success(inferResult))
                            : InferResponseEncoder.encode(inferResult),
                        metadata: trailers
                    )
                    // Bookkeeping after the response is on its way: the caller never waits for it.
                    if let decision, decision.wantsOutcome {
                        decision.recordOutcome(succeeded: true, latencyNanoseconds: elapsed)
                    }
                    // One copy of the outputs serves both the comparison and the monitor, made only when one wants it.
                    let kept = pair != nil || monitor != nil ? outputs.tensors.map(Array.init) : []
                    pair?.completePrimary(
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
                    statistics.successCount.add(1, ordering: .relaxed)
                    statistics.successNanoseconds.add(elapsed, ordering: .relaxed)
                    statistics.latency.record(elapsed)
                    statistics.inferenceCount.add(UInt64(call.rows), ordering: .relaxed)
                    statistics.queueNanoseconds.add(outputs.queueNanoseconds, ordering: .relaxed)
                    statistics.queueWait.record(outputs.queueNanoseconds)
                    statistics.recordCall(route: route, code: 0)
                    statistics.computeNanoseconds.add(
                        outputs.computeNanoseconds * UInt64(call.rows) / UInt64(max(outputs.batchRows, 1)),
                        ordering: .relaxed
                    )
                    statistics.lastInferenceMilliseconds.store(wallClockMilliseconds(), ordering: .relaxed)
                case .failure(let error):
                    statistics.failureCount.add(1, ordering: .relaxed)
                    statistics.failureNanoseconds.add(elapsed, ordering: .relaxed)
                    statistics.latency.record(elapsed)
                    statistics.recordCall(route: route, code: GRPCStatus(error).code.rawValue)
                    if streaming {
                        responder.send(message: InferResponseEncoder.encodeStream(.failure(error.bounded())))
                    } else {
                        // Failed calls say which version failed them too (a broken canary shows in the trailer).
                        responder.fail(GRPCStatus(error), metadata: trailers)
                    }
                    if let decision, decision.wantsOutcome {
                        decision.recordOutcome(succeeded: false, latencyNanoseconds: elapsed)
                    }
                    pair?.completePrimary(
                        ComparisonSide(
                            version: version.version,
                            latencyNanoseconds: elapsed,
                            result: .failure(ComparisonError(error.description))
                        )
                    )
                }
            }
        )
        // Called on an event loop: the pool is woken once per batch of socket events, in eventLoopDidProcessBatch.
        version.pool.submit(job, deferWakeUp: true)
        pair?.submitShadow()
    }

    /// Prepares the shadow of a call: resolves the shadow version and pairs its result with the primary's.
    /// The shadow runs as the pool's lower work class with the same inputs; a shadow that cannot run is
    /// recorded as a shadow error and never touches the primary call.
    private func mirror(
        _ call: ValidatedInferCall,
        deadline: MonotonicInstant?,
        started: MonotonicInstant,
        primary: ModelVersion,
        shadowVersion: String
    ) -> MirroredCall? {
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
        let shadow: ModelVersion
        do throws(SwitchyardError) {
            shadow = try registry.resolve(model: primary.model, version: shadowVersion)
        } catch {
            pair.completeShadow(
                ComparisonSide(
                    version: shadowVersion,
                    latencyNanoseconds: 0,
                    result: .failure(ComparisonError(error.description))
                )
            )
            return MirroredCall(pair: pair, pool: nil, job: nil)
        }
        guard shadow.signature.inputs == signature.inputs else {
            pair.completeShadow(
                ComparisonSide(
                    version: shadowVersion,
                    latencyNanoseconds: 0,
                    result: .failure(
                        ComparisonError(
                            "invalid argument: shadow version \(shadowVersion) takes \(shadow.signature.inputs), "
                                + "primary version \(primary.version) takes \(signature.inputs)"
                        )
                    )
                )
            )
            return MirroredCall(pair: pair, pool: nil, job: nil)
        }
        let job = InferenceJob(
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            workClass: .shadow,
            enqueuedAt: started,
            completion: { result in
                let elapsed = MonotonicInstant.now().nanoseconds(since: started)
                pair.completeShadow(
                    ComparisonSide(
                        version: shadowVersion,
                        latencyNanoseconds: elapsed,
                        result: result.map { $0.tensors.map(Array.init) }.mapError { ComparisonError($0.description) }
                    )
                )
            }
        )
        return MirroredCall(pair: pair, pool: shadow.pool, job: job)
    }
}

/// A call's shadow: its pair in the sink and the job to submit once the primary is queued.
struct MirroredCall: Sendable {
    let pair: ShadowPair
    let pool: WorkerPool?
    let job: InferenceJob?

    func completePrimary(_ side: ComparisonSide) { pair.completePrimary(side) }

    /// Queues the shadow job (never blocks: a pool without room completes it at once with the reason).
    func submitShadow() {
        if let pool, let job { pool.submit(job) }
    }
}

/// Milliseconds since 1970, for ModelStatistics.last_inference.
func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// A decoded call: routed to a version and validated (with why that version), or already answered with the
/// version's refusal.
private enum RoutedCall {
    case routed(ModelVersion, ValidatedInferCall, RoutingDecision?, RouteReason)
    case answered
}

/// The `switchyard-route` trailer of a call `version` answered, or none without a routing table.
private func routeMetadata(_ decision: RoutingDecision?, servedBy version: ModelVersion) -> [(
    name: String, value: String
)] {
    guard let decision else { return [] }
    return [(name: routeTrailerName, value: decision.trailer(servedVersion: version.version))]
}
