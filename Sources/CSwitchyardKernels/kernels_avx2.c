// The AVX2 + FMA instantiation of the kernels: 8 lanes, 6 × 16 register tiles (12 of 16 ymm accumulators), and
// the AVX2 INT8 kernels.
#include "CSwitchyardKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define SY_VL 8
#define SY_SUFFIX avx2
#define SY_MR 6
#define SY_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
// 1 row: 3 panels (6 accumulators); 2 or 3 rows: 2 (8, 12); 4 to 6 rows: 1 (8 to 12).
#define SY_NP(mr) ((mr) == 1 ? 3 : (mr) <= 3 ? 2 : 1)
#include "kernel_body.h"
// INT8: 6 × 16 tiles for many rows (12 accumulators); few rows take more panels at once.
#define SY_I8_ISA 1
#define SY_I8_MR 6
#define SY_I8_NP(mr) ((mr) == 1 ? 4 : (mr) <= 3 ? 2 : 1)
#include "kernel_i8_body.h"
#pragma clang attribute pop
#endif
