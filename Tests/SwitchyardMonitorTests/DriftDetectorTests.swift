// Binning, the sliding window and the alarm rule of the drift detector; reference files refused with the
// expected shape.

import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardMonitor

@Suite struct DriftDetectorTests {
    static func uniformRows(_ rows: Int, width: Int, offset: Float = 0, seed: UInt64 = 1) -> [Float] {
        var state = seed
        return (0..<(rows * width)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) + offset
        }
    }

    /// A profile of `rows` uniform reference rows of features x[0]…x[width - 1].
    static func uniformProfile(_ rows: Int, width: Int, options: ProfileOptions) -> ReferenceProfile {
        ReferenceProfile.build(
            inputs: uniformRows(rows, width: width),
            inputNames: ReferenceProfile.featureNames([(name: "x", width: width)]),
            options: options
        )
    }

    @Test func continuousBinsComeFromQuantilesWithOuterBins() {
        let profile = ReferenceProfile.build(
            inputs: (0..<1000).map(Float.init),
            inputNames: ["x"],
            options: ProfileOptions(bins: 4, categoricalMaxValues: 10)
        )
        guard case .continuous(let edges) = profile.inputs[0].binning else {
            Issue.record("expected ordered bins")
            return
        }
        #expect(edges == [0, 250, 500, 750, Float(999).nextUp])
        #expect(profile.inputs[0].referenceCounts == [0, 250, 250, 250, 250, 0])
        #expect(profile.inputs[0].binning.bin(of: -1) == 0)
        #expect(profile.inputs[0].binning.bin(of: 999) == 4)
        #expect(profile.inputs[0].binning.bin(of: 1000) == 5)
        #expect(profile.inputs[0].binning.bin(of: .nan) == 5)
    }

    @Test func lowCardinalityFeaturesAreCategorical() {
        let profile = ReferenceProfile.build(inputs: [0, 1, 2, 1, 1, 0], inputNames: ["c"])
        #expect(profile.inputs[0].binning == .categorical(values: [0, 1, 2]))
        #expect(profile.inputs[0].referenceCounts == [2, 3, 1, 0])
        #expect(profile.inputs[0].binning.bin(of: 7) == 3)
    }

    @Test func aConstantReferenceFeatureNeverDividesByZero() {
        let options = DriftDetectorOptions(window: 100, blocks: 2, profile: ProfileOptions(categoricalMaxValues: 0))
        let profile = ReferenceProfile.build(
            inputs: [Float](repeating: 3, count: 500),
            inputNames: ["k"],
            options: options.profile
        )
        #expect(profile.inputs[0].binning == .continuous(edges: [3, Float(3).nextUp]))
        var detector = DriftDetector(profile: profile, options: options)
        let same = [Float](repeating: 3, count: 100)
        same.withUnsafeBufferPointer {
            _ = detector.observe(inputs: $0, outputs: .init(start: nil, count: 0), rows: 100)
        }
        let calm = detector.scores
        #expect(calm.status == .ok)
        #expect(calm.features.allSatisfy { $0.psi.isFinite && $0.pValue.isFinite })
        let moved = [Float](repeating: 4, count: 100)
        moved.withUnsafeBufferPointer {
            _ = detector.observe(inputs: $0, outputs: .init(start: nil, count: 0), rows: 100)
        }
        #expect(detector.scores.status == .drifting)
        #expect(detector.scores.features[0].psi.isFinite)
    }

    @Test func aShiftedFeatureIsFlaggedAndTheOthersAreNot() {
        let width = 8
        let options = DriftDetectorOptions(window: 2000, blocks: 4)
        let profile = Self.uniformProfile(5000, width: width, options: options.profile)
        var detector = DriftDetector(profile: profile, options: options)
        #expect(detector.scores.status == .warmingUp)
        var traffic = Self.uniformRows(2000, width: width, seed: 7)
        traffic.withUnsafeBufferPointer {
            _ = detector.observe(inputs: $0, outputs: .init(start: nil, count: 0), rows: 2000)
        }
        #expect(detector.scores.status == .ok)
        #expect(detector.scores.windowRows == 2000)
        for row in 0..<2000 { traffic[row * width + 3] += 0.3 }
        traffic.withUnsafeBufferPointer {
            _ = detector.observe(inputs: $0, outputs: .init(start: nil, count: 0), rows: 2000)
        }
        let scores = detector.scores
        #expect(scores.status == .drifting)
        #expect(scores.features.filter(\.flagged).map(\.name) == ["x[3]"])
        #expect(scores.inputsFlagged == 1)
        // The window slid: it holds only the shifted rows, whose x[3] KS gap is about 0.3.
        #expect(abs(scores.features[3].statistic - 0.3) < 0.05)
    }

    @Test func aReferenceFromTrafficIncludesPredictions() {
        let options = DriftDetectorOptions(window: 200, blocks: 2)
        var detector = DriftDetector(
            referenceRows: 300,
            inputNames: ["a", "b"],
            outputLayout: [(name: "p", width: 3)],
            options: options
        )
        let inputs = Self.uniformRows(300, width: 2)
        // Class 0 wins in every reference row.
        let outputs: [Float] = (0..<300).flatMap { _ -> [Float] in [0.8, 0.1, 0.1] }
        inputs.withUnsafeBufferPointer { i in
            outputs.withUnsafeBufferPointer { o in _ = detector.observe(inputs: i, outputs: o, rows: 300) }
        }
        #expect(detector.scores.status == .warmingUp)
        #expect(detector.profile?.outputs.map(\.name) == ["p[0]", "p[1]", "p[2]", "p:argmax"])
        // Now class 2 wins: the class mix moves.
        let more = Self.uniformRows(200, width: 2, seed: 5)
        let shifted: [Float] = (0..<200).flatMap { _ -> [Float] in [0.1, 0.1, 0.8] }
        more.withUnsafeBufferPointer { i in
            shifted.withUnsafeBufferPointer { o in _ = detector.observe(inputs: i, outputs: o, rows: 200) }
        }
        let scores = detector.scores
        #expect(scores.status == .drifting)
        #expect(scores.inputsFlagged == 0)
        #expect(scores.features.first { $0.name == "p:argmax" }?.flagged == true)
        #expect(scores.features.first { $0.name == "p:argmax" }?.test == .chiSquared)
    }

    @Test func npyRoundTripsAndRefusesOtherTypes() throws {
        let bytes = NPY.encode(rows: 2, columns: 3, values: [1, 2, 3, 4, 5, 6] as [Float])
        let headerEnd = 10 + (Int(bytes[8]) | Int(bytes[9]) << 8)
        #expect(headerEnd % 64 == 0)
        #expect(bytes.count - headerEnd == 24)
        let array = try NPY.decode(bytes, what: "t")
        #expect(array.shape == [2, 3])
        #expect(array.values == [1, 2, 3, 4, 5, 6])
        var complex = bytes
        let header = String(decoding: complex[10..<(10 + Int(complex[8]))], as: UTF8.self)
            .replacingOccurrences(of: "<f4", with: "<c8")
        complex.replaceSubrange(10..<(10 + Int(complex[8])), with: Array(header.utf8))
        #expect(throws: SwitchyardError.self) { try NPY.decode(complex, what: "t") }
    }

    @Test func aReferenceOfTheWrongWidthIsRefusedNamingTheExpectedShape() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sy-ref-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ref.npy"
        try Data(NPY.encode(rows: 4, columns: 63, values: [Float](repeating: 1, count: 252))).write(
            to: URL(fileURLWithPath: path)
        )
        do {
            _ = try ReferenceFile.load(
                path: path,
                inputs: [(name: "x", width: 64)],
                outputs: [],
                options: ProfileOptions()
            )
            Issue.record("expected a refusal")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("expected [rows, 64]"))
            #expect(error.message.contains("got shape [4, 63]"))
        }
        let json = directory + "/ref.json"
        try Data("[[1, 2], [3]]".utf8).write(to: URL(fileURLWithPath: json))
        #expect(throws: SwitchyardError.self) {
            try ReferenceFile.load(path: json, inputs: [(name: "a", width: 2)], outputs: [], options: ProfileOptions())
        }
        try Data("{\"inputs\": [[1, 2], [3, 4]]}".utf8).write(to: URL(fileURLWithPath: json))
        let profile = try ReferenceFile.load(
            path: json,
            inputs: [(name: "a", width: 2)],
            outputs: [],
            options: ProfileOptions()
        )
        #expect(profile.rows == 2)
        #expect(profile.inputs.map(\.name) == ["a[0]", "a[1]"])
    }

    @Test func outputsFromANpyBesideANpyReferenceGivePredictionDriftAReference() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sy-refout-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let inputs = directory + "/ref.npy"
        let outputs = directory + "/ref-outputs.npy"
        let rows = 200
        try Data(NPY.encode(rows: rows, columns: 2, values: (0..<(rows * 2)).map { Float($0 % 17) })).write(
            to: URL(fileURLWithPath: inputs)
        )
        try Data(NPY.encode(rows: rows, columns: 3, values: (0..<(rows * 3)).map { Float($0 % 5) / 5 })).write(
            to: URL(fileURLWithPath: outputs)
        )
        let profile = try ReferenceFile.load(
            path: inputs,
            outputsPath: outputs,
            inputs: [(name: "x", width: 2)],
            outputs: [(name: "p", width: 3)],
            options: ProfileOptions()
        )
        #expect(profile.rows == rows)
        #expect(profile.outputs.map(\.name).starts(with: ["p[0]", "p[1]", "p[2]"]))

        // Rows that do not match the input reference, or the wrong width, are refused naming the expected shape.
        for (shapeRows, columns) in [(rows - 1, 3), (rows, 2)] {
            try Data(
                NPY.encode(rows: shapeRows, columns: columns, values: [Float](repeating: 0, count: shapeRows * columns))
            )
            .write(to: URL(fileURLWithPath: outputs))
            do {
                _ = try ReferenceFile.load(
                    path: inputs,
                    outputsPath: outputs,
                    inputs: [(name: "x", width: 2)],
                    outputs: [(name: "p", width: 3)],
                    options: ProfileOptions()
                )
                Issue.record("expected a refusal of shape [\(shapeRows), \(columns)]")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("drift.reference_outputs"))
                #expect(error.message.contains("expected [200, 3] numbers"))
                #expect(error.message.contains("got shape [\(shapeRows), \(columns)]"))
            }
        }
    }

    @Test func referenceOutputsAreCheckedInTheConfiguration() {
        #expect(DriftConfiguration(reference: "r.npy", referenceOutputs: "o.npy").validate().isEmpty)
        #expect(
            DriftConfiguration(reference: "r.json", referenceOutputs: "o.npy").validate() == [
                "drift.reference_outputs: expected beside a .npy drift.reference (a .json reference carries its own "
                    + "\"outputs\"), got reference 'r.json'"
            ]
        )
        #expect(
            DriftConfiguration(reference: "r.npy", referenceOutputs: "o.csv").validate() == [
                "drift.reference_outputs: expected a .npy file, got 'o.csv'"
            ]
        )
    }
}
