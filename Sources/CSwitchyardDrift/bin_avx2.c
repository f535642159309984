// The AVX2 binning path: 8 features per step, each compared with all of its group's slots at once (no branches on
// the data), then one counter increment per feature; several rows are taken group by group. A group of continuous features only counts the edges at or
// below its values; equality (for categories) is tested only in groups that hold a categorical feature.
#include "CSwitchyardDrift.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)

/// The number of `column`'s first `slots` slot vectors at or below `v`, per lane (two chains, so that
/// consecutive slots do not wait on each other).
static inline __m256i count_below(const float *column, size_t padded, int32_t slots, __m256 v) {
    __m256i a = _mm256_setzero_si256();
    __m256i b = _mm256_setzero_si256();
    int32_t s = 0;
    for (; s + 1 < slots; s += 2) {
        // Ordered comparisons: NaN padding and NaN values compare false.
        a = _mm256_sub_epi32(
            a, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(column + (size_t)s * padded), v, _CMP_LE_OQ)));
        b = _mm256_sub_epi32(
            b,
            _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(column + (size_t)(s + 1) * padded), v, _CMP_LE_OQ)));
    }
    if (s < slots) {
        a = _mm256_sub_epi32(
            a, _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(column + (size_t)s * padded), v, _CMP_LE_OQ)));
    }
    return _mm256_add_epi32(a, b);
}

/// One group of 8 features (`lanes` of them real) of one row: each value's bin index in the count array.
static inline __m256i group_indices(const sy_bin_table *table, int32_t f, int32_t lanes, const float *values) {
    const size_t padded = (size_t)table->padded;
    __m256 v;
    if (lanes == 8) {
        v = _mm256_loadu_ps(values);
    } else {
        float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        memcpy(tail, values, (size_t)lanes * sizeof(float));
        v = _mm256_loadu_ps(tail);
    }
    const int32_t group = f / 8;
    const int32_t slots = table->group_slots[group];
    const float *column = table->slot_values + f;
    const __m256i last = _mm256_loadu_si256((const __m256i *)(table->slot_counts + f));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256i bin;
    if (!table->group_categorical[group]) {
        // A NaN value goes to the last bin.
        bin = _mm256_blendv_epi8(count_below(column, padded, slots, v), last, nan);
    } else {
        __m256i below = _mm256_setzero_si256();
        __m256i equal = _mm256_setzero_si256();
        for (int32_t s = 0; s < slots; s++) {
            const __m256 e = _mm256_loadu_ps(column + (size_t)s * padded);
            below = _mm256_sub_epi32(below, _mm256_castps_si256(_mm256_cmp_ps(e, v, _CMP_LE_OQ)));
            equal = _mm256_or_si256(equal, _mm256_castps_si256(_mm256_cmp_ps(e, v, _CMP_EQ_OQ)));
        }
        const __m256i categorical = _mm256_loadu_si256((const __m256i *)(table->categorical + f));
        // The last bin: a category matching none, or a NaN continuous value.
        const __m256i useLast =
            _mm256_or_si256(_mm256_andnot_si256(equal, categorical), _mm256_andnot_si256(categorical, nan));
        // A matching category's index is the number of categories at or below it, less one.
        bin = _mm256_blendv_epi8(_mm256_add_epi32(below, categorical), last, useLast);
    }
    return _mm256_add_epi32(bin, _mm256_loadu_si256((const __m256i *)(table->offsets + f)));
}

void sy_bin_rows_avx2(const sy_bin_table *table, const float *rows_base, size_t rows, size_t row_stride,
                      uint32_t *counts) {
    const int32_t features = table->features;
    // Rows are taken 8 at a time (24 KiB of 784-wide rows: they stay in the first-level cache while every group
    // of features passes over them, and the group's slots and counters are read once per 8 rows).
    for (size_t first = 0; first < rows; first += 8) {
        const size_t last = rows - first < 8 ? rows : first + 8;
        for (int32_t f = 0; f < features; f += 8) {
            const int32_t lanes = features - f < 8 ? features - f : 8;
            for (size_t row = first; row < last; row++) {
                const __m256i index = group_indices(table, f, lanes, rows_base + row * row_stride + f);
                int32_t out[8];
                _mm256_storeu_si256((__m256i *)out, index);
                if (lanes == 8) {
                    counts[out[0]] += 1;
                    counts[out[1]] += 1;
                    counts[out[2]] += 1;
                    counts[out[3]] += 1;
                    counts[out[4]] += 1;
                    counts[out[5]] += 1;
                    counts[out[6]] += 1;
                    counts[out[7]] += 1;
                } else {
                    for (int32_t lane = 0; lane < lanes; lane++) counts[out[lane]] += 1;
                }
            }
        }
    }
}

#pragma clang attribute pop
#endif
