/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Several exports on one server, each with its own name, description,
 * read-only switch and userdata. See nbdsdk_export(3). */
#ifndef NBDSDK_EXPORT_H
#define NBDSDK_EXPORT_H

#include <stdbool.h>
#include <nbdsdk/nbdsdk-ops.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Add an export called NAME, served by the server's ops, whose callbacks get
 * USERDATA instead of the server's. The export belongs to the server; it is
 * returned in *RETEXPORT unless that is NULL. Returns 0, -EINVAL (NULL,
 * NAME longer than NBDSDK_MAX_STRING), -EEXIST (the name is taken; the empty
 * name always is, by the default export), -EBUSY (the server runs), -ENOMEM. */
int nbdsdk_server_add_export(nbdsdk_server *server, const char *name, void *userdata,
                             nbdsdk_export **retexport);
/* The export called NAME; NULL or "" give the default export. NULL if there
 * is no such export (or SERVER is NULL). */
nbdsdk_export *nbdsdk_server_get_export(nbdsdk_server *server, const char *name);
/* Serve the export called NAME to clients asking for the empty name (the
 * first export, made by nbdsdk_server_new(), until then). Returns 0,
 * -ENOENT (no such export), -EINVAL (NULL), -EBUSY (the server runs). */
int nbdsdk_server_set_default_export(nbdsdk_server *server, const char *name);

/* Settings of one export; 0, -EINVAL (NULL, a description longer than
 * NBDSDK_MAX_STRING), -EBUSY (the server runs), -ENOMEM. DESCRIPTION may be
 * NULL (none). An export is read-only if it or the server says so. */
int nbdsdk_export_set_description(nbdsdk_export *exp, const char *description);
int nbdsdk_export_set_read_only(nbdsdk_export *exp, bool read_only);
/* Apply one key=value setting to EXP: a registered key's handler gets EXP,
 * otherwise ops->config gets the export's userdata. Returns the result,
 * -ENOENT for a key nobody knows, -EINVAL (NULL), -EBUSY (the server runs). */
int nbdsdk_export_config(nbdsdk_export *exp, const char *key, const char *value);

/* Name ("" for NULL), userdata and server (NULL for NULL) of an export. */
const char *nbdsdk_export_get_name(nbdsdk_export *exp);
void *nbdsdk_export_get_userdata(nbdsdk_export *exp);
nbdsdk_server *nbdsdk_export_get_server(nbdsdk_export *exp);
/* The export CONN selected, or NULL before it selected one. */
nbdsdk_export *nbdsdk_conn_get_export(nbdsdk_conn *conn);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
