// The names in a client's certificate (mutual TLS), as read once per connection after the handshake: what a tenant
// identity (`tenants.identity: {source: client_certificate, field: …}`) is taken from.

/// The names a verified client certificate carries.
@MemberwiseInit
public struct PeerCertificate: Sendable, Hashable {
    /// The subject's common name (CN), if it has one.
    public var subjectCommonName: String?
    /// The subjectAltName DNS entries, in certificate order.
    public var dnsNames: [String] = []
    /// The subjectAltName URI entries (e.g. SPIFFE IDs), in certificate order.
    public var uris: [String] = []

    /// The name `field` gives: the CN, or the first SAN entry of that kind.
    public func name(_ field: TenantsConfiguration.Identity.Field) -> String? {
        switch field {
        case .subjectCN: subjectCommonName
        case .sanDNS: dnsNames.first
        case .sanURI: uris.first
        }
    }
}
