// The portable instantiation of the kernels (4-lane vectors: SSE2 on x86-64, NEON on aarch64), and the
// run-time dispatch between instruction sets.
#include "CSwitchyardKernels.h"

#define SY_VL 4
#define SY_SUFFIX portable
#define SY_MR 4
#define SY_FMA(a, b, c) ((a) * (b) + (c))
#define SY_NP(mr) ((mr) == 1 ? 3 : (mr) == 2 ? 2 : 1)
#include "kernel_body.h"
#define SY_I8_ISA 0
#include "kernel_i8_body.h"

#if defined(__x86_64__)
void sy_dense_avx512(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc, float *w);
size_t sy_dense_workspace_avx512(int m);
void sy_softmax_avx512(const float *x, ptrdiff_t ldx, int m, int n, float *y, ptrdiff_t ldy);
void sy_dense_avx2(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc, float *w);
size_t sy_dense_workspace_avx2(int m);
void sy_dense_bf16_avx512(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                          float *w);
void sy_softmax_avx2(const float *x, ptrdiff_t ldx, int m, int n, float *y, ptrdiff_t ldy);
void sy_dense_i8_avx2(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                      float *workspace, int raw);
void sy_dense_i8_avx512vnni(const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                            float *workspace, int raw);
#endif

int sy_kernel_available(int kernel) {
    switch (kernel) {
    case SY_KERNEL_PORTABLE: return 1;
#if defined(__x86_64__)
    case SY_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SY_KERNEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return 0;
    }
}

int sy_kernel_panel_width(int kernel) {
    switch (kernel) {
    case SY_KERNEL_AVX512: return 32;
    case SY_KERNEL_AVX2: return 16;
    default: return 8;
    }
}

int sy_kernel_vector_width(int kernel) { return sy_kernel_panel_width(kernel) / 2; }

int sy_bf16_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return sy_kernel_available(SY_KERNEL_AVX512) && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int sy_i8_vnni_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return sy_kernel_available(SY_KERNEL_AVX512) && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

size_t sy_dense_workspace(int kernel, int m, int k) {
    size_t bf16 = (size_t)m * (size_t)((k + 1) / 2);  // rows rounded to bf16, two per float
    size_t i8 = sy_dense_i8_workspace_portable(m, k);  // quantized rows, their scales and zero points
    size_t narrow = bf16 > i8 ? bf16 : i8;
    size_t fp32;
    switch (kernel) {
#if defined(__x86_64__)
    case SY_KERNEL_AVX512: fp32 = sy_dense_workspace_avx512(m); break;
    case SY_KERNEL_AVX2: fp32 = sy_dense_workspace_avx2(m); break;
#endif
    default: fp32 = sy_dense_workspace_portable(m); break;
    }
    return fp32 > narrow ? fp32 : narrow;
}

void sy_dense(int kernel, const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
              float *workspace) {
    if (layer->int8) {
        sy_dense_i8(kernel, layer, a, lda, m, c, ldc, workspace, 0);
        return;
    }
#if defined(__x86_64__)
    if (layer->bf16) {
        sy_dense_bf16_avx512(layer, a, lda, m, c, ldc, workspace);
        return;
    }
#endif
    switch (kernel) {
#if defined(__x86_64__)
    case SY_KERNEL_AVX512: sy_dense_avx512(layer, a, lda, m, c, ldc, workspace); return;
    case SY_KERNEL_AVX2: sy_dense_avx2(layer, a, lda, m, c, ldc, workspace); return;
#endif
    default: sy_dense_portable(layer, a, lda, m, c, ldc, workspace); return;
    }
}

void sy_dense_i8(int kernel, const sy_layer *layer, const float *a, ptrdiff_t lda, int m, float *c, ptrdiff_t ldc,
                 float *workspace, int raw) {
    switch (kernel) {
#if defined(__x86_64__)
    case SY_KERNEL_AVX512:
        if (sy_i8_vnni_available()) {
            sy_dense_i8_avx512vnni(layer, a, lda, m, c, ldc, workspace, raw);
            return;
        }
        sy_dense_i8_avx2(layer, a, lda, m, c, ldc, workspace, raw);
        return;
    case SY_KERNEL_AVX2: sy_dense_i8_avx2(layer, a, lda, m, c, ldc, workspace, raw); return;
#endif
    default: sy_dense_i8_portable(layer, a, lda, m, c, ldc, workspace, raw); return;
    }
}

void sy_softmax(int kernel, const float *x, ptrdiff_t ldx, int m, int n, float *y, ptrdiff_t ldy) {
    switch (kernel) {
#if defined(__x86_64__)
    case SY_KERNEL_AVX512: sy_softmax_avx512(x, ldx, m, n, y, ldy); return;
    case SY_KERNEL_AVX2: sy_softmax_avx2(x, ldx, m, n, y, ldy); return;
#endif
    default: sy_softmax_portable(x, ldx, m, n, y, ldy); return;
    }
}
