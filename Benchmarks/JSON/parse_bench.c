// REST infer bodies parsed by the shim the gateway uses (CSwitchyardJSON: simdjson, a node table, the `data` array
// copied out as doubles) against jansson with the flags the gateway used before (every number a double), on the
// same bytes: thread CPU time per parse, median of the runs. Built and run by measure.sh.

#include "CSwitchyardJSON.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: parse_bench BODY.json [RUNS]\n");
        return 2;
    }
    FILE *file = fopen(argv[1], "rb");
    if (!file) return perror(argv[1]), 1;
    static char body[1 << 22];
    size_t length = fread(body, 1, sizeof body, file);
    fclose(file);
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    int calls = (int)(20000000 / (length + 1000)) + 10;
    static double values[1 << 20];
    double shim[64], reference[64];
    size_t numbers = 0;
    for (int run = 0; run < runs && run < 64; run++) {
        double start = cpu_seconds();
        for (int call = 0; call < calls; call++) {
            const char *error = NULL;
            sy_json_document *document = sy_json_parse(body, length, &error);
            if (!document) return fprintf(stderr, "simdjson: %s\n", error), 1;
            uint32_t inputs = sy_json_member(document, 0, "inputs", 6);
            uint32_t input = sy_json_element(document, inputs, 0);
            uint32_t data = sy_json_member(document, input, "data", 4);
            numbers = sy_json_numbers(document, data, values);
            sy_json_release(document);
        }
        double middle = cpu_seconds();
        for (int call = 0; call < calls; call++) {
            json_error_t error;
            json_t *root = json_loadb(body, length, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &error);
            if (!root) return fprintf(stderr, "jansson: %s\n", error.text), 1;
            json_t *data = json_object_get(json_array_get(json_object_get(root, "inputs"), 0), "data");
            for (size_t index = 0; index < json_array_size(data); index++) {
                values[index] = json_number_value(json_array_get(data, index));
            }
            json_decref(root);
        }
        double end = cpu_seconds();
        shim[run] = (middle - start) / calls;
        reference[run] = (end - middle) / calls;
    }
    qsort(shim, (size_t)runs, sizeof(double), compare);
    qsort(reference, (size_t)runs, sizeof(double), compare);
    double a = shim[runs / 2], b = reference[runs / 2];
    printf("%-28s %7zu bytes %5zu numbers  simdjson %8.2f us (%5.2f ns/byte)  jansson %8.2f us (%5.2f ns/byte)  %5.1fx\n",
           argv[1], length, numbers, a * 1e6, a * 1e9 / (double)length, b * 1e6, b * 1e9 / (double)length, b / a);
    return 0;
}
