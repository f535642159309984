// The `cluster:` section: defaults, decoding and validation with key paths.

import Foundation
import Testing

@testable import SwitchyardCore

@Suite struct ClusterConfigurationTests {
    @Test func absentSectionLeavesTheReplicaAlone() throws {
        let config = try JSONDecoder().decode(ServerConfiguration.self, from: Data("{}".utf8))
        #expect(config.cluster == nil)
        #expect(config.validate().isEmpty)
    }

    @Test func decodesWithDocumentedDefaults() throws {
        let json = #"{"cluster": {"etcd": {"endpoints": ["http://127.0.0.1:2379"]}}}"#
        let config = try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8))
        let cluster = try #require(config.cluster)
        #expect(cluster.etcd.endpoints == ["http://127.0.0.1:2379"])
        #expect(cluster.etcd.prefix == "/switchyard/default")
        #expect(cluster.etcd.dialTimeoutMilliseconds == 2000)
        #expect(cluster.etcd.leaseTTLSeconds == 10)
        #expect(cluster.etcd.tls == nil)
        #expect(cluster.replicaID == SystemInfo.hostName)
        #expect(!cluster.replicaID.isEmpty)
        #expect(config.validate().isEmpty)
    }

    @Test func decodesEveryKey() throws {
        let json = #"""
            {"cluster": {"replica_id": "gw-1", "etcd": {"endpoints": ["https://etcd:2379"], "prefix": "/switchyard/prod",
             "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}, "dial_timeout_ms": 500, "lease_ttl_s": 5}}}
            """#
        let cluster = try #require(try JSONDecoder().decode(ServerConfiguration.self, from: Data(json.utf8)).cluster)
        #expect(cluster.replicaID == "gw-1")
        #expect(cluster.etcd.prefix == "/switchyard/prod")
        #expect(cluster.etcd.tls == .init(ca: "ca.pem", cert: "c.pem", key: "k.pem"))
        #expect(cluster.etcd.dialTimeoutMilliseconds == 500)
        #expect(cluster.etcd.leaseTTLSeconds == 5)
        #expect(cluster.validate().isEmpty)
    }

    @Test func reportsEveryProblemWithItsKeyPath() {
        let etcd = ClusterConfiguration.EtcdSettings(
            endpoints: ["etcd:2379", "https://etcd:2379", "http://nohost"],
            prefix: "switchyard/",
            tls: nil,
            dialTimeoutMilliseconds: 0,
            leaseTTLSeconds: 1
        )
        let config = ServerConfiguration(cluster: ClusterConfiguration(etcd: etcd, replicaID: "a b"))
        let problems = config.validate()
        #expect(
            problems == [
                "cluster.etcd.endpoints[0]: expected http://HOST:PORT or https://HOST:PORT, got 'etcd:2379'",
                "cluster.etcd.endpoints[1]: an https endpoint needs cluster.etcd.tls (at least {})",
                "cluster.etcd.endpoints[2]: expected http://HOST:PORT, got 'http://nohost'",
                "cluster.etcd.prefix: expected an absolute key path without a trailing slash (e.g. /switchyard/prod), "
                    + "got 'switchyard/'",
                "cluster.etcd.dial_timeout_ms: expected 100…60000, got 0",
                "cluster.etcd.lease_ttl_s: expected 2…3600, got 1",
                "cluster.replica_id: expected 1…128 characters of letters, digits, '-', '_' or '.', got 'a b'",
            ]
        )
    }

    @Test func requiresEndpointsAndAPairedCertificate() {
        let etcd = ClusterConfiguration.EtcdSettings(endpoints: [], tls: .init(cert: "c.pem"))
        #expect(
            ClusterConfiguration(etcd: etcd, replicaID: "r").validate() == [
                "cluster.etcd.endpoints: expected at least one etcd client URL (http://host:2379)",
                "cluster.etcd.tls: expected both cert and key, or neither; got only one",
            ]
        )
    }
}
