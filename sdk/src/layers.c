/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Each export's stack of layers, and each connection's chain of levels built
 * from it when the export opens: the backend at the bottom, then every layer
 * that agrees to open, each with its capabilities asked once. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "layers-internal.h"
#include "server-internal.h"
#include "slot-internal.h"

static void layer_slot_remove(nbdsdk_slot *slot) {
        nbdsdk_export *exp = (nbdsdk_export *) slot->ptr;
        for (size_t i = 0; i < exp->n_layers; i++)
                if (exp->layers[i].serial == slot->id) {
                        if (exp->layers[i].layer.unload)
                                exp->layers[i].layer.unload(exp->layers[i].data);
                        slot_array_remove(exp->layers, &exp->n_layers, sizeof *exp->layers, &exp->layers[i]);
                        return;
                }
}

int nbdsdk_export_add_layer(nbdsdk_export *exp, const struct nbdsdk_layer *layer, size_t layer_size, void *data,
                            nbdsdk_slot **retslot) {
        if (!exp || !layer || layer_size < offsetof(struct nbdsdk_layer, open) || !layer->name)
                return -EINVAL;
        if (exp->server->running)
                return -EBUSY;
        layer_entry e = { .data = data, .serial = exp->n_layers_added };
        memcpy(&e.layer, layer, layer_size < sizeof e.layer ? layer_size : sizeof e.layer);
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(exp->server, layer_slot_remove)))
                return -ENOMEM;
        layer_entry *v = realloc(exp->layers, (exp->n_layers + 1) * sizeof *v);
        if (!v)
                return slot_commit(slot, -ENOMEM, 0, NULL, retslot);
        exp->layers = v;
        exp->n_layers_added++;
        /* Nearest the client first; equal priorities in the order added. */
        size_t at = exp->n_layers;
        while (at > 0 && v[at - 1].layer.priority > e.layer.priority)
                at--;
        memmove(&v[at + 1], &v[at], (exp->n_layers - at) * sizeof *v);
        v[at] = e;
        exp->n_layers++;
        return slot_commit(slot, 0, e.serial, exp, retslot);
}

void layers_free(nbdsdk_export *exp) {
        for (size_t i = 0; i < exp->n_layers; i++)
                if (exp->layers[i].layer.unload)
                        exp->layers[i].layer.unload(exp->layers[i].data);
        free(exp->layers);
        exp->layers = NULL;
        exp->n_layers = 0;
}

/* The top level's capabilities become the connection's. */
static void set_top(nbdsdk_conn *conn, const export_state *caps) {
        nbdsdk_export *entry = conn->exp.entry;
        conn->exp = *caps;
        conn->exp.entry = entry;
        conn->exp.open = true;
}

int layers_open(nbdsdk_conn *conn, const export_state *backend, const char **retmsg) {
        const nbdsdk_export *x = conn->exp.entry;
        size_t n = x->n_layers;
        if (n == 0) {
                set_top(conn, backend);
                return 0;
        }
        if (!(conn->levels = calloc(n + 1, sizeof *conn->levels)))
                return -ENOMEM;
        conn->levels[n] = (nbdsdk_next) { .conn = conn, .index = n, .caps = *backend };
        conn->top = conn->bottom = n;
        for (size_t k = n; k-- > 0;) {
                const layer_entry *l = &x->layers[k];
                nbdsdk_next *next = &conn->levels[conn->top];
                int r = l->layer.open ? l->layer.open(conn, next, l->data) : 0;
                if (r < 0) {
                        *retmsg = "a layer refused to open it";
                        return r;
                }
                if (r == NBDSDK_LAYER_SKIP)
                        continue;
                unsigned at = conn->top - 1;
                conn->levels[at] = (nbdsdk_next) { .conn = conn, .index = at, .layer = l };
                conn->top = at; /* open: closed again by layers_close */
                r = export_probe(conn, l, next, &next->caps, &conn->levels[at].caps, retmsg);
                if (r < 0)
                        return r;
        }
        set_top(conn, &conn->levels[conn->top].caps);
        if (log_is_verbose()) {
                char names[256] = "";
                for (unsigned i = conn->top; i < conn->bottom; i++)
                        snprintf(names + strlen(names), sizeof names - strlen(names), "%s, ",
                                 conn->levels[i].layer->layer.name);
                log_debug("conn %llu: layers %sbackend", (unsigned long long) conn->id, names);
        }
        return 0;
}

int layers_native_snapshot(nbdsdk_conn *conn, nbdsdk_next *next) {
        const struct nbdsdk_ops *ops = &conn->server->ops;
        void *ud = conn->exp.entry->userdata;
        if (next->layer || !ops->can_snapshot || !ops->snapshot_begin)
                return 0;
        int r = ops->can_snapshot(conn, ud);
        if (r <= 0)
                return r;
        if ((r = ops->snapshot_begin(conn, ud)) < 0)
                return r;
        conn->snapshot = true;
        return 1;
}

int layers_pass_capability(int which, int below) {
        bool level = which == NBDSDK_CAN_ZERO || which == NBDSDK_CAN_FUA || which == NBDSDK_CAN_CACHE;
        return level && below != NBDSDK_CAP_NONE ? NBDSDK_CAP_NATIVE : below;
}

layer_entry *layers_find(nbdsdk_export *exp, const char *name) {
        for (size_t i = 0; i < exp->n_layers; i++)
                if (strcmp(exp->layers[i].layer.name, name) == 0)
                        return &exp->layers[i];
        return NULL;
}

void layers_close(nbdsdk_conn *conn) {
        for (unsigned i = conn->top; i < conn->bottom; i++) {
                const layer_entry *l = conn->levels[i].layer;
                if (l->layer.close)
                        l->layer.close(conn, l->data);
        }
        free(conn->levels);
        conn->levels = NULL;
        conn->top = conn->bottom = 0;
        if (conn->snapshot && conn->server->ops.snapshot_end)
                conn->server->ops.snapshot_end(conn, conn->exp.entry->userdata);
        conn->snapshot = false;
}

void layers_report(nbdsdk_server *s) {
        for (size_t i = 0; i < s->n_exports; i++)
                for (size_t k = 0; k < s->exports[i]->n_layers; k++) {
                        const layer_entry *l = &s->exports[i]->layers[k];
                        if (l->layer.report)
                                l->layer.report(l->data);
                }
}

bool layers_present(nbdsdk_server *s) {
        for (size_t i = 0; i < s->n_exports; i++)
                if (s->exports[i]->n_layers > 0)
                        return true;
        return false;
}
