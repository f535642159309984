// A profile's features laid out for the binning kernel (CSwitchyardDrift): every feature's edges or categories
// slot-major, 8 features per vector, NaN beyond its own. Built once per reference, then read by the monitor's
// thread for every observed row.

import CSwitchyardDrift

/// The bins of a list of features, in the layout `sy_bin_row` reads.
final class BinTable: @unchecked Sendable {
    /// Features per row.
    let features: Int
    // Allocated once and never written after `init`: the detector's copies share them.
    private let slotValues: UnsafeMutableBufferPointer<Float>
    private let slotCounts: UnsafeMutableBufferPointer<Int32>
    private let categorical: UnsafeMutableBufferPointer<Int32>
    private let offsets: UnsafeMutableBufferPointer<Int32>
    private let groupSlots: UnsafeMutableBufferPointer<Int32>
    private let groupCategorical: UnsafeMutableBufferPointer<Int32>
    private let slots: Int
    private let padded: Int
    private let path: Int32

    /// The binning path this CPU runs: `avx2` or `portable`.
    static var pathName: String { sy_bin_best_path() == Int32(SY_BIN_AVX2) ? "avx2" : "portable" }

    /// The table of `features`, whose bins start at `firstOffset + (bins of the features before)` in the counts.
    /// - Parameter path: the kernel (`nil`: the fastest this CPU runs).
    init(_ profiles: [FeatureProfile], firstOffset: Int, path: Int32? = nil) {
        features = profiles.count
        padded = (features + 7) / 8 * 8
        slots =
            profiles.map { profile in
                switch profile.binning {
                case .continuous(let edges): edges.count
                case .categorical(let values): values.count
                }
            }.max() ?? 0
        self.path = path ?? sy_bin_best_path()
        slotValues = .allocate(capacity: max(1, slots * padded))
        slotValues.initialize(repeating: .nan)
        slotCounts = .allocate(capacity: max(1, padded))
        slotCounts.initialize(repeating: 0)
        categorical = .allocate(capacity: max(1, padded))
        categorical.initialize(repeating: 0)
        offsets = .allocate(capacity: max(1, padded))
        offsets.initialize(repeating: 0)
        groupSlots = .allocate(capacity: max(1, padded / 8))
        groupSlots.initialize(repeating: 0)
        groupCategorical = .allocate(capacity: max(1, padded / 8))
        groupCategorical.initialize(repeating: 0)
        var offset = firstOffset
        for (feature, profile) in profiles.enumerated() {
            let values: [Float]
            switch profile.binning {
            case .continuous(let edges):
                values = edges
            case .categorical(let categories):
                values = categories
                categorical[feature] = -1
                groupCategorical[feature / 8] = 1
            }
            for (slot, value) in values.enumerated() { slotValues[slot * padded + feature] = value }
            slotCounts[feature] = Int32(values.count)
            groupSlots[feature / 8] = max(groupSlots[feature / 8], Int32(values.count))
            offsets[feature] = Int32(offset)
            offset += profile.binning.binCount
        }
    }

    deinit {
        slotValues.deallocate()
        slotCounts.deallocate()
        categorical.deallocate()
        offsets.deallocate()
        groupSlots.deallocate()
        groupCategorical.deallocate()
    }

    /// Counts one row of `features` values into `counts`, at each feature's offset plus its bin.
    @inline(__always)
    func count(row: UnsafePointer<Float>, into counts: UnsafeMutablePointer<UInt32>) {
        count(rows: row, count: 1, stride: features, into: counts)
    }

    /// Counts `count` rows, `stride` values apart, into `counts`, as `count` calls of `count(row:into:)` would.
    @inline(__always)
    func count(rows: UnsafePointer<Float>, count: Int, stride: Int, into counts: UnsafeMutablePointer<UInt32>) {
        var table = sy_bin_table(
            features: Int32(features),
            padded: Int32(padded),
            slots: Int32(slots),
            slot_values: UnsafePointer(slotValues.baseAddress),
            slot_counts: UnsafePointer(slotCounts.baseAddress),
            categorical: UnsafePointer(categorical.baseAddress),
            offsets: UnsafePointer(offsets.baseAddress),
            group_slots: UnsafePointer(groupSlots.baseAddress),
            group_categorical: UnsafePointer(groupCategorical.baseAddress)
        )
        sy_bin_rows(path, &table, rows, count, stride, counts)
    }

    /// Whether `path` (`SY_BIN_*`) runs on this CPU.
    static func available(_ path: Int32) -> Bool { sy_bin_available(path) != 0 }
}
