// The AVX2 + F16C instantiation of the conversions: VCVTPH2PS / VCVTPS2PH for FP16, 8-lane integer arithmetic
// for BF16, and the integer loops vectorized for AVX2.
#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,f16c"))), apply_to = function)
#define SY_SUFFIX avx2
#define SY_F16C 1
#include "convert_body.h"
#pragma clang attribute pop
#endif
