// The AVX-512 VNNI INT8 kernels: vpdpbusd sums four u8 × s8 products into each int32 lane, so one instruction
// per 16 columns and four inputs (the AVX2 path needs two multiplies and an add). Same layout, quantization and
// epilogue as the other paths; the kernel_body.h functions it includes for the epilogue are compiled here too.
#include "CSwitchyardKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni,avx2,fma"))), \
                             apply_to = function)
#define SY_VL 16
#define SY_SUFFIX avx512vnni
#define SY_MR 8
#define SY_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define SY_NP(mr) ((mr) <= 2 ? 4 : (mr) == 3 ? 3 : (mr) == 4 ? 2 : 1)
#include "kernel_body.h"
// 8 × 16 tiles for many rows (8 accumulators); 1 or 2 rows: 4 panels; 3: 3; 4: 2.
#define SY_I8_ISA 2
#define SY_I8_MR 8
#define SY_I8_NP(mr) ((mr) <= 2 ? 4 : (mr) == 3 ? 3 : (mr) == 4 ? 2 : 1)
#include "kernel_i8_body.h"
#pragma clang attribute pop
#endif
