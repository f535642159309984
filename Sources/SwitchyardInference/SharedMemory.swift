// Triton's system shared memory: a client on this machine registers a POSIX shared-memory object (`shm_open` key,
// offset, byte size) under a name, then names it in a tensor's `shared_memory_region`, `shared_memory_offset` and
// `shared_memory_byte_size` parameters instead of sending the tensor over the socket. Each region keeps its object
// open from registration; calls hold a reference to the region they use, so a region unregistered while a call
// reads or writes it stays open until that call is done, and is closed then.
//
// Tensors are copied with pread/pwrite on that descriptor rather than through a mapping: a client that truncates
// the object after registering it would make a mapped read fault (SIGBUS, the whole process); pread reports the
// short read instead, and the call is refused naming the region.

import SwitchyardCore
import SwitchyardProto
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One registered region: the part `[offset, offset + byteSize)` of a shared-memory object, open read-write.
final class SharedMemoryRegion: Sendable {
    /// The name clients use for the region.
    let name: String
    /// The shared-memory object's key (`shm_open` name).
    let key: String
    /// Where the region starts in the object.
    let offset: Int
    /// The region's size in bytes.
    let byteSize: Int
    private let fd: Int32

    /// Opens the shared-memory object `key` and checks that `[offset, offset + byteSize)` lies inside it.
    /// - Throws: `invalidArgument` naming the field: an object that cannot be opened, or a range outside it.
    init(name: String, key: String, offset: UInt64, byteSize: UInt64) throws(SwitchyardError) {
        guard !name.isEmpty else { throw .invalidArgument("name: expected a region name, got ''") }
        guard !key.isEmpty else { throw .invalidArgument("key: expected a shared-memory key (e.g. '/input0'), got ''") }
        guard byteSize > 0 else { throw .invalidArgument("byte_size: expected at least 1 byte, got 0") }
        let fd = shm_open(key, O_RDWR | O_CLOEXEC, 0)
        guard fd >= 0 else {
            throw .invalidArgument(
                "key: cannot open shared-memory object '\(SwitchyardError.echo(key))': \(String(cString: strerror(errno)))"
            )
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .invalidArgument(
                "key: cannot read the size of shared-memory object '\(SwitchyardError.echo(key))': \(reason)"
            )
        }
        let objectSize = UInt64(max(0, status.st_size))
        guard offset < objectSize else {
            close(fd)
            throw .invalidArgument(
                "offset: \(offset) is past the end of shared-memory object '\(SwitchyardError.echo(key))' "
                    + "(\(objectSize) bytes); expected less than \(objectSize)"
            )
        }
        guard byteSize <= objectSize - offset else {
            close(fd)
            throw .invalidArgument(
                "byte_size: \(byteSize) bytes from offset \(offset) overrun shared-memory object "
                    + "'\(SwitchyardError.echo(key))' of \(objectSize) bytes; expected at most \(objectSize - offset)"
            )
        }
        self.name = name
        self.key = key
        self.offset = Int(offset)
        self.byteSize = Int(byteSize)
        self.fd = fd
    }

    deinit { close(fd) }

    /// Checks that `byteSize` bytes at `offset` in the region fit in it.
    /// - Parameter tensor: how the failure names the tensor ("input 'x'").
    /// - Throws: `invalidArgument` when the range does not fit in the region.
    func checkRange(offset: Int, byteSize: Int, tensor: String) throws(SwitchyardError) {
        guard offset >= 0, offset <= self.byteSize else {
            throw .invalidArgument(
                "\(tensor): shared_memory_offset \(offset) is outside region '\(SwitchyardError.echo(name))' of "
                    + "\(self.byteSize) bytes"
            )
        }
        guard byteSize <= self.byteSize - offset else {
            throw .invalidArgument(
                "\(tensor): \(byteSize) bytes at shared_memory_offset \(offset) overrun region "
                    + "'\(SwitchyardError.echo(name))' of \(self.byteSize) bytes"
            )
        }
    }

    /// Copies `destination.count` bytes from `offset` in the region (checked by `checkRange`) into `destination`.
    /// - Throws: `invalidArgument` when the object has shrunk below the region since it was registered.
    func read(into destination: UnsafeMutableRawBufferPointer, at offset: Int, tensor: String) throws(SwitchyardError) {
        var done = 0
        while done < destination.count {
            let count = pread(
                fd,
                destination.baseAddress! + done,
                destination.count - done,
                off_t(self.offset + offset + done)
            )
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw .invalidArgument(
                    "\(tensor): region '\(SwitchyardError.echo(name))' holds \(done) of the \(destination.count) bytes "
                        + "expected at shared_memory_offset \(offset): its shared-memory object "
                        + "'\(SwitchyardError.echo(key))' was truncated after it was registered"
                )
            }
            done += count
        }
    }

    /// Copies `source` to `offset` in the region (checked by `checkRange`).
    /// - Returns: false when the system refused the write (the object cannot grow back to the region's size).
    func write(_ source: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        var done = 0
        while done < source.count {
            let count = pwrite(fd, source.baseAddress! + done, source.count - done, off_t(self.offset + offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            done += count
        }
        return true
    }
}

/// The registered regions, by name. Registering and unregistering are rare; looking a region up is one lock.
final class SharedMemoryRegions: Sendable {
    private let regions = Mutex<[String: SharedMemoryRegion]>([:])

    /// Registers `region` under its name.
    /// - Throws: `failedPrecondition` when the name is taken.
    func register(_ region: SharedMemoryRegion) throws(SwitchyardError) {
        try regions.withLock { regions throws(SwitchyardError) in
            if let existing = regions[region.name] {
                throw SwitchyardError(
                    .failedPrecondition,
                    "name: region '\(SwitchyardError.echo(region.name))' is already registered (key "
                        + "'\(SwitchyardError.echo(existing.key))'); unregister it first"
                )
            }
            regions[region.name] = region
        }
    }

    /// Unregisters `name`, or every region for ""; a name not registered is no error. Calls using a region keep
    /// it mapped until they finish.
    func unregister(_ name: String) {
        let removed = regions.withLock { regions in
            if name.isEmpty {
                defer { regions.removeAll() }
                return Array(regions.values)
            }
            return regions.removeValue(forKey: name).map { [$0] } ?? []
        }
        // Unmapped here, outside the lock, unless a call still holds it.
        _ = removed
    }

    /// The region named `name`, if registered.
    func region(_ name: String) -> SharedMemoryRegion? { regions.withLock { $0[name] } }

    /// Every region, or just `name` ("" = all), sorted by name.
    /// - Throws: `notFound` for a name not registered.
    func status(_ name: String) throws(SwitchyardError) -> [SharedMemoryRegion] {
        let all = regions.withLock { $0 }
        if name.isEmpty { return all.values.sorted { $0.name < $1.name } }
        guard let region = all[name] else {
            throw .notFound(
                "no system shared-memory region '\(SwitchyardError.echo(name))'; registered: "
                    + (all.isEmpty ? "none" : all.keys.sorted().joined(separator: ", "))
            )
        }
        return [region]
    }
}

/// A tensor's place in a registered region, from its `shared_memory_*` parameters.
struct SharedMemoryPlacement: Sendable {
    /// The region (held, so that it stays mapped while the call uses it).
    let region: SharedMemoryRegion
    /// Offset into the region.
    let offset: Int
    /// Bytes the client set aside for the tensor.
    let byteSize: Int

    /// The placement a tensor's parameters ask for, or `nil` when they name no region.
    /// - Parameter tensor: how failures name the tensor ("input 'x'").
    /// - Throws: `invalidArgument` naming the parameter: an unknown region, a missing or negative size or offset.
    static func parse(
        count: Int,
        entry: (Int) -> (key: UnsafeMutablePointer<CChar>?, value: Inference__InferParameter?),
        regions: SharedMemoryRegions?,
        tensor: @autoclosure () -> String
    ) throws(SwitchyardError) -> SharedMemoryPlacement? {
        guard count > 0 else { return nil }
        var name: String?
        var byteSize: Int?
        var offset = 0
        for index in 0..<count {
            let (key, value) = entry(index)
            guard let value else { continue }
            if cStringEquals(key, "shared_memory_region") {
                guard value.parameter_choice_case == INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM else {
                    throw .invalidArgument("\(tensor()): parameter 'shared_memory_region': expected a string")
                }
                name = swiftString(value.string_param)
            } else if cStringEquals(key, "shared_memory_byte_size") {
                byteSize = try integer(value, "shared_memory_byte_size", tensor())
            } else if cStringEquals(key, "shared_memory_offset") {
                offset = try integer(value, "shared_memory_offset", tensor())
            }
        }
        guard let name else {
            if byteSize != nil {
                throw .invalidArgument(
                    "\(tensor()): parameter 'shared_memory_byte_size' without 'shared_memory_region'; expected both"
                )
            }
            return nil
        }
        guard let regions else {
            throw .invalidArgument(
                "\(tensor()): parameter 'shared_memory_region': system shared memory is for clients on this machine; "
                    + "this call came from beyond loopback"
            )
        }
        guard let region = regions.region(name) else {
            throw .invalidArgument(
                "\(tensor()): parameter 'shared_memory_region': no system shared-memory region "
                    + "'\(SwitchyardError.echo(name))' is registered"
            )
        }
        guard let byteSize else {
            throw .invalidArgument(
                "\(tensor()): parameter 'shared_memory_byte_size' is missing; expected it with 'shared_memory_region'"
            )
        }
        try region.checkRange(offset: offset, byteSize: byteSize, tensor: tensor())
        return SharedMemoryPlacement(region: region, offset: offset, byteSize: byteSize)
    }

    private static func integer(
        _ value: Inference__InferParameter,
        _ name: String,
        _ tensor: String
    ) throws(SwitchyardError) -> Int {
        switch value.parameter_choice_case {
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
            guard value.int64_param >= 0 else {
                throw .invalidArgument("\(tensor): parameter '\(name)': expected ≥ 0, got \(value.int64_param)")
            }
            return Int(value.int64_param)
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
            return Int(clamping: value.uint64_param)
        default:
            throw .invalidArgument("\(tensor): parameter '\(name)': expected an integer")
        }
    }

    /// Reads the tensor's bytes (`byteSize` of them) into `destination`.
    /// - Throws: `invalidArgument` when the object was truncated since registration.
    func read(into destination: UnsafeMutableRawBufferPointer, tensor: String) throws(SwitchyardError) {
        try region.read(into: destination, at: offset, tensor: tensor)
    }

    /// Writes an output's bytes at the placement; false when the system refused.
    func write(_ source: UnsafeRawBufferPointer) -> Bool { region.write(source, at: offset) }

    /// Writes an output's FP32 values at the placement, converted to the datatype the model declares; returns the
    /// byte count, which the answer reports. Only a full tmpfs refuses the write (the region was checked at
    /// validation, and a truncated object grows back): the region then keeps what it held.
    func write(_ values: ArraySlice<Float>, as dataType: DataType) -> Int {
        let byteCount = values.count * (dataType.elementSize ?? 4)
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 16)
        defer { bytes.deallocate() }
        values.withUnsafeBufferPointer { TensorConversion.fromFloat(dataType, $0, into: bytes) }
        _ = write(UnsafeRawBufferPointer(start: bytes, count: byteCount))
        return byteCount
    }
}
