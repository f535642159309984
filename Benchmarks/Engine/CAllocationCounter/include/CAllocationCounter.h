// Counts heap allocations made through malloc and friends, so the engine benchmark can show how many a batch
// costs. Linked into the benchmark executable only.
#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

#include <stdint.h>

/// Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) since the process started,
/// or UINT64_MAX where counting is not supported (non-glibc systems).
uint64_t sy_allocation_count(void);

#endif
