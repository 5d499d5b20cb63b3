/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Each test program is a list of named cases; it runs them all (or those
 * named on its command line) and prints one line per case. */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef struct {
        const char *name;
        void (*fn)(void);
} tcase;

static inline int tcase_main(int argc, char **argv, const tcase *cases, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool pick = argc < 2;
                for (int a = 1; a < argc; a++)
                        pick |= strcmp(argv[a], cases[i].name) == 0;
                if (!pick)
                        continue;
                cases[i].fn();
                printf("ok %zu - %s\n", i + 1, cases[i].name);
                fflush(stdout);
        }
        return 0;
}

#define TCASE_MAIN(...) \
        int main(int argc, char **argv) { \
                static const tcase cases[] = { __VA_ARGS__ }; \
                return tcase_main(argc, argv, cases, sizeof cases / sizeof cases[0]); \
        }
#define T(fn) { #fn, fn }
