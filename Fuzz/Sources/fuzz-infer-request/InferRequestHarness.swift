// libFuzzer harness for the ModelInfer request path (Sources/SwitchyardInference/InferRequest.swift).
//
// Input: the bytes of one gRPC message (no 5-byte prefix), as the front end hands it to the service. They go
// through what `InferenceService` does on an event loop for ModelInfer: protobuf-c decode into the bump
// allocator, the routing key lookup, and validation against the real digits model (models/digits/1). A request
// that validates is run through the model's engine and its response is encoded and decoded back. The same
// bytes are also answered as every control RPC's request message (ModelReady, ModelMetadata, ModelConfig,
// ModelStatistics, health Check, Feedback Report) by the real service over the same registry.

import CFuzzerDriver
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardHTTP2
import SwitchyardProto
import SwitchyardWorkers
import Synchronization

@testable import SwitchyardInference
@testable import SwitchyardModels

#if canImport(Glibc)
    import Glibc
#endif

/// The repository root, from this file's place in it (the harness is a development tool run from a checkout).
private let repositoryRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)  // Fuzz/Sources/fuzz-infer-request/InferRequestHarness.swift
    return parts.joined(separator: "/")
}()

private struct Fixture: @unchecked Sendable {
    let version: ModelVersion
    let engine: any InferenceEngine
    let executor: any EngineExecutor
    let service: InferenceService
}

/// The digits model as the server loads it. Its pool is never started: nothing here is queued.
private let fixture: Fixture = {
    do {
        let repository = ModelRepository(root: repositoryRoot + "/models")
        guard let digits = try repository.scan().first(where: { $0.name == "digits" }),
            let first = digits.versions.first
        else { fatalError("models/digits has no versions under \(repositoryRoot)") }
        let engine = try makeEngine(for: try ONNXModel(contentsOf: first.path))
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        let pool = WorkerPool(
            name: "digits:\(first.version)",
            engine: engine,
            configuration: digits.configuration,
            logger: logger
        )
        let version = ModelVersion(
            model: "digits",
            version: first.version,
            configuration: digits.configuration,
            pool: pool
        )
        let entry = ModelEntry(name: "digits", configuration: digits.configuration, versions: [version], failures: [:])
        let registry = ModelRegistry(entries: [entry], logger: logger)
        return Fixture(
            version: version,
            engine: engine,
            executor: engine.makeExecutor(),
            service: InferenceService(registry: registry)
        )
    } catch {
        fatalError("cannot load models/digits: \(error)")
    }
}()

/// Collects what the control RPCs answer (on the calling thread, RepositoryIndex from a task of its own).
private final class Responder: GRPCResponder {
    let answers = Atomic<Int>(0)
    var isCancelled: Bool { false }
    func send(message: [UInt8], metadata: [(name: String, value: String)]) { answers.add(1, ordering: .relaxed) }
    func fail(_ status: GRPCStatus, metadata: [(name: String, value: String)]) {
        precondition(!status.message.isEmpty, "a failed call must say why")
        answers.add(1, ordering: .relaxed)
    }
}

private func checkValidated(_ call: ValidatedInferCall) {
    let version = fixture.version
    let signature = version.signature
    precondition(call.rows >= 1 && call.rows <= max(1, version.configuration.maxBatchSize), "rows \(call.rows)")
    precondition(call.inputs.count == signature.inputs.count, "validated \(call.inputs.count) inputs")
    for (spec, values) in zip(signature.inputs, call.inputs) {
        precondition(values.count == call.rows * spec.elementsPerRow, "input '\(spec.name)' has \(values.count)")
    }
    precondition(call.outputIndices.allSatisfy(signature.outputs.indices.contains), "unknown output index")
    precondition(Set(call.outputIndices).count == call.outputIndices.count, "an output is returned twice")

    let inputs = call.inputs.map { values in
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        return buffer
    }
    let outputs = signature.outputs.map { spec in
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: call.rows * spec.elementsPerRow)
        buffer.initialize(repeating: 0)
        return buffer
    }
    defer { (inputs + outputs).forEach { $0.deallocate() } }
    do {
        try fixture.executor.run(
            inputs: inputs.map { UnsafeBufferPointer($0) },
            rows: call.rows,
            outputs: outputs
        )
    } catch {
        preconditionFailure("the digits model refused a validated call: \(error)")
    }
    let result = InferResult(
        modelName: version.model,
        modelVersion: version.version,
        id: call.id,
        rows: call.rows,
        outputs: call.returned(signature, outputs.map { ArraySlice($0) })
    )
    let encoded = InferResponseEncoder.encode(result)
    let decoded = encoded.withUnsafeBufferPointer {
        inference__model_infer_response__unpack(nil, $0.count, $0.baseAddress)
    }
    guard let decoded else { preconditionFailure("the encoded response does not decode") }
    defer { inference__model_infer_response__free_unpacked(decoded, nil) }
    precondition(decoded.pointee.n_outputs == result.outputs.count, "response has the wrong outputs")
    precondition(
        result.outputs.count == (call.outputIndices.isEmpty ? signature.outputs.count : call.outputIndices.count),
        "returned \(result.outputs.count) outputs"
    )
    precondition(swiftString(decoded.pointee.id) == call.id, "response id differs from the request's")
    _ = InferResponseEncoder.encodeStream(.success(result))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let message = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let validated: Result<ValidatedInferCall, SwitchyardError> = withBumpAllocator(capacity: 8192) { arena in
        Result { () throws(SwitchyardError) -> ValidatedInferCall in
            let request = try InferRequestDecoder.decode(message, arena: &arena).pointee
            _ = swiftString(request.model_name)
            _ = swiftString(request.model_version)
            _ = stringParameter("user", of: request)
            return try InferRequestValidator.validate(request, for: fixture.version)
        }
    }
    switch validated {
    case .success(let call):
        checkValidated(call)
    case .failure(let error):
        precondition(error.code == .invalidArgument, "refused with \(error.code), expected invalidArgument")
        precondition(!error.message.isEmpty, "a refusal must say why")
    }
    if case .failure(let error) = validated {
        _ = InferResponseEncoder.encodeStream(.failure(error))
    }

    let responder = Responder()
    let head = GRPCRequestHead(path: "", metadata: [("x-user-id", "fuzz")])
    for rpc in InferenceMethod.allCases where rpc != .modelInfer && rpc != .modelStreamInfer {
        let method = GRPCMethod(id: rpc.rawValue, kind: .unary)
        fixture.service.handle(message: message, method: method, head: head, responder: responder)
    }
    let expected = InferenceMethod.allCases.count - 2
    // RepositoryIndex answers from a task of its own (it reads the repository off the event loop): wait for it.
    var waitedMilliseconds = 0
    while responder.answers.load(ordering: .relaxed) < expected && waitedMilliseconds < 5000 {
        usleep(1000)
        waitedMilliseconds += 1
    }
    precondition(responder.answers.load(ordering: .relaxed) == expected, "a control RPC did not answer")
    return 0
}

/// libFuzzer's driver, started from this executable's entry point (SwiftPM names every executable's `main`).
@main
enum Harness {
    static func main() { exit(switchyard_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzOneInput)) }
}
