// Binning of drift-detector rows: each feature's value is counted into its reference bin (ordered bins between
// quantile edges, or one bin per reference category) for a whole row at once. One implementation per instruction
// set (AVX2, portable), chosen at run time: the package compiles for baseline x86-64, so the vector path is built
// with a target attribute and entered only after a CPUID check.
#ifndef C_SWITCHYARD_DRIFT_H
#define C_SWITCHYARD_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Binning paths. Values are stable: the Swift side maps them to names.
enum {
    SY_BIN_PORTABLE = 0,  ///< plain C, any CPU
    SY_BIN_AVX2 = 1,      ///< x86-64 with AVX2
};

/// 1 if this CPU (and build) can run the binning path.
int sy_bin_available(int path);

/// The fastest path this CPU runs (checked once).
int sy_bin_best_path(void);

/// Every feature's bins, laid out for 8 features per vector. `padded` is `features` rounded up to a multiple of
/// 8; arrays of `padded` entries are zero (and `slot_values` NaN) beyond `features`.
typedef struct {
    /// Features in a row.
    int32_t features;
    /// `features` rounded up to a multiple of 8.
    int32_t padded;
    /// Slots per feature: the most edges (or categories) any feature has.
    int32_t slots;
    /// `slots × padded` values, slot-major (`slot_values[s * padded + f]`): feature f's sorted edges or
    /// categories, then NaN.
    const float *slot_values;
    /// Per feature: its number of edges or categories (the index of its last bin).
    const int32_t *slot_counts;
    /// Per feature: -1 when categorical, 0 when continuous.
    const int32_t *categorical;
    /// Per feature: the index of its first bin in the count array.
    const int32_t *offsets;
    /// Per group of 8 features (`padded / 8` entries): the most edges or categories of its features, so that a
    /// group of features with few bins (constant ones, say) is compared with only its own slots.
    const int32_t *group_slots;
    /// Per group of 8 features: 1 when any of them is categorical (the group also tests equality), else 0.
    const int32_t *group_categorical;
} sy_bin_table;

/// Counts one row of `table->features` values into `counts` (`counts[offsets[f] + bin(f, row[f])] += 1`), where
/// a continuous feature's bin is the number of its edges at or below the value (NaN: the last bin), and a
/// categorical feature's bin is the index of the category equal to the value (none, or NaN: the last bin).
/// `path` must be one `sy_bin_available` reports (another faults with an illegal instruction).
void sy_bin_row(int path, const sy_bin_table *table, const float *row, uint32_t *counts);

/// Counts `rows` rows, `row_stride` floats apart, into the same `counts`, as `rows` calls of `sy_bin_row` would.
/// The vector path takes each group of 8 features through every row before the next group, so that the group's
/// slots and counters stay in the first-level cache instead of streaming the whole table once per row.
void sy_bin_rows(int path, const sy_bin_table *table, const float *rows_base, size_t rows, size_t row_stride,
                 uint32_t *counts);

#ifdef __cplusplus
}
#endif

#endif
