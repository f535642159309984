// Triton's small control RPCs that tritonclient and perf_analyzer call, answered with what Switchyard really has:
// CUDA shared memory (this server has no CUDA: nothing is registered, unregistering is a no-op, registering is
// refused), TraceSetting (no request tracing: trace_level OFF, which cannot be changed) and LogSettings (the
// process's log level, reported and changed through Triton's keys or Switchyard's own `log_level`).

import Logging
import SwitchyardCore
import SwitchyardModels
import SwitchyardProto

/// Answers the CUDA shared-memory, TraceSetting and LogSettings RPCs for one service.
struct SettingsRPCs {
    let service: InferenceService

    /// Answers `rpc` with a serialized response.
    /// - Throws: `invalidArgument` for a malformed request or a setting this server cannot take;
    ///   `failedPrecondition` for a CUDA region.
    func answer(_ rpc: InferenceMethod, message: UnsafeRawBufferPointer) throws(SwitchyardError) -> [UInt8] {
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        switch rpc {
        case .cudaSharedMemoryStatus:
            guard let request = inference__cuda_shared_memory_status_request__unpack(nil, message.count, bytes) else {
                throw malformed("CudaSharedMemoryStatusRequest", message)
            }
            defer { inference__cuda_shared_memory_status_request__free_unpacked(request, nil) }
            let name = swiftString(request.pointee.name)
            guard name.isEmpty else {
                throw .notFound(
                    "no CUDA shared-memory region '\(SwitchyardError.echo(name))': this server has no CUDA, so none "
                        + "is ever registered"
                )
            }
            var response = Inference__CudaSharedMemoryStatusResponse()
            inference__cuda_shared_memory_status_response__init(&response)
            return packMessage(&response)
        case .cudaSharedMemoryRegister:
            guard let request = inference__cuda_shared_memory_register_request__unpack(nil, message.count, bytes)
            else { throw malformed("CudaSharedMemoryRegisterRequest", message) }
            let name = swiftString(request.pointee.name)
            inference__cuda_shared_memory_register_request__free_unpacked(request, nil)
            throw SwitchyardError(
                .failedPrecondition,
                "cannot register CUDA shared-memory region '\(SwitchyardError.echo(name))': this server has no CUDA; "
                    + "use system shared memory (SystemSharedMemoryRegister) or send tensors in the request"
            )
        case .cudaSharedMemoryUnregister:
            guard let request = inference__cuda_shared_memory_unregister_request__unpack(nil, message.count, bytes)
            else { throw malformed("CudaSharedMemoryUnregisterRequest", message) }
            inference__cuda_shared_memory_unregister_request__free_unpacked(request, nil)
            // Nothing is ever registered, so any name ("" = all) is unregistered already.
            var response = Inference__CudaSharedMemoryUnregisterResponse()
            inference__cuda_shared_memory_unregister_response__init(&response)
            return packMessage(&response)
        case .traceSetting:
            return try traceSetting(message)
        case .logSettings:
            return try logSettings(message)
        default:
            throw .internal("\(rpc.path) is not a settings RPC")
        }
    }

    private func malformed(_ type: String, _ message: UnsafeRawBufferPointer) -> SwitchyardError {
        .invalidArgument("malformed \(type): \(message.count) bytes are not a valid protobuf encoding of it")
    }

    // MARK: TraceSetting

    /// Switchyard does not trace requests the way Triton does (payload capture carries W3C `traceparent` ids
    /// instead), so the one setting is `trace_level: [OFF]`; a request may restate it, or clear a setting (an
    /// empty value list), and nothing else.
    private func traceSetting(_ message: UnsafeRawBufferPointer) throws(SwitchyardError) -> [UInt8] {
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard let request = inference__trace_setting_request__unpack(nil, message.count, bytes) else {
            throw malformed("TraceSettingRequest", message)
        }
        defer { inference__trace_setting_request__free_unpacked(request, nil) }
        let model = swiftString(request.pointee.model_name)
        if !model.isEmpty, service.registry.model(named: model) == nil {
            throw .notFound("model_name: unknown model '\(SwitchyardError.echo(model))'")
        }
        for index in 0..<request.pointee.n_settings {
            guard let entry = request.pointee.settings[index] else { continue }
            let key = swiftString(entry.pointee.key)
            var values: [String] = []
            if let value = entry.pointee.value {
                for slot in 0..<value.pointee.n_value { values.append(swiftString(value.pointee.value[slot])) }
            }
            if values.isEmpty || (key == "trace_level" && values == ["OFF"]) { continue }
            throw .invalidArgument(
                "settings['\(SwitchyardError.echo(key))']: this server does not trace requests, so tracing settings "
                    + "cannot change; expected only trace_level [OFF], got [\(values.map { SwitchyardError.echo($0) }.joined(separator: ", "))]"
            )
        }
        return withBumpAllocator { arena in
            let value = arena.allocate(Inference__TraceSettingResponse__SettingValue.self, count: 1)
            inference__trace_setting_response__setting_value__init(value)
            value.pointee.n_value = 1
            value.pointee.value = arena.array([Optional(arena.string("OFF"))])
            let entry = arena.allocate(Inference__TraceSettingResponse__SettingsEntry.self, count: 1)
            inference__trace_setting_response__settings_entry__init(entry)
            entry.pointee.key = arena.string("trace_level")
            entry.pointee.value = value
            var response = Inference__TraceSettingResponse()
            inference__trace_setting_response__init(&response)
            response.n_settings = 1
            response.settings = arena.array([Optional(entry)])
            return packMessage(&response)
        }
    }

    // MARK: LogSettings

    /// One LogSettings value.
    enum LogValue: Equatable {
        case bool(Bool), uint32(UInt32), string(String)
    }

    /// Reports the log settings and applies the request's changes first. Triton's keys map onto the one level:
    /// `log_verbose_level` ≥ 2 is trace, 1 is debug; else the lowest of info, warning, error that is on (none on
    /// is critical). `log_level` sets the level by its swift-log name and wins over the Triton keys. Logs go to
    /// standard error in one format, so `log_file` must stay "" and `log_format` "default".
    private func logSettings(_ message: UnsafeRawBufferPointer) throws(SwitchyardError) -> [UInt8] {
        let bytes = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard let request = inference__log_settings_request__unpack(nil, message.count, bytes) else {
            throw malformed("LogSettingsRequest", message)
        }
        var changes: [String: LogValue] = [:]
        var unset: [String] = []
        for index in 0..<request.pointee.n_settings {
            guard let entry = request.pointee.settings[index] else { continue }
            let key = swiftString(entry.pointee.key)
            guard let value = entry.pointee.value else {
                unset.append(key)
                continue
            }
            switch value.pointee.parameter_choice_case {
            case INFERENCE__LOG_SETTINGS_REQUEST__SETTING_VALUE__PARAMETER_CHOICE_BOOL_PARAM:
                changes[key] = .bool(value.pointee.bool_param != 0)
            case INFERENCE__LOG_SETTINGS_REQUEST__SETTING_VALUE__PARAMETER_CHOICE_UINT32_PARAM:
                changes[key] = .uint32(value.pointee.uint32_param)
            case INFERENCE__LOG_SETTINGS_REQUEST__SETTING_VALUE__PARAMETER_CHOICE_STRING_PARAM:
                changes[key] = .string(swiftString(value.pointee.string_param))
            default:
                unset.append(key)
            }
        }
        inference__log_settings_request__free_unpacked(request, nil)
        if let key = unset.sorted().first {
            throw .invalidArgument("settings['\(SwitchyardError.echo(key))']: expected a value, got none")
        }
        let current = service.logLevel?.level ?? .info
        let level = try Self.level(applying: changes, to: current)
        if level != current {
            guard let logLevel = service.logLevel else {
                throw SwitchyardError(.failedPrecondition, "this server's log level cannot be changed while it runs")
            }
            logLevel.level = level
        }
        return Self.encode(Self.report(level))
    }

    /// The settings reported at `level`, in key order.
    static func report(_ level: Logger.Level) -> [(String, LogValue)] {
        [
            ("log_error", .bool(level <= .error)),
            ("log_file", .string("")),
            ("log_format", .string("default")),
            ("log_info", .bool(level <= .info)),
            ("log_level", .string(level.rawValue)),
            ("log_verbose_level", .uint32(level == .trace ? 2 : level == .debug ? 1 : 0)),
            ("log_warning", .bool(level <= .warning)),
        ]
    }

    /// The level after `changes`; only a key whose value differs from what `current` reports changes anything,
    /// so restating the reported settings keeps the level (notice stays notice).
    /// - Throws: `invalidArgument` naming an unknown key, a value of the wrong type, or a value that cannot be.
    static func level(applying changes: [String: LogValue], to current: Logger.Level) throws(SwitchyardError)
        -> Logger.Level
    {
        let reported = Dictionary(uniqueKeysWithValues: report(current))
        var flags: (info: Bool, warning: Bool, error: Bool, verbose: UInt32) = (
            current <= .info, current <= .warning, current <= .error, current == .trace ? 2 : current == .debug ? 1 : 0
        )
        var tritonChanged = false
        var named: Logger.Level?
        for (key, value) in changes.sorted(by: { $0.key < $1.key }) {
            let field = "settings['\(SwitchyardError.echo(key))']"
            switch (key, value) {
            case ("log_info", .bool(let on)): flags.info = on
            case ("log_warning", .bool(let on)): flags.warning = on
            case ("log_error", .bool(let on)): flags.error = on
            case ("log_verbose_level", .uint32(let verbose)): flags.verbose = verbose
            case ("log_file", .string(let file)):
                guard file.isEmpty else {
                    throw .invalidArgument(
                        "\(field): this server logs to standard error; expected '', got '\(SwitchyardError.echo(file))'"
                    )
                }
            case ("log_format", .string(let format)):
                guard format == "default" else {
                    throw .invalidArgument(
                        "\(field): expected 'default' (the one format), got '\(SwitchyardError.echo(format))'"
                    )
                }
            case ("log_level", .string(let name)):
                guard let level = Logger.Level(rawValue: name) else {
                    throw .invalidArgument(
                        "\(field): expected one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), "
                            + "got '\(SwitchyardError.echo(name))'"
                    )
                }
                named = level
            case ("log_info", _), ("log_warning", _), ("log_error", _):
                throw .invalidArgument("\(field): expected bool_param")
            case ("log_verbose_level", _):
                throw .invalidArgument("\(field): expected uint32_param")
            case ("log_file", _), ("log_format", _), ("log_level", _):
                throw .invalidArgument("\(field): expected string_param")
            default:
                throw .invalidArgument(
                    "\(field): unknown setting; expected one of \(report(current).map(\.0).joined(separator: ", "))"
                )
            }
            if reported[key] != value { tritonChanged = tritonChanged || key != "log_level" }
        }
        if let named { return named }
        guard tritonChanged else { return current }
        if flags.verbose >= 2 { return .trace }
        if flags.verbose == 1 { return .debug }
        if flags.info { return .info }
        if flags.warning { return .warning }
        if flags.error { return .error }
        return .critical
    }

    private static func encode(_ settings: [(String, LogValue)]) -> [UInt8] {
        withBumpAllocator { arena in
            let entries = arena.allocate(Inference__LogSettingsResponse__SettingsEntry.self, count: settings.count)
            let values = arena.allocate(Inference__LogSettingsResponse__SettingValue.self, count: settings.count)
            let pointers = arena.allocate(
                UnsafeMutablePointer<Inference__LogSettingsResponse__SettingsEntry>?.self,
                count: settings.count
            )
            for (index, (key, value)) in settings.enumerated() {
                inference__log_settings_response__setting_value__init(values + index)
                switch value {
                case .bool(let on):
                    values[index].parameter_choice_case =
                        INFERENCE__LOG_SETTINGS_RESPONSE__SETTING_VALUE__PARAMETER_CHOICE_BOOL_PARAM
                    values[index].bool_param = on ? 1 : 0
                case .uint32(let number):
                    values[index].parameter_choice_case =
                        INFERENCE__LOG_SETTINGS_RESPONSE__SETTING_VALUE__PARAMETER_CHOICE_UINT32_PARAM
                    values[index].uint32_param = number
                case .string(let text):
                    values[index].parameter_choice_case =
                        INFERENCE__LOG_SETTINGS_RESPONSE__SETTING_VALUE__PARAMETER_CHOICE_STRING_PARAM
                    values[index].string_param = arena.string(text)
                }
                inference__log_settings_response__settings_entry__init(entries + index)
                entries[index].key = arena.string(key)
                entries[index].value = values + index
                pointers[index] = entries + index
            }
            var response = Inference__LogSettingsResponse()
            inference__log_settings_response__init(&response)
            response.n_settings = settings.count
            response.settings = pointers
            return packMessage(&response)
        }
    }
}
