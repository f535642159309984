// System shared-memory regions over real POSIX shared-memory objects: registration checks name the field, a
// tensor's range is checked against its region, a region unregistered while held stays readable, and an object
// truncated behind the gateway's back is a refusal, not a fault.

import SwitchyardCore
import Testing

@testable import SwitchyardInference

#if canImport(Glibc)
    import Glibc
#endif

/// A shared-memory object of `size` bytes holding 0, 1, 2, … (mod 256), unlinked when the test ends.
private final class SharedObject {
    let key = "/switchyard-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    init(size: Int) throws {
        let fd = shm_open(key, O_CREAT | O_EXCL | O_RDWR, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        try #require(ftruncate(fd, off_t(size)) == 0)
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0) }
        try #require(bytes.withUnsafeBytes { write(fd, $0.baseAddress, size) } == size)
    }

    deinit { shm_unlink(key) }
}

@Suite struct SharedMemoryTests {
    /// `count` bytes read from `region` at `offset`.
    private func read(_ region: SharedMemoryRegion, at offset: Int, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try region.read(into: $0, at: offset, tensor: "input 'x'") }
        return bytes
    }

    @Test func aRegionReadsAndWritesItsRangeOfTheObject() throws {
        let object = try SharedObject(size: 10_000)
        let region = try SharedMemoryRegion(name: "in", key: object.key, offset: 5000, byteSize: 4000)
        #expect(
            try read(region, at: 0, count: 2) == [UInt8(truncatingIfNeeded: 5000), UInt8(truncatingIfNeeded: 5001)]
        )
        try region.checkRange(offset: 100, byteSize: 3900, tensor: "input 'x'")
        #expect(try read(region, at: 100, count: 1) == [UInt8(truncatingIfNeeded: 5100)])
        #expect([UInt8](repeating: 7, count: 3).withUnsafeBytes { region.write($0, at: 10) })
        #expect(
            try read(region, at: 9, count: 5) == [
                UInt8(truncatingIfNeeded: 5009), 7, 7, 7, UInt8(truncatingIfNeeded: 5013),
            ]
        )
    }

    @Test func aTruncatedObjectIsRefusedNotAFault() throws {
        let object = try SharedObject(size: 8192)
        let region = try SharedMemoryRegion(name: "in", key: object.key, offset: 0, byteSize: 8192)
        let fd = shm_open(object.key, O_RDWR, 0)
        try #require(fd >= 0)
        try #require(ftruncate(fd, 100) == 0)
        close(fd)
        let error = #expect(throws: SwitchyardError.self) { try read(region, at: 0, count: 4096) }
        #expect(error?.code == .invalidArgument)
        #expect(
            error?.message == "input 'x': region 'in' holds 100 of the 4096 bytes expected at shared_memory_offset 0: "
                + "its shared-memory object '\(object.key)' was truncated after it was registered"
        )
    }

    @Test func badRegistrationsNameTheField() throws {
        let object = try SharedObject(size: 1024)
        let cases: [(String, String, UInt64, UInt64, String)] = [
            ("", object.key, 0, 16, "name: expected a region name, got ''"),
            ("r", "", 0, 16, "key: expected a shared-memory key (e.g. '/input0'), got ''"),
            ("r", object.key, 0, 0, "byte_size: expected at least 1 byte, got 0"),
            (
                "r", object.key, 1024, 1,
                "offset: 1024 is past the end of shared-memory object '\(object.key)' (1024 bytes); expected less than 1024"
            ),
            (
                "r", object.key, 1000, 25,
                "byte_size: 25 bytes from offset 1000 overrun shared-memory object '\(object.key)' of 1024 bytes; expected at most 24"
            ),
            (
                "r", object.key, 0, UInt64.max,
                "byte_size: \(UInt64.max) bytes from offset 0 overrun shared-memory object '\(object.key)' of 1024 bytes; expected at most 1024"
            ),
            (
                "r", "/switchyard-test-missing", 0, 16,
                "key: cannot open shared-memory object '/switchyard-test-missing': No such file or directory"
            ),
        ]
        for (name, key, offset, size, message) in cases {
            let error = #expect(throws: SwitchyardError.self) {
                try SharedMemoryRegion(name: name, key: key, offset: offset, byteSize: size)
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == message)
        }
    }

    @Test func tensorRangesAreCheckedAgainstTheRegion() throws {
        let object = try SharedObject(size: 4096)
        let region = try SharedMemoryRegion(name: "out", key: object.key, offset: 0, byteSize: 256)
        #expect(throws: Never.self) { try region.checkRange(offset: 0, byteSize: 256, tensor: "output 'y'") }
        let overrun = #expect(throws: SwitchyardError.self) {
            try region.checkRange(offset: 8, byteSize: 256, tensor: "output 'y'")
        }
        #expect(overrun?.message == "output 'y': 256 bytes at shared_memory_offset 8 overrun region 'out' of 256 bytes")
        let outside = #expect(throws: SwitchyardError.self) {
            try region.checkRange(offset: 300, byteSize: 1, tensor: "output 'y'")
        }
        #expect(outside?.message == "output 'y': shared_memory_offset 300 is outside region 'out' of 256 bytes")
    }

    @Test func unregisteringKeepsAHeldRegionOpen() throws {
        let object = try SharedObject(size: 8192)
        let regions = SharedMemoryRegions()
        try regions.register(try SharedMemoryRegion(name: "a", key: object.key, offset: 4096, byteSize: 4096))
        try regions.register(try SharedMemoryRegion(name: "b", key: object.key, offset: 0, byteSize: 16))
        let taken = #expect(throws: SwitchyardError.self) {
            try regions.register(try SharedMemoryRegion(name: "a", key: object.key, offset: 0, byteSize: 16))
        }
        #expect(taken?.message == "name: region 'a' is already registered (key '\(object.key)'); unregister it first")
        #expect(try regions.status("").map(\.name) == ["a", "b"])
        let held = try #require(regions.region("a"))
        regions.unregister("a")
        #expect(regions.region("a") == nil)
        // The call holding it still reads the object.
        #expect(try read(held, at: 1, count: 1) == [UInt8(truncatingIfNeeded: 4097)])
        regions.unregister("never-registered")
        regions.unregister("")
        #expect(try regions.status("").isEmpty)
        let missing = #expect(throws: SwitchyardError.self) { try regions.status("b") }
        #expect(missing?.message == "no system shared-memory region 'b'; registered: none")
    }
}
