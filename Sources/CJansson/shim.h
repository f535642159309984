// jansson (Debian's libjansson-dev): the REST listener's JSON parser for inference requests. The type test is a
// macro and the reference release an inline function in jansson.h; they are wrapped here as prefixed functions.
#pragma once
#include <jansson.h>

static inline json_type cswitchyard_json_type(const json_t *json) { return json_typeof(json); }
static inline void cswitchyard_json_release(json_t *json) { json_decref(json); }

/// Flags for a request body: any top-level value (its type is checked with a message naming the field), every
/// number as a double (as Foundation's JSONDecoder read them), and `\u0000` inside strings.
static inline size_t cswitchyard_json_request_flags(void) {
    return JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;
}
