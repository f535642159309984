// The C conversion kernels: every vector path this CPU runs gives bit for bit what the portable path gives (all
// 65 536 FP16 and BF16 patterns, a sweep of FP32 patterns, every length's tail, unaligned buffers), and the
// portable path agrees with Swift's own Float16 conversions.

import CSwitchyardConvert
import SwitchyardCore
import Testing

@testable import SwitchyardInference

/// The vector paths this CPU can run (none on a CPU without AVX2 and F16C).
private let vectorPaths: [Int32] = [Int32(SY_CONVERT_AVX2)].filter { sy_convert_available($0) != 0 }
private let portable = Int32(SY_CONVERT_PORTABLE)

private func widen(_ path: Int32, _ dataType: DataType, _ bytes: [UInt8], count: Int) -> [Float] {
    var out = [Float](repeating: -1, count: count)
    let status = bytes.withUnsafeBytes { source in
        out.withUnsafeMutableBufferPointer {
            sy_convert_to_float(path, Int32(dataType.modelConfigNumber), source.baseAddress, $0.baseAddress, count)
        }
    }
    #expect(status == 0)
    return out
}

private func narrow(_ path: Int32, _ dataType: DataType, _ values: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: values.count * dataType.elementSize!)
    let status = values.withUnsafeBufferPointer { source in
        out.withUnsafeMutableBytes {
            sy_convert_from_float(
                path,
                Int32(dataType.modelConfigNumber),
                source.baseAddress,
                $0.baseAddress,
                values.count
            )
        }
    }
    #expect(status == 0)
    return out
}

/// FP32 patterns across every exponent: a stride through all 2^32 bit patterns plus the edges of each range.
private let floatSweep: [Float] = {
    var patterns = stride(from: UInt64(0), to: 1 << 32, by: 65_521).map { UInt32($0) }
    for edge: UInt32 in [
        0x3880_0000, 0x387F_FFFF, 0x3300_0000, 0x3300_0001, 0x4780_0000, 0x477F_E000, 0x477F_EFFF,
        0x477F_F000, 0x7F7F_FFFF, 0x7F80_0000, 0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF, 0x0000_0001, 0x3F80_8000,
        0x3F81_8000, 0x3F80_1000, 0x3F80_3000,
    ] {
        patterns.append(edge)
        patterns.append(edge | 0x8000_0000)
    }
    return patterns.map { Float(bitPattern: $0) }
}()

@Suite struct ConversionKernelTests {
    @Test func theChosenPathIsOneThisCPURuns() {
        #expect(sy_convert_available(TensorConversion.path) != 0)
        #expect(sy_convert_available(portable) != 0)
        #expect(["avx2+f16c", "portable"].contains(TensorConversion.pathName))
    }

    @Test(arguments: [DataType.fp16, .bf16])
    func everyHalfPatternWidensExactlyOnEveryPath(_ dataType: DataType) {
        let patterns = (0...UInt16.max).map { $0 }
        let bytes = littleEndianBytes(patterns)
        let expected = widen(portable, dataType, bytes, count: patterns.count)
        for (pattern, value) in zip(patterns, expected) {
            let reference =
                dataType == .fp16 ? Float(Float16(bitPattern: pattern)) : Float(bitPattern: UInt32(pattern) << 16)
            if reference.isNaN {
                #expect(value.isNaN && value.sign == reference.sign)
            } else {
                #expect(value.bitPattern == reference.bitPattern, "pattern \(pattern)")
            }
        }
        for path in vectorPaths {
            #expect(
                firstDifference(
                    widen(path, dataType, bytes, count: patterns.count).map(\.bitPattern),
                    expected.map(\.bitPattern)
                ) == nil
            )
        }
    }

    @Test func fp16NarrowingRoundsToNearestEven() {
        let halves = narrow(portable, .fp16, floatSweep)
        for (index, value) in floatSweep.enumerated() {
            let half = UInt16(halves[2 * index]) | UInt16(halves[2 * index + 1]) << 8
            if value.isNaN {
                #expect(Float16(bitPattern: half).isNaN)
            } else {
                // Swift's Float → Float16 conversion rounds to nearest, ties to even.
                #expect(half == Float16(value).bitPattern, "\(value.bitPattern)")
            }
        }
        for path in vectorPaths { #expect(firstDifference(narrow(path, .fp16, floatSweep), halves) == nil) }
    }

    @Test func bf16NarrowingRoundsToNearestEven() {
        let words = narrow(portable, .bf16, floatSweep)
        for (index, value) in floatSweep.enumerated() {
            let word = UInt16(words[2 * index]) | UInt16(words[2 * index + 1]) << 8
            let back = Float(bitPattern: UInt32(word) << 16)
            if value.isNaN {
                #expect(back.isNaN && back.sign == value.sign)
                continue
            }
            // The two BF16 neighbours of the value (truncated and one up), as doubles; the nearer wins, ties to even.
            let down = Double(Float(bitPattern: value.bitPattern & 0xFFFF_0000))
            let upBits = (value.bitPattern & 0xFFFF_0000) &+ 0x1_0000
            let up =
                (upBits & 0x7FFF_FFFF) == 0x7F80_0000
                ? Double(value.sign == .minus ? -0x1p128 : 0x1p128)
                : Double(Float(bitPattern: upBits))
            let exact = Double(value)
            let expected: Double =
                abs(exact - down) < abs(up - exact)
                ? down
                : abs(up - exact) < abs(exact - down) ? up : (value.bitPattern >> 16) & 1 == 0 ? down : up
            let expectedFloat =
                abs(expected) == 0x1p128
                ? Float(expected.sign == .minus ? -Float.infinity : .infinity) : Float(expected)
            #expect(back.bitPattern == expectedFloat.bitPattern, "\(value.bitPattern)")
        }
        for path in vectorPaths { #expect(firstDifference(narrow(path, .bf16, floatSweep), words) == nil) }
    }

    /// Every length up to 40 (vector blocks and tails) from an unaligned source and into an unaligned destination.
    @Test(arguments: DataType.allCases.filter { $0 != .bytes })
    func pathsAgreeOnEveryLengthAndAlignment(_ dataType: DataType) {
        let size = dataType.elementSize!
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return seed >> 11
        }
        for count in 0...40 {
            // One leading byte puts the elements at odd addresses.
            let bytes = (0..<(count * size + 1)).map { _ in UInt8(truncatingIfNeeded: next()) }
            let floats = floatSweep[(count * 97) % 1000..<(count * 97) % 1000 + count].map { $0 }
            let widened = widenUnaligned(portable, dataType, bytes, count: count)
            let narrowed = narrowUnaligned(portable, dataType, floats)
            for path in vectorPaths {
                #expect(widenUnaligned(path, dataType, bytes, count: count) == widened, "widen \(count)")
                #expect(narrowUnaligned(path, dataType, floats) == narrowed, "narrow \(count)")
            }
        }
    }

    @Test func bytesIsNotConverted() {
        var value: Float = 0
        var byte: UInt8 = 0
        #expect(sy_convert_to_float(portable, Int32(DataType.bytes.modelConfigNumber), &byte, &value, 1) == -1)
        #expect(sy_convert_from_float(portable, Int32(DataType.bytes.modelConfigNumber), &value, &byte, 1) == -1)
    }
}

/// The first index where two equally long arrays differ (a short failure message for 65 536-element arrays).
private func firstDifference<Element: Equatable>(_ a: [Element], _ b: [Element]) -> Int? {
    a.count == b.count ? a.indices.first { a[$0] != b[$0] } : min(a.count, b.count)
}

/// Widens `count` elements of `dataType` that start one byte past an aligned start into a destination one element
/// past its start; returns the written values' bit patterns.
private func widenUnaligned(_ path: Int32, _ dataType: DataType, _ bytes: [UInt8], count: Int) -> [UInt32] {
    bytes.withUnsafeBytes { source in
        [Float](unsafeUninitializedCapacity: count + 1) { buffer, initialized in
            sy_convert_to_float(
                path,
                Int32(dataType.modelConfigNumber),
                source.baseAddress! + 1,
                buffer.baseAddress! + 1,
                count
            )
            initialized = count + 1
        }.dropFirst().map(\.bitPattern)
    }
}

/// Narrows into a destination one byte past an aligned start; returns just the written bytes.
private func narrowUnaligned(_ path: Int32, _ dataType: DataType, _ values: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: values.count * dataType.elementSize! + 1)
    values.withUnsafeBufferPointer { source in
        out.withUnsafeMutableBytes {
            _ = sy_convert_from_float(
                path,
                Int32(dataType.modelConfigNumber),
                source.baseAddress,
                $0.baseAddress! + 1,
                values.count
            )
        }
    }
    return Array(out.dropFirst())
}
