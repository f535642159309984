// INT8 dense layers (see sy_dense_i8 in CSwitchyardKernels.h), written once and included after kernel_body.h by
// each instruction-set file with SY_I8_ISA set to:
//   0  portable C: the integer sums in plain int32 loops (the oracle the SIMD paths are tested against)
//   1  AVX2: vpmaddubsw (u8 × s8 → pairwise s16 sums) then vpmaddwd by ones (→ s32 sums of four products)
//   2  AVX-512 VNNI: vpdpbusd (u8 × s8, four products summed into s32 in one instruction)
// and SY_I8_MR, the rows of the large-batch tile. The row quantization and the epilogue are the same source on
// every path, so a row's quantized bytes, and therefore its integer sums, are identical everywhere.

// The SIMD paths need <immintrin.h>, included before the target attribute is pushed.

typedef int32_t sy_i32u __attribute__((aligned(1), may_alias));
typedef vi viu __attribute__((aligned(4), may_alias));
typedef uint8_t vu8 __attribute__((vector_size(SY_VL)));
typedef vu8 vu8u __attribute__((aligned(1), may_alias));

// Round to nearest, ties to even, for |x| < 2^22, with the same operations in vector and scalar code.
#define SY_I8_MAGIC 12582912.0f

// Bytes of one quantized row: k padded to whole groups, then to a 64-byte multiple.
SY_INLINE ptrdiff_t SY_FN(i8_row_bytes)(int k) {
    return ((ptrdiff_t)(k + SY_I8_KG - 1) / SY_I8_KG * SY_I8_KG + 63) & ~63;
}

// Quantizes one row to 0…127 with its own scale and zero point (see sy_dense_i8). NaN inputs count as zero
// in the range and quantize to 0; infinities give a result without meaning but no undefined behaviour.
static void SY_FN(i8_quantize_row)(const float *restrict x, int k, uint8_t *restrict q, ptrdiff_t row_bytes,
                                   float *scale, int32_t *zero) {
#pragma clang fp contract(off)
    const int full = k / SY_VL * SY_VL;
    vf lo = vsplat(0.0f), hi = vsplat(0.0f);
    for (int j = 0; j < full; j += SY_VL) {
        vf v = vload(x + j);
        lo = vmin(v, lo);  // v first: a NaN lane keeps the running value
        hi = vmax(v, hi);
    }
    float mn = 0.0f, mx = 0.0f;
    for (int l = 0; l < SY_VL; l++) {
        mn = lo[l] < mn ? lo[l] : mn;
        mx = hi[l] > mx ? hi[l] : mx;
    }
    for (int j = full; j < k; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    const float range = mx - mn;
    const float inverse = range > 0.0f ? (float)SY_I8_QMAX / range : 0.0f;
    float z = -mn * inverse;
    z = z > 0.0f ? z : 0.0f;
    z = z < (float)SY_I8_QMAX ? z : (float)SY_I8_QMAX;
    z = (z + SY_I8_MAGIC) - SY_I8_MAGIC;
    *scale = range > 0.0f ? range / (float)SY_I8_QMAX : 0.0f;
    *zero = (int32_t)z;
    const vf vinverse = vsplat(inverse), vz = vsplat(z), vmagic = vsplat(SY_I8_MAGIC);
    const vf vzero = vsplat(0.0f), vtop = vsplat((float)SY_I8_QMAX);
    for (int j = 0; j < full; j += SY_VL) {
        vf t = vload(x + j) * vinverse;
        t = (t + vmagic) - vmagic;
        t = t + vz;
        t = vmin(vmax(t, vzero), vtop);  // t first in vmax: NaN becomes 0
        *(vu8u *)(q + j) = __builtin_convertvector(__builtin_convertvector(t, vi), vu8);
    }
    for (int j = full; j < k; j++) {
        float t = x[j] * inverse;
        t = (t + SY_I8_MAGIC) - SY_I8_MAGIC;
        t = t + z;
        t = t > 0.0f ? t : 0.0f;
        t = t < (float)SY_I8_QMAX ? t : (float)SY_I8_QMAX;
        q[j] = (uint8_t)(int32_t)t;
    }
    for (ptrdiff_t j = k; j < row_bytes; j++) q[j] = 0;
}

// The epilogue for SY_VL columns of one row: the int32 sums (raw), or scale · (sums - z · column sums) + bias
// through the activation.
SY_INLINE void SY_FN(i8_store)(vi sums, float *c, const sy_layer *layer, int column, float row_scale,
                               int32_t row_zero, int raw) {
    if (raw) {
        *(viu *)c = sums;
        return;
    }
    vi corrected = sums - row_zero * *(const viu *)(layer->column_sums + column);
    vf v = __builtin_convertvector(corrected, vf) * (row_scale * vload(layer->scales + column));
    vstore(c, vactivate(v + vload(layer->bias + column), layer->activation, layer->alpha));
}

#if SY_I8_ISA == 0
// Portable: one row × one panel at a time, int32 sums in k order.
static void SY_FN(i8_panel_row)(const uint8_t *restrict a, const int8_t *restrict b, int groups, float *c,
                                const sy_layer *layer, int column, float row_scale, int32_t row_zero, int raw) {
    int32_t sums[SY_I8_NR] __attribute__((aligned(64))) = {0};
    for (int g = 0; g < groups; g++)
        for (int j = 0; j < SY_I8_NR; j++)
            for (int t = 0; t < SY_I8_KG; t++)
                sums[j] += (int32_t)a[g * SY_I8_KG + t] * (int32_t)b[g * 64 + j * SY_I8_KG + t];
    for (int h = 0; h < SY_I8_NR; h += SY_VL)
        SY_FN(i8_store)(*(const viu *)(sums + h), c + h, layer, column + h, row_scale, row_zero, raw);
}
#else
#if SY_I8_ISA == 1
typedef __m256i sy_i8acc;
#define SY_I8_AV 2  // accumulator vectors per panel
SY_INLINE sy_i8acc i8_zero(void) { return _mm256_setzero_si256(); }
SY_INLINE sy_i8acc i8_load(const int8_t *p) { return _mm256_load_si256((const __m256i *)p); }
SY_INLINE sy_i8acc i8_broadcast(const uint8_t *p) { return _mm256_set1_epi32(*(const sy_i32u *)p); }
SY_INLINE sy_i8acc i8_madd(sy_i8acc acc, sy_i8acc a, sy_i8acc b) {
    // No saturation: a pair of products is at most 2 · 127 · 127 < 2^15.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
}
#else
typedef __m512i sy_i8acc;
#define SY_I8_AV 1
SY_INLINE sy_i8acc i8_zero(void) { return _mm512_setzero_si512(); }
SY_INLINE sy_i8acc i8_load(const int8_t *p) { return _mm512_load_si512((const void *)p); }
SY_INLINE sy_i8acc i8_broadcast(const uint8_t *p) { return _mm512_set1_epi32(*(const sy_i32u *)p); }
SY_INLINE sy_i8acc i8_madd(sy_i8acc acc, sy_i8acc a, sy_i8acc b) { return _mm512_dpbusd_epi32(acc, a, b); }
#endif

// mr rows × np panels over every group of k; then the epilogue.
SY_INLINE void SY_FN(i8_tile)(const int mr, const int np, const uint8_t *restrict a, ptrdiff_t lda,
                              const int8_t *restrict b, ptrdiff_t panel_stride, int groups, float *restrict c,
                              ptrdiff_t ldc, const sy_layer *layer, int column, const float *row_scale,
                              const int32_t *row_zero, int raw) {
    sy_i8acc acc[SY_MAXMR][SY_MAXNP][SY_I8_AV];
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < SY_I8_AV; h++) acc[r][p][h] = i8_zero();
    for (int g = 0; g < groups; g++) {
        sy_i8acc w[SY_MAXNP][SY_I8_AV];
        for (int p = 0; p < np; p++)
            for (int h = 0; h < SY_I8_AV; h++) w[p][h] = i8_load(b + p * panel_stride + g * 64 + h * 32);
        for (int r = 0; r < mr; r++) {
            sy_i8acc av = i8_broadcast(a + r * lda + g * SY_I8_KG);
            for (int p = 0; p < np; p++)
                for (int h = 0; h < SY_I8_AV; h++) acc[r][p][h] = i8_madd(acc[r][p][h], av, w[p][h]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int p = 0; p < np; p++)
            for (int h = 0; h < SY_I8_AV; h++)
                SY_FN(i8_store)((vi)acc[r][p][h], c + r * ldc + p * SY_I8_NR + h * SY_VL, layer,
                                column + p * SY_I8_NR + h * SY_VL, row_scale[r], row_zero[r], raw);
}

// Few rows: every panel for mr rows, np panels at a time while they last.
SY_INLINE void SY_FN(i8_few_rows)(const int mr, const int np, const sy_layer *layer, const uint8_t *a,
                                  ptrdiff_t lda, int groups, float *c, ptrdiff_t ldc, const float *row_scale,
                                  const int32_t *row_zero, int raw) {
    const int8_t *packed = (const int8_t *)layer->packed;
    const ptrdiff_t panel_stride = (ptrdiff_t)groups * 64;
    int p = 0;
    for (; p + np <= layer->panels; p += np)
        SY_FN(i8_tile)(mr, np, a, lda, packed + p * panel_stride, panel_stride, groups, c + p * SY_I8_NR, ldc, layer,
                       p * SY_I8_NR, row_scale, row_zero, raw);
    for (; p < layer->panels; p++)
        SY_FN(i8_tile)(mr, 1, a, lda, packed + p * panel_stride, panel_stride, groups, c + p * SY_I8_NR, ldc, layer,
                       p * SY_I8_NR, row_scale, row_zero, raw);
}

static void SY_FN(i8_block)(int mr, const uint8_t *a, ptrdiff_t lda, const int8_t *b, int groups, float *c,
                            ptrdiff_t ldc, const sy_layer *layer, int column, const float *row_scale,
                            const int32_t *row_zero, int raw) {
    switch (mr) {
#define SY_CASE(n) \
    case n: SY_FN(i8_tile)(n, 1, a, lda, b, 0, groups, c, ldc, layer, column, row_scale, row_zero, raw); break;
        SY_CASE(1) SY_CASE(2) SY_CASE(3) SY_CASE(4)
#if SY_I8_MR > 4
        SY_CASE(5) SY_CASE(6)
#endif
#if SY_I8_MR > 6
        SY_CASE(7) SY_CASE(8)
#endif
#undef SY_CASE
    default: break;
    }
}
#endif

size_t SY_FN(sy_dense_i8_workspace)(int m, int k) {
    return ((size_t)m * (size_t)SY_FN(i8_row_bytes)(k) + 8 * (size_t)m + 64 + 3) / 4;
}

void SY_FN(sy_dense_i8)(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                        float *workspace, int raw) {
    const int groups = (layer->k + SY_I8_KG - 1) / SY_I8_KG;
    const ptrdiff_t row_bytes = SY_FN(i8_row_bytes)(layer->k);
    uint8_t *q = (uint8_t *)workspace;
    float *row_scale = (float *)(q + (ptrdiff_t)m * row_bytes);
    int32_t *row_zero = (int32_t *)(row_scale + m);
    for (int i = 0; i < m; i++)
        SY_FN(i8_quantize_row)(a + i * lda, layer->k, q + i * row_bytes, row_bytes, row_scale + i, row_zero + i);
    const int8_t *packed = (const int8_t *)layer->packed;
    const ptrdiff_t panel_stride = (ptrdiff_t)groups * 64;
#if SY_I8_ISA == 0
    for (int i = 0; i < m; i++)
        for (int p = 0; p < layer->panels; p++)
            SY_FN(i8_panel_row)(q + i * row_bytes, packed + p * panel_stride, groups, c + i * ldc + p * SY_I8_NR,
                                layer, p * SY_I8_NR, row_scale[i], row_zero[i], raw);
#else
    switch (m) {
    case 1: SY_FN(i8_few_rows)(1, SY_I8_NP(1), layer, q, row_bytes, groups, c, ldc, row_scale, row_zero, raw); return;
    case 2: SY_FN(i8_few_rows)(2, SY_I8_NP(2), layer, q, row_bytes, groups, c, ldc, row_scale, row_zero, raw); return;
    case 3: SY_FN(i8_few_rows)(3, SY_I8_NP(3), layer, q, row_bytes, groups, c, ldc, row_scale, row_zero, raw); return;
    case 4: SY_FN(i8_few_rows)(4, SY_I8_NP(4), layer, q, row_bytes, groups, c, ldc, row_scale, row_zero, raw); return;
    default: break;
    }
    // Panel by panel: a panel (k/4 groups of 64 bytes) stays in L1 while every row block uses it.
    for (int p = 0; p < layer->panels; p++)
        for (int i = 0; i < m; i += SY_I8_MR) {
            int mr = m - i < SY_I8_MR ? m - i : SY_I8_MR;
            SY_FN(i8_block)(mr, q + i * row_bytes, row_bytes, packed + p * panel_stride, groups,
                            c + i * ldc + p * SY_I8_NR, ldc, layer, p * SY_I8_NR, row_scale + i, row_zero + i, raw);
        }
#endif
}
