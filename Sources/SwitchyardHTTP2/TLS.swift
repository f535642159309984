// The one file that talks to OpenSSL: a server context (certificate, key, TLS 1.2+, ALPN "h2", optional
// client-certificate verification) and a per-connection session over memory BIOs, so the connection code
// moves ciphertext between the socket and OpenSSL exactly as it moves plaintext into nghttp2.

internal import COpenSSL
import SwitchyardCore

/// The most recent OpenSSL errors as text (and clears the queue).
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
        _ = cswitchyard_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION)
        _ = cswitchyard_SSL_CTX_set_options(
            context,
            Int(bitPattern: UInt(cswitchyard_ssl_server_options()))
        )
        _ = cswitchyard_SSL_CTX_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // HTTP/2 (RFC 9113 §9.2.2) forbids the old CBC suites for TLS 1.2; keep only AEAD ECDHE ones.
        _ = SSL_CTX_set_cipher_list(context, "ECDHE+AESGCM:ECDHE+CHACHA20")
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

/// One connection's TLS state over memory BIOs. Loop-confined.
final class TLSSession {
    private let ssl: OpaquePointer
    private let input: OpaquePointer  // ciphertext from the socket
    private let output: OpaquePointer  // ciphertext for the socket
    /// Whether the handshake completed (ALPN then chose "h2").
    private(set) var established = false

    init?(context: TLSContext) {
        guard let ssl = SSL_new(context.context) else { return nil }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
        self.input = input
        self.output = output
        SSL_set_bio(ssl, input, output)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    /// What became of ciphertext fed in.
    enum ReadResult {
        case ok
        case failed(String)
        case closed
    }

    /// Feeds ciphertext from the socket; runs the handshake and hands each decrypted chunk to `onPlaintext`.
    func receive(
        _ ciphertext: UnsafeRawBufferPointer,
        scratch: UnsafeMutableRawBufferPointer,
        onPlaintext: (UnsafeRawBufferPointer) -> Bool
    ) -> ReadResult {
        if ciphertext.count > 0 {
            let written = BIO_write(input, ciphertext.baseAddress, Int32(ciphertext.count))
            if written != Int32(ciphertext.count) { return .failed("TLS: cannot buffer \(ciphertext.count) bytes") }
        }
        if !established {
            let status = SSL_do_handshake(ssl)
            if status != 1 {
                let error = SSL_get_error(ssl, status)
                if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return .ok }
                let verify = SSL_get_verify_result(ssl)
                let detail =
                    verify != X509_V_OK
                    ? " (peer certificate: \(String(cString: X509_verify_cert_error_string(verify))))" : ""
                return .failed("TLS handshake failed: \(openSSLErrors())\(detail)")
            }
            var alpn: UnsafePointer<UInt8>? = nil
            var alpnLength: UInt32 = 0
            SSL_get0_alpn_selected(ssl, &alpn, &alpnLength)
            guard alpnLength == 2, let alpn, alpn[0] == UInt8(ascii: "h"), alpn[1] == UInt8(ascii: "2") else {
                return .failed("TLS: client did not negotiate ALPN \"h2\"")
            }
            established = true
        }
        while true {
            let count = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
            if count > 0 {
                if !onPlaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)])) { return .ok }
                continue
            }
            let error = SSL_get_error(ssl, count)
            switch error {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .ok
            case SSL_ERROR_ZERO_RETURN: return .closed
            default: return .failed("TLS read failed: \(openSSLErrors())")
            }
        }
    }

    /// Encrypts plaintext for the peer; the ciphertext is collected by `drain(into:)`.
    func send(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < plaintext.count {
            let n = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(plaintext.count - offset))
            if n <= 0 { return false }
            offset += Int(n)
        }
        return true
    }

    /// Moves pending ciphertext (handshake records, alerts, encrypted data) to the socket's output buffer.
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
