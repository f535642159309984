// The record writer on failing disks: a write that fails part-way is cut back off the file so files hold whole
// records only, a full disk neither blocks callers nor churns through files (pushing kept records out), and
// writing resumes once there is room again.

import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardSink

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a command; true when it exits 0.
private func run(_ arguments: [String]) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}

/// Whether this process may mount a small tmpfs (root with CAP_SYS_ADMIN): permissions do not stop root's
/// writes, a full file system does.
private let canMountTmpfs: Bool = {
    guard getuid() == 0 else { return false }
    let probe = temporaryDirectory()
    try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", probe]) else { return false }
    return run(["umount", probe])
}()

/// Waits until every recorded pair has been written or dropped.
private func settled(_ sink: ComparisonSink, recorded: UInt64) -> SinkStatistics? {
    let end = MonotonicInstant.now().advanced(byNanoseconds: 10_000_000_000)
    while MonotonicInstant.now() < end {
        let statistics = sink.statistics
        if statistics.recorded == recorded && statistics.queued == 0
            && statistics.written + statistics.droppedWriteFailed + statistics.droppedQueueFull == recorded
        {
            return statistics
        }
        usleep(2_000)
    }
    return nil
}

/// Every record file's text ends with a newline (no torn record).
private func everyFileEndsWithAWholeRecord(_ directory: String) throws -> Bool {
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".jsonl") {
        let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
        if !text.isEmpty && !text.hasSuffix("\n") { return false }
    }
    return true
}

@Suite(.serialized) struct RecordWriterTests {
    let logger = Logger(label: "test")

    @Test func aFileThatCannotBeWrittenOrCutBackIsLeftForANewOne() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = try ComparisonSink(configuration: SinkConfiguration(directory: directory), logger: logger)
        // The writer's first file turns out to be a device that is always full.
        #expect(symlink("/dev/full", directory + "/" + RecordWriter.fileName(1)) == 0)
        feedPairs(sink, count: 20, seed: 11)
        let first = try #require(settled(sink, recorded: 20))
        #expect(first.droppedWriteFailed > 0)
        #expect(first.writeErrors >= 1)
        feedPairs(sink, count: 30, seed: 12)
        let second = try #require(settled(sink, recorded: 50))
        sink.close()
        #expect(second.written == first.written + 30)
        #expect(second.droppedWriteFailed == first.droppedWriteFailed)
        let text = try String(contentsOfFile: directory + "/" + RecordWriter.fileName(2), encoding: .utf8)
        #expect(text.split(separator: "\n").count == Int(second.written))
        #expect(unlink(directory + "/" + RecordWriter.fileName(1)) == 0)
        #expect(try everyFileEndsWithAWholeRecord(directory))
    }

    @Test(.enabled(if: canMountTmpfs, "needs root allowed to mount a tmpfs"))
    func aFullDiskDropsWholeBatchesKeepsItsFileAndResumes() throws {
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try #require(run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", directory]))
        defer {
            _ = run(["umount", directory])
            try? FileManager.default.removeItem(atPath: directory)
        }
        let filler = directory + "/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: 24 * 1024)))
        let sink = try ComparisonSink(
            configuration: SinkConfiguration(directory: directory, maxFileBytes: 1 << 20, maxFiles: 2),
            logger: logger
        )
        var recorded: UInt64 = 0
        var full = SinkStatistics()
        // Small batches, each settled, so that several writes fail in a row.
        for round in 0..<40 {
            feedPairs(sink, count: 10, seed: UInt64(100 + round))
            recorded += 10
            full = try #require(settled(sink, recorded: recorded))
        }
        let statistics = full
        #expect(statistics.written > 0)
        #expect(statistics.droppedWriteFailed > 0)
        #expect(statistics.writeErrors >= 2)
        // One file, holding exactly the records counted as written: no torn line, no file per failure.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".jsonl") }
        #expect(files == [RecordWriter.fileName(1)])
        #expect(statistics.filesOpened == 1)
        #expect(try readRecords(directory).count == Int(statistics.written))
        #expect(try everyFileEndsWithAWholeRecord(directory))

        try FileManager.default.removeItem(atPath: filler)
        feedPairs(sink, count: 10, seed: 999)
        let resumed = try #require(settled(sink, recorded: recorded + 10))
        sink.close()
        #expect(resumed.written == statistics.written + 10)
        #expect(try readRecords(directory).count == Int(resumed.written))
    }
}
