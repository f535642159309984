// Decoding and validating a ModelInferRequest: protobuf-c bytes in, a checked call with contiguous FP32
// inputs out, each converted once from the datatype the model declares (raw little-endian bytes or the typed
// `contents` field the protocol maps that datatype to). Every rejection names the tensor, what was expected and
// what came.

import SwitchyardCore
import SwitchyardModels
import SwitchyardProto

#if canImport(Glibc)
    import Glibc
#endif

/// Decoding of ModelInferRequest bytes into protobuf-c structures owned by a bump allocator.
enum InferRequestDecoder {
    /// Decodes `bytes`; the result lives as long as `arena`.
    /// - Throws: `invalidArgument` when the bytes are not a valid ModelInferRequest.
    static func decode(
        _ bytes: UnsafeRawBufferPointer,
        arena: inout BumpAllocator
    ) throws(SwitchyardError) -> UnsafeMutablePointer<Inference__ModelInferRequest> {
        let decoded = withProtobufAllocator(&arena) { allocator in
            inference__model_infer_request__unpack(
                allocator,
                bytes.count,
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
            )
        }
        guard let decoded else {
            throw .invalidArgument(
                "malformed ModelInferRequest: \(bytes.count) bytes are not a valid protobuf encoding of it"
            )
        }
        return decoded
    }
}

/// Request parameters Switchyard acts on; every other parameter is accepted and ignored.
struct InferParameters {
    /// The `timeout` parameter, microseconds.
    var timeoutMicroseconds: Int64?
    /// Scheduling priority for the pool, higher first. Triton's `priority` parameter counts the other
    /// way (1 is the most urgent level, 0 means the default), so level p > 0 becomes 1000 - p and the
    /// default stays 0, below every explicit level.
    var priority: Int = 0
}

/// A validated inference call: inputs copied out of the request in signature order.
struct ValidatedInferCall {
    var id: String
    var rows: Int
    var inputs: [[Float]]
    /// Indices into the signature's outputs the request named, in the order to return them; empty when it named
    /// none (every output, in signature order, without an index array per call). Read it through `returned`.
    var outputIndices: [Int]
    var parameters: InferParameters
    /// Requested outputs the client placed in system shared memory, by signature output index.
    var outputPlacements: [Int: SharedMemoryPlacement] = [:]

    /// Where each returned output goes (in `returned` order): a shared-memory placement or `nil` for the
    /// response; empty when no output goes to shared memory.
    var returnedPlacements: [SharedMemoryPlacement?] {
        outputPlacements.isEmpty ? [] : outputIndices.map { outputPlacements[$0] }
    }

    /// The outputs to return, each with its values from `values` (one entry per signature output, in order).
    func returned<Values>(_ signature: ModelSignature, _ values: [Values]) -> [(spec: TensorSpec, values: Values)] {
        outputIndices.isEmpty
            ? zip(signature.outputs, values).map { ($0, $1) }
            : outputIndices.map { (signature.outputs[$0], values[$0]) }
    }
}

enum InferRequestValidator {
    /// Checks a decoded request against a model version's signature and copies its inputs.
    /// - Throws: `invalidArgument` naming the tensor, the expectation and what came.
    /// - Parameter regions: the registered system shared-memory regions tensors may name.
    static func validate(
        _ message: Inference__ModelInferRequest,
        for version: ModelVersion,
        regions: SharedMemoryRegions? = nil
    ) throws(SwitchyardError) -> ValidatedInferCall {
        let signature = version.signature
        var label: String { "model '\(version.model)' version \(version.version)" }

        // Map request inputs to signature inputs, rejecting duplicates and unknown names.
        var slots = [Int?](repeating: nil, count: signature.inputs.count)
        for index in 0..<message.n_inputs {
            guard let tensor = message.inputs[index] else { continue }
            guard let slot = signature.inputs.firstIndex(where: { cStringEquals(tensor.pointee.name, $0.name) }) else {
                let name = swiftString(tensor.pointee.name)
                let known = signature.inputs.map(\.name).joined(separator: ", ")
                throw .invalidArgument("unexpected input '\(name)': \(label) takes \(known)")
            }
            if slots[slot] != nil {
                throw .invalidArgument("input '\(signature.inputs[slot].name)' appears more than once")
            }
            slots[slot] = index
        }
        for (slot, spec) in signature.inputs.enumerated() where slots[slot] == nil {
            throw .invalidArgument("missing input '\(spec.name)': \(label) expects \(spec.name) (\(spec))")
        }
        // Inputs in system shared memory have no raw entry: raw_input_contents holds the others, in request order.
        var inputPlacements: [SharedMemoryPlacement?] = []
        for index in 0..<message.n_inputs {
            guard let tensor = message.inputs[index], tensor.pointee.n_parameters > 0 else { continue }
            let placement = try SharedMemoryPlacement.parse(
                count: tensor.pointee.n_parameters,
                entry: {
                    (tensor.pointee.parameters[$0]?.pointee.key, tensor.pointee.parameters[$0]?.pointee.value?.pointee)
                },
                regions: regions,
                tensor: "input '\(swiftString(tensor.pointee.name))'"
            )
            if let placement {
                if inputPlacements.isEmpty { inputPlacements = Array(repeating: nil, count: message.n_inputs) }
                inputPlacements[index] = placement
            }
        }
        let placedInputs = inputPlacements.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        let useRaw = message.n_raw_input_contents > 0
        if useRaw && message.n_raw_input_contents != message.n_inputs - placedInputs {
            throw .invalidArgument(
                "raw_input_contents has \(message.n_raw_input_contents) entries for \(message.n_inputs - placedInputs) "
                    + "inputs not in shared memory; expected one entry per such input"
            )
        }

        let maxRows = max(1, version.configuration.maxBatchSize)
        var rows = -1
        var inputs: [[Float]] = []
        inputs.reserveCapacity(signature.inputs.count)
        for (slot, spec) in signature.inputs.enumerated() {
            let index = slots[slot]!
            let tensor = message.inputs[index]!.pointee
            // Check datatype and shape without building strings or arrays; describe them only on failure.
            var got: String {
                let shape = (0..<tensor.n_shape).map { Int(truncatingIfNeeded: tensor.shape[$0]) }
                return "\(swiftString(tensor.datatype)) \(Shape.format(shape))"
            }
            guard cStringEquals(tensor.datatype, spec.dataType.rawValue), let elementSize = spec.dataType.elementSize
            else {
                // BYTES is never a model's datatype (signatures declare numeric tensors only): say so by name.
                let unsupported = cStringEquals(tensor.datatype, "BYTES") ? " (BYTES tensors are not supported)" : ""
                throw .invalidArgument("input '\(spec.name)': expected \(spec), got \(got)\(unsupported)")
            }
            guard tensor.n_shape == spec.shape.count, tensor.n_shape > 0 else {
                throw .invalidArgument("input '\(spec.name)': expected \(spec), got \(got)")
            }
            var count = 1
            var overflow = false
            for dimension in 0..<tensor.n_shape {
                let value = tensor.shape[dimension]
                let expected = spec.shape[dimension]
                guard value >= 0, dimension == 0 || expected < 0 || value == Int64(expected) else {
                    throw .invalidArgument("input '\(spec.name)': expected \(spec), got \(got)")
                }
                let (product, didOverflow) = count.multipliedReportingOverflow(by: Int(truncatingIfNeeded: value))
                overflow = overflow || didOverflow || value > Int64(Int32.max)
                count = product
            }
            let batch = Int(tensor.shape[0])
            guard batch >= 1 else {
                throw .invalidArgument("input '\(spec.name)': expected at least one row, got \(got)")
            }
            guard batch <= maxRows else {
                throw .invalidArgument(
                    "input '\(spec.name)': batch of \(batch) rows exceeds \(label)'s max_batch_size \(maxRows)"
                )
            }
            if rows >= 0 && batch != rows {
                throw .invalidArgument(
                    "input '\(spec.name)': batch of \(batch) rows differs from the other inputs' \(rows) rows"
                )
            }
            rows = batch
            let byteCount = count.multipliedReportingOverflow(by: elementSize)
            guard !overflow, !byteCount.overflow, !count.multipliedReportingOverflow(by: 4).overflow else {
                throw .invalidArgument("input '\(spec.name)': \(got) is too large")
            }
            var shapeText: String { Shape.format((0..<tensor.n_shape).map { Int(tensor.shape[$0]) }) }
            let dataType = spec.dataType
            let values: [Float]
            if let placement = inputPlacements.isEmpty ? nil : inputPlacements[index] {
                guard placement.byteSize == byteCount.partialValue else {
                    throw .invalidArgument(
                        "input '\(spec.name)': shared_memory_byte_size \(placement.byteSize) does not match the "
                            + "\(byteCount.partialValue) bytes of \(dataType.rawValue) data for shape \(shapeText)"
                    )
                }
                // The placement holds the region, so it stays open while this reads it. FP32 lands straight in the
                // array; other datatypes are staged and widened.
                var failure: SwitchyardError?
                values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    initialized = 0
                    guard count > 0 else { return }
                    do throws(SwitchyardError) {
                        if dataType == .fp32 {
                            try placement.read(
                                into: UnsafeMutableRawBufferPointer(buffer),
                                tensor: "input '\(spec.name)'"
                            )
                        } else {
                            let staging = UnsafeMutableRawBufferPointer.allocate(
                                byteCount: byteCount.partialValue,
                                alignment: 16
                            )
                            defer { staging.deallocate() }
                            try placement.read(into: staging, tensor: "input '\(spec.name)'")
                            TensorConversion.toFloat(
                                dataType,
                                from: UnsafeRawPointer(staging.baseAddress!),
                                into: buffer
                            )
                        }
                        initialized = count
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
            } else if useRaw {
                let rawIndex =
                    inputPlacements.isEmpty ? index : index - inputPlacements[..<index].count(where: { $0 != nil })
                let raw = message.raw_input_contents[rawIndex]
                guard raw.len == byteCount.partialValue else {
                    throw .invalidArgument(
                        "input '\(spec.name)': expected \(byteCount.partialValue) bytes of raw \(dataType.rawValue) "
                            + "data for shape \(shapeText), got \(raw.len)"
                    )
                }
                // Every element is written by the conversion (FP32: one memcpy), so the array starts uninitialized.
                values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    if count > 0 { TensorConversion.toFloat(dataType, from: raw.data, into: buffer) }
                    initialized = count
                }
            } else {
                values = try typedValues(tensor.contents?.pointee, spec: spec, count: count, shape: shapeText)
            }
            inputs.append(values)
        }

        var outputIndices: [Int] = []
        var outputPlacements: [Int: SharedMemoryPlacement] = [:]
        for index in 0..<message.n_outputs {
            guard let requested = message.outputs[index] else { continue }
            guard let found = signature.outputs.firstIndex(where: { cStringEquals(requested.pointee.name, $0.name) })
            else {
                let name = swiftString(requested.pointee.name)
                let known = signature.outputs.map(\.name).joined(separator: ", ")
                throw .invalidArgument("unknown output '\(name)': \(label) produces \(known)")
            }
            if !outputIndices.contains(found) { outputIndices.append(found) }
            guard requested.pointee.n_parameters > 0 else { continue }
            let spec = signature.outputs[found]
            let placement = try SharedMemoryPlacement.parse(
                count: requested.pointee.n_parameters,
                entry: {
                    (
                        requested.pointee.parameters[$0]?.pointee.key,
                        requested.pointee.parameters[$0]?.pointee.value?.pointee
                    )
                },
                regions: regions,
                tensor: "output '\(spec.name)'"
            )
            guard let placement else { continue }
            let needed = max(rows, 1) * spec.elementsPerRow * (spec.dataType.elementSize ?? 4)
            guard placement.byteSize >= needed else {
                throw .invalidArgument(
                    "output '\(spec.name)': shared_memory_byte_size \(placement.byteSize) is too small; "
                        + "\(max(rows, 1)) rows of \(spec) need \(needed) bytes"
                )
            }
            outputPlacements[found] = placement
        }

        return ValidatedInferCall(
            id: swiftString(message.id),
            rows: max(rows, 1),
            inputs: inputs,
            outputIndices: outputIndices,
            parameters: try parameters(of: message),
            outputPlacements: outputPlacements
        )
    }

    private static func schedulingPriority(level: Int) -> Int { level == 0 ? 0 : 1000 - min(level, 999) }

    /// An input's values from the typed `contents` field its datatype travels in, as FP32.
    /// - Throws: `invalidArgument` when the values are missing, in another field, too few or too many, or out of
    ///   the datatype's range; FP16 and BF16, which have no typed field, only ever come raw.
    private static func typedValues(
        _ contents: Inference__InferTensorContents?,
        spec: TensorSpec,
        count: Int,
        shape: @autoclosure () -> String
    ) throws(SwitchyardError) -> [Float] {
        let dataType = spec.dataType
        guard let field = TypedContentsField(carrying: dataType) else {
            if let contents, let other = TypedContentsField.populated(in: contents) {
                throw .invalidArgument(
                    "input '\(spec.name)': \(dataType.rawValue) has no typed contents field; expected its data in "
                        + "raw_input_contents, got contents.\(other.rawValue)"
                )
            }
            throw .invalidArgument("input '\(spec.name)': no data; expected raw_input_contents")
        }
        guard let contents, field.count(in: contents) > 0 || count == 0 else {
            if let contents, let other = TypedContentsField.populated(in: contents, except: field) {
                throw .invalidArgument(
                    "input '\(spec.name)': \(dataType.rawValue) data belongs in contents.\(field.rawValue), "
                        + "got \(other.rawValue)"
                )
            }
            throw .invalidArgument(
                "input '\(spec.name)': no data; expected raw_input_contents or contents.\(field.rawValue)"
            )
        }
        guard field.count(in: contents) == count else {
            throw .invalidArgument(
                "input '\(spec.name)': expected \(count) values in contents.\(field.rawValue) for shape \(shape()), "
                    + "got \(field.count(in: contents))"
            )
        }
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { buffer throws(SwitchyardError) in
            try TensorConversion.toFloat(dataType, contents: contents, into: buffer, input: spec.name)
        }
        return values
    }

    private static func parameters(of message: Inference__ModelInferRequest) throws(SwitchyardError) -> InferParameters
    {
        var result = InferParameters()
        for index in 0..<message.n_parameters {
            guard let entry = message.parameters[index], let value = entry.pointee.value?.pointee else { continue }
            switch swiftString(entry.pointee.key) {
            case "timeout":
                switch value.parameter_choice_case {
                case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
                    result.timeoutMicroseconds = value.int64_param
                case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
                    result.timeoutMicroseconds = Int64(clamping: value.uint64_param)
                default:
                    throw .invalidArgument("parameter 'timeout': expected an int64 number of microseconds")
                }
                if let timeout = result.timeoutMicroseconds, timeout < 0 {
                    throw .invalidArgument("parameter 'timeout': expected ≥ 0 microseconds, got \(timeout)")
                }
            case "priority":
                switch value.parameter_choice_case {
                case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
                    result.priority = schedulingPriority(level: Int(clamping: value.uint64_param))
                case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
                    guard value.int64_param >= 0 else {
                        throw .invalidArgument("parameter 'priority': expected ≥ 0, got \(value.int64_param)")
                    }
                    result.priority = schedulingPriority(level: Int(value.int64_param))
                default:
                    throw .invalidArgument("parameter 'priority': expected an integer")
                }
            default:
                continue
            }
        }
        return result
    }
}

/// Whether a C string from a decoded message equals `text`, without the temporary C copy (an allocation for
/// short strings) that passing a `String` to `strcmp` makes.
@inline(__always)
func cStringEquals(_ cString: UnsafePointer<CChar>?, _ text: String) -> Bool {
    guard let cString else { return false }
    var index = 0
    for byte in text.utf8 {
        // A shorter C string ends in 0, which differs from every byte of `text`: the loop stops there.
        guard UInt8(bitPattern: cString[index]) == byte else { return false }
        index += 1
    }
    return cString[index] == 0
}
