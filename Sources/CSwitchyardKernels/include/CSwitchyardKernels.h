// Dense-layer micro-kernels for the fused engine: packed-weight GEMM with a fused bias + activation epilogue,
// and row softmax. One implementation per instruction set (AVX-512, AVX2+FMA, portable), chosen at run time.
#ifndef C_SWITCHYARD_KERNELS_H
#define C_SWITCHYARD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Kernel paths. Values are stable: the Swift side maps them to names.
enum {
    SY_KERNEL_PORTABLE = 0,
    SY_KERNEL_AVX2 = 1,
    SY_KERNEL_AVX512 = 2,
};

/// Epilogue activations.
enum {
    SY_ACT_NONE = 0,
    SY_ACT_RELU = 1,
    SY_ACT_LEAKY_RELU = 2,
    SY_ACT_SIGMOID = 3,
    SY_ACT_TANH = 4,
    SY_ACT_GELU = 5,
    SY_ACT_GELU_TANH = 6,
    SY_ACT_ERF = 7,
};

/// One dense layer: y = act(x · W + bias) with W packed into panels of NR = `sy_kernel_panel_width` columns:
/// panel p starts at p·k·NR and holds columns [p·NR, p·NR + NR) as k rows of NR floats (zero-padded). When
/// `narrow_last` is set the last panel is half as wide (NR/2 columns as k rows of NR/2 floats), for layers whose
/// last columns fit in one vector.
typedef struct {
    int k;                 ///< input width
    int n;                 ///< output width
    int panels;            ///< panels, the narrow one included
    int narrow_last;       ///< 1 if the last panel is NR/2 wide
    const float *packed;   ///< the panels, 64-byte aligned
    const float *bias;     ///< one value per packed column (zero-padded), 64-byte aligned
    int activation;        ///< SY_ACT_*
    float alpha;           ///< LeakyRelu slope
    int bf16;              ///< 1: `packed` holds bfloat16 weights in the BF16 layout (see sy_dense)
    int int8;              ///< 1: `packed` holds INT8 weights in the INT8 layout (see sy_dense_i8)
    const float *scales;   ///< INT8: each packed column's weight scale (zero-padded)
    const int32_t *column_sums;  ///< INT8: each packed column's sum of quantized weights (zero-padded)
} sy_layer;

/// Columns per panel of the INT8 layout, the same for every kernel path.
#define SY_I8_NR 16
/// Inputs per group of the INT8 layout: k is padded to a multiple of it.
#define SY_I8_KG 4
/// Largest quantized activation: activations are quantized to 7 bits (0…127) so that `vpmaddubsw`'s pairwise
/// sums of u8 × s8 products (at most 2 · 127 · 127) never saturate 16 bits.
#define SY_I8_QMAX 127

/// 1 if this CPU (and build) can run the kernel path.
int sy_kernel_available(int kernel);

/// Columns per packed panel (NR) of a kernel path; the output of `sy_dense` is written in whole panels.
int sy_kernel_panel_width(int kernel);

/// Columns per narrow panel (NR / 2, one vector).
int sy_kernel_vector_width(int kernel);

/// 1 if this CPU runs the BF16-weight kernels (AVX-512 BF16; used with the AVX-512 path).
int sy_bf16_available(void);

/// The bfloat16 nearest to `value` (ties to even): how BF16 layers round weights and inputs.
uint16_t sy_bf16_from_float(float value);

/// Floats of workspace `sy_dense` needs for m rows of at most k inputs.
size_t sy_dense_workspace(int kernel, int m, int k);

/// c[i, 0 ..< panels·NR] = act(a[i, 0 ..< k] · W + bias) for i in 0 ..< m. `a` is row-major with stride `lda`;
/// `c` has stride `ldc` >= the packed column count (the padding columns are written too); `workspace` holds at least
/// `sy_dense_workspace(kernel, m)` floats, 64-byte aligned. Each row's result depends on that row alone: the
/// same arithmetic in the same order whatever m is and wherever the row sits.
///
/// A BF16 layer (`bf16` = 1, AVX-512 path only, no narrow panel) holds 32-column panels of ceil(k/2) k-pairs:
/// panel p starts at p·ceil(k/2)·64 bf16 values, and pair q holds for each column j the couple
/// (W[2q][j], W[2q+1][j]) (W[k][j] = 0 for an odd k). Inputs are rounded to bf16 per row; sums are FP32.
void sy_dense(int kernel, const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
              float *workspace);

/// 1 if this CPU runs the AVX-512 VNNI INT8 kernel (`vpdpbusd`).
int sy_i8_vnni_available(void);

/// INT8 layers (`int8` = 1) compute c = act(dequantize(quantize(a) · Wq) + bias). Weights are symmetric per output
/// column, Wq[k][j] = round(W[k][j] / scales[j]) in -127…127; panel p holds columns [16p, 16p + 16) as ceil(k/4)
/// groups of 64 bytes, group g holding for each column j (j = 0…15) the four bytes Wq[4g…4g+3][16p + j]
/// (zero past k). Each row is quantized on its own, asymmetrically to 0…127: s = (max(x, 0) - min(x, 0)) / 127,
/// z = round(-min(x, 0) / s), q = clamp(round(x / s) + z, 0, 127) (rounding to nearest even), so that
/// c[i][j] = act(s · scales[j] · (Σk q[k]·Wq[k][j] - z · column_sums[j]) + bias[j]). The integer sums are exact:
/// every kernel path gives the same int32 sums; `raw` = 1 stores them (as int32 bits) instead of the result.
/// `workspace` holds `sy_dense_workspace` floats (64-byte aligned).
void sy_dense_i8(int kernel, const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                 float *workspace, int raw);

/// y[i, 0 ..< n] = softmax(x[i, 0 ..< n]) for i in 0 ..< m.
void sy_softmax(int kernel, const float *x, ptrdiff_t ldx, int m, int n, float *y, ptrdiff_t ldy);

#ifdef __cplusplus
}
#endif

#endif
