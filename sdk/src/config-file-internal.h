/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_main's --config FILE (config-file.c): a GLib key file with a
 * [general] section and one [export NAME] section per export. */
#pragma once

#include <nbdsdk/nbdsdk.h>

typedef struct config_file config_file;

/* Apply a [general] key: 0, -ENOENT (no such key), or -EINVAL with *RETWHY
 * saying what a good value is. */
typedef int (*config_general_fn)(const char *key, const char *value, const char **retwhy, void *userdata);

/* Read PATH and apply it to SERVER, in file order: the first export section
 * names the server's default export, each later one adds an export whose
 * userdata comes from ops->new_export; an export's keys go to its
 * description, read-only switch or nbdsdk_export_config(); [general] keys
 * go to GENERAL, except default-export. The values handed on stay valid
 * until config_file_free(*RETFILE). Returns 0, or -1 with *RETERROR set to
 * one malloc'd line, "PATH:LINE: ...", saying what is wrong. */
int config_file_apply(const char *path, nbdsdk_server *server, config_general_fn general, void *userdata,
                      config_file **retfile, char **reterror);
config_file *config_file_free(config_file *file); /* takes NULL, returns NULL */

/* A switch's value as GLib key files write it: "true" or "1" is 1, "false"
 * or "0" is 0, anything else -EINVAL. */
int config_file_parse_switch(const char *value);
