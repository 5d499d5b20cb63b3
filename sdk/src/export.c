/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening an export for a connection: the backend's open, size, block sizes
 * and capabilities, then the export's layers over it, each level asked once
 * and cached (the backend's defaults follow from which callbacks exist, a
 * layer's from the level below; see nbdsdk_ops(3) and nbdsdk_layer(3)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "layers-internal.h"
#include "log-internal.h"
#include "server-internal.h"

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* What a level can do with the callbacks it has (a layer: or by passing the
 * request down). Capabilities beyond that are not offered. */
typedef struct {
        bool pwrite, flush, trim, zero, cache, block_status, fua;
} can_do;

static int backend_answer(nbdsdk_conn *conn, int which, int fallback) {
        const struct nbdsdk_ops *ops = &conn->server->ops;
        int (*fn)(nbdsdk_conn *, void *) = NULL;
        switch (which) {
        case NBDSDK_CAN_WRITE: fn = ops->can_write; break;
        case NBDSDK_CAN_FLUSH: fn = ops->can_flush; break;
        case NBDSDK_CAN_TRIM: fn = ops->can_trim; break;
        case NBDSDK_CAN_ZERO: fn = ops->can_zero; break;
        case NBDSDK_CAN_FAST_ZERO: fn = ops->can_fast_zero; break;
        case NBDSDK_CAN_FUA: fn = ops->can_fua; break;
        case NBDSDK_CAN_CACHE: fn = ops->can_cache; break;
        case NBDSDK_CAN_MULTI_CONN: fn = ops->can_multi_conn; break;
        case NBDSDK_CAN_EXTENTS: fn = ops->can_extents; break;
        case NBDSDK_IS_ROTATIONAL: fn = ops->is_rotational; break;
        }
        return fn ? fn(conn, conn->exp.entry->userdata) : fallback;
}

/* A capability of a level: the callback's answer, or FALLBACK without one.
 * Negative answers (errors) are returned as they are. */
static int answer(nbdsdk_conn *conn, const layer_entry *l, nbdsdk_next *next, int which, int fallback) {
        if (!l)
                return backend_answer(conn, which, fallback);
        return l->layer.capability ? l->layer.capability(next, which, fallback, l->data) : fallback;
}

static int probe_sizes(nbdsdk_conn *conn, const layer_entry *l, nbdsdk_next *next, export_state *e,
                       const char **retmsg) {
        if (l) {
                int64_t size = l->layer.get_size ? l->layer.get_size(next, l->data) : (int64_t) e->size;
                if (size < 0) {
                        *retmsg = "a layer could not tell the export's size";
                        return (int) size;
                }
                e->size = (uint64_t) size;
                return 0;
        }
        nbdsdk_server *s = conn->server;
        const struct nbdsdk_ops *ops = &s->ops;
        void *ud = conn->exp.entry->userdata;
        int64_t size = ops->get_size(conn, ud);
        if (size < 0) {
                *retmsg = "the backend could not tell the export's size";
                return (int) size;
        }
        e->size = (uint64_t) size;
        e->min_block = 1;
        e->pref_block = 4096;
        e->max_block = s->max_payload;
        if (ops->get_block_size) {
                uint32_t mn = 0, pr = 0, mx = 0;
                int r = ops->get_block_size(conn, &mn, &pr, &mx, ud);
                if (r < 0) {
                        *retmsg = "the backend could not tell its block sizes";
                        return r;
                }
                /* Spec "Block size constraints". */
                if (!is_pow2(mn) || mn > 65536 || !is_pow2(pr) || pr < mn || pr < 512 || mx < pr) {
                        *retmsg = "the backend's block sizes break the spec's rules";
                        return -EINVAL;
                }
                e->min_block = mn;
                e->pref_block = pr;
                if (mx < e->max_block)
                        e->max_block = mx;
        }
        return 0;
}

int export_probe(nbdsdk_conn *conn, const layer_entry *l, nbdsdk_next *next, const export_state *below,
                 export_state *e, const char **retmsg) {
        const struct nbdsdk_ops *ops = &conn->server->ops;
        can_do can;
        if (l) {
                const struct nbdsdk_layer *y = &l->layer;
                *e = *below;
                e->memory = NULL; /* the layer's bytes are not the backend's */
                can = (can_do) { y->pwrite || below->writable, y->flush || below->flush, y->trim || below->trim,
                                 y->zero || below->zero == NBDSDK_CAP_NATIVE,
                                 y->cache || below->cache == NBDSDK_CAP_NATIVE,
                                 y->block_status || below->extents, y->pwrite || below->fua != NBDSDK_CAP_NONE };
        } else {
                e->memory = ops->map ? ops->map(conn, conn->exp.entry->userdata) : NULL;
                if (!e->memory && !ops->pread) {
                        *retmsg = "the backend has neither pread nor memory (map returned NULL)";
                        return -EIO;
                }
                can = (can_do) { ops->pwrite || e->memory, ops->flush, ops->trim, ops->zero, ops->cache, ops->block_status, true };
        }
        int r = probe_sizes(conn, l, next, e, retmsg);
        if (r < 0)
                return r;

        int v;
        /* The fallback: the level below's value, or the backend's default. */
#define ASK(field, which, backend_default) \
        if ((v = answer(conn, l, next, which, l ? (int) below->field : (backend_default))) < 0) { \
                *retmsg = "a capability callback failed"; \
                return v; \
        } \
        e->field = v
        ASK(writable, NBDSDK_CAN_WRITE, can.pwrite);
        ASK(flush, NBDSDK_CAN_FLUSH, can.flush);
        ASK(trim, NBDSDK_CAN_TRIM, can.trim);
        ASK(zero, NBDSDK_CAN_ZERO, can.zero ? NBDSDK_CAP_NATIVE : NBDSDK_CAP_EMULATE);
        ASK(fua, NBDSDK_CAN_FUA, e->flush ? NBDSDK_CAP_EMULATE : NBDSDK_CAP_NONE);
        ASK(cache, NBDSDK_CAN_CACHE, can.cache ? NBDSDK_CAP_NATIVE : NBDSDK_CAP_EMULATE);
        ASK(fast_zero, NBDSDK_CAN_FAST_ZERO, e->zero != NBDSDK_CAP_NONE);
        ASK(multi_conn, NBDSDK_CAN_MULTI_CONN, 0);
        ASK(extents, NBDSDK_CAN_EXTENTS, can.block_status);
        ASK(rotational, NBDSDK_IS_ROTATIONAL, 0);
#undef ASK
        if (e->zero > NBDSDK_CAP_NATIVE || e->fua > NBDSDK_CAP_NATIVE || e->cache > NBDSDK_CAP_NATIVE) {
                *retmsg = "a capability callback returned an unknown level";
                return -EINVAL;
        }
        /* What cannot be done with the callbacks present is not offered. */
        if (!can.pwrite)
                e->writable = false;
        if (!can.trim)
                e->trim = false;
        if (e->zero == NBDSDK_CAP_NATIVE && !can.zero)
                e->zero = NBDSDK_CAP_EMULATE;
        if (!can.flush)
                e->flush = false;
        if (e->fua == NBDSDK_CAP_NATIVE && !can.fua)
                e->fua = NBDSDK_CAP_EMULATE;
        if (e->fua == NBDSDK_CAP_EMULATE && !e->flush)
                e->fua = NBDSDK_CAP_NONE;
        if (e->cache == NBDSDK_CAP_NATIVE && !can.cache)
                e->cache = NBDSDK_CAP_EMULATE;
        if (!can.block_status)
                e->extents = false;
        if (!e->writable) {
                e->trim = e->fast_zero = false;
                e->zero = e->fua = NBDSDK_CAP_NONE;
        }
        if (e->zero == NBDSDK_CAP_NONE)
                e->fast_zero = false;
        return 0;
}

int export_open(nbdsdk_conn *conn, const char *name, const char **retmsg) {
        nbdsdk_export *entry = server_find_export(conn->server, name);
        if (!entry) {
                *retmsg = "no such export";
                return -ENOENT;
        }
        if (conn->exp.open && conn->exp.entry == entry)
                return 0;
        export_close(conn);
        conn->exp.entry = entry;
        const struct nbdsdk_ops *ops = &conn->server->ops;
        if (ops->open) {
                int r = ops->open(conn, entry->userdata);
                if (r < 0) {
                        *retmsg = "the backend refused to open it";
                        conn->exp.entry = NULL;
                        return r;
                }
        }
        conn->exp.open = true;
        export_state backend;
        int r = export_probe(conn, NULL, NULL, NULL, &backend, retmsg);
        if (r == 0)
                r = layers_open(conn, &backend, retmsg);
        if (r < 0) {
                export_close(conn);
                return r;
        }
        export_state *e = &conn->exp;
        if (conn->server->read_only || entry->read_only) {
                e->writable = e->trim = e->fast_zero = false;
                e->zero = e->fua = NBDSDK_CAP_NONE;
        }
        return 0;
}

void export_close(nbdsdk_conn *conn) {
        layers_close(conn);
        if (conn->exp.open && conn->server->ops.close)
                conn->server->ops.close(conn, conn->exp.entry->userdata);
        memset(&conn->exp, 0, sizeof conn->exp);
        conn->handle = NULL;
}

uint16_t export_eflags(nbdsdk_conn *conn) {
        const export_state *e = &conn->exp;
        uint16_t f = NBDSDK_FLAG_HAS_FLAGS;
        if (!e->writable)
                f |= NBDSDK_FLAG_READ_ONLY;
        if (e->flush)
                f |= NBDSDK_FLAG_SEND_FLUSH;
        if (e->fua != NBDSDK_CAP_NONE)
                f |= NBDSDK_FLAG_SEND_FUA;
        if (e->rotational)
                f |= NBDSDK_FLAG_ROTATIONAL;
        if (e->trim)
                f |= NBDSDK_FLAG_SEND_TRIM;
        if (e->zero != NBDSDK_CAP_NONE)
                f |= NBDSDK_FLAG_SEND_WRITE_ZEROES;
        if (e->fast_zero)
                f |= NBDSDK_FLAG_SEND_FAST_ZERO;
        /* DF only means something once replies are structured (spec). */
        if (conn->structured)
                f |= NBDSDK_FLAG_SEND_DF;
        if (e->multi_conn)
                f |= NBDSDK_FLAG_CAN_MULTI_CONN;
        if (e->cache != NBDSDK_CAP_NONE)
                f |= NBDSDK_FLAG_SEND_CACHE;
        return f;
}
