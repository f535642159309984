// End-to-end TLS tests: certificates made at test time with the `openssl` CLI, grpcio's TLS channel
// as the client, ALPN "h2" required, optional client-certificate verification.

import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardHTTP2

/// A throw-away CA with a server certificate (localhost, 127.0.0.1) and a client certificate.
struct TestPKI {
    let directory: URL
    var ca: String { directory.appendingPathComponent("ca.pem").path }
    var serverCert: String { directory.appendingPathComponent("server.pem").path }
    var serverKey: String { directory.appendingPathComponent("server.key").path }
    var clientCert: String { directory.appendingPathComponent("client.pem").path }
    var clientKey: String { directory.appendingPathComponent("client.key").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchyard-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let d = directory.path
        let script = """
            set -e
            cd '\(d)'
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
                -days 2 -subj /CN=switchyard-test-ca 2>/dev/null
            for who in server client; do
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout $who.key -out $who.csr \
                    -subj /CN=$who 2>/dev/null
            done
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            for who in server client; do
                openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 \
                    -extfile $who.ext 2>/dev/null
            done
            """
        let result = try Clients.run("/bin/sh", ["-c", script])
        guard result.status == 0 else {
            throw SwitchyardError.internal("openssl could not create test certificates: \(result.stderr)")
        }
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }
}

@Suite(.serialized, .enabled(if: Clients.grpcioAvailable, "python3 with grpcio is not installed"))
struct TLSTests {
    @Test func echoOverTLS() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let s = try RunningServer(tls: .init(certificate: pki.serverCert, key: pki.serverKey))
        defer { s.stop() }
        let run = try Clients.grpc("unary", s.target, ["--tls-ca", pki.ca, "--size", String(300_000), "--repeat", "3"])
        let results = try #require(run.json["results"] as? [[String: Any]], "client failed: \(run.stderr)")
        #expect(results.allSatisfy { $0["code"] as? String == "OK" && $0["echoed"] as? Bool == true })
        let stream = try Clients.grpc("stream", s.target, ["--tls-ca", pki.ca, "--path", "/test.Test/Stream"])
        #expect(stream.code == "OK")
    }

    @Test func clientCertificateRequired() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let s = try RunningServer(tls: .init(certificate: pki.serverCert, key: pki.serverKey, clientCA: pki.ca))
        defer { s.stop() }
        let without = try Clients.grpc("unary", s.target, ["--tls-ca", pki.ca, "--timeout", "3"])
        #expect(without.code == "UNAVAILABLE", "\(without.json) \(without.stderr)")
        let with = try Clients.grpc(
            "unary",
            s.target,
            ["--tls-ca", pki.ca, "--client-cert", pki.clientCert, "--client-key", pki.clientKey]
        )
        #expect(with.code == "OK", "\(with.json) \(with.stderr)")
        #expect(with.json["echoed"] as? Bool == true)
        #expect(s.server.statistics.protocolErrors >= 1)
    }

    @Test func alpnMustSelectH2() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let s = try RunningServer(tls: .init(certificate: pki.serverCert, key: pki.serverKey))
        defer { s.stop() }
        let http1 = try Clients.run(
            "/bin/sh",
            ["-c", "openssl s_client -connect \(s.target) -alpn http/1.1 -CAfile '\(pki.ca)' </dev/null 2>&1"]
        )
        #expect(http1.stdout.contains("no application protocol"), "\(http1.stdout)")
        let h2 = try Clients.run(
            "/bin/sh",
            ["-c", "openssl s_client -connect \(s.target) -alpn h2 -CAfile '\(pki.ca)' </dev/null 2>&1"]
        )
        #expect(h2.stdout.contains("ALPN protocol: h2"), "\(h2.stdout)")
    }

    @Test func brokenPeerOverTLSGetsGoaway() throws {
        let pki = try TestPKI()
        defer { pki.remove() }
        let s = try RunningServer(tls: .init(certificate: pki.serverCert, key: pki.serverKey))
        defer { s.stop() }
        let broken = try Clients.grpc("garbage", s.target, ["--tls-ca", pki.ca])
        #expect(broken.json["goaway"] as? Bool == true, "\(broken.json) \(broken.stderr)")
        #expect(broken.json["closed"] as? Bool == true)
        #expect(s.server.statistics.protocolErrors >= 1)
        let fine = try Clients.grpc("unary", s.target, ["--tls-ca", pki.ca])
        #expect(fine.code == "OK")
    }

    @Test func missingCertificateFailsClearly() throws {
        #expect {
            _ = try GRPCServer(
                configuration: .init(
                    listen: HostAndPort(host: "127.0.0.1", port: 0),
                    tls: .init(certificate: "/nonexistent/cert.pem", key: "/nonexistent/key.pem")
                ),
                service: TestService(),
                logger: .init(label: "test")
            )
        } throws: { error in
            "\(error)".contains("/nonexistent/cert.pem")
        }
    }
}
