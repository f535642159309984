// The AVX-512 instantiation of the kernels: 16 lanes, 8 × 32 register tiles (16 of 32 zmm accumulators).
#include "CSwitchyardKernels.h"
#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma"))), apply_to = function)
#define SY_VL 16
#define SY_SUFFIX avx512
#define SY_MR 8
#define SY_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
// 1 row: 4 panels (8 accumulators); 2: 4 (16); 3: 3 (18); 4: 2 (16); 5 to 8 rows: 1 panel.
#define SY_NP(mr) ((mr) <= 2 ? 4 : (mr) == 3 ? 3 : (mr) == 4 ? 2 : 1)
#include "kernel_body.h"
#pragma clang attribute pop
#endif
