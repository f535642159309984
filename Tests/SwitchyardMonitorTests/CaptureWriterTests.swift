// The capture writer's files: JSON Lines records with their metadata, .npy batches holding the same values,
// rotation by size with the newest files kept, redaction; and the monitor's bounded queue counting drops.

import Foundation
import SwitchyardCore
import Synchronization
import Testing

@testable import SwitchyardMonitor

/// Holds the test queue's consumer until the producer has overfilled it.
final class Gate: Sendable {
    let open = Atomic<Bool>(false)
    let processed = Atomic<Int>(0)
}

@Suite struct CaptureWriterTests {
    static func temporaryDirectory(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sy-capture-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    static func call(_ index: Int, rows: Int = 2) -> CapturedCall {
        CapturedCall(
            id: "call-\(index)",
            model: "digits",
            version: "1",
            route: "canary",
            generation: 7,
            latencyNanoseconds: 1234,
            traceID: "4bf92f3577b34da6a3ce929d0e0e4736",
            timestampMilliseconds: 99,
            rows: rows,
            inputNames: ["x", "secret"],
            inputs: [(0..<(rows * 3)).map { Float(index * 100 + $0) }, [Float](repeating: 9, count: rows)],
            outputNames: ["y"],
            outputs: [(0..<rows).map { Float(index) + 0.5 + Float($0) }]
        )
    }

    @Test func recordsWriteEachFloatInAFormThatReadsBackToIt() throws {
        let values: [Float] = [
            0.1, -0.1, 1, -0, 16_777_216, .greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNormalMagnitude,
            .leastNonzeroMagnitude, -.leastNonzeroMagnitude * 3, 1e-7, 123_456.79, 1.0 / 3, Float(0.1).nextUp, .nan,
            .infinity, -.infinity,
        ]
        var call = Self.call(0, rows: 1)
        call.inputNames = ["x"]
        call.inputs = [values]
        var line: [UInt8] = []
        CaptureWriter.jsonLine(call, redact: [], npyBatch: 1, npyRow: 0, into: &line)
        let record = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        let inputs = try #require(record["inputs"] as? [String: [String: Any]])
        let data = try #require(inputs["x"]?["data"] as? [Any])
        #expect(data.count == values.count)
        for (written, value) in zip(data, values) {
            if value.isFinite {
                let number = try #require(written as? NSNumber, "\(value) written as \(written)")
                #expect(Float(number.doubleValue) == value, "\(value) read back as \(number)")
            } else {
                #expect(written is NSNull, "\(value) is written as null, got \(written)")
            }
        }
    }

    @Test func recordsAndNPYBatchesHoldWhatWasCaptured() throws {
        let directory = Self.temporaryDirectory("records")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = CaptureWriter(
            directory: directory,
            maxFileBytes: 1 << 20,
            maxFiles: 4,
            npyBatchCalls: 3,
            redact: ["secret"]
        )
        writer.write((0..<4).map { Self.call($0) })
        writer.flush()
        #expect(writer.statistics.written == 4)
        #expect(writer.statistics.writeErrors == 0)

        let lines = try String(contentsOfFile: directory + "/calls-000001.jsonl", encoding: .utf8).split(
            separator: "\n"
        )
        #expect(lines.count == 4)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["id"] as? String == "call-0")
        #expect(first["route"] as? String == "canary")
        #expect(first["generation"] as? Int == 7)
        #expect(first["trace_id"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        let inputs = try #require(first["inputs"] as? [String: [String: Any]])
        #expect(inputs["x"]?["data"] as? [Double] == [0, 1, 2, 3, 4, 5])
        #expect(inputs["secret"]?["redacted"] as? Bool == true)
        #expect(inputs["secret"]?["data"] == nil)
        let fourth = try #require(try JSONSerialization.jsonObject(with: Data(lines[3].utf8)) as? [String: Any])
        #expect(fourth["npy_batch"] as? Int == 2)
        #expect(fourth["npy_row"] as? Int == 0)

        // Three calls (six rows) in the first batch, the fourth in the second; the redacted input has no file.
        let batch = try NPY.decode(
            Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/inputs.x-000001.npy"))),
            what: "x"
        )
        #expect(batch.shape == [6, 3])
        #expect(Array(batch.values[6..<12]) == (0..<6).map { Float(100 + $0) })
        let outputs = try NPY.decode(
            Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/outputs.y-000002.npy"))),
            what: "y"
        )
        #expect(outputs.shape == [2, 1])
        #expect(outputs.values == [3.5, 4.5])
        #expect(!FileManager.default.fileExists(atPath: directory + "/inputs.secret-000001.npy"))
    }

    @Test func filesRotateBySizeAndOnlyTheNewestAreKept() throws {
        let directory = Self.temporaryDirectory("rotate")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = CaptureWriter(
            directory: directory,
            maxFileBytes: 600,
            maxFiles: 2,
            npyBatchCalls: 1000,
            redact: []
        )
        for index in 0..<20 { writer.write([Self.call(index)]) }
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".jsonl") }
            .sorted()
        #expect(files.count == 2)
        #expect(writer.statistics.filesOpened > 2)
        #expect(writer.statistics.written == 20)
        // Every kept file holds whole JSON lines.
        for file in files {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            #expect(text.hasSuffix("\n"))
            for line in text.split(separator: "\n") { _ = try JSONSerialization.jsonObject(with: Data(line.utf8)) }
        }
        #expect(files.last == "calls-" + CaptureWriter.sixDigits(Int(writer.statistics.filesOpened)) + ".jsonl")
    }

    @Test func anUnwritableDirectoryIsRefusedNamingTheKey() {
        #expect(throws: SwitchyardError.self) {
            try CaptureWriter(
                configuration: CaptureConfiguration(directory: "/proc/sy-capture"),
                directory: "/proc/sy-capture"
            )
        }
    }

    @Test func aFullQueueDropsAndCountsWithoutWaiting() throws {
        let gate = Gate()
        let queue = try WorkQueue<Int>(name: "sy-test-queue", capacity: 4) { batch in
            while !gate.open.load(ordering: .acquiring) { usleep(1000) }
            gate.processed.add(batch.count, ordering: .relaxed)
        }
        for item in 0..<100 { queue.enqueue(item) }
        let counters = queue.counters
        #expect(counters.accepted + counters.dropped == 100)
        #expect(counters.dropped >= 90)
        gate.open.store(true, ordering: .releasing)
        queue.close()
        #expect(UInt64(gate.processed.load(ordering: .relaxed)) == counters.accepted)
        queue.enqueue(1)
        #expect(queue.counters.dropped == counters.dropped + 1)
    }
}
