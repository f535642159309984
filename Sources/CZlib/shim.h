// zlib, for gRPC's gzip and deflate message encodings.
#pragma once
#include <zlib.h>

static inline int cswitchyard_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}
static inline int cswitchyard_deflateInit2(z_streamp strm, int level, int method, int windowBits, int memLevel,
                                           int strategy) {
    return deflateInit2(strm, level, method, windowBits, memLevel, strategy);
}
