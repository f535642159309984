// Captured payloads on disk, written by the monitor's thread only: one JSON Lines record per call
// (`calls-NNNNNN.jsonl`, rotated by size) and the same tensors as .npy batches (`<tensor>-NNNNNN.npy`, one
// `[rows, width]` float32 matrix per tensor every `npy_batch_calls` calls), each record naming the .npy batch
// and first row that hold its values. The newest `max_files` of each kind are kept. A failed write drops
// what it held and is counted; it never reaches a call.

import CSwitchyardJSON
import Foundation
public import SwitchyardCore

#if canImport(Glibc)
    import Glibc
#endif

/// One captured call, as the request path hands it over (values are shared, not copied, until written).
@MemberwiseInit
public struct CapturedCall: Sendable {
    /// The request's id.
    public var id: String
    /// Model and version that served it.
    public var model: String
    /// The version.
    public var version: String
    /// Why that version served it (`default`, `explicit`, `canary`, …).
    public var route: String
    /// The routing table's generation.
    public var generation: UInt64
    /// Queue + compute time in nanoseconds.
    public var latencyNanoseconds: UInt64
    /// The W3C trace id from the call's `traceparent`, or empty.
    public var traceID: String
    /// Wall-clock milliseconds since 1970 at completion.
    public var timestampMilliseconds: UInt64
    /// Rows in the call.
    public var rows: Int
    /// Input names and per-row widths, in signature order.
    public var inputNames: [String]
    /// Input values, `rows × width` each (empty when not captured).
    public var inputs: [[Float]]
    /// Output names, in signature order.
    public var outputNames: [String]
    /// Output values, `rows × width` each (empty when not captured).
    public var outputs: [[Float]]
}

/// Counters of a capture writer.
public struct CaptureStatistics: Sendable, Hashable {
    /// Records written to JSON Lines.
    public var written: UInt64 = 0
    /// Records lost to failed writes.
    public var droppedWriteFailed: UInt64 = 0
    /// Bytes written (JSON Lines and .npy).
    public var bytesWritten: UInt64 = 0
    /// Files started.
    public var filesOpened: UInt64 = 0
    /// Failed writes, opens or removals.
    public var writeErrors: UInt64 = 0

    /// Zeroed counters.
    public init() {}
}

/// Writes one capture directory. Not thread-safe: one thread owns it.
public final class CaptureWriter {
    /// The directory.
    public let directory: String
    private let maxFileBytes: Int
    private let maxFiles: Int
    private let npyBatchCalls: Int
    private let redact: Set<String>
    /// Counters so far.
    public private(set) var statistics = CaptureStatistics()

    private var descriptor: Int32 = -1
    private var fileBytes = 0
    private var sequence = 0
    private var npySequence = 0
    private var npyCalls = 0
    private var npyRows = 0
    /// Per tensor (`inputs.name` / `outputs.name`): its width and the rows buffered for the next .npy batch.
    /// The buffers in the order their tensors first appeared; kept (and their storage) across batches.
    private var npyBuffers: [NPYBuffer] = []
    /// Each tensor's buffer index, by the tensor's raw name (`inputs.x`).
    private var npyIndex: [String: Int] = [:]

    /// One tensor's rows for the next .npy batch.
    private struct NPYBuffer {
        /// The file-safe tensor name.
        var tensor: String
        var width: Int
        var values: [Float] = []
        /// Whether the tensor has rows in the current batch (one absent from a batch gets no file).
        var present = false
    }

    /// Opens `directory` (created if needed).
    /// - Throws: `failedPrecondition` naming the directory when it cannot be created or written.
    public init(configuration: CaptureConfiguration, directory: String) throws(SwitchyardError) {
        self.directory = directory
        maxFileBytes = configuration.maxFileMegabytes << 20
        maxFiles = configuration.maxFiles
        npyBatchCalls = configuration.npyBatchCalls
        redact = Set(configuration.redact)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SwitchyardError(.failedPrecondition, "capture.directory '\(directory)': cannot create it: \(error)")
        }
        guard access(directory, W_OK) == 0 else {
            throw SwitchyardError(
                .failedPrecondition,
                "capture.directory '\(directory)': expected a writable directory"
            )
        }
        sequence = Self.sequences(in: directory, prefix: "calls-", suffix: ".jsonl").last ?? 0
        npySequence = Self.sequences(in: directory, prefix: "", suffix: ".npy").last ?? 0
    }

    /// Test seam: the largest JSON Lines file size in bytes.
    init(directory: String, maxFileBytes: Int, maxFiles: Int, npyBatchCalls: Int, redact: [String]) {
        self.directory = directory
        self.maxFileBytes = maxFileBytes
        self.maxFiles = maxFiles
        self.npyBatchCalls = npyBatchCalls
        self.redact = Set(redact)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Writes `calls`: JSON Lines now, tensors into the current .npy batch (written when it holds
    /// `npy_batch_calls` calls, or at `flush()`).
    public func write(_ calls: some Sequence<CapturedCall>) {
        var buffer: [UInt8] = []
        var pending = 0
        for call in calls {
            let npyRow = npyRows
            let batch = npySequence + 1
            for (name, values) in zip(call.inputNames, call.inputs) where !redact.contains(name) {
                append(tensor: "inputs.\(name)", values: values, rows: call.rows)
            }
            for (name, values) in zip(call.outputNames, call.outputs) {
                append(tensor: "outputs.\(name)", values: values, rows: call.rows)
            }
            npyRows += call.rows
            npyCalls += 1
            Self.jsonLine(call, redact: redact, npyBatch: batch, npyRow: npyRow, into: &buffer)
            pending += 1
            if buffer.count >= 1 << 20 {
                flushLines(&buffer, records: pending)
                pending = 0
            }
            if npyCalls >= npyBatchCalls { flushNPY() }
        }
        flushLines(&buffer, records: pending)
    }

    /// Writes the partial .npy batch, if any.
    public func flush() {
        if npyCalls > 0 { flushNPY() }
    }

    private func append(tensor rawName: String, values: [Float], rows: Int) {
        let width = rows > 0 ? values.count / rows : 0
        let index: Int
        if let known = npyIndex[rawName] {
            index = known
        } else {
            index = npyBuffers.count
            npyIndex[rawName] = index
            npyBuffers.append(NPYBuffer(tensor: Self.fileSafe(rawName), width: width))
        }
        if !npyBuffers[index].present {
            // First rows of this tensor in the batch: the batch's earlier rows (calls without it) are NaN.
            npyBuffers[index].present = true
            npyBuffers[index].width = width
            npyBuffers[index].values.append(contentsOf: repeatElement(.nan, count: npyRows * width))
        }
        if npyBuffers[index].width == width {
            npyBuffers[index].values.append(contentsOf: values)
        } else {
            // A tensor whose width changed between calls (variable shapes) pads with NaN in this batch.
            npyBuffers[index].values.append(contentsOf: repeatElement(.nan, count: rows * npyBuffers[index].width))
        }
    }

    private func flushLines(_ buffer: inout [UInt8], records: Int) {
        guard records > 0 else { return }
        if descriptor < 0 || fileBytes >= maxFileBytes {
            if descriptor >= 0 { close(descriptor) }
            sequence += 1
            descriptor = open(
                path("calls-" + Self.sixDigits(sequence) + ".jsonl"),
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                0o644
            )
            fileBytes = 0
            guard descriptor >= 0 else {
                statistics.writeErrors += 1
                statistics.droppedWriteFailed += UInt64(records)
                buffer.removeAll(keepingCapacity: true)
                return
            }
            statistics.filesOpened += 1
            prune(prefix: "calls-", suffix: ".jsonl")
        }
        if writeAll(descriptor, buffer) {
            statistics.written += UInt64(records)
            statistics.bytesWritten += UInt64(buffer.count)
            fileBytes += buffer.count
        } else {
            statistics.writeErrors += 1
            statistics.droppedWriteFailed += UInt64(records)
            // Keep whole lines only: cut a partial write back off.
            _ = ftruncate(descriptor, off_t(fileBytes))
        }
        buffer.removeAll(keepingCapacity: true)
    }

    private func flushNPY() {
        npySequence += 1
        for index in npyBuffers.indices where npyBuffers[index].present {
            let width = npyBuffers[index].width
            let missing = npyRows * width - npyBuffers[index].values.count
            if missing > 0 { npyBuffers[index].values.append(contentsOf: repeatElement(.nan, count: missing)) }
            let tensor = npyBuffers[index].tensor
            // The header, then the values as they lie in memory (little-endian float32, what the header says).
            let header = NPY.header(rows: npyRows, columns: width)
            let name = path(tensor + "-" + Self.sixDigits(npySequence) + ".npy")
            let fd = open(name + ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            var saved = false
            if fd >= 0 {
                let written = npyBuffers[index].values.withUnsafeBytes { values in
                    header.withUnsafeBytes { writeAll(fd, $0) } && NPY.withLittleEndian(values) { writeAll(fd, $0) }
                }
                saved = close(fd) == 0 && written && rename(name + ".tmp", name) == 0
                if !saved { unlink(name + ".tmp") }
            }
            if saved {
                statistics.bytesWritten += UInt64(header.count + npyBuffers[index].values.count * 4)
                statistics.filesOpened += 1
            } else {
                statistics.writeErrors += 1
            }
            prune(prefix: tensor + "-", suffix: ".npy")
            // The storage stays for the next batch.
            npyBuffers[index].values.removeAll(keepingCapacity: true)
            npyBuffers[index].present = false
        }
        npyCalls = 0
        npyRows = 0
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { writeAll(fd, $0) } }

    private func writeAll(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// `n` zero-padded to six digits.
    static func sixDigits(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// `name` with anything but letters, digits, `.`, `_` and `-` replaced by `_`, so a tensor name never leaves
    /// the directory.
    static func fileSafe(_ name: String) -> String {
        String(
            name.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") ? $0 : "_" }
        )
    }

    /// Deletes all but the newest `maxFiles` files `prefix` + six digits + `suffix`.
    private func prune(prefix: String, suffix: String) {
        let sequences = Self.sequences(in: directory, prefix: prefix, suffix: suffix, exact: true)
        for old in sequences.dropLast(maxFiles) {
            let name = path(prefix + Self.sixDigits(old) + suffix)
            if unlink(name) != 0 { statistics.writeErrors += 1 }
        }
    }

    /// The sequence numbers of files `prefix…NNNNNN suffix` in `directory`, ascending. Without `exact`, any name
    /// ending in `-NNNNNN suffix` counts.
    static func sequences(in directory: String, prefix: String, suffix: String, exact: Bool = false) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasSuffix(suffix), name.hasPrefix(prefix) else { return nil }
            let stem = name.dropLast(suffix.count)
            guard stem.count >= 6 else { return nil }
            if exact, stem.count != prefix.count + 6 { return nil }
            if !exact, stem.count > 6, stem.dropLast(6).last != "-" { return nil }
            return Int(stem.suffix(6))
        }.sorted()
    }

    /// One JSON Lines record: call metadata, then `inputs` and `outputs` as `{name: {"shape": [rows, width],
    /// "data": [...]}}` (redacted inputs: shape and `"redacted": true`), then where its rows are in the .npy batch.
    static func jsonLine(_ call: CapturedCall, redact: Set<String>, npyBatch: Int, npyRow: Int, into out: inout [UInt8])
    {
        out.append(contentsOf: "{\"id\":".utf8)
        string(call.id, &out)
        out.append(contentsOf: ",\"model\":".utf8)
        string(call.model, &out)
        out.append(contentsOf: ",\"version\":".utf8)
        string(call.version, &out)
        out.append(contentsOf: ",\"route\":".utf8)
        string(call.route, &out)
        out.append(contentsOf: ",\"generation\":\(call.generation),\"latency_ns\":\(call.latencyNanoseconds)".utf8)
        out.append(contentsOf: ",\"trace_id\":".utf8)
        string(call.traceID, &out)
        out.append(contentsOf: ",\"timestamp_ms\":\(call.timestampMilliseconds),\"rows\":\(call.rows)".utf8)
        for (key, names, tensors) in [
            ("inputs", call.inputNames, call.inputs), ("outputs", call.outputNames, call.outputs),
        ]
        where !tensors.isEmpty {
            out.append(contentsOf: ",\"\(key)\":{".utf8)
            for (index, (name, values)) in zip(names, tensors).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                string(name, &out)
                let width = call.rows > 0 ? values.count / call.rows : 0
                out.append(contentsOf: ":{\"shape\":[\(call.rows),\(width)]".utf8)
                if key == "inputs" && redact.contains(name) {
                    out.append(contentsOf: ",\"redacted\":true}".utf8)
                    continue
                }
                out.append(contentsOf: ",\"data\":[".utf8)
                floats(values, &out)
                out.append(contentsOf: "]}".utf8)
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: ",\"npy_batch\":\(npyBatch),\"npy_row\":\(npyRow)}\n".utf8)
    }

    /// `values` as JSON numbers separated by commas, each in its shortest round-trip form; NaN and infinities (JSON
    /// has none) as null.
    private static func floats(_ values: [Float], _ out: inout [UInt8]) {
        let start = out.count
        let room = values.count * Int(SY_JSON_FLOAT_BYTES)
        out.append(contentsOf: repeatElement(0, count: room))
        let written = values.withUnsafeBufferPointer { values in
            out.withUnsafeMutableBytes { bytes in
                sy_json_write_floats(
                    values.baseAddress,
                    values.count,
                    bytes.baseAddress!.advanced(by: start).assumingMemoryBound(to: CChar.self)
                )
            }
        }
        out.removeLast(room - written)
    }

    private static func string(_ text: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
