// OpenSSL libssl/libcrypto. Function-like macros are not imported by Swift; the wrappers below give
// them prefixed, callable names.
#pragma once
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static inline long cswitchyard_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long cswitchyard_SSL_CTX_set_options(SSL_CTX *ctx, long options) {
    return (long)SSL_CTX_set_options(ctx, (uint64_t)options);
}
static inline int cswitchyard_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
/// Server options: no TLS compression, no renegotiation, server cipher preference (SSL_OP_* are macros).
static inline uint64_t cswitchyard_ssl_server_options(void) {
    return (uint64_t)(SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
}
