// The core's FP32 multiply-add peak: independent chains of vector FMAs on registers (no memory traffic), one
// thread, for the AVX-512 and AVX2 widths. The roofline the engine's kernels are measured against.
//   clang -O2 Benchmarks/Engine/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// 12 accumulators: more than FMA latency × FMA ports on current x86 cores, and few enough that the AVX2
// variant keeps them, the multiplier and the addend in its 16 registers.
#define CHAINS 12

__attribute__((target("avx512f"))) static float peak_avx512(long iterations) {
    __m512 acc[CHAINS];
    const __m512 m = _mm512_set1_ps(0.5f), c = _mm512_set1_ps(0.25f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
    __m512 sum = acc[0];
    for (int i = 1; i < CHAINS; i++) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx2,fma"))) static float peak_avx2(long iterations) {
    __m256 acc[CHAINS];
    const __m256 m = _mm256_set1_ps(0.5f), c = _mm256_set1_ps(0.25f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iterations; n++)
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
    __m256 sum = acc[0];
    for (int i = 1; i < CHAINS; i++) sum = _mm256_add_ps(sum, acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, sum);
    return lanes[0];
}

int main(void) {
    const long iterations = 100000000;
    __builtin_cpu_init();
    for (int round = 0; round < 3; round++) {
        if (__builtin_cpu_supports("avx512f")) {
            double start = seconds();
            float sink = peak_avx512(iterations);
            double elapsed = seconds() - start;
            printf("avx512: %6.1f GFLOP/s FP32 (%g)\n", iterations * CHAINS * 16 * 2 / elapsed / 1e9, sink);
        }
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            double start = seconds();
            float sink = peak_avx2(iterations);
            double elapsed = seconds() - start;
            printf("avx2:   %6.1f GFLOP/s FP32 (%g)\n", iterations * CHAINS * 8 * 2 / elapsed / 1e9, sink);
        }
    }
    return 0;
}
