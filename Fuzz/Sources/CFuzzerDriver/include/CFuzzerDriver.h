// libFuzzer's driver entry (compiler-rt FuzzerInterface.h). SwiftPM gives every executable its own entry
// point, so the harnesses start libFuzzer through this call instead of libFuzzer's `main`.
#ifndef CFUZZER_DRIVER_H
#define CFUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// Parses libFuzzer's command line and runs it with `callback` as the target; returns the exit code.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// Runs libFuzzer on this process's command line with `callback` as the target; returns the exit code. Every
/// harness's entry point is this one call.
static inline int switchyard_fuzz_main(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}

#endif
