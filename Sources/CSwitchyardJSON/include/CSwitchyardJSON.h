// simdjson (Debian's libsimdjson-dev, C++) behind a C API: the REST binding's parser for inference request bodies.
// A parsed document is a table of nodes (node 0 is the root) whose arrays index their elements in O(1), so Swift
// reads it without C++ interop; an all-number array is copied out in one call.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The kind of a node.
typedef enum {
    SY_JSON_NULL = 0,
    SY_JSON_FALSE = 1,
    SY_JSON_TRUE = 2,
    SY_JSON_NUMBER = 3,
    SY_JSON_STRING = 4,
    SY_JSON_ARRAY = 5,
    SY_JSON_OBJECT = 6,
} sy_json_type;

/// A parsed document, reused by the thread that parsed it once released.
typedef struct sy_json_document sy_json_document;

/// No such node: what `sy_json_member` answers for an absent key.
#define SY_JSON_ABSENT UINT32_MAX

/// Parses `length` bytes (any top-level value). Returns NULL on a syntax error, with `*error` set to simdjson's
/// message (a static string).
sy_json_document *sy_json_parse(const char *bytes, size_t length, const char **error);

/// Ends the document's life; its nodes and strings are invalid afterwards. Call it on the thread that parsed it.
void sy_json_release(sy_json_document *document);

/// The node's kind.
sy_json_type sy_json_type_of(const sy_json_document *document, uint32_t node);

/// A number's value as a double (integers converted).
double sy_json_number(const sy_json_document *document, uint32_t node);

/// A string's bytes (UTF-8, validated; may hold NUL) and their count.
const char *sy_json_string(const sy_json_document *document, uint32_t node, size_t *length);

/// The element count of an array, the member count of an object, 0 otherwise.
size_t sy_json_count(const sy_json_document *document, uint32_t node);

/// An array's element, or an object's member value, at `index` (< count).
uint32_t sy_json_element(const sy_json_document *document, uint32_t node, size_t index);

/// An object's member key at `index` (< count).
const char *sy_json_member_key(const sy_json_document *document, uint32_t node, size_t index, size_t *length);

/// An object's member `key` (the last one when the key repeats), or SY_JSON_ABSENT.
uint32_t sy_json_member(const sy_json_document *document, uint32_t node, const char *key, size_t length);

/// Copies an array's elements into `out` (room for count values) while they are numbers. Returns how many were
/// copied: the count when every element is a number, else the index of the first that is not.
size_t sy_json_numbers(const sy_json_document *document, uint32_t node, double *out);

/// Bytes `sy_json_write_floats` may write for `count` values.
#define SY_JSON_FLOAT_BYTES 16

/// Writes `count` floats as JSON numbers separated by commas, each in the shortest form that reads back to the same
/// float (the C++ library's `std::to_chars`); a non-finite value (JSON has none) as `null`. `out` has room for
/// `count * SY_JSON_FLOAT_BYTES` bytes. Returns the bytes written.
size_t sy_json_write_floats(const float *values, size_t count, char *out);

#ifdef __cplusplus
}
#endif
