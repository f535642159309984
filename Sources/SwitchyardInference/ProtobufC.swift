// The one place where Switchyard builds, packs and unpacks protobuf-c messages: C memory for the strings and
// arrays a message points at (a bump allocator over a per-thread scratch buffer that spills to the heap), and
// packing into Swift bytes.

import SwitchyardProto

#if canImport(Glibc)
    import Glibc
#endif

/// Typed helpers for building protobuf-c messages.
extension BumpAllocator {
    /// A NUL-terminated copy of `text`.
    mutating func string(_ text: String) -> UnsafeMutablePointer<CChar> {
        var text = text
        return text.withUTF8 { utf8 in
            let raw = allocateRaw(utf8.count + 1)
            if let base = utf8.baseAddress { raw.copyMemory(from: base, byteCount: utf8.count) }
            raw.storeBytes(of: 0, toByteOffset: utf8.count, as: CChar.self)
            return raw.assumingMemoryBound(to: CChar.self)
        }
    }

    /// Zeroed storage for `count` values of `T`.
    mutating func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let byteCount = max(1, count) * MemoryLayout<T>.stride
        let raw = allocateRaw(byteCount)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// `count` entries of a protobuf-c map field, each set up by its `initialize` function, and the pointer array
    /// the message holds; the caller fills in keys and values.
    mutating func mapEntries<Entry>(
        _ count: Int,
        _ initialize: (UnsafeMutablePointer<Entry>) -> Void
    ) -> (entries: UnsafeMutablePointer<Entry>, pointers: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>) {
        let entries = allocate(Entry.self, count: count)
        let pointers = allocate(UnsafeMutablePointer<Entry>?.self, count: count)
        for slot in 0..<count {
            initialize(entries + slot)
            pointers[slot] = entries + slot
        }
        return (entries, pointers)
    }

    /// A C array holding `values`.
    mutating func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = allocate(T.self, count: values.count)
        for (index, value) in values.enumerated() { (pointer + index).initialize(to: value) }
        return pointer
    }

    /// A binary-data value holding a copy of `bytes`.
    mutating func binary(_ bytes: UnsafeRawBufferPointer) -> ProtobufCBinaryData {
        let raw = allocateRaw(bytes.count)
        if let base = bytes.baseAddress { raw.copyMemory(from: base, byteCount: bytes.count) }
        return ProtobufCBinaryData(len: bytes.count, data: raw.assumingMemoryBound(to: UInt8.self))
    }
}

/// A bump allocator over a caller's buffer (the thread's scratch buffer), spilling to malloc past its end. The
/// request path decodes and encodes with it so that small messages cost no heap allocation at all.
struct BumpAllocator {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private var used = 0
    /// Spilled blocks, linked through their first word.
    private var spill: UnsafeMutableRawPointer?

    fileprivate init(buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    /// `byteCount` bytes aligned to 16, valid until the allocator is released.
    mutating func allocateRaw(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let size = (max(1, byteCount) + 15) & ~15
        if used + size <= capacity {
            defer { used += size }
            return base + used
        }
        let block = malloc(size + 16)!
        block.storeBytes(of: spill, as: UnsafeMutableRawPointer?.self)
        spill = block
        return block + 16
    }

    fileprivate mutating func releaseSpill() {
        while let block = spill {
            spill = block.load(as: UnsafeMutableRawPointer?.self)
            free(block)
        }
    }
}

/// Runs `body` with a bump allocator over a scratch buffer of at least `capacity` bytes that belongs to the calling
/// thread and is reused by its next call. (`withUnsafeTemporaryAllocation` puts buffers this size on the heap on
/// Linux: two `posix_memalign`/`free` pairs per call, which the profile of the request path showed.) A nested call
/// on the same thread gets a temporary buffer of its own.
func withBumpAllocator<R>(capacity: Int = 4096, _ body: (inout BumpAllocator) -> R) -> R {
    guard let scratch = ThreadScratch.acquire(capacity: capacity) else {
        return withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 16) { buffer in
            var allocator = BumpAllocator(buffer: buffer)
            defer { allocator.releaseSpill() }
            return body(&allocator)
        }
    }
    defer { ThreadScratch.release(scratch) }
    var allocator = BumpAllocator(buffer: scratch)
    defer { allocator.releaseSpill() }
    return body(&allocator)
}

/// One scratch buffer per thread (a pthread key; freed when the thread exits), preceded by a 16-byte header
/// holding its capacity and whether it is in use.
private enum ThreadScratch {
    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    /// The thread's buffer, grown to `capacity`, marked in use; `nil` when it is in use already.
    static func acquire(capacity: Int) -> UnsafeMutableRawBufferPointer? {
        var block = pthread_getspecific(key)
        if let current = block {
            if current.load(fromByteOffset: 8, as: Int.self) != 0 { return nil }
            if current.load(as: Int.self) < capacity {
                free(current)
                block = nil
            }
        }
        if block == nil {
            var fresh: UnsafeMutableRawPointer?
            guard posix_memalign(&fresh, 16, 16 + capacity) == 0, let fresh else { return nil }
            fresh.storeBytes(of: capacity, as: Int.self)
            pthread_setspecific(key, fresh)
            block = fresh
        }
        let header = block!
        header.storeBytes(of: 1, toByteOffset: 8, as: Int.self)
        return UnsafeMutableRawBufferPointer(start: header + 16, count: header.load(as: Int.self))
    }

    static func release(_ buffer: UnsafeMutableRawBufferPointer) {
        (buffer.baseAddress! - 16).storeBytes(of: 0, toByteOffset: 8, as: Int.self)
    }
}

/// Runs `body` with a protobuf-c allocator that draws from `allocator`; frees are no-ops because the bump
/// allocator releases everything at once.
func withProtobufAllocator<R>(
    _ allocator: inout BumpAllocator,
    _ body: (UnsafeMutablePointer<ProtobufCAllocator>) -> R
) -> R {
    withUnsafeMutablePointer(to: &allocator) { state in
        var cAllocator = ProtobufCAllocator(
            alloc: { data, size in
                data!.assumingMemoryBound(to: BumpAllocator.self).pointee.allocateRaw(size)
            },
            free: { _, _ in },
            allocator_data: UnsafeMutableRawPointer(state)
        )
        return body(&cAllocator)
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
