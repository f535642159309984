// TLS over memory BIOs, shared by the server's connections and the load generator's: the owner moves ciphertext
// between its socket and OpenSSL exactly as it moves plaintext into its protocol. HTTP/2 ends insist on ALPN "h2";
// the REST port's HTTP/1.1 sessions take "http/1.1" or no ALPN at all.
// The contexts (certificates, verification) stay with their owners; this file owns the per-connection session.

internal import COpenSSL

/// The most recent OpenSSL errors as text (and clears the queue).
package func openSSLErrors() -> String {
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

/// One connection's TLS state over memory BIOs. Confined to the thread that owns the connection.
package final class MemoryBIOSession {
    /// Which end of the handshake this session plays.
    package enum Role: Sendable {
        case server, client
    }

    /// What became of a step: still fine (handshake in progress or done), closed by the peer, or failed.
    package enum Outcome: Sendable, Equatable {
        case ok
        case closed
        case failed(String)
    }

    /// The OpenSSL session, for role-specific setup (SNI, host-name checks) right after creation.
    package let ssl: OpaquePointer
    private let input: OpaquePointer  // ciphertext from the socket
    private let output: OpaquePointer  // ciphertext for the socket
    private let role: Role
    /// Whether the handshake must end with ALPN "h2" (HTTP/2 connections) or may end with any protocol or none.
    private let requiresH2: Bool
    /// Whether the handshake completed (and, where required, ALPN chose "h2").
    package private(set) var established = false

    /// Creates a session from an `SSL_CTX`; nil when OpenSSL cannot allocate one. `requiresH2` (the default) fails
    /// a handshake that did not negotiate ALPN "h2"; the context's own ALPN callback governs the other case.
    package init?(context: OpaquePointer, role: Role, requiresH2: Bool = true) {
        guard let ssl = SSL_new(context) else { return nil }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
        self.input = input
        self.output = output
        self.role = role
        self.requiresH2 = requiresH2
        SSL_set_bio(ssl, input, output)
        switch role {
        case .server: SSL_set_accept_state(ssl)
        case .client: SSL_set_connect_state(ssl)
        }
    }

    deinit { SSL_free(ssl) }

    /// Advances the handshake; once it completes, checks that ALPN chose "h2".
    package func handshake() -> Outcome {
        if established { return .ok }
        let status = SSL_do_handshake(ssl)
        if status != 1 {
            let error = SSL_get_error(ssl, status)
            if error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE { return .ok }
            let verify = SSL_get_verify_result(ssl)
            let peer = role == .server ? "peer" : "server"
            let detail =
                verify != X509_V_OK
                ? " (\(peer) certificate: \(String(cString: X509_verify_cert_error_string(verify))))" : ""
            return .failed("TLS handshake failed: \(openSSLErrors())\(detail)")
        }
        guard requiresH2 else {
            established = true
            return .ok
        }
        var alpn: UnsafePointer<UInt8>? = nil
        var alpnLength: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &alpn, &alpnLength)
        guard alpnLength == 2, let alpn, alpn[0] == UInt8(ascii: "h"), alpn[1] == UInt8(ascii: "2") else {
            return .failed("TLS: the \(role == .server ? "client" : "server") did not negotiate ALPN \"h2\"")
        }
        established = true
        return .ok
    }

    /// Feeds ciphertext from the socket, advances the handshake, and hands each decrypted chunk to
    /// `onPlaintext` (which returns false to stop reading).
    package func receive(
        _ ciphertext: UnsafeRawBufferPointer,
        scratch: UnsafeMutableRawBufferPointer,
        onPlaintext: (UnsafeRawBufferPointer) -> Bool
    ) -> Outcome {
        if ciphertext.count > 0 {
            let written = BIO_write(input, ciphertext.baseAddress, Int32(ciphertext.count))
            if written != Int32(ciphertext.count) { return .failed("TLS: cannot buffer \(ciphertext.count) bytes") }
        }
        if !established {
            let outcome = handshake()
            if outcome != .ok || !established { return outcome }
        }
        while true {
            let count = SSL_read(ssl, scratch.baseAddress, Int32(scratch.count))
            if count > 0 {
                if !onPlaintext(UnsafeRawBufferPointer(rebasing: scratch[0..<Int(count)])) { return .ok }
                continue
            }
            switch SSL_get_error(ssl, count) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return .ok
            case SSL_ERROR_ZERO_RETURN: return .closed
            default: return .failed("TLS read failed: \(openSSLErrors())")
            }
        }
    }

    /// Encrypts plaintext for the peer; the ciphertext is collected by `drain(into:)`.
    package func send(_ plaintext: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < plaintext.count {
            let n = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(plaintext.count - offset))
            if n <= 0 { return false }
            offset += Int(n)
        }
        return true
    }

    /// Moves pending ciphertext (handshake records, alerts, encrypted data) to the socket's output buffer.
    package func drain(into buffer: inout [UInt8]) {
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
