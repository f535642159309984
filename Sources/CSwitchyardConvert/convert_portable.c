// The portable instantiation of the conversions (SSE2 on x86-64, NEON on aarch64, as the compiler vectorizes
// plain C), and the run-time choice between paths.
#define SY_SUFFIX portable
#define SY_F16C 0
#include "convert_body.h"

#if defined(__x86_64__)
int sy_convert_to_float_avx2(int dtype, const void *src, float *dst, size_t n);
int sy_convert_from_float_avx2(int dtype, const float *src, void *dst, size_t n);
#endif

int sy_convert_available(int path) {
    switch (path) {
    case SY_CONVERT_PORTABLE: return 1;
#if defined(__x86_64__)
    case SY_CONVERT_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
    default: return 0;
    }
}

int sy_convert_best_path(void) {
    static int best = -1;  // written once with the same value by whichever thread gets there first
    int path = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (path < 0) {
        path = sy_convert_available(SY_CONVERT_AVX2) ? SY_CONVERT_AVX2 : SY_CONVERT_PORTABLE;
        __atomic_store_n(&best, path, __ATOMIC_RELAXED);
    }
    return path;
}

int sy_convert_to_float(int path, int dtype, const void *src, float *dst, size_t n) {
#if defined(__x86_64__)
    if (path == SY_CONVERT_AVX2) return sy_convert_to_float_avx2(dtype, src, dst, n);
#endif
    return sy_convert_to_float_portable(dtype, src, dst, n);
}

int sy_convert_from_float(int path, int dtype, const float *src, void *dst, size_t n) {
#if defined(__x86_64__)
    if (path == SY_CONVERT_AVX2) return sy_convert_from_float_avx2(dtype, src, dst, n);
#endif
    return sy_convert_from_float_portable(dtype, src, dst, n);
}
