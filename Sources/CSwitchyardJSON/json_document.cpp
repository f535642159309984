// The C API of CSwitchyardJSON.h over simdjson's DOM parser. A parse copies the body into a padded buffer (simdjson
// reads up to 64 bytes past the end), parses it into simdjson's tape, then walks the tape once into a node table:
// nodes in document order, each container's children contiguous in `children`. Documents are pooled per thread so
// that a steady stream of requests allocates nothing; one grown past `kPooledBytes` is freed instead of kept.

#include "CSwitchyardJSON.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace {

struct Node {
    sy_json_type type;
    uint32_t count;
    /// Containers: the first child's index in `children`. Strings: their length.
    uint32_t first;
    double number;
    const char *text;
};

struct Child {
    uint32_t node;
    uint32_t keyLength;
    const char *key;
};

/// Documents larger than this are not kept for reuse: one huge request must not pin its memory in every thread.
constexpr size_t kPooledBytes = 1 << 20;
constexpr size_t kPoolSize = 2;

}  // namespace

struct sy_json_document {
    simdjson::dom::parser parser;
    std::unique_ptr<char[]> padded;
    size_t paddedCapacity = 0;
    std::vector<Node> nodes;
    std::vector<Child> children;

    uint32_t add(simdjson::dom::element element) {
        const uint32_t index = static_cast<uint32_t>(nodes.size());
        nodes.push_back(Node{SY_JSON_NULL, 0, 0, 0, nullptr});
        switch (element.type()) {
        case simdjson::dom::element_type::ARRAY: {
            simdjson::dom::array array = element.get_array().value_unsafe();
            const uint32_t first = static_cast<uint32_t>(children.size());
            const uint32_t count = static_cast<uint32_t>(array.size());
            children.resize(children.size() + count, Child{0, 0, nullptr});
            uint32_t slot = first;
            for (simdjson::dom::element item : array) {
                const uint32_t child = add(item);
                children[slot++].node = child;
            }
            nodes[index] = Node{SY_JSON_ARRAY, count, first, 0, nullptr};
            break;
        }
        case simdjson::dom::element_type::OBJECT: {
            simdjson::dom::object object = element.get_object().value_unsafe();
            const uint32_t first = static_cast<uint32_t>(children.size());
            uint32_t count = 0;
            for (simdjson::dom::key_value_pair member : object) {
                children.push_back(
                    Child{0, static_cast<uint32_t>(member.key.size()), member.key.data()});
                ++count;
            }
            uint32_t slot = first;
            for (simdjson::dom::key_value_pair member : object) {
                const uint32_t child = add(member.value);
                children[slot++].node = child;
            }
            nodes[index] = Node{SY_JSON_OBJECT, count, first, 0, nullptr};
            break;
        }
        case simdjson::dom::element_type::INT64:
            nodes[index] = Node{SY_JSON_NUMBER, 0, 0, static_cast<double>(element.get_int64().value_unsafe()), nullptr};
            break;
        case simdjson::dom::element_type::UINT64:
            nodes[index] =
                Node{SY_JSON_NUMBER, 0, 0, static_cast<double>(element.get_uint64().value_unsafe()), nullptr};
            break;
        case simdjson::dom::element_type::DOUBLE:
            nodes[index] = Node{SY_JSON_NUMBER, 0, 0, element.get_double().value_unsafe(), nullptr};
            break;
        case simdjson::dom::element_type::STRING: {
            std::string_view text = element.get_string().value_unsafe();
            nodes[index] = Node{SY_JSON_STRING, 0, static_cast<uint32_t>(text.size()), 0, text.data()};
            break;
        }
        case simdjson::dom::element_type::BOOL:
            nodes[index].type = element.get_bool().value_unsafe() ? SY_JSON_TRUE : SY_JSON_FALSE;
            break;
        case simdjson::dom::element_type::NULL_VALUE:
            break;
        }
        return index;
    }
};

namespace {

thread_local std::vector<std::unique_ptr<sy_json_document>> pool;

}  // namespace

extern "C" sy_json_document *sy_json_parse(const char *bytes, size_t length, const char **error) {
    std::unique_ptr<sy_json_document> document;
    if (!pool.empty()) {
        document = std::move(pool.back());
        pool.pop_back();
    } else {
        document = std::make_unique<sy_json_document>();
    }
    if (document->paddedCapacity < length + simdjson::SIMDJSON_PADDING) {
        document->paddedCapacity = length + simdjson::SIMDJSON_PADDING;
        document->padded.reset(new char[document->paddedCapacity]);
    }
    if (length > 0) std::memcpy(document->padded.get(), bytes, length);
    std::memset(document->padded.get() + length, 0, simdjson::SIMDJSON_PADDING);
    simdjson::dom::element root;
    const simdjson::error_code code = document->parser.parse(document->padded.get(), length, false).get(root);
    if (code != simdjson::SUCCESS) {
        if (error) *error = simdjson::error_message(code);
        sy_json_release(document.release());
        return nullptr;
    }
    document->nodes.clear();
    document->children.clear();
    document->add(root);
    return document.release();
}

extern "C" void sy_json_release(sy_json_document *document) {
    std::unique_ptr<sy_json_document> owned(document);
    if (pool.size() < kPoolSize && owned->paddedCapacity <= kPooledBytes && owned->parser.capacity() <= kPooledBytes) {
        pool.push_back(std::move(owned));
    }
}

extern "C" sy_json_type sy_json_type_of(const sy_json_document *document, uint32_t node) {
    return document->nodes[node].type;
}

extern "C" double sy_json_number(const sy_json_document *document, uint32_t node) {
    return document->nodes[node].number;
}

extern "C" const char *sy_json_string(const sy_json_document *document, uint32_t node, size_t *length) {
    const Node &item = document->nodes[node];
    *length = item.type == SY_JSON_STRING ? item.first : 0;
    return item.type == SY_JSON_STRING ? item.text : "";
}

extern "C" size_t sy_json_count(const sy_json_document *document, uint32_t node) {
    return document->nodes[node].count;
}

extern "C" uint32_t sy_json_element(const sy_json_document *document, uint32_t node, size_t index) {
    return document->children[document->nodes[node].first + index].node;
}

extern "C" const char *sy_json_member_key(
    const sy_json_document *document, uint32_t node, size_t index, size_t *length) {
    const Child &child = document->children[document->nodes[node].first + index];
    *length = child.keyLength;
    return child.key;
}

extern "C" uint32_t sy_json_member(const sy_json_document *document, uint32_t node, const char *key, size_t length) {
    const Node &item = document->nodes[node];
    if (item.type != SY_JSON_OBJECT) return SY_JSON_ABSENT;
    // The last member wins, as jansson and JSONDecoder read a repeated key.
    for (uint32_t slot = item.first + item.count; slot > item.first; --slot) {
        const Child &child = document->children[slot - 1];
        if (child.keyLength == length && std::memcmp(child.key, key, length) == 0) return child.node;
    }
    return SY_JSON_ABSENT;
}

extern "C" size_t sy_json_numbers(const sy_json_document *document, uint32_t node, double *out) {
    const Node &item = document->nodes[node];
    if (item.type != SY_JSON_ARRAY) return 0;
    const Child *children = document->children.data() + item.first;
    for (uint32_t index = 0; index < item.count; ++index) {
        const Node &element = document->nodes[children[index].node];
        if (element.type != SY_JSON_NUMBER) return index;
        out[index] = element.number;
    }
    return item.count;
}

extern "C" size_t sy_json_write_floats(const float *values, size_t count, char *out) {
    char *next = out;
    for (size_t index = 0; index < count; ++index) {
        if (index > 0) *next++ = ',';
        const float value = values[index];
        if (!std::isfinite(value)) {
            std::memcpy(next, "null", 4);
            next += 4;
            continue;
        }
        // The shortest round-trip form is at most 15 bytes ("-1.17549435e-38"); with the comma, 16.
        next = std::to_chars(next, next + SY_JSON_FLOAT_BYTES - 1, value).ptr;
    }
    return static_cast<size_t>(next - out);
}
