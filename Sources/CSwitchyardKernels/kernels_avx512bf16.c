// BF16-weight kernels (AVX-512 BF16): weights and each layer's inputs rounded to bfloat16, products summed in
// FP32 with vdpbf16ps, which does two multiply-adds per lane per instruction. An opt-in trading accuracy
// (about 3 significant digits per product) for arithmetic rate; the epilogue and softmax are the AVX-512 ones.
#include "CSwitchyardKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512vl,avx512bf16,avx2,fma"))), \
                             apply_to = function)
#define SY_VL 16
#define SY_SUFFIX avx512bf16
#define SY_MR 8
#define SY_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define SY_NP(mr) ((mr) <= 2 ? 4 : (mr) == 3 ? 3 : (mr) == 4 ? 2 : 1)
#include "kernel_body.h"

// The workspace is written as bf16 values and read back as pairs: both views may alias.
typedef uint16_t sy_u16 __attribute__((may_alias));
typedef uint32_t sy_u32 __attribute__((may_alias));

uint16_t sy_bf16_from_float(float value) {
    uint32_t bits;
    __builtin_memcpy(&bits, &value, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  // quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
    return (uint16_t)(bits >> 16);
}

// mr rows × np panels of 32 columns over kp k-pairs. A holds each row's bf16 values in pairs (one uint32 per
// pair, row stride lda pairs); a panel holds, per pair, 32 columns as (b[2q][j], b[2q+1][j]) couples.
SY_INLINE void tile_bf16(const int mr, const int np, const sy_u32 *restrict a, ptrdiff_t lda,
                         const uint16_t *restrict b, ptrdiff_t panel_stride, int kp, float *restrict c, ptrdiff_t ldc,
                         const float *restrict bias, int activation, float alpha) {
    __m512 acc[SY_MAXMR][SY_MAXNP][2];
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < 2; h++) acc[r][p][h] = _mm512_setzero_ps();
    for (int q = 0; q < kp; q++) {
        __m512bh bv[SY_MAXNP][2];
        for (int p = 0; p < np; p++)
            for (int h = 0; h < 2; h++) bv[p][h] = (__m512bh)_mm512_loadu_si512(b + p * panel_stride + q * 64 + h * 32);
        for (int r = 0; r < mr; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r * lda + q]);
            for (int p = 0; p < np; p++)
                for (int h = 0; h < 2; h++) acc[r][p][h] = _mm512_dpbf16_ps(acc[r][p][h], av, bv[p][h]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < 2; h++) {
                vf v = (vf)acc[r][p][h] + vload(bias + p * 32 + h * 16);
                vstore(c + r * ldc + p * 32 + h * 16, vactivate(v, activation, alpha));
            }
}

SY_INLINE void rows_bf16(const int mr, const int np, const sy_layer *layer, const sy_u32 *a, ptrdiff_t lda, float *c,
                         ptrdiff_t ldc) {
    const int kp = (layer->k + 1) / 2;
    const ptrdiff_t panel_stride = (ptrdiff_t)kp * 64;
    const uint16_t *packed = (const uint16_t *)layer->packed;
    int p = 0;
    for (; p + np <= layer->panels; p += np)
        tile_bf16(mr, np, a, lda, packed + p * panel_stride, panel_stride, kp, c + p * 32, ldc, layer->bias + p * 32,
                  layer->activation, layer->alpha);
    for (; p < layer->panels; p++)
        tile_bf16(mr, 1, a, lda, packed + p * panel_stride, panel_stride, kp, c + p * 32, ldc, layer->bias + p * 32,
                  layer->activation, layer->alpha);
}

static void few_rows_bf16(int mr, const sy_layer *layer, const sy_u32 *a, ptrdiff_t lda, float *c, ptrdiff_t ldc) {
    switch (mr) {
    case 1: rows_bf16(1, SY_NP(1), layer, a, lda, c, ldc); break;
    case 2: rows_bf16(2, SY_NP(2), layer, a, lda, c, ldc); break;
    case 3: rows_bf16(3, SY_NP(3), layer, a, lda, c, ldc); break;
    case 4: rows_bf16(4, SY_NP(4), layer, a, lda, c, ldc); break;
    default: break;
    }
}

// One panel for a block of mr rows.
static void panel_block_bf16(int mr, const sy_u32 *a, ptrdiff_t lda, const uint16_t *b, int kp, float *c,
                             ptrdiff_t ldc, const float *bias, int activation, float alpha) {
    switch (mr) {
#define SY_CASE(n) \
    case n: tile_bf16(n, 1, a, lda, b, 0, kp, c, ldc, bias, activation, alpha); break;
    SY_CASE(1) SY_CASE(2) SY_CASE(3) SY_CASE(4) SY_CASE(5) SY_CASE(6) SY_CASE(7) SY_CASE(8)
#undef SY_CASE
    default: break;
    }
}

void sy_dense_bf16_avx512(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                          float *workspace) {
    // Each row rounded to bf16 once, the same way wherever it sits; an odd k is padded with a zero.
    const int kp = (layer->k + 1) / 2;
    sy_u16 *converted = (sy_u16 *)workspace;
    // Whole groups of 32 columns go through vcvtne2ps2bf16, the rest through the same rounding in scalar code;
    // which way a value goes depends on its column only, so every row is rounded alike.
    const int full = layer->k / 32 * 32;
    for (int i = 0; i < m; i++) {
        const float *row = a + i * lda;
        sy_u16 *out = converted + (ptrdiff_t)i * kp * 2;
        for (int k = 0; k < full; k += 32) {
            __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + k + 16), _mm512_loadu_ps(row + k));
            _mm512_storeu_si512((void *)(out + k), (__m512i)pair);
        }
        for (int k = full; k < layer->k; k++) out[k] = sy_bf16_from_float(row[k]);
        if (layer->k % 2) out[layer->k] = 0;
    }
    const sy_u32 *pairs = (const sy_u32 *)workspace;
    if (m <= 4) {
        few_rows_bf16(m, layer, pairs, kp, c, ldc);
        return;
    }
    // Panel by panel: a panel's weights stay in L1/L2 while every row block uses them.
    const uint16_t *packed = (const uint16_t *)layer->packed;
    for (int p = 0; p < layer->panels; p++)
        for (int i = 0; i < m; i += SY_MR) {
            int mr = m - i < SY_MR ? m - i : SY_MR;
            panel_block_bf16(mr, pairs + (ptrdiff_t)i * kp, kp, packed + (ptrdiff_t)p * kp * 64, kp,
                             c + i * ldc + p * 32, ldc, layer->bias + p * 32, layer->activation, layer->alpha);
        }
}
#pragma clang attribute pop
#else
#include <stdint.h>
uint16_t sy_bf16_from_float(float value) {
    uint32_t bits;
    __builtin_memcpy(&bits, &value, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}
#endif
