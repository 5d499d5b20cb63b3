/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Messages from backends and extensions, in the server's own log format. */
#ifndef NBDSDK_LOG_H
#define NBDSDK_LOG_H

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Print "PROGRAM: message" on stderr and return ERROR (a negative errno), so
 * that a callback can `return nbdsdk_error(-EINVAL, "size=%s is too big", v);`.
 * errno is preserved. */
int nbdsdk_error(int error, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* The same, prefixed "debug: ", and only when the server runs with -v
 * (nbdsdk_server_set_verbose). */
void nbdsdk_debug(const char *format, ...) __attribute__((format(printf, 1, 2)));

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
