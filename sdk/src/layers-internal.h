/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Data-path layers (layers.c): each export's stack, and each connection's
 * chain of levels — the open layers, then the backend at the bottom. */
#pragma once

#include <stdbool.h>
#include <pthread.h>
#include <nbdsdk/nbdsdk.h>
#include "export-internal.h"

typedef struct layer_entry_s {
        struct nbdsdk_layer layer;
        void *data;
        uint64_t serial;           /* names it for its slot */
} layer_entry;

/* One level of a connection's chain; the public nbdsdk_next is the level
 * below a layer. */
struct nbdsdk_next {
        nbdsdk_conn *conn;
        unsigned index;            /* in conn->levels */
        const layer_entry *layer;  /* NULL: the backend */
        export_state caps;         /* what this level offers */
};

/* Probe one level's size and capabilities (export.c): the backend (L NULL)
 * or layer L over the level BELOW, reached through NEXT. */
int export_probe(nbdsdk_conn *conn, const layer_entry *l, nbdsdk_next *next, const export_state *below,
                 export_state *e, const char **retmsg);
/* Forget an export's layers (calling their unload). */
void layers_free(nbdsdk_export *exp);
/* Open the export's layers over the open backend, bottom up, probing each
 * level's capabilities; CAPS are the backend's. Fills conn->levels. */
int layers_open(nbdsdk_conn *conn, const export_state *caps, const char **retmsg);
void layers_close(nbdsdk_conn *conn);
/* For the cow layer: when NEXT is the backend and it has native snapshots
 * for CONN, begin one. Returns 1 (begun), 0 (none), or -errno. */
int layers_native_snapshot(nbdsdk_conn *conn, nbdsdk_next *next);
/* A layer that passes every command down as it is: ZERO, FUA and CACHE are
 * native wherever the level below offers them (it emulates them itself). */
int layers_pass_capability(int which, int below);
/* The export's layer called NAME, or NULL. */
layer_entry *layers_find(nbdsdk_export *exp, const char *name);
/* Worker threads started for a server with layers that did not choose. */
#define LAYER_THREADS 4
bool layers_present(nbdsdk_server *server);
/* The built-in layers' config keys (layers-builtin.c). */
int layers_register_builtin(nbdsdk_server *server);
/* SIGUSR1 from nbdsdk_main(): every layer's report callback. */
void layers_report(nbdsdk_server *server);
