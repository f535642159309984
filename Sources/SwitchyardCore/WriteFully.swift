// Writing a whole buffer to a file descriptor, for the modules that keep files of their own (comparison records,
// the audit log, the route state file): `write` may take part of a buffer, or be interrupted by a signal.

#if canImport(Glibc)
    import Glibc
#endif

/// Writes every byte of `bytes` to `fd`, continuing after partial writes and retrying writes a signal interrupted.
/// - Returns: 0 when every byte was written, else the `errno` of the write that failed (what was written before
///   it stays written).
package func writeFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += written
    }
    return 0
}
