// The KServe v2 / Open Inference Protocol service (plus the Triton extensions stock clients need and
// grpc.health.v1): resolves each RPC, runs inference calls through the worker pools and answers.

public import Logging
import SwitchyardCore
public import SwitchyardHTTP2
public import SwitchyardModels
import SwitchyardWorkers
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The gRPC methods Switchyard serves.
enum InferenceMethod: Int, CaseIterable {
    case serverLive, serverReady, modelReady, serverMetadata, modelMetadata, modelConfig, modelStatistics
    case modelInfer, modelStreamInfer, healthCheck

    var path: String {
        switch self {
        case .healthCheck: return "/grpc.health.v1.Health/Check"
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
        }
    }

    static let byPath: [String: GRPCMethod] = Dictionary(
        uniqueKeysWithValues: allCases.map {
            ($0.path, GRPCMethod(id: $0.rawValue, kind: $0 == .modelStreamInfer ? .bidirectionalStreaming : .unary))
        }
    )
}

/// Serves the inference protocol over a model registry.
public final class InferenceService: GRPCService {
    /// The server name reported by ServerMetadata.
    public static let serverName = "switchyard"
    /// The server version reported by ServerMetadata.
    public static let serverVersion = "0.1.0"

    let registry: ModelRegistry
    private let draining = Atomic<Bool>(false)
    private let logger: Logger

    /// Creates the service over `registry`.
    public init(registry: ModelRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

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
                    responder.send(message: InferResponseEncoder.encodeStream(.failure(error)))
                }
            default:
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
        let (version, call) = try withBumpAllocator(capacity: 8192) { arena in
            Result { () throws(SwitchyardError) -> (ModelVersion, ValidatedInferCall) in
                let request = try InferRequestDecoder.decode(message, arena: &arena).pointee
                let version = try registry.resolve(
                    model: swiftString(request.model_name),
                    version: swiftString(request.model_version)
                )
                do throws(SwitchyardError) {
                    return (version, try InferRequestValidator.validate(request, for: version))
                } catch {
                    version.statistics.failureCount.add(1, ordering: .relaxed)
                    throw error
                }
            }
        }.get()
        var deadline = head.deadline
        if let timeout = call.parameters.timeoutMicroseconds {
            let parameterDeadline = started.advanced(
                byNanoseconds: UInt64(timeout).multipliedReportingOverflow(by: 1000).partialValue
            )
            deadline = min(deadline ?? parameterDeadline, parameterDeadline)
        }
        let signature = version.signature
        let job = InferenceJob(
            inputs: call.inputs,
            rows: call.rows,
            deadline: deadline,
            priority: call.parameters.priority,
            workClass: .primary,
            enqueuedAt: started,
            isCancelled: { [responder] in responder.isCancelled },
            completion: { [responder] result in
                let statistics = version.statistics
                let elapsed = MonotonicInstant.now().nanoseconds(since: started)
                switch result {
                case .success(let outputs):
                    let inferResult = InferResult(
                        modelName: version.model,
                        modelVersion: version.version,
                        id: call.id,
                        rows: call.rows,
                        outputs: call.outputIndices.map { (signature.outputs[$0], outputs.tensors[$0]) }
                    )
                    responder.send(
                        message: streaming
                            ? InferResponseEncoder.encodeStream(.success(inferResult))
                            : InferResponseEncoder.encode(inferResult)
                    )
                    statistics.successCount.add(1, ordering: .relaxed)
                    statistics.successNanoseconds.add(elapsed, ordering: .relaxed)
                    statistics.inferenceCount.add(UInt64(call.rows), ordering: .relaxed)
                    statistics.queueNanoseconds.add(outputs.queueNanoseconds, ordering: .relaxed)
                    statistics.computeNanoseconds.add(
                        outputs.computeNanoseconds * UInt64(call.rows) / UInt64(max(outputs.batchRows, 1)),
                        ordering: .relaxed
                    )
                    statistics.lastInferenceMilliseconds.store(wallClockMilliseconds(), ordering: .relaxed)
                case .failure(let error):
                    statistics.failureCount.add(1, ordering: .relaxed)
                    statistics.failureNanoseconds.add(elapsed, ordering: .relaxed)
                    if streaming {
                        responder.send(message: InferResponseEncoder.encodeStream(.failure(error)))
                    } else {
                        responder.fail(GRPCStatus(error))
                    }
                }
            }
        )
        // Called on an event loop: the pool is woken once per batch of socket events, in eventLoopDidProcessBatch.
        version.pool.submit(job, deferWakeUp: true)
    }
}

/// Milliseconds since 1970, for ModelStatistics.last_inference.
func wallClockMilliseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}
