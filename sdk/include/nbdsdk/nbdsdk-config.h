/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* key=value settings beyond the backend's own: registered by extensions,
 * listed by --help, applied from the command line. See nbdsdk_config(3). */
#ifndef NBDSDK_CONFIG_H
#define NBDSDK_CONFIG_H

#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Apply VALUE to KEY for the export EXP (the default export for settings
 * given to the server); return 0 or a negative errno (-EINVAL for a bad
 * value). */
typedef int (*nbdsdk_config_handler)(nbdsdk_export *exp, const char *key, const char *value, void *userdata);

/* Register KEY (letters, digits, '-', '_' and '.', starting with a letter);
 * HELP is one line for --help, e.g. "cow=ram|file   copy-on-write overlay".
 * A registered key is handled before the backend's ops->config sees it.
 * RETSLOT (may be NULL) receives a slot that undoes the registration
 * (nbdsdk_slot(3)). Returns 0, -EINVAL, -EEXIST (registered already), -EBUSY
 * (the server runs), -ENOMEM. */
int nbdsdk_server_add_config_key(nbdsdk_server *server, const char *key, const char *help,
                                 nbdsdk_config_handler handler, void *userdata, nbdsdk_slot **retslot);

/* nbdsdk_export_config() on the default export: apply one setting as the
 * command line does, a registered key's handler, else the backend's
 * ops->config. Returns its result, -ENOENT for a key nobody knows, -EINVAL
 * (NULL), -EBUSY (the server runs). */
int nbdsdk_server_config(nbdsdk_server *server, const char *key, const char *value);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
