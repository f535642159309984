// The conversion loops of one path, instantiated once per instruction set. The including file defines
// SY_SUFFIX and, for the AVX2 path, SY_F16C (vector FP16 and BF16 conversion with F16C and AVX2 intrinsics);
// every other loop is plain C that the compiler vectorizes for the path's target.
#include "CSwitchyardConvert.h"
#include "convert_scalar.h"

#define SY_CAT2(a, b) a##_##b
#define SY_CAT(a, b) SY_CAT2(a, b)
#define SY_FN(name) SY_CAT(name, SY_SUFFIX)

// dst[i] = float(element i) for elements of type T at `src`, read unaligned.
#define SY_WIDEN(T, expression)                                                                                    \
    do {                                                                                                           \
        const unsigned char *bytes = (const unsigned char *)src;                                                   \
        for (size_t i = 0; i < n; i++) {                                                                           \
            T element;                                                                                             \
            memcpy(&element, bytes + i * sizeof(T), sizeof(T));                                                    \
            dst[i] = (expression);                                                                                 \
        }                                                                                                          \
    } while (0)

// Element i of type T = expression(src[i]), written unaligned.
#define SY_NARROW(T, expression)                                                                                   \
    do {                                                                                                           \
        unsigned char *bytes = (unsigned char *)dst;                                                               \
        for (size_t i = 0; i < n; i++) {                                                                           \
            float value = src[i];                                                                                  \
            T element = (expression);                                                                              \
            memcpy(bytes + i * sizeof(T), &element, sizeof(T));                                                    \
        }                                                                                                          \
    } while (0)

#if SY_F16C
// Eight FP16 or BF16 values to FP32 per step; the tail goes through a zero-padded block, so every element is
// converted by the same instruction.
static void SY_FN(sy_f16_block)(const unsigned char *src, float *dst, int bf16) {
    __m128i halves = _mm_loadu_si128((const __m128i *)src);
    __m256 floats = bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16))
                         : _mm256_cvtph_ps(halves);
    _mm256_storeu_ps(dst, floats);
}

static void SY_FN(sy_widen_half)(const void *src, float *dst, size_t n, int bf16) {
    const unsigned char *bytes = (const unsigned char *)src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) SY_FN(sy_f16_block)(bytes + 2 * i, dst + i, bf16);
    if (i < n) {
        unsigned char padded[16] = {0};
        float widened[8];
        memcpy(padded, bytes + 2 * i, 2 * (n - i));
        SY_FN(sy_f16_block)(padded, widened, bf16);
        memcpy(dst + i, widened, sizeof(float) * (n - i));
    }
}

static void SY_FN(sy_narrow_block)(const float *src, unsigned char *dst, int bf16) {
    __m256 floats = _mm256_loadu_ps(src);
    __m128i halves;
    if (bf16) {
        __m256i bits = _mm256_castps_si256(floats);
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
        __m256i biased = _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7fff)), odd);
        __m256i rounded = _mm256_srli_epi32(biased, 16);
        __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
        __m256i words = _mm256_blendv_epi8(rounded, quiet, nan);
        // packus works per 128-bit lane: [w0..w3 w0..w3 | w4..w7 w4..w7]; gather quadwords 0 and 2.
        halves = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(words, words), 0x08));
    } else {
        halves = _mm256_cvtps_ph(floats, _MM_FROUND_TO_NEAREST_INT);
    }
    _mm_storeu_si128((__m128i *)dst, halves);
}

static void SY_FN(sy_narrow_half)(const float *src, void *dst, size_t n, int bf16) {
    unsigned char *bytes = (unsigned char *)dst;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) SY_FN(sy_narrow_block)(src + i, bytes + 2 * i, bf16);
    if (i < n) {
        float padded[8] = {0};
        unsigned char narrowed[16];
        memcpy(padded, src + i, sizeof(float) * (n - i));
        SY_FN(sy_narrow_block)(padded, narrowed, bf16);
        memcpy(bytes + 2 * i, narrowed, 2 * (n - i));
    }
}
#endif

int SY_FN(sy_convert_to_float)(int dtype, const void *src, float *dst, size_t n) {
    switch (dtype) {
    case SY_DTYPE_BOOL: SY_WIDEN(uint8_t, element != 0 ? 1.0f : 0.0f); return 0;
    case SY_DTYPE_UINT8: SY_WIDEN(uint8_t, (float)element); return 0;
    case SY_DTYPE_UINT16: SY_WIDEN(uint16_t, (float)element); return 0;
    case SY_DTYPE_UINT32: SY_WIDEN(uint32_t, (float)element); return 0;
    case SY_DTYPE_UINT64: SY_WIDEN(uint64_t, (float)element); return 0;
    case SY_DTYPE_INT8: SY_WIDEN(int8_t, (float)element); return 0;
    case SY_DTYPE_INT16: SY_WIDEN(int16_t, (float)element); return 0;
    case SY_DTYPE_INT32: SY_WIDEN(int32_t, (float)element); return 0;
    case SY_DTYPE_INT64: SY_WIDEN(int64_t, (float)element); return 0;
    case SY_DTYPE_FP32:
        if (n > 0) memcpy(dst, src, n * sizeof(float));
        return 0;
    case SY_DTYPE_FP64: SY_WIDEN(double, (float)element); return 0;
#if SY_F16C
    case SY_DTYPE_FP16: SY_FN(sy_widen_half)(src, dst, n, 0); return 0;
    case SY_DTYPE_BF16: SY_FN(sy_widen_half)(src, dst, n, 1); return 0;
#else
    case SY_DTYPE_FP16: SY_WIDEN(uint16_t, sy_f16_to_f32(element)); return 0;
    case SY_DTYPE_BF16: SY_WIDEN(uint16_t, sy_bf16_to_f32(element)); return 0;
#endif
    default: return -1;
    }
}

int SY_FN(sy_convert_from_float)(int dtype, const float *src, void *dst, size_t n) {
    switch (dtype) {
    case SY_DTYPE_BOOL: SY_NARROW(uint8_t, value != 0.0f ? 1 : 0); return 0;
    case SY_DTYPE_UINT8: SY_NARROW(uint8_t, SY_SATURATE_UNSIGNED(uint8_t, value, UINT8_MAX, 256.0f)); return 0;
    case SY_DTYPE_UINT16: SY_NARROW(uint16_t, SY_SATURATE_UNSIGNED(uint16_t, value, UINT16_MAX, 65536.0f)); return 0;
    case SY_DTYPE_UINT32:
        SY_NARROW(uint32_t, SY_SATURATE_UNSIGNED(uint32_t, value, UINT32_MAX, 4294967296.0f));
        return 0;
    case SY_DTYPE_UINT64:
        SY_NARROW(uint64_t, SY_SATURATE_UNSIGNED(uint64_t, value, UINT64_MAX, 18446744073709551616.0f));
        return 0;
    case SY_DTYPE_INT8: SY_NARROW(int8_t, SY_SATURATE_SIGNED(int8_t, value, INT8_MIN, INT8_MAX, 128.0f)); return 0;
    case SY_DTYPE_INT16:
        SY_NARROW(int16_t, SY_SATURATE_SIGNED(int16_t, value, INT16_MIN, INT16_MAX, 32768.0f));
        return 0;
    case SY_DTYPE_INT32:
        SY_NARROW(int32_t, SY_SATURATE_SIGNED(int32_t, value, INT32_MIN, INT32_MAX, 2147483648.0f));
        return 0;
    case SY_DTYPE_INT64:
        SY_NARROW(int64_t, SY_SATURATE_SIGNED(int64_t, value, INT64_MIN, INT64_MAX, 9223372036854775808.0f));
        return 0;
    case SY_DTYPE_FP32:
        if (n > 0) memcpy(dst, src, n * sizeof(float));
        return 0;
    case SY_DTYPE_FP64: SY_NARROW(double, (double)value); return 0;
#if SY_F16C
    case SY_DTYPE_FP16: SY_FN(sy_narrow_half)(src, dst, n, 0); return 0;
    case SY_DTYPE_BF16: SY_FN(sy_narrow_half)(src, dst, n, 1); return 0;
#else
    case SY_DTYPE_FP16: SY_NARROW(uint16_t, sy_f32_to_f16(value)); return 0;
    case SY_DTYPE_BF16: SY_NARROW(uint16_t, sy_f32_to_bf16(value)); return 0;
#endif
    default: return -1;
    }
}
