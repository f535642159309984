// The portable binning path and the run-time choice between paths.
#include "CSwitchyardDrift.h"

void sy_bin_rows_avx2(const sy_bin_table *table, const float *rows_base, size_t rows, size_t row_stride,
                      uint32_t *counts);

int sy_bin_available(int path) {
    switch (path) {
    case SY_BIN_PORTABLE:
        return 1;
    case SY_BIN_AVX2:
#if defined(__x86_64__)
        return __builtin_cpu_supports("avx2");
#else
        return 0;
#endif
    default:
        return 0;
    }
}

int sy_bin_best_path(void) {
    static int best = -1;
    if (best < 0) best = sy_bin_available(SY_BIN_AVX2) ? SY_BIN_AVX2 : SY_BIN_PORTABLE;
    return best;
}

static void sy_bin_row_portable(const sy_bin_table *table, const float *row, uint32_t *counts) {
    const int32_t padded = table->padded;
    for (int32_t f = 0; f < table->features; f++) {
        const float v = row[f];
        int32_t below = 0;
        int32_t equal = 0;
        for (int32_t s = 0; s < table->slots; s++) {
            const float e = table->slot_values[(size_t)s * (size_t)padded + (size_t)f];
            below += e <= v;  // NaN padding (and a NaN value) compares false
            equal |= e == v;
        }
        int32_t bin;
        if (table->categorical[f]) {
            bin = equal ? below - 1 : table->slot_counts[f];
        } else {
            bin = v != v ? table->slot_counts[f] : below;
        }
        counts[table->offsets[f] + bin] += 1;
    }
}

void sy_bin_rows(int path, const sy_bin_table *table, const float *rows_base, size_t rows, size_t row_stride,
                 uint32_t *counts) {
#if defined(__x86_64__)
    if (path == SY_BIN_AVX2) {
        sy_bin_rows_avx2(table, rows_base, rows, row_stride, counts);
        return;
    }
#endif
    for (size_t row = 0; row < rows; row++) sy_bin_row_portable(table, rows_base + row * row_stride, counts);
}

void sy_bin_row(int path, const sy_bin_table *table, const float *row, uint32_t *counts) {
    sy_bin_rows(path, table, row, 1, 0, counts);
}
