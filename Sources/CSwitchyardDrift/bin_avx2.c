// The AVX2 binning path: 8 features per step, each compared with all of its slots at once (no branches on the
// data), then one counter increment per feature.
#include "CSwitchyardDrift.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)

void sy_bin_row_avx2(const sy_bin_table *table, const float *row, uint32_t *counts) {
    const int32_t features = table->features;
    const size_t padded = (size_t)table->padded;
    const int32_t slots = table->slots;
    for (int32_t f = 0; f < features; f += 8) {
        __m256 v;
        const int32_t lanes = features - f < 8 ? features - f : 8;
        if (lanes == 8) {
            v = _mm256_loadu_ps(row + f);
        } else {
            float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            memcpy(tail, row + f, (size_t)lanes * sizeof(float));
            v = _mm256_loadu_ps(tail);
        }
        __m256i below = _mm256_setzero_si256();
        __m256i equal = _mm256_setzero_si256();
        const float *column = table->slot_values + f;
        for (int32_t s = 0; s < slots; s++) {
            const __m256 e = _mm256_loadu_ps(column + (size_t)s * padded);
            // Ordered comparisons: NaN padding and NaN values compare false.
            below = _mm256_sub_epi32(below, _mm256_castps_si256(_mm256_cmp_ps(e, v, _CMP_LE_OQ)));
            equal = _mm256_or_si256(equal, _mm256_castps_si256(_mm256_cmp_ps(e, v, _CMP_EQ_OQ)));
        }
        const __m256i categorical = _mm256_loadu_si256((const __m256i *)(table->categorical + f));
        const __m256i last = _mm256_loadu_si256((const __m256i *)(table->slot_counts + f));
        const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        // The last bin: a category matching none, or a NaN continuous value.
        const __m256i useLast =
            _mm256_or_si256(_mm256_andnot_si256(equal, categorical), _mm256_andnot_si256(categorical, nan));
        // A matching category's index is the number of categories at or below it, less one.
        const __m256i bin = _mm256_blendv_epi8(_mm256_add_epi32(below, categorical), last, useLast);
        const __m256i index = _mm256_add_epi32(bin, _mm256_loadu_si256((const __m256i *)(table->offsets + f)));
        int32_t out[8];
        _mm256_storeu_si256((__m256i *)out, index);
        for (int32_t lane = 0; lane < lanes; lane++) counts[out[lane]] += 1;
    }
}

#pragma clang attribute pop
#endif
