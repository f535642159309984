// The load generator's one OpenSSL file: a client context (TLS 1.2+, ALPN "h2", optional CA verification
// with host-name or IP checks, optional client certificate) and a per-connection session over memory BIOs,
// so a connection moves ciphertext between the socket and OpenSSL the same way it moves plaintext to nghttp2.

internal import COpenSSL
import SwitchyardCore

/// TLS settings for the generator's connections.
public struct ClientTLSOptions: Sendable, Hashable {
    /// PEM CA bundle to verify the server with; nil skips verification (the run is labelled so).
    public var caFile: String?
    /// PEM client certificate chain, for servers that require one.
    public var certificateFile: String?
    /// PEM private key of the client certificate.
    public var keyFile: String?
    /// Name for SNI and certificate checks (default: the target's host).
    public var serverName: String?

    /// Creates options.
    public init(
        caFile: String? = nil,
        certificateFile: String? = nil,
        keyFile: String? = nil,
        serverName: String? = nil
    ) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}

private func openSSLErrors() -> String {
    var parts: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        parts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return parts.isEmpty ? "no OpenSSL error detail" : parts.joined(separator: "; ")
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

/// One connection's client TLS state. Loop-confined.
final class ClientTLSSession {
    private let ssl: OpaquePointer
    private let input: OpaquePointer
    private let output: OpaquePointer
    /// Whether the handshake completed with ALPN "h2".
    private(set) var established = false
    /// Why the session failed, once it has.
    private(set) var failure: String?

    init(context: ClientTLSContext) throws(SwitchyardError) {
        guard let ssl = SSL_new(context.context), let input = BIO_new(BIO_s_mem()),
            let output = BIO_new(BIO_s_mem())
        else { throw .internal("TLS: cannot create a session: \(openSSLErrors())") }
        self.ssl = ssl
        self.input = input
        self.output = output
        SSL_set_bio(ssl, input, output)
        SSL_set_connect_state(ssl)
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

    deinit { SSL_free(ssl) }

    /// Advances the handshake; returns false when it failed (see `failure`).
    func handshake() -> Bool {
        guard !established, failure == nil else { return failure == nil }
        let status = SSL_do_handshake(ssl)
        if status != 1 {
            let error = SSL_get_error(ssl, status)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return true }
            let verify = SSL_get_verify_result(ssl)
            let detail =
                verify != X509_V_OK
                ? " (server certificate: \(String(cString: X509_verify_cert_error_string(verify))))" : ""
            failure = "TLS handshake failed: \(openSSLErrors())\(detail)"
            return false
        }
        var alpn: UnsafePointer<UInt8>? = nil
        var alpnLength: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &alpn, &alpnLength)
        guard alpnLength == 2, let alpn, alpn[0] == UInt8(ascii: "h"), alpn[1] == UInt8(ascii: "2") else {
            failure = "TLS: the server did not negotiate ALPN \"h2\""
            return false
        }
        established = true
        return true
    }

    /// Feeds ciphertext; hands decrypted bytes to `onPlaintext`. Returns false on failure or close.
    func receive(
        _ ciphertext: UnsafeRawBufferPointer,
        scratch: UnsafeMutableRawBufferPointer,
        onPlaintext: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        if ciphertext.count > 0 {
            guard BIO_write(input, ciphertext.baseAddress, Int32(ciphertext.count)) == Int32(ciphertext.count) else {
                failure = "TLS: cannot buffer \(ciphertext.count) bytes"
                return false
            }
        }
        if !established {
            guard handshake() else { return false }
            if !established { return true }
        }
        while true {
            let count = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
            if count > 0 {
                if !onPlaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)])) { return false }
                continue
            }
            switch SSL_get_error(ssl, count) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return true
            case SSL_ERROR_ZERO_RETURN: return false
            default:
                failure = "TLS read failed: \(openSSLErrors())"
                return false
            }
        }
    }

    /// Encrypts plaintext; the ciphertext is collected by `drain(into:)`.
    func send(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < plaintext.count {
            let n = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(plaintext.count - offset))
            if n <= 0 { return false }
            offset += Int(n)
        }
        return true
    }

    /// Moves pending ciphertext to the socket's output buffer.
    func drain(into buffer: inout [UInt8]) {
        while true {
            let pending = BIO_ctrl_pending(output)
            if pending == 0 { return }
            let start = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: Int(pending)))
            let read = buffer.withUnsafeMutableBytes { raw in
                BIO_read(output, raw.baseAddress! + start, Int32(pending))
            }
            buffer.removeSubrange((start + Int(max(read, 0)))...)
            if read <= 0 { return }
        }
    }
}
