// The non-inference RPCs: liveness, readiness, metadata, Triton's ModelConfig and ModelStatistics, and
// grpc.health.v1 — each decodes its request with protobuf-c and answers from the registry.

import SwitchyardCore
import SwitchyardModels
import SwitchyardProto
import Synchronization

/// Answers control RPCs for one service.
struct ControlRPCs {
    let service: InferenceService

    /// The platform string reported in metadata and config.
    static let platform = "switchyard_onnx"

    /// Answers `rpc` with a serialized response.
    /// - Throws: `invalidArgument` for a malformed request, `notFound` for unknown models.
    func answer(_ rpc: InferenceMethod, message: UnsafeRawBufferPointer) throws(SwitchyardError) -> [UInt8] {
        let outcome = withBumpAllocator { arena in
            Result { () throws(SwitchyardError) -> [UInt8] in try answer(rpc, message: message, arena: &arena) }
        }
        return try outcome.get()
    }

    private func answer(
        _ rpc: InferenceMethod,
        message: UnsafeRawBufferPointer,
        arena: inout BumpAllocator
    ) throws(SwitchyardError) -> [UInt8] {
        switch rpc {
        case .serverLive:
            var response = Inference__ServerLiveResponse()
            inference__server_live_response__init(&response)
            response.live = 1
            return packMessage(&response)
        case .serverReady:
            var response = Inference__ServerReadyResponse()
            inference__server_ready_response__init(&response)
            response.ready = service.isReady ? 1 : 0
            return packMessage(&response)
        case .modelReady:
            let (name, version) = try decodeNameVersion(message, rpc: "ModelReadyRequest")
            var response = Inference__ModelReadyResponse()
            inference__model_ready_response__init(&response)
            response.ready = (try? service.registry.resolve(model: name, version: version)) != nil ? 1 : 0
            return packMessage(&response)
        case .serverMetadata:
            var response = Inference__ServerMetadataResponse()
            inference__server_metadata_response__init(&response)
            response.name = arena.string(InferenceService.serverName)
            response.version = arena.string(InferenceService.serverVersion)
            let extensions = [
                "statistics", "model_configuration", "model_repository", "model_repository(unload_dependents)",
                "system_shared_memory", "logging",
            ]
            response.n_extensions = extensions.count
            response.extensions = arena.array(extensions.map { Optional(arena.string($0)) })
            return packMessage(&response)
        case .modelMetadata:
            let (name, version) = try decodeNameVersion(message, rpc: "ModelMetadataRequest")
            return try modelMetadata(name: name, version: version, arena: &arena)
        case .modelConfig:
            let (name, version) = try decodeNameVersion(message, rpc: "ModelConfigRequest")
            return try modelConfig(name: name, version: version, arena: &arena)
        case .modelStatistics:
            let (name, version) = try decodeNameVersion(message, rpc: "ModelStatisticsRequest")
            return try modelStatistics(name: name, version: version, arena: &arena)
        case .healthCheck:
            return try healthCheck(message, arena: &arena)
        case .modelInfer, .modelStreamInfer, .feedbackReport, .repositoryIndex, .repositoryModelLoad,
            .repositoryModelUnload, .systemSharedMemoryStatus, .systemSharedMemoryRegister,
            .systemSharedMemoryUnregister, .cudaSharedMemoryStatus, .cudaSharedMemoryRegister,
            .cudaSharedMemoryUnregister,
            .traceSetting, .logSettings:
            throw .internal("\(rpc.path) is not answered here")
        }
    }

    /// Decodes the (name = 1, version = 2) request shared by ModelReady/Metadata/Config/Statistics.
    private func decodeNameVersion(
        _ message: UnsafeRawBufferPointer,
        rpc: String
    ) throws(SwitchyardError) -> (String, String) {
        // ModelReadyRequest, ModelMetadataRequest, ModelConfigRequest and ModelStatisticsRequest share one layout.
        guard
            let request = inference__model_metadata_request__unpack(
                nil,
                message.count,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            )
        else {
            throw .invalidArgument("malformed \(rpc): \(message.count) bytes are not a valid protobuf encoding of it")
        }
        defer { inference__model_metadata_request__free_unpacked(request, nil) }
        return (swiftString(request.pointee.name), swiftString(request.pointee.version))
    }

    /// The version a request names (or the default) and the versions a response lists: all of the model's when
    /// the request names none, else just that one.
    private func resolveVersions(
        name: String,
        version: String
    ) throws(SwitchyardError) -> (entry: ModelEntry, chosen: ModelVersion, listed: [ModelVersion]) {
        let chosen = try service.registry.resolve(model: name, version: version)
        guard let entry = service.registry.model(named: name) else {
            throw .notFound("unknown model '\(name)'")
        }
        return (entry, chosen, version.isEmpty ? entry.versions : [chosen])
    }

    private func modelMetadata(name: String, version: String, arena: inout BumpAllocator) throws(SwitchyardError)
        -> [UInt8]
    {
        let (entry, chosen, versions) = try resolveVersions(name: name, version: version)
        let signature = chosen.signature
        var response = Inference__ModelMetadataResponse()
        inference__model_metadata_response__init(&response)
        response.name = arena.string(entry.name)
        response.n_versions = versions.count
        response.versions = arena.array(versions.map { Optional(arena.string($0.version)) })
        response.platform = arena.string(Self.platform)
        func tensors(
            _ specs: [TensorSpec]
        ) -> UnsafeMutablePointer<UnsafeMutablePointer<Inference__ModelMetadataResponse__TensorMetadata>?> {
            let items = arena.allocate(Inference__ModelMetadataResponse__TensorMetadata.self, count: specs.count)
            let pointers = arena.allocate(
                UnsafeMutablePointer<Inference__ModelMetadataResponse__TensorMetadata>?.self,
                count: specs.count
            )
            for (index, spec) in specs.enumerated() {
                inference__model_metadata_response__tensor_metadata__init(items + index)
                items[index].name = arena.string(spec.name)
                items[index].datatype = arena.string(spec.dataType.rawValue)
                items[index].n_shape = spec.shape.count
                items[index].shape = arena.array(spec.shape.map(Int64.init))
                pointers[index] = items + index
            }
            return pointers
        }
        response.n_inputs = signature.inputs.count
        response.inputs = tensors(signature.inputs)
        response.n_outputs = signature.outputs.count
        response.outputs = tensors(signature.outputs)
        return packMessage(&response)
    }

    private func modelConfig(name: String, version: String, arena: inout BumpAllocator) throws(SwitchyardError)
        -> [UInt8]
    {
        let chosen = try service.registry.resolve(model: name, version: version)
        let batched = chosen.configuration.maxBatchSize > 0
        func dims(_ spec: TensorSpec) -> [Int64] {
            batched ? spec.shape.dropFirst().map(Int64.init) : [1] + spec.shape.dropFirst().map(Int64.init)
        }
        let config = arena.allocate(Inference__ModelConfig.self, count: 1)
        inference__model_config__init(config)
        config.pointee.name = arena.string(chosen.model)
        config.pointee.platform = arena.string(Self.platform)
        config.pointee.backend = arena.string("switchyard")
        config.pointee.max_batch_size = Int32(clamping: chosen.configuration.maxBatchSize)
        func tensors<Item: ConfigTensor>(_ specs: [TensorSpec]) -> UnsafeMutablePointer<UnsafeMutablePointer<Item>?> {
            let items = arena.allocate(Item.self, count: specs.count)
            let pointers = arena.allocate(UnsafeMutablePointer<Item>?.self, count: specs.count)
            for (index, spec) in specs.enumerated() {
                Item.initialize(items + index)
                items[index].name = arena.string(spec.name)
                items[index].data_type = configDataType(spec.dataType)
                let d = dims(spec)
                items[index].n_dims = d.count
                items[index].dims = arena.array(d)
                pointers[index] = items + index
            }
            return pointers
        }
        config.pointee.n_input = chosen.signature.inputs.count
        config.pointee.input = tensors(chosen.signature.inputs)
        config.pointee.n_output = chosen.signature.outputs.count
        config.pointee.output = tensors(chosen.signature.outputs)
        if batched {
            let batching = arena.allocate(Inference__ModelDynamicBatching.self, count: 1)
            inference__model_dynamic_batching__init(batching)
            config.pointee.scheduling_choice_case = INFERENCE__MODEL_CONFIG__SCHEDULING_CHOICE_DYNAMIC_BATCHING
            config.pointee.dynamic_batching = batching
        }
        var response = Inference__ModelConfigResponse()
        inference__model_config_response__init(&response)
        response.config = config
        return packMessage(&response)
    }

    /// Triton's model-config enum value for a datatype (TYPE_BOOL … TYPE_BF16), which perf_analyzer and
    /// tritonclient read to build inputs of the right type.
    private func configDataType(_ dataType: DataType) -> Inference__DataType {
        Inference__DataType(rawValue: UInt32(dataType.modelConfigNumber))
    }

    private func modelStatistics(name: String, version: String, arena: inout BumpAllocator) throws(SwitchyardError)
        -> [UInt8]
    {
        var versions: [ModelVersion] = []
        if name.isEmpty {
            versions = service.registry.models.flatMap(\.versions)
        } else {
            versions = try resolveVersions(name: name, version: version).listed
        }
        func duration(count: UInt64, ns: UInt64) -> UnsafeMutablePointer<Inference__StatisticDuration> {
            let item = arena.allocate(Inference__StatisticDuration.self, count: 1)
            inference__statistic_duration__init(item)
            item.pointee.count = count
            item.pointee.ns = ns
            return item
        }
        let items = arena.allocate(Inference__ModelStatistics.self, count: versions.count)
        let pointers = arena.allocate(UnsafeMutablePointer<Inference__ModelStatistics>?.self, count: versions.count)
        for (index, version) in versions.enumerated() {
            let stats = version.statistics.counters
            let pool = version.batchStatistics
            let item = items + index
            inference__model_statistics__init(item)
            item.pointee.name = arena.string(version.model)
            item.pointee.version = arena.string(version.version)
            item.pointee.last_inference = stats.lastInferenceMilliseconds
            item.pointee.inference_count = stats.inferences
            item.pointee.execution_count = pool.batches
            let inference = arena.allocate(Inference__InferStatistics.self, count: 1)
            inference__infer_statistics__init(inference)
            let successes = stats.successes
            inference.pointee.success = duration(count: successes, ns: stats.successNanoseconds)
            inference.pointee.fail = duration(count: stats.failures, ns: stats.failureNanoseconds)
            // perf_analyzer requires the three compute counts to agree: each counts successful calls.
            inference.pointee.queue = duration(count: successes, ns: stats.queueNanoseconds)
            inference.pointee.compute_input = duration(count: successes, ns: 0)
            inference.pointee.compute_infer = duration(count: successes, ns: stats.computeNanoseconds)
            inference.pointee.compute_output = duration(count: successes, ns: 0)
            let sizes = pool.batchCounts.indices.filter { pool.batchCounts[$0] > 0 }
            let batchItems = arena.allocate(Inference__InferBatchStatistics.self, count: sizes.count)
            let batchPointers = arena.allocate(
                UnsafeMutablePointer<Inference__InferBatchStatistics>?.self,
                count: sizes.count
            )
            for (slot, size) in sizes.enumerated() {
                let batch = batchItems + slot
                inference__infer_batch_statistics__init(batch)
                batch.pointee.batch_size = UInt64(size)
                let count = pool.batchCounts[size]
                let ns = size < pool.batchComputeNanoseconds.count ? pool.batchComputeNanoseconds[size] : 0
                batch.pointee.compute_input = duration(count: count, ns: 0)
                batch.pointee.compute_infer = duration(count: count, ns: ns)
                batch.pointee.compute_output = duration(count: count, ns: 0)
                batchPointers[slot] = batch
            }
            item.pointee.n_batch_stats = sizes.count
            item.pointee.batch_stats = batchPointers
            item.pointee.inference_stats = inference
            pointers[index] = item
        }
        var response = Inference__ModelStatisticsResponse()
        inference__model_statistics_response__init(&response)
        response.n_model_stats = versions.count
        response.model_stats = pointers
        return packMessage(&response)
    }

    private func healthCheck(_ message: UnsafeRawBufferPointer, arena: inout BumpAllocator) throws(SwitchyardError)
        -> [UInt8]
    {
        guard
            let request = grpc__health__v1__health_check_request__unpack(
                nil,
                message.count,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self)
            )
        else {
            throw .invalidArgument(
                "malformed HealthCheckRequest: \(message.count) bytes are not a valid protobuf encoding of it"
            )
        }
        defer { grpc__health__v1__health_check_request__free_unpacked(request, nil) }
        let name = swiftString(request.pointee.service)
        let serving: Bool
        switch name {
        case "", "inference.GRPCInferenceService":
            serving = service.isReady
        default:
            guard let entry = service.registry.model(named: name) else {
                throw .notFound(
                    "unknown health-check service '\(name)'; expected '', 'inference.GRPCInferenceService' or a model name"
                )
            }
            serving = entry.isReady && service.isReady
        }
        var response = Grpc__Health__V1__HealthCheckResponse()
        grpc__health__v1__health_check_response__init(&response)
        response.status =
            serving
            ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
        return packMessage(&response)
    }
}

/// ModelConfig's ModelInput and ModelOutput, which describe a tensor with the same fields.
private protocol ConfigTensor {
    /// Sets a message to its defaults.
    static func initialize(_ message: UnsafeMutablePointer<Self>)
    var name: UnsafeMutablePointer<CChar>! { get set }
    var data_type: Inference__DataType { get set }
    var n_dims: Int { get set }
    var dims: UnsafeMutablePointer<Int64>! { get set }
}

extension Inference__ModelInput: ConfigTensor {
    static func initialize(_ message: UnsafeMutablePointer<Self>) { inference__model_input__init(message) }
}

extension Inference__ModelOutput: ConfigTensor {
    static func initialize(_ message: UnsafeMutablePointer<Self>) { inference__model_output__init(message) }
}
