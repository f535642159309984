// The per-address connection limit (`limits.max_connections_per_address`): how many connections each client IP
// address holds open, across loops. Touched once when a connection is accepted and once when it closes, never
// per request, and only when the limit is on.

import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A client's IP address as a hashable key (IPv4 addresses as IPv4-mapped IPv6).
struct PeerAddress: Hashable, Sendable {
    let high: UInt64
    let low: UInt64

    /// Whether the address is a loopback address: 127.0.0.0/8 (IPv4-mapped) or ::1.
    var isLoopback: Bool {
        high == 0 && (low == 1 || low >> 24 == 0xFFFF_7F)
    }
}

extension PeerAddress {
    /// The peer address of a connected socket, or `nil` when the system cannot say.
    init?(socket fd: Int32) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            let address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }.sin_addr.s_addr
            self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(UInt32(bigEndian: address)))
        case AF_INET6:
            let bytes = withUnsafeBytes(of: &storage) { raw in
                withUnsafeBytes(of: raw.load(as: sockaddr_in6.self).sin6_addr) { Array($0) }
            }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
            self.init(high: high, low: low)
        default:
            return nil
        }
    }
}

/// Open connections per client address, shared by the loops of one server.
final class AddressCounts: Sendable {
    private let counts = Mutex<[PeerAddress: Int]>([:])

    /// Counts a new connection from `address`; false (and nothing counted) when it already holds `limit`.
    func open(_ address: PeerAddress, limit: Int) -> Bool {
        counts.withLock { counts in
            let current = counts[address, default: 0]
            guard current < limit else { return false }
            counts[address] = current + 1
            return true
        }
    }

    /// A connection from `address` closed.
    func close(_ address: PeerAddress) {
        counts.withLock { counts in
            let current = counts[address, default: 0]
            if current <= 1 { counts[address] = nil } else { counts[address] = current - 1 }
        }
    }

    /// Connections open from `address` now.
    func count(_ address: PeerAddress) -> Int { counts.withLock { $0[address, default: 0] } }
}
