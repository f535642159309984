// Durable comparison records: a bounded queue drained by one writer thread into JSON Lines files
// (`comparisons-NNNNNN.jsonl`) rotated by size, keeping the newest `maxFiles`. Enqueueing never waits
// on the disk: a full queue drops the record, a failed write drops its batch, both counted. A failed write
// is cut back off the file, so every file holds whole lines only, and the writer keeps its file rather than
// rotating: a full disk must not turn into a stream of empty files that pushes the kept records out.

import Foundation
import Logging
import SwitchyardCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The writer thread and its queue.
final class RecordWriter: @unchecked Sendable {
    let directory: String
    private let maxFileBytes: Int
    private let maxFiles: Int
    private let queueCapacity: Int
    private let logger: Logger

    /// What the request path and the writer share.
    private struct Shared: Sendable {
        var queue: [ComparisonRecord] = []
        var closing = false
        var counters = SinkStatistics()
        var thread: pthread_t?
    }

    private let shared = ConditionLock(Shared())
    private let wake = MonotonicCondition()

    // Writer thread only.
    private var descriptor: Int32 = -1
    private var fileBytes = 0
    private var sequence = 0
    /// Records dropped by failed writes or opens since the last warning. A disk that stays full, or flaps
    /// near full, is logged at most once per `warningIntervalNanoseconds` (30 s), and its recovery once after each warning.
    private var droppedSinceWarning: UInt64 = 0
    private var lastWarning: MonotonicInstant?
    private var warned = false
    private let warningIntervalNanoseconds: UInt64 = 30_000_000_000

    init(directory: String, maxFileBytes: Int, maxFiles: Int, queueCapacity: Int, logger: Logger)
        throws(SwitchyardError)
    {
        self.directory = directory
        self.maxFileBytes = maxFileBytes
        self.maxFiles = max(1, maxFiles)
        self.queueCapacity = max(1, queueCapacity)
        self.logger = logger
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SwitchyardError(.failedPrecondition, "sink.directory '\(directory)': cannot create it: \(error)")
        }
        guard access(directory, W_OK) == 0 else {
            throw SwitchyardError(.failedPrecondition, "sink.directory '\(directory)': not writable")
        }
        sequence = existingFiles().last?.sequence ?? 0
        let thread = try startThread(name: "sy-sink-writer") { [self] in
            // Records are the comparison's durable copy, not part of any call: on a saturated machine the
            // writer yields to the request path, and a queue it cannot keep up with drops records (counted)
            // instead of taking CPU from primary calls.
            SystemInfo.lowerCurrentThreadPriority()
            run()
        }
        shared.withLock { $0.thread = thread }
    }

    /// Queues a record, or drops it when the queue is full or the writer has stopped.
    func enqueue(_ record: ComparisonRecord) {
        shared.withLock { shared in
            if shared.closing || shared.queue.count >= queueCapacity {
                shared.counters.droppedQueueFull += 1
            } else {
                shared.queue.append(record)
                wake.signal()
            }
        }
    }

    var statistics: SinkStatistics {
        shared.withLock { shared in
            var snapshot = shared.counters
            snapshot.queued = shared.queue.count
            return snapshot
        }
    }

    /// Writes what is queued, then stops the thread.
    func close() {
        let handle = shared.withLock { shared in
            defer { shared.thread = nil }
            shared.closing = true
            wake.signal()
            return shared.thread
        }
        if let handle { pthread_join(handle, nil) }
    }

    // MARK: Writer thread

    /// The writer's pause between batches; the queue holds far more than this many microseconds of
    /// records at any realistic rate.
    static let restMicroseconds: UInt32 = 10_000

    private func run() {
        var batch: [ComparisonRecord] = []
        var buffer: [UInt8] = []
        while true {
            let finished = shared.withLock(waitingOn: wake, while: { $0.queue.isEmpty && !$0.closing }) { shared in
                if shared.queue.isEmpty { return true }
                swap(&batch, &shared.queue)
                return false
            }
            if finished { break }

            var written = 0
            var failed = 0
            var errors = 0
            var bytes = 0
            var opened = 0
            var pending = 0
            buffer.removeAll(keepingCapacity: true)
            for record in batch {
                let line = RecordCoding.jsonLine(record)
                let used = fileBytes + buffer.count
                if descriptor >= 0 && used > 0 && used + line.count > maxFileBytes {
                    if flush(&buffer) {
                        written += pending
                        bytes += fileBytesDelta
                    } else {
                        failed += pending
                        errors += 1
                    }
                    pending = 0
                    closeFile()
                }
                if descriptor < 0 {
                    if openNextFile() {
                        opened += 1
                    } else {
                        failed += 1
                        errors += 1
                        continue
                    }
                }
                buffer.append(contentsOf: line)
                pending += 1
            }
            if pending > 0 {
                if flush(&buffer) {
                    written += pending
                    bytes += fileBytesDelta
                } else {
                    failed += pending
                    errors += 1
                }
            }
            batch.removeAll(keepingCapacity: true)
            noteOutcome(written: written, failed: failed)

            let rest = shared.withLock { shared in
                shared.counters.written += UInt64(written)
                shared.counters.droppedWriteFailed += UInt64(failed)
                shared.counters.writeErrors += UInt64(errors)
                shared.counters.bytesWritten += UInt64(bytes)
                shared.counters.filesOpened += UInt64(opened)
                return !shared.closing
            }
            // Records arrive one per mirrored call; resting between batches lets them gather, so the
            // writer wakes tens of times a second under load instead of once per record.
            if rest { usleep(Self.restMicroseconds) }
        }
        closeFile()
    }

    private var fileBytesDelta = 0

    /// Writes `buffer` to the current file. On failure (a full disk, an I/O error) whatever part of it reached
    /// the file is cut off again, so the file ends with a whole record and the next batch can append to it;
    /// only when that is impossible is the file closed, and the next batch opens a new one.
    private func flush(_ buffer: inout [UInt8]) -> Bool {
        fileBytesDelta = 0
        guard !buffer.isEmpty else { return true }
        guard descriptor >= 0 else { return false }
        let failure = buffer.withUnsafeBytes { writeFully(descriptor, $0) }
        let ok = failure == 0
        if ok {
            fileBytes += buffer.count
            fileBytesDelta = buffer.count
        } else {
            warn(
                "comparison records dropped: write failed; dropping (and counting) records until writes succeed",
                metadata: ["directory": "\(directory)", "error": "\(String(cString: strerror(failure)))"]
            )
            if ftruncate(descriptor, off_t(fileBytes)) != 0 { closeFile() }
        }
        buffer.removeAll(keepingCapacity: true)
        return ok
    }

    /// Logs a failure unless one was logged within `warningIntervalNanoseconds`.
    private func warn(_ message: Logger.Message, metadata: Logger.Metadata) {
        let now = MonotonicInstant.now()
        if let lastWarning, now.nanoseconds(since: lastWarning) < warningIntervalNanoseconds { return }
        lastWarning = now
        warned = true
        var metadata = metadata
        metadata["dropped_since_last_warning"] = "\(droppedSinceWarning)"
        logger.warning(message, metadata: metadata)
        droppedSinceWarning = 0
    }

    /// Counts failed records and logs the end of a run of failures that was warned about.
    private func noteOutcome(written: Int, failed: Int) {
        droppedSinceWarning += UInt64(failed)
        if failed == 0 && written > 0 && warned {
            logger.notice(
                "comparison records are written again",
                metadata: ["directory": "\(directory)", "dropped_since_last_warning": "\(droppedSinceWarning)"]
            )
            warned = false
            droppedSinceWarning = 0
        }
    }

    private func openNextFile() -> Bool {
        let path = "\(directory)/\(RecordWriter.fileName(sequence + 1))"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            warn(
                "comparison sink cannot open a file; dropping (and counting) records until it can",
                metadata: ["path": "\(path)", "error": "\(String(cString: strerror(errno)))"]
            )
            return false
        }
        sequence += 1
        descriptor = fd
        // A file of that name left by an earlier run is appended to.
        var status = stat()
        fileBytes = fstat(fd, &status) == 0 ? Int(status.st_size) : 0
        // Keep the newest `maxFiles`, this one included.
        let files = existingFiles()
        if files.count > maxFiles {
            for file in files.prefix(files.count - maxFiles) { unlink("\(directory)/\(file.name)") }
        }
        return true
    }

    private func closeFile() {
        if descriptor >= 0 { Glibc.close(descriptor) }
        descriptor = -1
        fileBytes = 0
    }

    static func fileName(_ sequence: Int) -> String {
        let digits = String(sequence)
        return "comparisons-" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".jsonl"
    }

    /// Record files in the directory, oldest first.
    private func existingFiles() -> [(name: String, sequence: Int)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (String, Int)? in
            guard name.hasPrefix("comparisons-"), name.hasSuffix(".jsonl") else { return nil }
            guard let number = Int(name.dropFirst("comparisons-".count).dropLast(".jsonl".count)) else { return nil }
            return (name, number)
        }.sorted { $0.1 < $1.1 }
    }
}

/// The JSON Lines form of a record.
///
/// `{"ts_ms":…,"request_id":"…","model":"…","primary_version":"…","shadow_version":"…",`
/// `"primary_latency_ns":…,"shadow_latency_ns":…,"primary_error":null|"…","shadow_error":null|"…",`
/// `"agreed":true|false|null,"max_abs_delta":…|null,`
/// `"outputs":[{"name":"…","argmax_agreement":…|null,"max_abs_delta":…,"mean_abs_delta":…}]}`
/// Numbers are printed in the shortest form that reads back to the same value; non-finite ones as null.
public enum RecordCoding {
    /// One record as a JSON object followed by a newline.
    public static func jsonLine(_ record: ComparisonRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        raw("{\"ts_ms\":", &out)
        raw(String(record.timestampMilliseconds), &out)
        raw(",\"request_id\":", &out)
        string(record.requestID, &out)
        raw(",\"model\":", &out)
        string(record.model, &out)
        raw(",\"primary_version\":", &out)
        string(record.primaryVersion, &out)
        raw(",\"shadow_version\":", &out)
        string(record.shadowVersion, &out)
        raw(",\"primary_latency_ns\":", &out)
        raw(String(record.primaryLatencyNanoseconds), &out)
        raw(",\"shadow_latency_ns\":", &out)
        raw(String(record.shadowLatencyNanoseconds), &out)
        raw(",\"primary_error\":", &out)
        optionalString(record.primaryError, &out)
        raw(",\"shadow_error\":", &out)
        optionalString(record.shadowError, &out)
        raw(",\"agreed\":", &out)
        raw(record.agreed.map { $0 ? "true" : "false" } ?? "null", &out)
        raw(",\"max_abs_delta\":", &out)
        number(record.maxAbsDelta, &out)
        raw(",\"outputs\":[", &out)
        for (index, output) in record.outputs.enumerated() {
            raw(index > 0 ? ",{\"name\":" : "{\"name\":", &out)
            string(output.name, &out)
            raw(",\"argmax_agreement\":", &out)
            number(output.argmaxAgreement, &out)
            raw(",\"max_abs_delta\":", &out)
            number(output.maxAbsDelta, &out)
            raw(",\"mean_abs_delta\":", &out)
            number(output.meanAbsDelta, &out)
            out.append(UInt8(ascii: "}"))
        }
        raw("]}\n", &out)
        return out
    }

    @inline(__always)
    private static func raw(_ text: StaticString, _ out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    @inline(__always)
    private static func raw(_ text: String, _ out: inout [UInt8]) { out.append(contentsOf: text.utf8) }

    private static func number(_ value: Double?, _ out: inout [UInt8]) {
        guard let value, value.isFinite else { return raw("null", &out) }
        raw(value.description, &out)
    }

    private static func optionalString(_ text: String?, _ out: inout [UInt8]) {
        if let text { string(text, &out) } else { raw("null", &out) }
    }

    private static func string(_ text: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"", &out)
            case UInt8(ascii: "\\"): raw("\\\\", &out)
            case UInt8(ascii: "\n"): raw("\\n", &out)
            case UInt8(ascii: "\r"): raw("\\r", &out)
            case UInt8(ascii: "\t"): raw("\\t", &out)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                raw("\\u00", &out)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
