/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Diagnostics on stderr, prefixed with the program name. */
#pragma once

#include <stdbool.h>

void log_set_program(const char *name);
void log_set_verbose(bool verbose);
bool log_is_verbose(void);
void log_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *format, ...) __attribute__((format(printf, 1, 2)));
