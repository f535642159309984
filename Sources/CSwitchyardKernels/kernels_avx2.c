// The AVX2 + FMA instantiation of the kernels: 8 lanes, 6 × 16 register tiles (12 of 16 ymm accumulators).
#include "CSwitchyardKernels.h"
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define SY_VL 8
#define SY_SUFFIX avx2
#define SY_MR 6
#define SY_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
// 1 row: 3 panels (6 accumulators); 2 or 3 rows: 2 (8, 12); 4 to 6 rows: 1 (8 to 12).
#define SY_NP(mr) ((mr) == 1 ? 3 : (mr) <= 3 ? 2 : 1)
#include "kernel_body.h"
#pragma clang attribute pop
#endif
