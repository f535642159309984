// The kernels, written once over GCC/Clang vector types and included by each instruction-set file with:
//   SY_VL      lanes per vector (16, 8, 4)
//   SY_FMA     vector fused multiply-add (or multiply then add where the target has no FMA)
//   SY_SUFFIX  name suffix of the entry points (avx512, avx2, portable)
//   SY_MR      rows of the large-batch register tile
//   SY_NP(mr)  panels processed at once by a tile of mr rows (more for few rows, to keep enough
//              independent accumulators in flight)
// Including files wrap the include in a target attribute so that no code here needs -march flags.

#include <stdint.h>

#define SY_CAT2(a, b) a##_##b
#define SY_CAT(a, b) SY_CAT2(a, b)
#define SY_FN(name) SY_CAT(name, SY_SUFFIX)

#define SY_NR (2 * SY_VL)
// k block of the large-batch path. A block of 1024 × NR weights (128 KiB for AVX-512) stays in L2 while every
// row block uses it; on Zen 5 that ran the 784→1024→1024→10 MLP 9 % faster at 64 rows (and single layers 4–30 %
// faster) than blocks of 256 sized for L1, since each block's partial sums are stored and reloaded fewer times.
#ifndef SY_KC
#define SY_KC 1024
#endif

typedef float vf __attribute__((vector_size(SY_VL * 4)));
typedef int32_t vi __attribute__((vector_size(SY_VL * 4)));
typedef float vfu __attribute__((vector_size(SY_VL * 4), aligned(4), may_alias));

#define SY_INLINE static inline __attribute__((always_inline))

SY_INLINE vf vload(const float *p) { return *(const vfu *)p; }
SY_INLINE void vstore(float *p, vf v) { *(vfu *)p = v; }
#if SY_VL == 16
SY_INLINE vf vsplat(float x) { return (vf){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
#elif SY_VL == 8
SY_INLINE vf vsplat(float x) { return (vf){x, x, x, x, x, x, x, x}; }
#else
SY_INLINE vf vsplat(float x) { return (vf){x, x, x, x}; }
#endif
SY_INLINE vf vselect(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
SY_INLINE vf vabs(vf x) { return (vf)((vi)x & 0x7fffffff); }
SY_INLINE vf vmax(vf a, vf b) { return vselect(a > b, a, b); }
SY_INLINE vf vmin(vf a, vf b) { return vselect(a < b, a, b); }

// exp(x), Cephes single-precision polynomial after reduction by ln 2; relative error about 2e-7.
SY_INLINE vf vexp(vf x) {
    x = vmin(vmax(x, vsplat(-87.33f)), vsplat(88.37f));
    const vf magic = vsplat(12582912.0f);  // 1.5 · 2^23: adding it rounds to an integer
    vf n = (x * 1.44269504088896341f + magic) - magic;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = vsplat(1.9875691500e-4f);
    p = SY_FMA(p, r, vsplat(1.3981999507e-3f));
    p = SY_FMA(p, r, vsplat(8.3334519073e-3f));
    p = SY_FMA(p, r, vsplat(4.1665795894e-2f));
    p = SY_FMA(p, r, vsplat(1.6666665459e-1f));
    p = SY_FMA(p, r, vsplat(5.0000001201e-1f));
    vf y = SY_FMA(p, r * r, r) + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return y * (vf)bits;
}

SY_INLINE vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// tanh: odd polynomial near zero (keeps relative accuracy there), 1 - 2 / (e^2|x| + 1) elsewhere.
SY_INLINE vf vtanh(vf x) {
    vf ax = vabs(x);
    vf z = x * x;
    vf p = vsplat(-5.70498872745e-3f);
    p = SY_FMA(p, z, vsplat(2.06390887954e-2f));
    p = SY_FMA(p, z, vsplat(-5.37397155531e-2f));
    p = SY_FMA(p, z, vsplat(1.33314422036e-1f));
    p = SY_FMA(p, z, vsplat(-3.33332819422e-1f));
    vf small = SY_FMA(p * z, x, x);
    vf large = 1.0f - 2.0f / (vexp(2.0f * vmin(ax, vsplat(9.0f))) + 1.0f);
    large = (vf)((vi)large | ((vi)x & (int32_t)0x80000000));
    return vselect(ax < 0.625f, small, large);
}

// erfc(z) for z >= 0 (Chebyshev fit with relative error below 1.2e-7 in exact arithmetic), so that the
// tails keep relative accuracy.
SY_INLINE vf verfc_positive(vf z) {
    vf t = 1.0f / (1.0f + 0.5f * z);
    vf p = vsplat(0.17087277f);
    p = SY_FMA(p, t, vsplat(-0.82215223f));
    p = SY_FMA(p, t, vsplat(1.48851587f));
    p = SY_FMA(p, t, vsplat(-1.13520398f));
    p = SY_FMA(p, t, vsplat(0.27886807f));
    p = SY_FMA(p, t, vsplat(-0.18628806f));
    p = SY_FMA(p, t, vsplat(0.09678418f));
    p = SY_FMA(p, t, vsplat(0.37409196f));
    p = SY_FMA(p, t, vsplat(1.00002368f));
    p = SY_FMA(p, t, vsplat(-1.26551223f));
    return t * vexp(p - z * z);
}

SY_INLINE vf verf(vf x) {
    vf ax = vabs(x);
    vf z = x * x;
    // Near zero the Taylor series keeps relative accuracy that 1 - erfc loses.
    vf s = vsplat(1.0f / 216.0f);
    s = SY_FMA(s, z, vsplat(-1.0f / 42.0f));
    s = SY_FMA(s, z, vsplat(1.0f / 10.0f));
    s = SY_FMA(s, z, vsplat(-1.0f / 3.0f));
    s = SY_FMA(s, z, vsplat(1.0f));
    vf series = s * x * 1.12837916709551257f;
    vf tail = 1.0f - verfc_positive(ax);
    tail = (vf)((vi)tail | ((vi)x & (int32_t)0x80000000));
    return vselect(ax < 0.5f, series, tail);
}

// GELU(x) = x · Φ(x), Φ(x) = erfc(-x/√2) / 2: the negative tail from erfc directly, without cancellation.
SY_INLINE vf vgelu(vf x) {
    vf half_erfc = 0.5f * verfc_positive(vabs(x) * 0.70710678118654752f);
    vf phi = vselect(x < 0.0f, half_erfc, 1.0f - half_erfc);
    return x * phi;
}

// tanh-approximated GELU: 0.5·x·(1 + tanh(u)) = x · sigmoid(2u).
SY_INLINE vf vgelu_tanh(vf x) {
    vf u = 0.7978845608028654f * SY_FMA(x * x * 0.044715f, x, x);
    return x / (1.0f + vexp(-2.0f * u));
}

SY_INLINE vf vactivate(vf x, int activation, float alpha) {
    switch (activation) {
    case 1: return vmax(x, vsplat(0.0f));
    case 2: return vselect(x >= 0.0f, x, x * alpha);
    case 3: return vsigmoid(x);
    case 4: return vtanh(x);
    case 5: return vgelu(x);
    case 6: return vgelu_tanh(x);
    case 7: return verf(x);
    default: return x;
    }
}

#define SY_MAXMR 8
#define SY_MAXNP 4

// One register tile: mr rows × np panels of nh vectors (np·nh·VL columns) over kb steps of k. Accumulators
// start at zero (first) or at the partial sums in c; the last block adds the bias and applies the activation.
// Every output element sees the same sequence of operations whatever mr, np and nh are and wherever its row
// sits. A is read in place (row stride lda) or, when packed, from a block holding a[r, k] at k·mr + r.
SY_INLINE void tile(const int mr, const int np, const int nh, const int packed, const float *restrict a,
                    ptrdiff_t lda, const float *restrict b, ptrdiff_t panel_stride, int kb, float *restrict c,
                    ptrdiff_t ldc, int first, int last, const float *restrict bias, int activation, float alpha) {
    const int pw = nh * SY_VL;
    vf acc[SY_MAXMR][SY_MAXNP][2];
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < nh; h++)
                acc[r][p][h] = first ? vsplat(0.0f) : vload(c + r * ldc + p * pw + h * SY_VL);
    for (int k = 0; k < kb; k++) {
        vf bv[SY_MAXNP][2];
        for (int p = 0; p < np; p++)
            for (int h = 0; h < nh; h++) bv[p][h] = vload(b + p * panel_stride + k * pw + h * SY_VL);
        for (int r = 0; r < mr; r++) {
            vf av = vsplat(packed ? a[k * mr + r] : a[r * lda + k]);
            for (int p = 0; p < np; p++)
                for (int h = 0; h < nh; h++) acc[r][p][h] = SY_FMA(av, bv[p][h], acc[r][p][h]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < nh; h++) {
                vf v = acc[r][p][h];
                if (last) v = vactivate(v + vload(bias + p * pw + h * SY_VL), activation, alpha);
                vstore(c + r * ldc + p * pw + h * SY_VL, v);
            }
}

// Few rows: all panels for mr rows read in place, SY_NP(mr) wide panels at a time, then single panels, then
// the narrow last panel if the layer has one.
SY_INLINE void few_rows(const int mr, const sy_layer *layer, const float *a, ptrdiff_t lda, float *c, ptrdiff_t ldc) {
    const int np = SY_NP(mr);
    const ptrdiff_t panel_stride = (ptrdiff_t)layer->k * SY_NR;
    const int wide = layer->panels - layer->narrow_last;
    int p = 0;
    for (; p + np <= wide; p += np)
        tile(mr, np, 2, 0, a, lda, layer->packed + p * panel_stride, panel_stride, layer->k, c + p * SY_NR, ldc, 1,
             1, layer->bias + p * SY_NR, layer->activation, layer->alpha);
    for (; p < wide; p++)
        tile(mr, 1, 2, 0, a, lda, layer->packed + p * panel_stride, panel_stride, layer->k, c + p * SY_NR, ldc, 1, 1,
             layer->bias + p * SY_NR, layer->activation, layer->alpha);
    if (layer->narrow_last)
        tile(mr, 1, 1, 0, a, lda, layer->packed + p * panel_stride, panel_stride, layer->k, c + p * SY_NR, ldc, 1, 1,
             layer->bias + p * SY_NR, layer->activation, layer->alpha);
}

// One panel's k block for a row block of mr rows, A packed or in place.
static void block_tile(int mr, int nh, int packed, const float *a, ptrdiff_t lda, const float *b, int kb, float *c,
                       ptrdiff_t ldc, int first, int last, const float *bias, int activation, float alpha) {
    switch (mr * 4 + (nh - 1) * 2 + packed) {
#define SY_CASE(n) \
    case n * 4: tile(n, 1, 1, 0, a, lda, b, 0, kb, c, ldc, first, last, bias, activation, alpha); break; \
    case n * 4 + 1: tile(n, 1, 1, 1, a, lda, b, 0, kb, c, ldc, first, last, bias, activation, alpha); break; \
    case n * 4 + 2: tile(n, 1, 2, 0, a, lda, b, 0, kb, c, ldc, first, last, bias, activation, alpha); break; \
    case n * 4 + 3: tile(n, 1, 2, 1, a, lda, b, 0, kb, c, ldc, first, last, bias, activation, alpha); break;
    SY_CASE(1) SY_CASE(2) SY_CASE(3) SY_CASE(4)
#if SY_MR > 4
    SY_CASE(5) SY_CASE(6)
#endif
#if SY_MR > 6
    SY_CASE(7) SY_CASE(8)
#endif
#undef SY_CASE
    default: break;
    }
}

size_t SY_FN(sy_dense_workspace)(int m) { return (size_t)SY_KC * (size_t)((m + SY_MR - 1) / SY_MR * SY_MR); }

void SY_FN(sy_dense)(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                     float *workspace) {
    const ptrdiff_t panel_stride = (ptrdiff_t)layer->k * SY_NR;
    switch (m) {
    case 1: few_rows(1, layer, a, lda, c, ldc); return;
    case 2: few_rows(2, layer, a, lda, c, ldc); return;
    case 3: few_rows(3, layer, a, lda, c, ldc); return;
    case 4: few_rows(4, layer, a, lda, c, ldc); return;
    default: break;
    }
    // GotoBLAS order: each kb × NR weight block stays in cache while every row block of A uses it. A is read in
    // place, except when its rows are a multiple of 4 KiB apart: then the row block's broadcasts would all
    // fall in one L1 set, so the k block is packed first (row blocks of SY_MR, k-major inside).
    const int pack = lda % 1024 == 0;
    for (int k0 = 0; k0 < layer->k; k0 += SY_KC) {
        int kb = layer->k - k0 < SY_KC ? layer->k - k0 : SY_KC;
        int first = k0 == 0, last = k0 + kb == layer->k;
        if (pack) {
            for (int i = 0; i < m; i += SY_MR) {
                int mr = m - i < SY_MR ? m - i : SY_MR;
                float *ap = workspace + (ptrdiff_t)i * kb;
                for (int k = 0; k < kb; k++)
                    for (int r = 0; r < mr; r++) ap[k * mr + r] = a[(i + r) * lda + k0 + k];
            }
        }
        for (int p = 0; p < layer->panels; p++) {
            int nh = p == layer->panels - 1 && layer->narrow_last ? 1 : 2;
            const float *b = layer->packed + p * panel_stride + (ptrdiff_t)k0 * nh * SY_VL;
            for (int i = 0; i < m; i += SY_MR) {
                int mr = m - i < SY_MR ? m - i : SY_MR;
                const float *ai = pack ? workspace + (ptrdiff_t)i * kb : a + i * lda + k0;
                block_tile(mr, nh, pack, ai, lda, b, kb, c + i * ldc + p * SY_NR, ldc, first, last,
                           layer->bias + p * SY_NR, layer->activation, layer->alpha);
            }
        }
    }
}

void SY_FN(sy_softmax)(const float *x, ptrdiff_t ldx, int m, int n, float *y, ptrdiff_t ldy) {
    for (int i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float *out = y + i * ldy;
        int full = n / SY_VL * SY_VL;
        float tmp[SY_VL] __attribute__((aligned(64)));
        float maximum = -__builtin_inff();
        for (int j = 0; j < n; j++) maximum = row[j] > maximum ? row[j] : maximum;
        vf vsum = vsplat(0.0f);
        for (int j = 0; j < full; j += SY_VL) {
            vf e = vexp(vload(row + j) - maximum);
            vstore(out + j, e);
            vsum += e;
        }
        if (full < n) {
            for (int j = 0; j < SY_VL; j++) tmp[j] = full + j < n ? row[full + j] - maximum : -__builtin_inff();
            vf e = vexp(vload(tmp));
            // exp clamps its input, so the padding lanes come out tiny but not zero: clear them.
            for (int j = 0; j < SY_VL; j++) e[j] = full + j < n ? e[j] : 0.0f;
            vsum += e;
            vstore(tmp, e);
            for (int j = full; j < n; j++) out[j] = tmp[j - full];
        }
        float sum = 0.0f;
        for (int j = 0; j < SY_VL; j++) sum += vsum[j];
        float inverse = 1.0f / sum;
        for (int j = 0; j < n; j++) out[j] *= inverse;
    }
}
