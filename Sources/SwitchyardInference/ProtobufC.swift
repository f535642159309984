// The one place where Switchyard builds and packs protobuf-c messages: a per-message arena for the C
// strings and arrays a message points at, and packing into Swift bytes.

import SwitchyardProto

#if canImport(Glibc)
    import Glibc
#endif

/// Owns the C memory that one protobuf-c message under construction points at; frees it all at once.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    init() { blocks.reserveCapacity(16) }

    deinit {
        for block in blocks { free(block) }
    }

    /// A NUL-terminated copy of `text`.
    func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        var text = text
        return text.withUTF8 { utf8 in
            let raw = allocateRaw(utf8.count + 1)
            if let base = utf8.baseAddress { raw.copyMemory(from: base, byteCount: utf8.count) }
            raw.storeBytes(of: 0, toByteOffset: utf8.count, as: CChar.self)
            return raw.assumingMemoryBound(to: CChar.self)
        }
    }

    /// Zeroed storage for `count` values of `T`.
    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = allocateRaw(max(1, count) * MemoryLayout<T>.stride)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// A C array holding `values`.
    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self, count: values.count)
        for (index, value) in values.enumerated() { (pointer + index).initialize(to: value) }
        return pointer
    }

    /// A binary-data value holding a copy of `bytes`.
    func binary(_ bytes: UnsafeRawBufferPointer) -> ProtobufCBinaryData {
        let raw = allocateRaw(bytes.count)
        if let base = bytes.baseAddress { raw.copyMemory(from: base, byteCount: bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: raw.assumingMemoryBound(to: UInt8.self))
    }

    private func allocateRaw(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let raw = calloc(1, max(1, byteCount))!
        blocks.append(raw)
        return raw
    }
}

/// Serializes a protobuf-c message (any generated struct, whose first member is `ProtobufCMessage`).
func packMessage<Message>(_ message: UnsafeMutablePointer<Message>) -> [UInt8] {
    let base = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(base)
    return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        count = protobuf_c_message_pack(base, buffer.baseAddress!)
    }
}

/// A Swift string from a protobuf-c string field (NULL reads as "").
func swiftString(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}
