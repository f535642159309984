// Scalar element conversions shared by every path: FP16 and BF16 bit manipulation, saturating float-to-integer
// casts, and unaligned little-endian loads and stores. Included by each path's translation unit, so that the
// path's target attributes apply to them too.
#ifndef SY_CONVERT_SCALAR_H
#define SY_CONVERT_SCALAR_H

#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw tensor contents are little-endian: these conversions assume a little-endian host"
#endif

static inline uint32_t sy_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static inline float sy_float(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/// The FP32 value of an FP16 bit pattern: exact. A NaN keeps its sign and payload and comes back quiet, as F16C's
/// VCVTPH2PS does.
static inline float sy_f16_to_f32(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t bits = (uint32_t)(half & 0x7fffu) << 13;
    uint32_t exponent = bits & 0x0f800000u;
    if (exponent == 0x0f800000u) {  // Inf or NaN: the widest exponent
        bits += (uint32_t)(255 - 31) << 23;
        if (bits & 0x007fffffu) bits |= 0x00400000u;
    } else if (exponent == 0) {  // zero or subnormal: 2^-14 · (1 + m/1024) − 2^-14 = m · 2^-24, exactly
        bits += (uint32_t)113 << 23;
        bits = sy_bits(sy_float(bits) - sy_float((uint32_t)113 << 23));
    } else {
        bits += (uint32_t)(127 - 15) << 23;
    }
    return sy_float(bits | sign);
}

/// The FP16 nearest to `value`, ties to even; beyond the range ±Inf; a NaN keeps its sign and the top of its
/// payload and becomes quiet, as F16C's VCVTPS2PH does.
static inline uint16_t sy_f32_to_f16(float value) {
    uint32_t bits = sy_bits(value);
    uint32_t sign = bits & 0x80000000u;
    bits ^= sign;
    uint32_t half;
    if (bits >= 0x47800000u) {  // |value| ≥ 65536 (rounds to Inf), Inf or NaN
        half = bits > 0x7f800000u ? 0x7e00u | ((bits >> 13) & 0x3ffu) : 0x7c00u;
    } else if (bits < 0x38800000u) {  // below 2^-14: subnormal or zero; adding 0.5 rounds at 2^-24, ties to even
        float magic = sy_float((uint32_t)126 << 23);
        half = sy_bits(sy_float(bits) + magic) - sy_bits(magic);
    } else {  // normal: rebias, then round the 13 dropped bits to nearest, ties to even (a carry may reach Inf)
        uint32_t odd = (bits >> 13) & 1u;
        bits += ((uint32_t)(15 - 127) << 23) + 0xfffu + odd;
        half = bits >> 13;
    }
    return (uint16_t)(half | (sign >> 16));
}

/// The FP32 value of a BF16 bit pattern: exact (the top half of an FP32).
static inline float sy_bf16_to_f32(uint16_t value) { return sy_float((uint32_t)value << 16); }

/// The BF16 nearest to `value`, ties to even; a NaN keeps its sign and the top of its payload and becomes quiet.
static inline uint16_t sy_f32_to_bf16(float value) {
    uint32_t bits = sy_bits(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x0040u);
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// Float to integer: truncation toward zero like a C cast, saturating at the type's bounds, NaN to 0. `limit` is
// 2^(bits−1) for signed and 2^bits for unsigned types: exactly representable, and the first value past the top.
#define SY_SATURATE_SIGNED(T, value, minimum, maximum, limit)                                                      \
    ((value) != (value) ? (T)0 : (value) >= (limit) ? (T)(maximum) : (value) < -(limit) ? (T)(minimum) : (T)(value))
#define SY_SATURATE_UNSIGNED(T, value, maximum, limit)                                                             \
    ((value) != (value) || (value) <= -1.0f ? (T)0 : (value) >= (limit) ? (T)(maximum) : (T)(value))

#endif
