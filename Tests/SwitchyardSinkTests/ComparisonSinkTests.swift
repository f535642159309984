import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardSink

func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "switchyard-sink-\(UUID().uuidString)"
    return path
}

/// A record line as written (Foundation's JSONDecoder reads numbers back exactly).
struct RecordLine: Decodable {
    struct Output: Decodable {
        var name: String
        var argmax_agreement: Double?
        var max_abs_delta: Double
        var mean_abs_delta: Double
    }
    var ts_ms: UInt64
    var request_id: String
    var model: String
    var primary_version: String
    var shadow_version: String
    var primary_latency_ns: UInt64
    var shadow_latency_ns: UInt64
    var primary_error: String?
    var shadow_error: String?
    var agreed: Bool?
    var max_abs_delta: Double?
    var outputs: [Output]

    var record: ComparisonRecord {
        ComparisonRecord(
            timestampMilliseconds: ts_ms,
            requestID: request_id,
            model: model,
            primaryVersion: primary_version,
            shadowVersion: shadow_version,
            primaryLatencyNanoseconds: primary_latency_ns,
            shadowLatencyNanoseconds: shadow_latency_ns,
            primaryError: primary_error,
            shadowError: shadow_error,
            outputs: outputs.map {
                OutputComparison(
                    name: $0.name,
                    argmaxAgreement: $0.argmax_agreement,
                    maxAbsDelta: $0.max_abs_delta,
                    meanAbsDelta: $0.mean_abs_delta
                )
            }
        )
    }
}

/// Reads every record file of `directory`, oldest first.
func readRecords(_ directory: String) throws -> [RecordLine] {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".jsonl") }
        .sorted()
    var records: [RecordLine] = []
    for name in names {
        let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
        for line in text.split(separator: "\n") {
            records.append(try JSONDecoder().decode(RecordLine.self, from: Data(line.utf8)))
        }
    }
    return records
}

let layout = OutputLayout(names: ["logits", "score"], elementsPerRow: [3, 1])

/// Pseudo-random pairs through `ShadowPair`, with some errors on either side.
func feedPairs(_ sink: ComparisonSink, count: Int, seed: UInt64) {
    var state = seed
    func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) * 0x1.0p-53
    }
    for n in 0..<count {
        let rows = 1 + Int(next() * 4)
        let primary = [(0..<rows * 3).map { _ in Float(next()) }, (0..<rows).map { _ in Float(next()) }]
        let shadow = primary.map { values in values.map { $0 + Float((next() - 0.5) * 0.2) } }
        let versions = n % 3 == 0 ? ("2", "1") : ("1", "2")
        let pair = sink.makePair(requestID: "r-\(n)\"\n", model: "m", layout: layout)
        let primaryResult: Result<[[Float]], ComparisonError> =
            n % 17 == 0 ? .failure(ComparisonError("unavailable: queue full")) : .success(primary)
        let shadowResult: Result<[[Float]], ComparisonError> =
            n % 11 == 0 ? .failure(ComparisonError("unavailable: shadow shed")) : .success(shadow)
        let sides = (
            ComparisonSide(version: versions.0, latencyNanoseconds: UInt64(next() * 5e6), result: primaryResult),
            ComparisonSide(version: versions.1, latencyNanoseconds: UInt64(next() * 5e6), result: shadowResult)
        )
        // Either side may finish first.
        if n % 2 == 0 {
            pair.completePrimary(sides.0)
            pair.completeShadow(sides.1)
        } else {
            pair.completeShadow(sides.1)
            pair.completePrimary(sides.0)
        }
    }
}

@Suite struct ComparisonSinkTests {
    let logger = Logger(label: "test")

    @Test func aggregatesEqualThoseRecomputedFromTheWrittenRecords() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = try ComparisonSink(
            configuration: SinkConfiguration(directory: directory, maxFileBytes: 64 << 10, maxFiles: 1_000),
            logger: logger
        )
        feedPairs(sink, count: 2_000, seed: 1)
        sink.close()
        let statistics = sink.statistics
        #expect(statistics.recorded == 2_000)
        #expect(statistics.written == 2_000)
        #expect(statistics.droppedQueueFull == 0 && statistics.droppedWriteFailed == 0)

        let lines = try readRecords(directory)
        #expect(lines.count == 2_000)
        let records = lines.map(\.record)
        for line in lines {
            #expect(line.agreed == line.record.agreed)
            #expect(line.max_abs_delta == line.record.maxAbsDelta)
        }
        #expect(Set(records.map(\.requestID)).count == 2_000)

        // Independently: counts, agreement, errors, divergence and latency figures from the files.
        let aggregates = sink.aggregates
        #expect(aggregates.count == 2)
        for (key, aggregate) in aggregates {
            let mine = records.filter {
                $0.primaryVersion == key.primaryVersion && $0.shadowVersion == key.shadowVersion
            }
            #expect(aggregate.pairs == UInt64(mine.count))
            #expect(aggregate.primaryErrors == UInt64(mine.count { $0.primaryError != nil }))
            #expect(aggregate.shadowErrors == UInt64(mine.count { $0.shadowError != nil }))
            let compared = mine.filter { $0.primaryError == nil && $0.shadowError == nil }
            #expect(aggregate.compared == UInt64(compared.count))
            let agreed = compared.count { record in
                record.outputs.compactMap(\.argmaxAgreement).allSatisfy { $0 == 1 }
            }
            #expect(aggregate.agreementRate == Double(agreed) / Double(compared.count))
            let divergences = compared.map { $0.outputs.map(\.maxAbsDelta).max()! }.sorted()
            #expect(aggregate.divergence.max == divergences.last)
            for q in [0.5, 0.9, 0.99] {
                let exact = divergences[Int((q * Double(divergences.count)).rounded(.up)) - 1]
                let estimate = try #require(aggregate.divergence.quantile(q))
                #expect(estimate >= exact && estimate <= exact * 1.091, "q\(q): \(estimate) vs exact \(exact)")
            }
            let deltas = compared.map {
                Double($0.shadowLatencyNanoseconds) / 1e6 - Double($0.primaryLatencyNanoseconds) / 1e6
            }
            let meanDelta = try #require(aggregate.meanLatencyDeltaMilliseconds)
            #expect(abs(meanDelta - deltas.reduce(0, +) / Double(deltas.count)) < 1e-9)

            // And exactly: replaying the records reproduces the aggregate bit for bit.
            var replayed = ComparisonAggregate()
            for record in mine { replayed.add(record) }
            #expect(replayed == aggregate)
        }
    }

    @Test func filesRotateBySizeAndKeepTheNewest() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = try ComparisonSink(
            configuration: SinkConfiguration(directory: directory, maxFileBytes: 4096, maxFiles: 3),
            logger: logger
        )
        feedPairs(sink, count: 500, seed: 2)
        sink.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(names.count == 3)
        let opened = sink.statistics.filesOpened
        #expect(opened > 3)
        #expect(names.last == RecordWriter.fileName(Int(opened)))
        for name in names {
            let size = try FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size] as! Int
            #expect(size <= 4096 && size > 0)
        }
        // The newest file ends with the last record.
        let last = try readRecords(directory).last
        #expect(last?.request_id == "r-499\"\n")

        // A new sink in the same directory continues the numbering.
        let again = try ComparisonSink(configuration: SinkConfiguration(directory: directory), logger: logger)
        feedPairs(again, count: 1, seed: 3)
        again.close()
        #expect(FileManager.default.fileExists(atPath: directory + "/" + RecordWriter.fileName(Int(opened) + 1)))
    }

    @Test func aFailingDiskDropsAndCountsRecordsWithoutBlocking() throws {
        let directory = temporaryDirectory()
        let sink = try ComparisonSink(configuration: SinkConfiguration(directory: directory), logger: logger)
        try FileManager.default.removeItem(atPath: directory)
        feedPairs(sink, count: 100, seed: 4)
        sink.close()
        let statistics = sink.statistics
        #expect(statistics.recorded == 100)
        #expect(statistics.written == 0)
        #expect(statistics.droppedWriteFailed == 100)
        #expect(statistics.writeErrors >= 1)
        // Aggregates do not depend on the disk.
        #expect(sink.aggregates.values.map(\.pairs).reduce(0, +) == 100)
    }

    @Test func aFullQueueDropsAndCountsRecords() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = try ComparisonSink(
            configuration: SinkConfiguration(directory: directory, queueCapacity: 1),
            logger: logger
        )
        feedPairs(sink, count: 5_000, seed: 5)
        sink.close()
        feedPairs(sink, count: 10, seed: 6)  // after close: aggregated, not written
        let statistics = sink.statistics
        #expect(statistics.recorded == 5_010)
        #expect(statistics.written + statistics.droppedQueueFull == 5_010)
        #expect(statistics.droppedQueueFull >= 10)
        #expect(try readRecords(directory).count == Int(statistics.written))
    }

    @Test func withoutADirectoryOnlyAggregates() throws {
        let sink = try ComparisonSink(configuration: SinkConfiguration(), logger: logger)
        feedPairs(sink, count: 10, seed: 7)
        sink.close()
        #expect(sink.statistics.recorded == 10)
        #expect(sink.statistics.written == 0)
        #expect(sink.directory == nil)
    }
}

@Suite struct OutputComparatorTests {
    @Test func comparesArgmaxAndDeltasPerOutput() throws {
        let primary: [[Float]] = [[0.1, 0.7, 0.2, 0.5, 0.4, 0.1], [1.0, 2.0]]
        let shadow: [[Float]] = [[0.1, 0.6, 0.3, 0.3, 0.4, 0.3], [1.5, 2.0]]
        let result = try OutputComparator.compare(primary: primary, shadow: shadow, layout: layout).get()
        #expect(result[0].name == "logits")
        #expect(result[0].argmaxAgreement == 0.5)  // row 0 agrees (1 = 1), row 1 does not (0 vs 1)
        #expect(abs(result[0].maxAbsDelta - 0.2) < 1e-6)
        #expect(abs(result[0].meanAbsDelta - 0.6 / 6) < 1e-6)
        #expect(result[1].argmaxAgreement == nil)
        #expect(result[1].maxAbsDelta == 0.5)
        #expect(result[1].meanAbsDelta == 0.25)
    }

    @Test func mismatchedSizesAreAnError() {
        let result = OutputComparator.compare(primary: [[1, 2, 3], [1]], shadow: [[1, 2], [1]], layout: layout)
        #expect(throws: ComparisonError("output 'logits': shadow has 2 values, primary 3")) { try result.get() }
    }

    @Test func recordsKnowWhetherTheyAgreed() {
        var record = ComparisonRecord(
            timestampMilliseconds: 0,
            requestID: "",
            model: "m",
            primaryVersion: "1",
            shadowVersion: "2",
            primaryLatencyNanoseconds: 0,
            shadowLatencyNanoseconds: 0,
            primaryError: nil,
            shadowError: nil,
            outputs: [OutputComparison(name: "a", argmaxAgreement: 1, maxAbsDelta: 0.5, meanAbsDelta: 0.1)]
        )
        #expect(record.agreed == true)
        #expect(record.maxAbsDelta == 0.5)
        record.shadowError = "x"
        #expect(record.agreed == nil && record.maxAbsDelta == nil)
    }
}

@Suite struct LogHistogramTests {
    @Test(arguments: [1e-9, 0.001, 0.37, 1, 3.5, 1e6])
    func quantilesAreWithinTheBucketError(value: Double) throws {
        var histogram = LogHistogram()
        for _ in 0..<10 { histogram.record(value) }
        let estimate = try #require(histogram.quantile(0.5))
        #expect(estimate >= value * (1 - 1e-12) && estimate <= value * 1.091)
    }

    @Test func zeroAndEmpty() {
        var histogram = LogHistogram()
        #expect(histogram.quantile(0.5) == nil)
        histogram.record(0)
        #expect(histogram.quantile(0.99) == 0)
    }
}
