// Header-only target: LLVMFuzzerRunDriver itself comes from libFuzzer (-sanitize=fuzzer).
#include "CFuzzerDriver.h"
