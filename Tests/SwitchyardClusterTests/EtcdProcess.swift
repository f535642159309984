// A real etcd for the tests: `etcd` (Debian's etcd-server) started on free loopback ports with a temporary data
// directory, and stopped with the test. Never a mock.

import Foundation
import SwitchyardCluster
import SwitchyardCore

/// One etcd member run by a test.
final class EtcdProcess: @unchecked Sendable {
    /// The client URL (`http://127.0.0.1:PORT`).
    let endpoint: String
    private var process: Process
    private let directory: URL
    private let clientPort: Int
    private let peerPort: Int

    /// The etcd binary, or `nil` when it is not installed (`apt-get install etcd-server`).
    static var binary: String? {
        let candidates = [ProcessInfo.processInfo.environment["ETCD_BIN"], "/usr/bin/etcd", "/usr/local/bin/etcd"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The message of a test skipped for want of etcd.
    static let missing = "etcd is not installed (Debian: apt-get install etcd-server; scripts/bootstrap.sh --test)"

    /// With TLS: the PEM files of the CA, etcd's server pair and a client pair (`ca.pem`, `server.pem`,
    /// `server-key.pem`, `client.pem`, `client-key.pem`, made by the openssl CLI).
    let tlsDirectory: URL?

    /// The client's TLS settings for this etcd (`nil` without TLS).
    var clientTLS: ClusterConfiguration.EtcdSettings.TLS? {
        tlsDirectory.map {
            .init(
                ca: $0.appendingPathComponent("ca.pem").path,
                cert: $0.appendingPathComponent("client.pem").path,
                key: $0.appendingPathComponent("client-key.pem").path
            )
        }
    }

    /// Starts etcd on two free loopback ports and waits until it answers; with `tls`, it serves HTTPS and requires
    /// client certificates signed by a CA made for the test.
    /// The free ports are found by binding and releasing them, so another test running in parallel can take one
    /// before etcd binds it; etcd then exits at once, and it is started again on two new ports (three tries).
    static func start(tls: Bool = false) async throws -> EtcdProcess {
        var attempt = 0
        while true {
            attempt += 1
            let etcd = try EtcdProcess(tls: tls)
            do {
                try await etcd.waitUntilReady()
                return etcd
            } catch let error as SwitchyardError where error.message == exitedAtStart && attempt < 3 {
                etcd.stop()
            }
        }
    }

    private init(tls: Bool) throws {
        process = Process()
        guard let binary = Self.binary else { throw SwitchyardError(.unavailable, Self.missing) }
        clientPort = try Self.freePort()
        peerPort = try Self.freePort()
        endpoint = "\(tls ? "https" : "http")://127.0.0.1:\(clientPort)"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        tlsDirectory = tls ? directory.appendingPathComponent("tls") : nil
        if let tlsDirectory { try Self.makeCertificates(in: tlsDirectory) }
        try launch(binary)
    }

    /// Starts etcd again on the same ports and data after `stop(keepingData: true)`.
    func restart() async throws {
        guard let binary = Self.binary else { throw SwitchyardError(.unavailable, Self.missing) }
        try launch(binary)
        try await waitUntilReady()
    }

    private func launch(_ binary: String) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        let peer = "http://127.0.0.1:\(peerPort)"
        process.arguments = [
            "--name", "test", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "test=\(peer)", "--log-outputs", "stderr", "--logger", "zap",
        ]
        if let tlsDirectory {
            process.arguments! += [
                "--cert-file", tlsDirectory.appendingPathComponent("server.pem").path,
                "--key-file", tlsDirectory.appendingPathComponent("server-key.pem").path,
                "--trusted-ca-file", tlsDirectory.appendingPathComponent("ca.pem").path,
                "--client-cert-auth",
            ]
        }
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    deinit { stop() }

    /// Stops etcd (SIGTERM, then waits) and, unless `keepingData`, removes its data directory.
    func stop(keepingData: Bool = false) {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if !keepingData { try? FileManager.default.removeItem(at: directory) }
    }

    private func waitUntilReady() async throws {
        let client = try EtcdClient(
            settings: .init(endpoints: [endpoint], tls: clientTLS, dialTimeoutMilliseconds: 200)
        )
        defer { Task { await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if (try? await client.range(key: "/")) != nil { return }
            guard process.isRunning else { throw SwitchyardError(.unavailable, exitedAtStart) }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw SwitchyardError(.unavailable, "etcd did not answer within 20 s")
    }

    /// A CA, a server pair for 127.0.0.1 and a client pair, by the openssl CLI.
    private static func makeCertificates(in directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let script = """
            set -e
            openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem
            for name in server client; do
              openssl req -newkey rsa:2048 -nodes -subj /CN=$name -keyout $name-key.pem -out $name.csr
              printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $name.ext
              openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \\
                -extfile $name.ext -out $name.pem
            done
            """
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/bin/sh")
        openssl.arguments = ["-c", script]
        openssl.currentDirectoryURL = directory
        openssl.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        openssl.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else {
            throw SwitchyardError(.internal, "openssl could not make the test certificates")
        }
    }

    /// A free TCP port on 127.0.0.1 (bound, read back, released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SwitchyardError(.internal, "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw SwitchyardError(.internal, "bind() to a free port failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// What `waitUntilReady` throws when etcd exits before answering (most often: a port taken in the meantime).
private let exitedAtStart = "etcd exited at start"
