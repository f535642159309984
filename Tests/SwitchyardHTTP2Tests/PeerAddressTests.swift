// Whether a client is on this machine (GRPCRequestHead.peerIsLoopback): read from real loopback and non-loopback
// addresses as the accept path stores them (IPv4 as IPv4-mapped IPv6).

import Testing

@testable import SwitchyardHTTP2

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct PeerAddressTests {
    /// The key of an IPv4 address as `PeerAddress(socket:)` builds it.
    private static func ipv4(_ text: String) -> PeerAddress {
        var address = in_addr()
        _ = inet_pton(AF_INET, text, &address)
        return PeerAddress(high: 0, low: 0xFFFF_0000_0000 | UInt64(UInt32(bigEndian: address.s_addr)))
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.255.0.9", true), ("192.0.2.2", false), ("10.0.0.1", false),
        ("126.255.255.255", false), ("128.0.0.1", false), ("0.0.0.0", false),
    ])
    func ipv4(_ text: String, loopback: Bool) {
        #expect(Self.ipv4(text).isLoopback == loopback)
    }

    @Test func ipv6() {
        #expect(PeerAddress(high: 0, low: 1).isLoopback)
        #expect(!PeerAddress(high: 0, low: 2).isLoopback)
        #expect(!PeerAddress(high: 0xFD00_0000_0000_0000, low: 2).isLoopback)
    }

    @Test func aConnectedLoopbackSocketIsLoopback() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(bind(listener, raw, length) == 0)
                try #require(listen(listener, 1) == 0)
                try #require(getsockname(listener, raw, &length) == 0)
            }
        }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(connect(client, raw, length) == 0)
            }
        }
        let accepted = accept(listener, nil, nil)
        defer { close(accepted) }
        #expect(PeerAddress(socket: accepted)?.isLoopback == true)
    }
}
