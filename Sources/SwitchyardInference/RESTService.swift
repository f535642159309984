// The KServe v2 / Open Inference Protocol REST binding, served by the HTTP/1.1 front end on the gateway's event
// loops: health, server and model metadata, Triton's model config and statistics, the model repository extension
// (RESTRepository.swift), the shared-memory extensions (RESTSharedMemory.swift), and infer (read in RESTInfer.swift
// into the gRPC path's request structure, so every call takes InferenceService's one path). Errors
// are `{"error": "..."}` with the HTTP status Triton gives each kind of failure.

import Dispatch
import Foundation
import SwitchyardCore
public import SwitchyardHTTP2
import SwitchyardModels
import Synchronization

/// Serves v2 REST requests over an `InferenceService`.
@MemberwiseInit
public final class RESTService: HTTPService {
    let service: InferenceService

    /// Request bodies from this size up are decoded off the event loop. Parsing costs ~1.5–2 ns per byte of JSON
    /// with simdjson (Benchmarks/JSON, a 2-CPU AMD EPYC), and converting the values to the tensor's datatype about
    /// as much again: a 64 KiB body holds the loop for ~0.2 ms, several thread hops' worth, while a small one costs
    /// less than the hop.
    static let offloadBytes = 64 << 10

    public func refusal(status: Int, message: String) -> HTTPResponse {
        Self.errorResponse(status: status, message: message, metadata: [])
    }

    public func handle(head: HTTPRequestHead, body: UnsafeRawBufferPointer, responder: any HTTPResponder) {
        let segments = head.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.first == "v2" else {
            return responder.respond(notFound(head.path))
        }
        let rest = Array(segments.dropFirst())
        switch rest.count {
        case 0:
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            return responder.respond(json(serverMetadata()))
        case 2 where rest[0] == "health" && (rest[1] == "live" || rest[1] == "ready"):
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            // The spec's answer is the status alone; KServe's client also reads `{"live": true}` from the body, as
            // KServe's own runtimes write it, so the body says the same.
            if rest[1] == "live" || service.isReady {
                return responder.respond(json(.object([String(rest[1]): .bool(true)])))
            }
            return responder.respond(
                Self.errorResponse(
                    status: 503,
                    message: "server is not ready: draining or loading models",
                    metadata: []
                )
            )
        case 2 where rest[0] == "models" && rest[1] == "stats":
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            return responder.respond(
                answer { () throws(SwitchyardError) -> JSONValue? in try statistics(name: "", version: "") }
            )
        default:
            break
        }
        if rest.first == "systemsharedmemory" || rest.first == "cudasharedmemory" {
            return RESTSharedMemory(service: service).handle(
                cuda: rest.first == "cudasharedmemory",
                rest.dropFirst(),
                head: head,
                body: body,
                responder: responder
            )
        }
        if rest.first == "repository" {
            guard allowed(head, ["POST"], responder) else { return }
            return RESTRepository(service: service).handle(
                rest.dropFirst(),
                head: head,
                body: body,
                responder: responder
            )
        }
        // /v2/models/{m}[/versions/{v}][/ready|config|stats|infer]
        guard rest.count >= 2, rest[0] == "models", !rest[1].isEmpty else {
            return responder.respond(notFound(head.path))
        }
        let model = String(rest[1])
        var version = ""
        var action = rest.dropFirst(2)
        if action.first == "versions" {
            guard action.count >= 2, !action[action.startIndex + 1].isEmpty else {
                return responder.respond(notFound(head.path))
            }
            version = String(action[action.startIndex + 1])
            action = action.dropFirst(2)
        }
        guard action.count <= 1 else { return responder.respond(notFound(head.path)) }
        switch action.first.map(String.init) {
        case nil:
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            responder.respond(
                answer { () throws(SwitchyardError) -> JSONValue? in try metadata(name: model, version: version) }
            )
        case "ready"?:
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            responder.respond(
                answer { () throws(SwitchyardError) -> JSONValue? in
                    _ = try service.registry.resolve(model: model, version: version)
                    return .object(["name": .string(model), "ready": .bool(true)])
                }
            )
        case "config"?:
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            responder.respond(
                answer { () throws(SwitchyardError) -> JSONValue? in try config(name: model, version: version) }
            )
        case "stats"?:
            guard allowed(head, ["GET", "HEAD"], responder) else { return }
            responder.respond(
                answer { () throws(SwitchyardError) -> JSONValue? in try statistics(name: model, version: version) }
            )
        case "infer"?:
            guard allowed(head, ["POST"], responder) else { return }
            infer(model: model, version: version, head: head, body: body, responder: responder)
        default:
            responder.respond(notFound(head.path))
        }
    }

    /// Headers that describe the HTTP exchange rather than the call.
    private static let framingHeaders: Set<String> = [
        "host", "content-length", "content-type", "connection", "expect", "transfer-encoding", "keep-alive",
        "inference-header-content-length",
    ]

    private func infer(
        model: String,
        version: String,
        head: HTTPRequestHead,
        body: UnsafeRawBufferPointer,
        responder: any HTTPResponder
    ) {
        // Decoding costs by the JSON part: with binary tensor data, that is the header's declared length.
        let jsonBytes =
            head.header("inference-header-content-length").flatMap {
                // Not trimmingCharacters(in:): Foundation's character sets cost ~3 % of a binary call's CPU.
                Int(String($0.filter { $0 != " " && $0 != "\t" }))
            } ?? body.count
        guard jsonBytes >= Self.offloadBytes else {
            return submit(model: model, version: version, head: head, body: body, responder: responder)
        }
        // A large body is decoded on another thread, which then does what a loop does after a batch: wake the pools
        // the call was submitted to.
        let bytes = Array(body)
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            guard !responder.isCancelled else { return }
            bytes.withUnsafeBytes { submit(model: model, version: version, head: head, body: $0, responder: responder) }
            service.eventLoopDidProcessBatch()
        }
    }

    /// Reads the request and hands it to the inference service, built in the call's arena.
    private func submit(
        model: String,
        version: String,
        head: HTTPRequestHead,
        body: UnsafeRawBufferPointer,
        responder: any HTTPResponder
    ) {
        let translation: RESTInferTranslation
        do throws(SwitchyardError) {
            translation = try RESTInfer.translate(
                model: model,
                version: version,
                body: body,
                headerLength: head.header("inference-header-content-length")
            )
        } catch {
            return responder.respond(Self.errorResponse(GRPCStatus(error), metadata: []))
        }
        // Request headers are the call's metadata, as on gRPC (routing keys, traceparent), less those of HTTP's own
        // framing, which the gRPC front end does not pass on either.
        let grpcHead = GRPCRequestHead(
            path: InferenceMethod.modelInfer.path,
            metadata: head.headers.filter { !Self.framingHeaders.contains($0.name) },
            peerIsLoopback: head.peerIsLoopback,
            peerCertificate: head.peerCertificate
        )
        let inferResponder = RESTInferResponder(http: responder, call: translation.call)
        do throws(SwitchyardError) {
            try service.infer(head: grpcHead, responder: inferResponder) { arena in
                RESTInfer.build(translation, model: model, version: version, body: body, arena: &arena)
            }
        } catch {
            inferResponder.fail(GRPCStatus(error), metadata: [])
        }
    }

    // MARK: Answers

    private func serverMetadata() -> JSONValue {
        .object([
            "name": .string(InferenceService.serverName),
            "version": .string(InferenceService.serverVersion),
            "extensions": .array(["statistics", "model_configuration", "binary_tensor_data"].map(JSONValue.string)),
        ])
    }

    private func resolve(name: String, version: String) throws(SwitchyardError) -> (ModelEntry, ModelVersion) {
        let chosen = try service.registry.resolve(model: name, version: version)
        guard let entry = service.registry.model(named: name) else { throw .notFound("unknown model '\(name)'") }
        return (entry, chosen)
    }

    private func metadata(name: String, version: String) throws(SwitchyardError) -> JSONValue {
        let (entry, chosen) = try resolve(name: name, version: version)
        let versions = version.isEmpty ? entry.versions : [chosen]
        func tensors(_ specs: [TensorSpec]) -> JSONValue {
            .array(
                specs.map {
                    .object([
                        "name": .string($0.name), "datatype": .string($0.dataType.rawValue),
                        "shape": .array($0.shape.map { .integer(Int64($0)) }),
                    ])
                }
            )
        }
        return .object([
            "name": .string(entry.name),
            "versions": .array(versions.map { .string($0.version) }),
            "platform": .string(ControlRPCs.platform),
            "inputs": tensors(chosen.signature.inputs),
            "outputs": tensors(chosen.signature.outputs),
        ])
    }

    /// Triton's model configuration in its JSON form, as ModelConfig answers it over gRPC.
    private func config(name: String, version: String) throws(SwitchyardError) -> JSONValue {
        let (_, chosen) = try resolve(name: name, version: version)
        let batched = chosen.configuration.maxBatchSize > 0
        func tensors(_ specs: [TensorSpec]) -> JSONValue {
            .array(
                specs.map { spec in
                    let dims = batched ? Array(spec.shape.dropFirst()) : [1] + spec.shape.dropFirst()
                    let type = spec.dataType == .bytes ? "TYPE_STRING" : "TYPE_\(spec.dataType.rawValue)"
                    return .object([
                        "name": .string(spec.name), "data_type": .string(type),
                        "dims": .array(dims.map { .integer(Int64($0)) }),
                    ])
                }
            )
        }
        var config: [String: JSONValue] = [
            "name": .string(chosen.model),
            "platform": .string(ControlRPCs.platform),
            "backend": .string("switchyard"),
            "max_batch_size": .integer(Int64(chosen.configuration.maxBatchSize)),
            "input": tensors(chosen.signature.inputs),
            "output": tensors(chosen.signature.outputs),
        ]
        if batched { config["dynamic_batching"] = .object([:]) }
        return .object(config)
    }

    /// Triton's statistics extension, from the counters ModelStatistics reports over gRPC.
    private func statistics(name: String, version: String) throws(SwitchyardError) -> JSONValue {
        let versions: [ModelVersion]
        if name.isEmpty {
            versions = service.registry.models.flatMap(\.versions)
        } else {
            let (entry, chosen) = try resolve(name: name, version: version)
            versions = version.isEmpty ? entry.versions : [chosen]
        }
        func duration(_ count: UInt64, _ ns: UInt64) -> JSONValue {
            .object(["count": .unsigned(count), "ns": .unsigned(ns)])
        }
        let items: [JSONValue] = versions.map { version in
            let stats = version.statistics.counters
            let pool = version.batchStatistics
            let successes = stats.successes
            let batches: [JSONValue] = pool.batchCounts.indices.filter { pool.batchCounts[$0] > 0 }.map { size in
                let count = pool.batchCounts[size]
                let ns = size < pool.batchComputeNanoseconds.count ? pool.batchComputeNanoseconds[size] : 0
                return .object([
                    "batch_size": .integer(Int64(size)), "compute_input": duration(count, 0),
                    "compute_infer": duration(count, ns), "compute_output": duration(count, 0),
                ])
            }
            return .object([
                "name": .string(version.model),
                "version": .string(version.version),
                "last_inference": .unsigned(stats.lastInferenceMilliseconds),
                "inference_count": .unsigned(stats.inferences),
                "execution_count": .unsigned(pool.batches),
                "inference_stats": .object([
                    "success": duration(successes, stats.successNanoseconds),
                    "fail": duration(stats.failures, stats.failureNanoseconds),
                    "queue": duration(successes, stats.queueNanoseconds),
                    "compute_input": duration(successes, 0),
                    "compute_infer": duration(successes, stats.computeNanoseconds),
                    "compute_output": duration(successes, 0),
                ]),
                "batch_stats": .array(batches),
            ])
        }
        return .object(["model_stats": .array(items)])
    }

    // MARK: Helpers

    private func json(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("content-type", "application/json")], body: RESTJSON.encode(value))
    }

    /// 200 with the value (or an empty body for `nil`), or the error's status.
    private func answer(_ body: () throws(SwitchyardError) -> JSONValue?) -> HTTPResponse {
        do throws(SwitchyardError) {
            guard let value = try body() else { return HTTPResponse(status: 200) }
            return json(value)
        } catch {
            return Self.errorResponse(GRPCStatus(error), metadata: [])
        }
    }

    private func allowed(_ head: HTTPRequestHead, _ methods: [String], _ responder: any HTTPResponder) -> Bool {
        if methods.contains(head.method) { return true }
        var response = Self.errorResponse(
            status: 405,
            message:
                "method \(head.method) is not allowed on \(head.path); expected \(methods.joined(separator: " or "))",
            metadata: []
        )
        response.headers.append(("allow", methods.joined(separator: ", ")))
        responder.respond(response)
        return false
    }

    private func notFound(_ path: String) -> HTTPResponse {
        Self.errorResponse(
            status: 404,
            message: "no such endpoint \(path); expected /v2, /v2/health/live|ready, "
                + "/v2/models/{model}[/versions/{version}][/ready|config|stats|infer], /v2/repository/index, "
                + "/v2/repository/models/{model}/load|unload or /v2/systemsharedmemory|cudasharedmemory/...",
            metadata: []
        )
    }

    /// `{"error": message}` with `status`; `metadata` (the route trailer of an answered call) goes in headers.
    static func errorResponse(status: Int, message: String, metadata: [(name: String, value: String)]) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: metadata + [("content-type", "application/json")],
            body: RESTJSON.error(message)
        )
    }

    /// A gRPC status as the HTTP status Triton's HTTP endpoint gives the same failure.
    static func errorResponse(_ status: GRPCStatus, metadata: [(name: String, value: String)]) -> HTTPResponse {
        errorResponse(status: httpStatus(status.code), message: status.message, metadata: metadata)
    }

    /// Triton maps INVALID_ARG and UNSUPPORTED to 400, NOT_FOUND to 404, UNAVAILABLE to 503, INTERNAL to 500;
    /// the codes Triton has no HTTP answer for take the usual one (429 for shedding, 504 for deadlines).
    static func httpStatus(_ code: GRPCStatusCode) -> Int {
        switch code {
        case .ok: 200
        case .invalidArgument, .failedPrecondition, .outOfRange: 400
        case .unauthenticated: 401
        case .permissionDenied: 403
        case .notFound: 404
        case .alreadyExists, .aborted: 409
        case .resourceExhausted: 429
        case .cancelled: 499
        case .unimplemented: 501
        case .unavailable: 503
        case .deadlineExceeded: 504
        default: 500
        }
    }
}
