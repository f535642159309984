// The shared .npy reader: every element type it accepts, read into Float and Double, and the header's errors.

import SwitchyardCore
import Testing

@Suite("NPY")
struct NPYTests {
    /// A version 1.0 file of `descr` with `shape`, whose data is `data`.
    func file(_ descr: String, _ shape: String, _ data: [UInt8]) -> [UInt8] {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let length = UInt16(header.utf8.count)
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(length & 0xFF), UInt8(length >> 8)]
            + Array(header.utf8) + data
    }

    @Test(
        "each element type reads back as numbers",
        arguments: [
            ("<i2", [0xFE, 0xFF, 0x03, 0x00] as [UInt8], [-2, 3] as [Double]),
            ("<u2", [0xFE, 0xFF, 0x03, 0x00], [65_534, 3]),
            ("<u4", [0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00], [4_294_967_295, 1]),
            ("|b1", [0x01, 0x00], [1, 0]),
            ("|i1", [0xFF, 0x7F], [-1, 127]),
        ]
    )
    func elementTypes(descr: String, data: [UInt8], expected: [Double]) throws {
        let bytes = file(descr, "(2,)", data)
        let doubles = try NPY.decode(bytes, what: "t", as: Double.self)
        #expect(doubles.shape == [2])
        #expect(doubles.values == expected)
        #expect(try NPY.decode(bytes, what: "t").values == expected.map(Float.init))
    }

    @Test("a big-endian type and a size that disagrees with the shape are refused by name")
    func refusals() {
        #expect(throws: SwitchyardError.self) { try NPY.decode(file(">f4", "(1,)", [0, 0, 0, 0]), what: "t") }
        #expect(throws: SwitchyardError.self) { try NPY.decode(file("<f4", "(2,)", [0, 0, 0, 0]), what: "t") }
    }
}
