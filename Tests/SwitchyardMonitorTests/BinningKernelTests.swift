// The binning kernels (portable C and AVX2) against the binning's own definition, `FeatureBinning.bin(of:)`:
// every feature kind, widths that are not a multiple of 8, and the values at the edges (equal to an edge, ±∞,
// NaN, a category, a value between categories).

import Testing

@testable import SwitchyardMonitor

@Suite struct BinningKernelTests {
    /// A profile of `width` features: continuous ones of different edge counts, a constant one, and categorical
    /// ones (one with a single category). `groupedByKind`: each group of 8 features (the AVX2 kernel's step) holds
    /// one kind only, cycling through 21 edges, a constant, 4 edges and the mixed layout, so that groups with no
    /// category and groups with fewer slots than the widest feature are covered too.
    static func profile(width: Int, groupedByKind: Bool = false) -> ReferenceProfile {
        let features = (0..<width).map { feature -> FeatureProfile in
            let binning: FeatureBinning
            switch groupedByKind ? [0, 1, 4, feature % 5][(feature / 8) % 4] : feature % 5 {
            case 0: binning = .continuous(edges: (0...20).map { Float($0) / 4 - 2 })
            case 1: binning = .continuous(edges: [1, Float(1).nextUp])
            case 2: binning = .categorical(values: [0, 1, 2, 3, 4])
            case 3: binning = .categorical(values: [0.5])
            default: binning = .continuous(edges: [-1, 0, 0.5, 7])
            }
            return FeatureProfile(
                name: "x[\(feature)]",
                isOutput: false,
                binning: binning,
                referenceCounts: [Double](repeating: 1, count: binning.binCount)
            )
        }
        return ReferenceProfile(inputs: features, outputs: [], rows: 1)
    }

    static let specialValues: [Float] = [
        -.infinity, .infinity, .nan, -2, 3, 0, 0.5, 1, Float(1).nextUp, 4, 7, -1, 2.25, 1e30, -1e30, 0.49,
    ]

    @Test(arguments: BinningKernel.allCases, [1, 7, 8, 9, 64, 785])
    func eachKernelBinsEveryValueAsTheBinningDefinesIt(kernel: BinningKernel, width: Int) {
        guard kernel.isAvailable else { return }
        for groupedByKind in [false, true] {
            binsEveryValue(kernel: kernel, profile: Self.profile(width: width, groupedByKind: groupedByKind))
        }
    }

    func binsEveryValue(kernel: BinningKernel, profile: ReferenceProfile) {
        let width = profile.inputs.count
        let table = BinTable(profile.inputs, firstOffset: 3, path: kernel.path)
        var offsets: [Int] = []
        var offset = 3
        for feature in profile.inputs {
            offsets.append(offset)
            offset += feature.binning.binCount
        }
        var state: UInt64 = 42
        var allRows: [Float] = []
        var allExpected = [UInt32](repeating: 0, count: offset)
        for round in 0..<200 {
            let row = (0..<width).map { feature -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                if (state >> 60) < 5 {
                    return Self.specialValues[Int((state >> 32) % UInt64(Self.specialValues.count))]
                }
                return Float(Int64(bitPattern: state) >> 40) / Float(1 << 21) + Float(feature % 3) * Float(round % 2)
            }
            var counts = [UInt32](repeating: 0, count: offset)
            row.withUnsafeBufferPointer { values in
                counts.withUnsafeMutableBufferPointer { table.count(row: values.baseAddress!, into: $0.baseAddress!) }
            }
            var expected = [UInt32](repeating: 0, count: offset)
            for (feature, value) in row.enumerated() {
                expected[offsets[feature] + profile.inputs[feature].binning.bin(of: value)] += 1
            }
            #expect(counts == expected, "row \(row) of \(profile.inputs.map(\.binning))")
            if counts != expected { return }
            allRows += row
            for index in expected.indices { allExpected[index] += expected[index] }
        }
        // The 200 rows in one pass count what they count one by one.
        var counts = [UInt32](repeating: 0, count: offset)
        allRows.withUnsafeBufferPointer { values in
            counts.withUnsafeMutableBufferPointer {
                table.count(rows: values.baseAddress!, count: 200, stride: width, into: $0.baseAddress!)
            }
        }
        #expect(counts == allExpected)
    }

    @Test func theDefaultKernelIsTheFastestThisCPURuns() {
        #expect(BinningKernel.best.isAvailable)
        #expect(BinningKernel.portable.isAvailable)
    }

    @Test(arguments: BinningKernel.allCases)
    func bothKernelsGiveADetectorTheSameScores(kernel: BinningKernel) {
        guard kernel.isAvailable else { return }
        let width = 13
        let options = DriftDetectorOptions(window: 1000, blocks: 4)
        let profile = DriftDetectorTests.uniformProfile(3000, width: width, options: options.profile)
        var portable = DriftDetector(profile: profile, options: options, kernel: .portable)
        var chosen = DriftDetector(profile: profile, options: options, kernel: kernel)
        var traffic = DriftDetectorTests.uniformRows(1500, width: width, seed: 9)
        for row in 0..<1500 where row % 3 == 0 { traffic[row * width + 5] += 0.5 }
        traffic.withUnsafeBufferPointer { rows in
            _ = portable.observe(inputs: rows, outputs: .init(start: nil, count: 0), rows: 1500)
            _ = chosen.observe(inputs: rows, outputs: .init(start: nil, count: 0), rows: 1500)
        }
        #expect(chosen.scores == portable.scores)
        #expect(chosen.scores.status == .drifting)
        #expect(chosen.currentCounts() == portable.currentCounts())
        // Rows observed one at a time or in runs of other lengths (across block boundaries) count the same.
        var oneByOne = DriftDetector(profile: profile, options: options, kernel: kernel)
        var inRuns = DriftDetector(profile: profile, options: options, kernel: kernel)
        var completions = (oneByOne: 0, inRuns: 0)
        traffic.withUnsafeBufferPointer { rows in
            for row in 0..<1500 {
                let values = UnsafeBufferPointer(rebasing: rows[(row * width)..<((row + 1) * width)])
                if oneByOne.observe(inputs: values, outputs: .init(start: nil, count: 0), rows: 1) {
                    completions.oneByOne += 1
                }
            }
            var row = 0
            for length in [1, 7, 249, 250, 251, 3, 500, 239] {
                let values = UnsafeBufferPointer(rebasing: rows[(row * width)..<((row + length) * width)])
                if inRuns.observe(inputs: values, outputs: .init(start: nil, count: 0), rows: length) {
                    completions.inRuns += 1
                }
                row += length
            }
            #expect(row == 1500)
        }
        #expect(inRuns.scores == oneByOne.scores)
        #expect(inRuns.currentCounts() == oneByOne.currentCounts())
        #expect(oneByOne.scores == chosen.scores)
        // Six blocks of 250 rows complete; the run of 500 completes two of them and says so once.
        #expect(completions.oneByOne == 6 && completions.inRuns == 5)
    }
}
