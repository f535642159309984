// The server's OpenSSL contexts: certificate, key, TLS 1.2+, optional client-certificate verification, and ALPN:
// "h2" only on the gRPC port, "h2" or "http/1.1" (or no ALPN) on the REST port. Each connection's session over memory BIOs
// is SwitchyardTLS's MemoryBIOSession.

internal import COpenSSL
import SwitchyardCore
import SwitchyardTLS

/// Whether the client's ALPN list (wire format: length-prefixed names) offers `name`; the name's place in it.
private func offered(_ name: StaticString, in input: UnsafePointer<UInt8>, count: Int) -> Int? {
    let wanted = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
    var i = 0
    while i < count {
        let length = Int(input[i])
        if length == wanted.count && i + length < count
            && UnsafeRawBufferPointer(start: input + i + 1, count: length).elementsEqual(wanted)
        {
            return i + 1
        }
        i += 1 + length
    }
    return nil
}

/// ALPN on the REST port: "h2" when the client offers it (REST over HTTP/2), else "http/1.1"; the handshake is refused
/// when the client offers only protocols this port does not speak. A client sending no ALPN at all (an older
/// HTTP/1.1 client) is not asked. Which one the client speaks is told by its first bytes (the HTTP/2 preface or not).
private let alpnSelectREST:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outlen, input, inlen, _ in
        guard let input, let out, let outlen else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        if let at = offered("h2", in: input, count: Int(inlen)) {
            out.pointee = input + at
            outlen.pointee = 2
        } else if let at = offered("http/1.1", in: input, count: Int(inlen)) {
            out.pointee = input + at
            outlen.pointee = 8
        } else {
            return SSL_TLSEXT_ERR_ALERT_FATAL
        }
        return SSL_TLSEXT_ERR_OK
    }

/// ALPN: pick "h2" from the client's list, or refuse the handshake (no fallback to HTTP/1.1).
private let alpnSelect:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outlen, input, inlen, _ in
        guard let input, let out, let outlen, let at = offered("h2", in: input, count: Int(inlen)) else {
            return SSL_TLSEXT_ERR_ALERT_FATAL
        }
        out.pointee = input + at
        outlen.pointee = 2
        return SSL_TLSEXT_ERR_OK
    }

/// A server TLS context, shared read-only by every loop (OpenSSL contexts are thread-safe once set up).
final class TLSContext: @unchecked Sendable {
    /// The application protocol a context's connections speak, chosen by ALPN.
    enum ApplicationProtocol {
        /// gRPC's port: ALPN "h2" is required.
        case http2
        /// The REST port: ALPN "h2" or "http/1.1", or none.
        case http1
    }

    let context: OpaquePointer
    let applicationProtocol: ApplicationProtocol

    /// Loads the certificate chain and key (and CA bundle when client certificates are required).
    /// - Throws: `SwitchyardError.invalidArgument` naming the file and OpenSSL's reason.
    init(settings: ServerConfiguration.TLSSettings, protocol applicationProtocol: ApplicationProtocol = .http2) throws {
        self.applicationProtocol = applicationProtocol
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw SwitchyardError.internal("TLS: cannot create an OpenSSL context: \(openSSLErrors())")
        }
        self.context = context
        // TLS 1.0/1.1 are refused (alert protocol_version); compression and renegotiation are off (options).
        guard cswitchyard_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            throw SwitchyardError.internal("TLS: cannot require TLS 1.2 or later: \(openSSLErrors())")
        }
        _ = cswitchyard_SSL_CTX_set_options(
            context,
            Int(bitPattern: UInt(cswitchyard_ssl_server_options()))
        )
        _ = cswitchyard_SSL_CTX_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // HTTP/2 (RFC 9113 §9.2.2) forbids the old CBC suites for TLS 1.2; keep only AEAD ECDHE ones.
        guard SSL_CTX_set_cipher_list(context, "ECDHE+AESGCM:ECDHE+CHACHA20") == 1 else {
            throw SwitchyardError.internal("TLS: cannot set the TLS 1.2 cipher list: \(openSSLErrors())")
        }
        guard SSL_CTX_use_certificate_chain_file(context, settings.certificate) == 1 else {
            throw SwitchyardError.invalidArgument(
                "tls.cert: cannot load PEM certificate chain '\(settings.certificate)': \(openSSLErrors())"
            )
        }
        guard SSL_CTX_use_PrivateKey_file(context, settings.key, SSL_FILETYPE_PEM) == 1 else {
            throw SwitchyardError.invalidArgument(
                "tls.key: cannot load PEM private key '\(settings.key)': \(openSSLErrors())"
            )
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw SwitchyardError.invalidArgument(
                "tls.key: private key '\(settings.key)' does not match certificate '\(settings.certificate)': "
                    + openSSLErrors()
            )
        }
        if let ca = settings.clientCA {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else {
                throw SwitchyardError.invalidArgument(
                    "tls.client_ca: cannot load PEM CA bundle '\(ca)': \(openSSLErrors())"
                )
            }
            SSL_CTX_set_client_CA_list(context, names)
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        switch applicationProtocol {
        case .http2: SSL_CTX_set_alpn_select_cb(context, alpnSelect, nil)
        case .http1: SSL_CTX_set_alpn_select_cb(context, alpnSelectREST, nil)
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One connection's TLS state over memory BIOs (shared with the load generator's client). Loop-confined.
typealias TLSSession = MemoryBIOSession

extension MemoryBIOSession {
    /// A server session for one accepted connection.
    convenience init?(context: TLSContext) {
        self.init(context: context.context, role: .server, requiresH2: context.applicationProtocol == .http2)
    }
}

extension MemoryBIOSession {
    /// The names of the client's certificate once the handshake verified it (mutual TLS): subject CN, SAN DNS names
    /// and SAN URIs. `nil` without a verified client certificate. Read once per connection.
    func peerCertificate() -> PeerCertificate? {
        guard established, SSL_get_verify_result(ssl) == X509_V_OK, let certificate = SSL_get1_peer_certificate(ssl)
        else { return nil }
        defer { X509_free(certificate) }
        var names = PeerCertificate()
        if let subject = X509_get_subject_name(certificate) {
            let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
            if index >= 0, let entry = X509_NAME_get_entry(subject, index), let data = X509_NAME_ENTRY_get_data(entry) {
                var utf8: UnsafeMutablePointer<UInt8>?
                let length = ASN1_STRING_to_UTF8(&utf8, data)
                if length >= 0, let utf8 {
                    names.subjectCommonName = String(
                        decoding: UnsafeBufferPointer(start: utf8, count: Int(length)),
                        as: UTF8.self
                    )
                    CRYPTO_free(utf8, nil, 0)
                }
            }
        }
        if let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) {
            let stack = OpaquePointer(raw)
            defer { GENERAL_NAMES_free(stack) }
            for index in 0..<OPENSSL_sk_num(stack) {
                guard let entry = OPENSSL_sk_value(stack, index)?.assumingMemoryBound(to: GENERAL_NAME.self) else {
                    continue
                }
                switch entry.pointee.type {
                case GEN_DNS: if let text = asn1Text(entry.pointee.d.dNSName) { names.dnsNames.append(text) }
                case GEN_URI:
                    if let text = asn1Text(entry.pointee.d.uniformResourceIdentifier) { names.uris.append(text) }
                default: continue
                }
            }
        }
        return names
    }
}

/// The bytes of an IA5String (ASCII) as text.
private func asn1Text(_ string: UnsafeMutablePointer<ASN1_STRING>?) -> String? {
    guard let string, let bytes = ASN1_STRING_get0_data(string) else { return nil }
    return String(decoding: UnsafeBufferPointer(start: bytes, count: Int(ASN1_STRING_length(string))), as: UTF8.self)
}
