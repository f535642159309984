// NumPy's .npy format (versions 1–3): a magic string, a little-endian header length, a Python-dict header
// (`descr`, `fortran_order`, `shape`) padded to 64 bytes, then the raw array. Reading covers the float, integer and
// boolean types a reference sample or a load test's inputs come in (the drift monitor reads Float, the load generator
// Double); writing emits little-endian float32 matrices (payload capture).

import Foundation

/// Reads and writes .npy arrays.
public enum NPY {
    /// A decoded array: its shape and its values as Float, row-major.
    public struct Array: Sendable, Hashable {
        /// The array's shape.
        public var shape: [Int]
        /// The values, row-major.
        public var values: [Float]
        /// The element type as the file declared it (`<f4`, `<f8`, `<i4`, `<i8`, …).
        public var descr: String
    }

    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    /// The bytes of a version 1.0 .npy file holding a `rows × columns` little-endian float32 matrix.
    public static func encode(rows: Int, columns: Int, values: some Collection<Float>) -> [UInt8] {
        var out = header(rows: rows, columns: columns)
        out.reserveCapacity(out.count + values.count * 4)
        for value in values {
            let bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: bits) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// The header of a `[rows, columns]` little-endian float32 file: magic, version 1.0, its length and the
    /// dictionary, padded so that the data starts at a multiple of 64 bytes.
    public static func header(rows: Int, columns: Int) -> [UInt8] {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        // Magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = magic + [1, 0]
        let length = UInt16(header.utf8.count)
        out.append(UInt8(length & 0xFF))
        out.append(UInt8(length >> 8))
        out.append(contentsOf: header.utf8)
        return out
    }

    /// Calls `body` with float32 values' bytes in little-endian order: as they lie on a little-endian host, else
    /// swapped into a copy.
    public static func withLittleEndian<R>(_ values: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R
    {
        #if _endian(little)
            return body(values)
        #else
            let swapped = values.withMemoryRebound(to: UInt32.self) { $0.map(\.littleEndian) }
            return swapped.withUnsafeBytes(body)
        #endif
    }

    /// Decodes a .npy file into Float values.
    /// - Parameter what: names the file in errors.
    /// - Throws: `invalidArgument` naming what is wrong: not an .npy file, Fortran order, big-endian or
    ///   non-numeric element types, or a size that disagrees with the shape.
    public static func decode(_ bytes: [UInt8], what: String) throws(SwitchyardError) -> Array {
        let (shape, values, descr) = try decode(bytes, what: what, as: Float.self)
        return Array(shape: shape, values: values, descr: descr)
    }

    /// The element types read, by their `descr`, and their sizes in bytes.
    static let elementSizes: [String: Int] = [
        "<f2": 2, "<f4": 4, "<f8": 8, "|i1": 1, "<i2": 2, "<i4": 4, "<i8": 8, "|u1": 1, "<u2": 2, "<u4": 4, "|b1": 1,
    ]

    /// Decodes a .npy file into values of `T`, row-major, with its shape and declared element type.
    /// - Parameter what: names the file in errors.
    /// - Throws: as `decode(_:what:)`.
    public static func decode<T: BinaryFloatingPoint>(
        _ bytes: [UInt8],
        what: String,
        as: T.Type
    ) throws(SwitchyardError) -> (shape: [Int], values: [T], descr: String) {
        guard bytes.count >= 10, Swift.Array(bytes[0..<6]) == magic else {
            throw SwitchyardError(
                .invalidArgument,
                "\(what): expected an .npy file (magic \\x93NUMPY), got other bytes"
            )
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else if major == 2 || major == 3, bytes.count >= 12 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        } else {
            throw SwitchyardError(.invalidArgument, "\(what): expected .npy format version 1, 2 or 3, got \(major)")
        }
        guard bytes.count >= headerStart + headerLength,
            let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8)
        else { throw SwitchyardError(.invalidArgument, "\(what): the .npy header is truncated") }
        guard let descr = field("descr", in: header)?.trimmingCharacters(in: CharacterSet(charactersIn: "'\" ")),
            let shapeText = field("shape", in: header)
        else { throw SwitchyardError(.invalidArgument, "\(what): the .npy header lacks 'descr' or 'shape'") }
        if field("fortran_order", in: header)?.trimmingCharacters(in: .whitespaces) == "True" {
            throw SwitchyardError(.invalidArgument, "\(what): expected a C-ordered array, got fortran_order True")
        }
        let shape = shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
            .split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let normalized = descr == "=f4" ? "<f4" : descr == "=f8" ? "<f8" : descr
        guard let size = elementSizes[normalized] else {
            throw SwitchyardError(
                .invalidArgument,
                "\(what): expected a little-endian number or boolean array (\(elementSizes.keys.sorted().joined(separator: ", "))), got '\(descr)'"
            )
        }
        let start = headerStart + headerLength
        guard bytes.count - start == count * size else {
            throw SwitchyardError(
                .invalidArgument,
                "\(what): shape \(shape) of '\(descr)' needs \(count * size) bytes of data, got \(bytes.count - start)"
            )
        }
        var values = [T](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            let data = UnsafeRawBufferPointer(rebasing: raw[start...])
            func load<I: FixedWidthInteger>(_ i: Int, _: I.Type) -> I {
                I(littleEndian: data.loadUnaligned(fromByteOffset: i * MemoryLayout<I>.size, as: I.self))
            }
            for i in 0..<count {
                switch normalized {
                case "<f4": values[i] = T(Float(bitPattern: load(i, UInt32.self)))
                case "<f8": values[i] = T(Double(bitPattern: load(i, UInt64.self)))
                case "<f2": values[i] = T(Float(Float16(bitPattern: load(i, UInt16.self))))
                case "<i2": values[i] = T(load(i, Int16.self))
                case "<i4": values[i] = T(load(i, Int32.self))
                case "<i8": values[i] = T(load(i, Int64.self))
                case "<u2": values[i] = T(load(i, UInt16.self))
                case "<u4": values[i] = T(load(i, UInt32.self))
                case "|i1": values[i] = T(Int8(bitPattern: data[i]))
                default: values[i] = T(data[i])  // |u1, |b1
                }
            }
        }
        return (shape, values, descr)
    }

    /// The text after `'key':` in a header dict, up to the next top-level comma.
    private static func field(_ key: String, in header: String) -> String? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        var depth = 0
        var value = ""
        for character in header[range.upperBound...] {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if (character == "," && depth == 0) || character == "}" { break }
            value.append(character)
        }
        return value.trimmingCharacters(in: .whitespaces)
    }
}
