/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_main(): a complete server program in one call. See nbdsdk_main(3). */
#ifndef NBDSDK_MAIN_H
#define NBDSDK_MAIN_H

#include <stddef.h>
#include <nbdsdk/nbdsdk-ops.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Parse the command line (see nbdsdk_main(3): -p, -b, -U, -e, -D, -r, -f,
 * --pidfile, -t, -s, -c, --run, --exit-with-parent, --print-uri, -v, --config,
 * --version, --help, key=value), listen, run the sd-event loop until SIGINT/SIGTERM (or
 * the end of --run's command, of the -s connection, or of -c's device) and return the exit
 * status for main(): 0, 1 on bad arguments or set-up errors, or the status of
 * --run's command. */
int nbdsdk_main(int argc, char **argv, const struct nbdsdk_ops *ops, size_t ops_size,
                void *userdata);
#define NBDSDK_MAIN(argc, argv, ops, userdata) \
        nbdsdk_main((argc), (argv), (ops), sizeof(*(ops)), (userdata))

/* Parse a size such as "1G", "512M", "4096", "2T" (binary units, optional "B" / "iB")
 * into bytes. Returns 0, -EINVAL (not a size), -ERANGE (over INT64_MAX). */
int nbdsdk_parse_size(const char *text, uint64_t *retbytes);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
