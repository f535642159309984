// The server's OpenSSL context: certificate, key, TLS 1.2+, ALPN "h2" only, optional client-certificate
// verification. Each connection's session over memory BIOs is SwitchyardTLS's MemoryBIOSession.

internal import COpenSSL
import SwitchyardCore
import SwitchyardTLS

/// ALPN: pick "h2" from the client's list, or refuse the handshake (no fallback to HTTP/1.1).
private let alpnSelect:
    @convention(c) (
        OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
        UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
    ) -> Int32 = { _, out, outlen, input, inlen, _ in
        guard let input, let out, let outlen else { return SSL_TLSEXT_ERR_ALERT_FATAL }
        var i = 0
        let count = Int(inlen)
        while i < count {
            let length = Int(input[i])
            if length == 2 && i + 2 < count && input[i + 1] == UInt8(ascii: "h") && input[i + 2] == UInt8(ascii: "2") {
                out.pointee = input + i + 1
                outlen.pointee = 2
                return SSL_TLSEXT_ERR_OK
            }
            i += 1 + length
        }
        return SSL_TLSEXT_ERR_ALERT_FATAL
    }

/// A server TLS context, shared read-only by every loop (OpenSSL contexts are thread-safe once set up).
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    /// Loads the certificate chain and key (and CA bundle when client certificates are required).
    /// - Throws: `SwitchyardError.invalidArgument` naming the file and OpenSSL's reason.
    init(settings: ServerConfiguration.TLSSettings) throws {
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
        SSL_CTX_set_alpn_select_cb(context, alpnSelect, nil)
    }

    deinit { SSL_CTX_free(context) }
}

/// One connection's TLS state over memory BIOs (shared with the load generator's client). Loop-confined.
typealias TLSSession = MemoryBIOSession

extension MemoryBIOSession {
    /// A server session for one accepted connection.
    convenience init?(context: TLSContext) { self.init(context: context.context, role: .server) }
}
