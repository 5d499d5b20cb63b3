/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Diagnostics on stderr, prefixed with the program name. */
#pragma once

#include <stdbool.h>

void log_set_program(const char *name);
void log_set_verbose(bool verbose);
bool log_is_verbose(void);
/* The library's own messages go through the public functions. */
#include <nbdsdk/nbdsdk-log.h>
#define log_error(...) ((void) nbdsdk_error(0, __VA_ARGS__))
#define log_debug(...) nbdsdk_debug(__VA_ARGS__)
