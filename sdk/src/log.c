/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <nbdsdk/nbdsdk-log.h>
#include "log-internal.h"

static const char *program = "nbdsdk";
static bool verbose;

void log_set_program(const char *name) { if (name) program = name; }
void log_set_verbose(bool v) { verbose = v; }
bool log_is_verbose(void) { return verbose; }

static void log_v(const char *level, const char *format, va_list ap) {
        int saved = errno;
        char line[1024];
        vsnprintf(line, sizeof line, format, ap);
        fprintf(stderr, "%s: %s%s\n", program, level, line);
        errno = saved;
}

int nbdsdk_error(int error, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        log_v("", format, ap);
        va_end(ap);
        return error;
}

void nbdsdk_debug(const char *format, ...) {
        if (!verbose)
                return;
        va_list ap;
        va_start(ap, format);
        log_v("debug: ", format, ap);
        va_end(ap);
}
