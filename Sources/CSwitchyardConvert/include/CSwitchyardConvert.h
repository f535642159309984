// Conversions between the Open Inference Protocol's numeric datatypes and FP32, for the RPC edges: requests
// decode their inputs to FP32 once, responses encode FP32 outputs to each output's declared datatype once.
// One implementation per instruction set (AVX2 + F16C, portable), chosen at run time: the package compiles for
// baseline x86-64, so the vector paths are built with target attributes and entered only after a CPUID check.
#ifndef C_SWITCHYARD_CONVERT_H
#define C_SWITCHYARD_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Conversion paths. Values are stable: the Swift side maps them to names.
enum {
    SY_CONVERT_PORTABLE = 0,  ///< plain C, any CPU
    SY_CONVERT_AVX2 = 1,      ///< x86-64 with AVX2 and F16C
};

/// Datatypes, numbered as Triton's model-config `DataType` enum (TYPE_BOOL = 1 … TYPE_BF16 = 14).
enum {
    SY_DTYPE_BOOL = 1,
    SY_DTYPE_UINT8 = 2,
    SY_DTYPE_UINT16 = 3,
    SY_DTYPE_UINT32 = 4,
    SY_DTYPE_UINT64 = 5,
    SY_DTYPE_INT8 = 6,
    SY_DTYPE_INT16 = 7,
    SY_DTYPE_INT32 = 8,
    SY_DTYPE_INT64 = 9,
    SY_DTYPE_FP16 = 10,
    SY_DTYPE_FP32 = 11,
    SY_DTYPE_FP64 = 12,
    SY_DTYPE_BF16 = 14,
};

/// 1 if this CPU (and build) can run the conversion path.
int sy_convert_available(int path);

/// The fastest path this CPU runs (checked once).
int sy_convert_best_path(void);

/// dst[i] = float(src[i]) for `n` little-endian elements of `dtype` at `src` (any alignment), as a C cast to
/// float does: integers round to the nearest float (ties to even), FP64 rounds to nearest (overflow to ±Inf),
/// FP16 and BF16 widen exactly; NaN and ±Inf stay NaN and ±Inf (an FP16 or FP64 signalling NaN comes back quiet,
/// a BF16 one bit for bit); BOOL is 0 for a zero byte, else 1.
/// `path` must be one `sy_convert_available` reports (another faults with an illegal instruction).
/// Returns 0, or -1 (writing nothing) for a datatype it does not convert.
int sy_convert_to_float(int path, int dtype, const void *src, float *dst, size_t n);

/// Writes `n` elements of `dtype`, little-endian, at `dst` (any alignment) from FP32 values:
/// - FP16 and BF16: nearest, ties to even; beyond the type's range ±Inf; NaN stays a quiet NaN of the same sign;
/// - FP64: exact;
/// - integers: truncated toward zero like a C cast, saturating at the type's bounds, NaN to 0;
/// - BOOL: 1 for any value other than ±0 (NaN included), else 0.
/// `path` must be one `sy_convert_available` reports. Returns 0, or -1 (writing nothing) for a datatype it does not convert.
int sy_convert_from_float(int path, int dtype, const float *src, void *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif
