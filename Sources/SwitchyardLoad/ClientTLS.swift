// The load generator's one OpenSSL file: a client context (TLS 1.2+, ALPN "h2", optional CA verification
// with host-name or IP checks, optional client certificate) and a per-connection session over memory BIOs,
// so a connection moves ciphertext between the socket and OpenSSL the same way it moves plaintext to nghttp2.

internal import COpenSSL
import SwitchyardCore
import SwitchyardTLS

/// TLS settings for the generator's connections.
@MemberwiseInit
public struct ClientTLSOptions: Sendable, Hashable {
    /// PEM CA bundle to verify the server with; nil skips verification (the run is labelled so).
    public var caFile: String?
    /// PEM client certificate chain, for servers that require one.
    public var certificateFile: String?
    /// PEM private key of the client certificate.
    public var keyFile: String?
    /// Name for SNI and certificate checks (default: the target's host).
    public var serverName: String?
}

/// A client TLS context shared by all connections of a run (read-only once set up).
final class ClientTLSContext: @unchecked Sendable {
    let context: OpaquePointer
    let serverName: String
    let verifies: Bool

    /// - Throws: `SwitchyardError.invalidArgument` naming the file OpenSSL could not use.
    init(options: ClientTLSOptions, host: String) throws(SwitchyardError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw .internal("TLS: cannot create an OpenSSL context: \(openSSLErrors())")
        }
        self.context = context
        serverName = options.serverName ?? host
        verifies = options.caFile != nil
        _ = cswitchyard_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION)
        // HTTP/2 forbids TLS 1.2's CBC suites (RFC 9113 §9.2.2).
        _ = SSL_CTX_set_cipher_list(context, "ECDHE+AESGCM:ECDHE+CHACHA20")
        let alpn: [UInt8] = [2, UInt8(ascii: "h"), UInt8(ascii: "2")]
        _ = SSL_CTX_set_alpn_protos(context, alpn, UInt32(alpn.count))
        if let ca = options.caFile {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else {
                throw .invalidArgument("--tls-ca: cannot load PEM CA bundle '\(ca)': \(openSSLErrors())")
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        if let cert = options.certificateFile {
            guard let key = options.keyFile else {
                throw .invalidArgument("--tls-cert '\(cert)' needs --tls-key with its private key")
            }
            guard SSL_CTX_use_certificate_chain_file(context, cert) == 1 else {
                throw .invalidArgument("--tls-cert: cannot load PEM certificate chain '\(cert)': \(openSSLErrors())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1,
                SSL_CTX_check_private_key(context) == 1
            else {
                throw .invalidArgument(
                    "--tls-key: cannot load PEM private key '\(key)' matching '\(cert)': \(openSSLErrors())"
                )
            }
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One connection's client TLS state: a shared memory-BIO session set up for SNI and server checks, and
/// the reason it failed, once it has. Loop-confined.
final class ClientTLSSession {
    private let session: MemoryBIOSession
    /// Why the session failed, once it has.
    private(set) var failure: String?
    /// Whether the handshake completed with ALPN "h2".
    var established: Bool { session.established }

    init(context: ClientTLSContext) throws(SwitchyardError) {
        guard let session = MemoryBIOSession(context: context.context, role: .client) else {
            throw .internal("TLS: cannot create a session: \(openSSLErrors())")
        }
        self.session = session
        let ssl = session.ssl
        let name = context.serverName
        let isIP = name.contains(":") || name.allSatisfy { $0.isNumber || $0 == "." }
        if !isIP {
            // SSL_set_tlsext_host_name is a macro over SSL_ctrl.
            _ = name.withCString {
                SSL_ctrl(
                    ssl,
                    SSL_CTRL_SET_TLSEXT_HOSTNAME,
                    Int(TLSEXT_NAMETYPE_host_name),
                    UnsafeMutableRawPointer(mutating: $0)
                )
            }
        }
        if context.verifies {
            if isIP {
                _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
            } else {
                _ = SSL_set1_host(ssl, name)
            }
        }
    }

    /// Advances the handshake; returns false when it failed (see `failure`).
    func handshake() -> Bool {
        guard failure == nil else { return false }
        return record(session.handshake())
    }

    /// Feeds ciphertext; hands decrypted bytes to `onPlaintext`. Returns false on failure or close.
    func receive(
        _ ciphertext: UnsafeRawBufferPointer,
        scratch: UnsafeMutableRawBufferPointer,
        onPlaintext: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        var stopped = false
        let outcome = session.receive(ciphertext, scratch: scratch) { bytes in
            let more = onPlaintext(bytes)
            stopped = !more
            return more
        }
        return record(outcome) && !stopped
    }

    /// Encrypts plaintext; the ciphertext is collected by `drain(into:)`.
    func send(_ plaintext: UnsafeRawBufferPointer) -> Bool { session.send(plaintext) }

    /// Moves pending ciphertext to the socket's output buffer.
    func drain(into buffer: inout [UInt8]) { session.drain(into: &buffer) }

    private func record(_ outcome: MemoryBIOSession.Outcome) -> Bool {
        switch outcome {
        case .ok: return true
        case .closed: return false
        case .failed(let reason):
            failure = reason
            return false
        }
    }
}
