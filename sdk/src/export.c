/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening an export for a connection: the backend's open, size, block sizes
 * and capabilities, each asked once and cached (defaults follow from which
 * callbacks exist; see nbdsdk_ops(3)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "server-internal.h"

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* A can_* answer: the callback's value, or DEFAULT when there is none.
 * Negative answers (errors) are returned as they are. */
static int ask(int (*fn)(nbdsdk_conn *, void *), nbdsdk_conn *conn, int fallback) {
        return fn ? fn(conn, conn->server->userdata) : fallback;
}

static int export_probe(nbdsdk_conn *conn, const char **retmsg) {
        nbdsdk_server *s = conn->server;
        const struct nbdsdk_ops *ops = &s->ops;
        export_state *e = &conn->exp;
        void *ud = s->userdata;

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

        int v;
#define ASK(field, fn, fallback) \
        if ((v = ask(ops->fn, conn, (fallback))) < 0) { *retmsg = "the backend's " #fn " failed"; return v; } \
        field = v
        ASK(e->writable, can_write, ops->pwrite != NULL);
        ASK(e->flush, can_flush, ops->flush != NULL);
        ASK(e->trim, can_trim, ops->trim != NULL);
        ASK(e->zero, can_zero, ops->zero ? NBDSDK_CAP_NATIVE : NBDSDK_CAP_EMULATE);
        ASK(e->fua, can_fua, e->flush ? NBDSDK_CAP_EMULATE : NBDSDK_CAP_NONE);
        ASK(e->cache, can_cache, ops->cache ? NBDSDK_CAP_NATIVE : NBDSDK_CAP_EMULATE);
        ASK(e->fast_zero, can_fast_zero, e->zero != NBDSDK_CAP_NONE);
        ASK(e->multi_conn, can_multi_conn, 0);
        ASK(e->extents, can_extents, ops->block_status != NULL);
        ASK(e->rotational, is_rotational, 0);
#undef ASK
        if (s->read_only || !ops->pwrite)
                e->writable = false;
        if (!e->writable) {
                e->trim = e->fast_zero = false;
                e->zero = e->fua = NBDSDK_CAP_NONE;
        }
        if (e->zero > NBDSDK_CAP_NATIVE || e->fua > NBDSDK_CAP_NATIVE || e->cache > NBDSDK_CAP_NATIVE) {
                *retmsg = "the backend returned an unknown capability level";
                return -EINVAL;
        }
        /* What cannot be done with the callbacks present is not offered. */
        if (!ops->trim)
                e->trim = false;
        if (e->zero == NBDSDK_CAP_NATIVE && !ops->zero)
                e->zero = NBDSDK_CAP_EMULATE;
        if (e->fua == NBDSDK_CAP_EMULATE && !ops->flush)
                e->fua = NBDSDK_CAP_NONE;
        if (e->cache == NBDSDK_CAP_NATIVE && !ops->cache)
                e->cache = NBDSDK_CAP_EMULATE;
        if (!ops->flush)
                e->flush = false;
        if (!ops->block_status)
                e->extents = false;
        if (e->zero == NBDSDK_CAP_NONE)
                e->fast_zero = false;
        return 0;
}

int export_open(nbdsdk_conn *conn, const char *name, const char **retmsg) {
        const export_entry *entry = server_find_export(conn->server, name);
        if (!entry) {
                *retmsg = "no such export";
                return -ENOENT;
        }
        if (conn->exp.open && strcmp(conn->exp.canonical, entry->name) == 0)
                return 0;
        export_close(conn);
        conn->exp.canonical = entry->name;
        conn->exp.description = entry->description;
        const struct nbdsdk_ops *ops = &conn->server->ops;
        if (ops->open) {
                int r = ops->open(conn, conn->server->userdata);
                if (r < 0) {
                        *retmsg = "the backend refused to open it";
                        conn->exp.canonical = NULL;
                        return r;
                }
        }
        conn->exp.open = true;
        int r = export_probe(conn, retmsg);
        if (r < 0) {
                export_close(conn);
                return r;
        }
        return 0;
}

void export_close(nbdsdk_conn *conn) {
        if (conn->exp.open && conn->server->ops.close)
                conn->server->ops.close(conn, conn->server->userdata);
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
