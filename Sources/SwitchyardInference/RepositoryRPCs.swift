// Triton's model-control RPCs, which Seldon Core 2's agent, KServe ModelMesh's Triton adapter and tritonclient
// drive a runtime with: RepositoryIndex lists every model version on disk with its state; RepositoryModelLoad and
// RepositoryModelUnload load and unload a model's versions through the admin plane's audited path and token policy.
// Requests are decoded on the event loop; the work (a directory scan, loading an ONNX file, draining a pool) runs
// off it and answers through the responder.

import SwitchyardCore
import SwitchyardHTTP2
import SwitchyardModels
import SwitchyardProto
import Synchronization

/// Answers RepositoryIndex, RepositoryModelLoad and RepositoryModelUnload for one service.
struct RepositoryRPCs {
    let service: InferenceService

    /// What a load or unload request asks for, decoded while its bytes are valid.
    struct ChangeRequest: Sendable {
        var model: String
        var parameters: [String: Parameter]
    }

    /// A `ModelRepositoryParameter` value, reduced to what the checks need.
    enum Parameter: Sendable {
        case bool(Bool), int64(Int64), string(String), bytes(Int), unset
    }

    /// Decodes the request, then does the work off the event loop and answers through `responder`.
    /// - Throws: `invalidArgument` for a malformed request or one asking for what this server does not do.
    func handle(
        _ rpc: InferenceMethod,
        message: UnsafeRawBufferPointer,
        head: GRPCRequestHead,
        responder: any GRPCResponder
    ) throws(SwitchyardError) {
        switch rpc {
        case .repositoryIndex:
            try index(readyOnly: try decodeIndexRequest(message)) { result in
                switch result {
                case .success(let entries): responder.send(message: Self.encodeIndex(entries))
                case .failure(let error): responder.fail(GRPCStatus(error))
                }
            }
        case .repositoryModelLoad, .repositoryModelUnload:
            let load = rpc == .repositoryModelLoad
            let request = try decodeChangeRequest(message, load: load)
            try change(
                request.model,
                load: load,
                parameters: request.parameters,
                authorization: head.metadata("authorization"),
                peerIsLoopback: head.peerIsLoopback,
                reason: load ? "RepositoryModelLoad over gRPC" : "RepositoryModelUnload over gRPC"
            ) { refusal in
                if let refusal {
                    responder.fail(refusal)
                } else {
                    responder.send(message: Self.emptyResponse(load: load))
                }
            }
        default:
            throw .internal("\(rpc.path) is not a repository RPC")
        }
    }

    // MARK: The steps both protocols share once a request is read

    /// Lists the repository off the event loop (within the in-flight bound) and hands the entries to `answer`.
    /// - Throws: `resourceExhausted` when `maxInFlight` calls are running.
    func index(
        readyOnly: Bool,
        answer: @escaping @Sendable (Result<[RepositoryIndexEntry], SwitchyardError>) -> Void
    ) throws(SwitchyardError) {
        try admit()
        let registry = service.registry
        Task {
            defer { service.repositoryCallsInFlight.subtract(1, ordering: .relaxed) }
            answer(
                Result { () throws(SwitchyardError) -> [RepositoryIndexEntry] in
                    try registry.repositoryIndex().filter { !readyOnly || $0.state == .ready }
                }
            )
        }
    }

    /// Loads or unloads `model`: its parameters checked, the admin plane's token policy applied to the caller, then
    /// the audited work off the event loop (within the in-flight bound). `answer` gets `nil` once it is done, or
    /// the refusal: the token policy's (UNAUTHENTICATED, PERMISSION_DENIED), at once, or the work's failure.
    /// - Throws: a refused parameter, model control missing (no admin plane), or `maxInFlight` calls running.
    func change(
        _ model: String,
        load: Bool,
        parameters: [String: Parameter],
        authorization: String?,
        peerIsLoopback: Bool,
        reason: String,
        answer: @escaping @Sendable (GRPCStatus?) -> Void
    ) throws(SwitchyardError) {
        try Self.checkParameters(parameters, load: load)
        guard let control = service.modelControl else {
            throw SwitchyardError(
                .failedPrecondition,
                "model control is not enabled on this server: it runs without the admin plane"
            )
        }
        let actor: String
        switch control.authorizeChange(authorization: authorization, peerIsLoopback: peerIsLoopback) {
        case .allowed(let who): actor = who
        case .unauthenticated(let message): return answer(GRPCStatus(.unauthenticated, message))
        case .permissionDenied(let message): return answer(GRPCStatus(.permissionDenied, message))
        }
        try admit()
        let registry = service.registry
        Task {
            defer { service.repositoryCallsInFlight.subtract(1, ordering: .relaxed) }
            do throws(SwitchyardError) {
                if load {
                    try Self.load(model, registry: registry, control: control, actor: actor, reason: reason)
                } else {
                    try await Self.unload(model, registry: registry, control: control, actor: actor, reason: reason)
                }
                answer(nil)
            } catch {
                answer(GRPCStatus(error))
            }
        }
    }

    /// Repository calls that may run at once: each scans the repository or loads a model off the event loop, so
    /// a flood of them is refused instead of queuing without bound. They block the Swift concurrency thread they
    /// run on, so they are kept below the size of that pool on small machines (one thread per core).
    static let maxInFlight = 4

    /// Counts one call in flight, or refuses it when `maxInFlight` are.
    /// - Throws: `resourceExhausted` saying so.
    func admit() throws(SwitchyardError) {
        let (_, admitted) = service.repositoryCallsInFlight.add(1, ordering: .relaxed)
        guard admitted <= Self.maxInFlight else {
            service.repositoryCallsInFlight.subtract(1, ordering: .relaxed)
            throw SwitchyardError(
                .resourceExhausted,
                "\(Self.maxInFlight) repository calls are in flight (RepositoryIndex, RepositoryModelLoad/Unload); "
                    + "retry once they finish"
            )
        }
    }

    // MARK: The work

    /// Loads every version of `model` on disk that is not loaded yet; versions already loaded stay as they are
    /// (loading a loaded model succeeds, as the control planes that call this expect).
    static func load(
        _ model: String,
        registry: ModelRegistry,
        control: any ModelControl,
        actor: String,
        reason: String
    ) throws(SwitchyardError) {
        let onDisk = try registry.repositoryVersions(of: model)
        let loaded = Set(registry.model(named: model)?.versions.map(\.version) ?? [])
        var failures: [SwitchyardError] = []
        for version in onDisk where !loaded.contains(version) {
            do throws(SwitchyardError) {
                try control.loadVersion(model: model, version: version, actor: actor, reason: reason)
            } catch {
                // Loaded concurrently by someone else: the outcome asked for holds.
                if error.code == .failedPrecondition,
                    registry.model(named: model)?.versions.contains(where: {
                        $0.version == version
                    }) == true
                {
                    continue
                }
                failures.append(error)
            }
        }
        guard let first = failures.first else { return }
        throw SwitchyardError(
            first.code,
            "model '\(SwitchyardError.echo(model))': " + failures.map(\.message).joined(separator: "; ")
        )
    }

    /// Unloads every loaded version of `model`.
    static func unload(
        _ model: String,
        registry: ModelRegistry,
        control: any ModelControl,
        actor: String,
        reason: String
    ) async throws(SwitchyardError) {
        guard let entry = registry.model(named: model), !entry.versions.isEmpty else {
            let known = registry.models.filter { !$0.versions.isEmpty }.map(\.name).joined(separator: ", ")
            throw .notFound(
                "model '\(SwitchyardError.echo(model))' is not loaded; loaded models: \(known.isEmpty ? "none" : known)"
            )
        }
        for version in entry.versions.reversed() {
            try await control.unloadVersion(model: model, version: version.version, actor: actor, reason: reason)
        }
    }

    /// Refuses parameters this server cannot honour, naming them: models come from the repository on disk, so
    /// Triton's `config` and `file:` overrides are not taken; `unload_dependents` (unload) is accepted, since
    /// no model here depends on another.
    static func checkParameters(_ parameters: [String: Parameter], load: Bool) throws(SwitchyardError) {
        for (key, value) in parameters.sorted(by: { $0.key < $1.key }) {
            if !load, key == "unload_dependents" {
                guard case .bool = value else {
                    throw .invalidArgument("parameters['unload_dependents']: expected bool_param")
                }
                continue
            }
            if key == "config" || key.hasPrefix("file:") {
                throw .invalidArgument(
                    "parameters['\(SwitchyardError.echo(key))']: overriding a model's configuration or files on load "
                        + "is not supported; models load from the repository on disk (<model>/config.yaml, "
                        + "<model>/<version>/model.onnx)"
                )
            }
            throw .invalidArgument(
                "parameters['\(SwitchyardError.echo(key))']: unknown parameter; expected "
                    + (load ? "none" : "only 'unload_dependents'")
            )
        }
    }

    // MARK: Decoding and encoding

    private func decodeIndexRequest(_ message: UnsafeRawBufferPointer) throws(SwitchyardError) -> Bool {
        guard
            let request = inference__repository_index_request__unpack(
                nil,
                message.count,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            )
        else {
            throw .invalidArgument(
                "malformed RepositoryIndexRequest: \(message.count) bytes are not a valid protobuf encoding of it"
            )
        }
        defer { inference__repository_index_request__free_unpacked(request, nil) }
        try Self.checkRepositoryName(swiftString(request.pointee.repository_name))
        return request.pointee.ready != 0
    }

    private func decodeChangeRequest(
        _ message: UnsafeRawBufferPointer,
        load: Bool
    ) throws(SwitchyardError) -> ChangeRequest {
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let rpc = load ? "RepositoryModelLoadRequest" : "RepositoryModelUnloadRequest"
        // The load and unload requests share one layout (1 repository_name, 2 model_name, 3 parameters).
        guard let request = inference__repository_model_load_request__unpack(nil, message.count, bytes) else {
            throw .invalidArgument("malformed \(rpc): \(message.count) bytes are not a valid protobuf encoding of it")
        }
        defer { inference__repository_model_load_request__free_unpacked(request, nil) }
        try Self.checkRepositoryName(swiftString(request.pointee.repository_name))
        let model = swiftString(request.pointee.model_name)
        guard !model.isEmpty else { throw .invalidArgument("model_name: expected a model name, got ''") }
        var parameters: [String: Parameter] = [:]
        for index in 0..<request.pointee.n_parameters {
            guard let entry = request.pointee.parameters[index] else { continue }
            let key = swiftString(entry.pointee.key)
            var value = Parameter.unset
            if let parameter = entry.pointee.value {
                switch parameter.pointee.parameter_choice_case {
                case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_BOOL_PARAM:
                    value = .bool(parameter.pointee.bool_param != 0)
                case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
                    value = .int64(parameter.pointee.int64_param)
                case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_STRING_PARAM:
                    value = .string(swiftString(parameter.pointee.string_param))
                case INFERENCE__MODEL_REPOSITORY_PARAMETER__PARAMETER_CHOICE_BYTES_PARAM:
                    value = .bytes(parameter.pointee.bytes_param.len)
                default:
                    value = .unset
                }
            }
            parameters[key] = value
        }
        return ChangeRequest(model: model, parameters: parameters)
    }

    /// Switchyard serves one repository, so a request may name none.
    private static func checkRepositoryName(_ name: String) throws(SwitchyardError) {
        guard name.isEmpty else {
            throw .invalidArgument(
                "repository_name: this server serves one model repository; expected '', got '\(SwitchyardError.echo(name))'"
            )
        }
    }

    private static func encodeIndex(_ entries: [RepositoryIndexEntry]) -> [UInt8] {
        withBumpAllocator { arena in
            let items = arena.allocate(Inference__RepositoryIndexResponse__ModelIndex.self, count: entries.count)
            let pointers = arena.allocate(
                UnsafeMutablePointer<Inference__RepositoryIndexResponse__ModelIndex>?.self,
                count: entries.count
            )
            for (index, entry) in entries.enumerated() {
                inference__repository_index_response__model_index__init(items + index)
                items[index].name = arena.string(entry.model)
                items[index].version = arena.string(entry.version)
                items[index].state = arena.string(entry.state.rawValue)
                items[index].reason = arena.string(entry.reason)
                pointers[index] = items + index
            }
            var response = Inference__RepositoryIndexResponse()
            inference__repository_index_response__init(&response)
            response.n_models = entries.count
            response.models = pointers
            return packMessage(&response)
        }
    }

    private static func emptyResponse(load: Bool) -> [UInt8] {
        if load {
            var response = Inference__RepositoryModelLoadResponse()
            inference__repository_model_load_response__init(&response)
            return packMessage(&response)
        }
        var response = Inference__RepositoryModelUnloadResponse()
        inference__repository_model_unload_response__init(&response)
        return packMessage(&response)
    }
}
