/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path: each command as a short sequence of steps, each step one
 * backend callback, so that any callback may finish later (NBDSDK_DEFER)
 * and the request continues from the next step. Emulation of what the
 * backend lacks lives here: FUA by flushing, write-zeroes by writing zeroes,
 * cache by reading, sparse reads from block status. */
#include <errno.h>
#include <stdlib.h>
#include "commands-internal.h"
#include "conn-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"

#define STEP_DONE (-1)
#define EMULATE_CHUNK (1u << 20)

/* Never written: the source of emulated write-zeroes. */
static char zero_buffer[EMULATE_CHUNK];

#define OPS(req) (&(req)->conn->server->ops)
#define UD(req) ((req)->conn->server->userdata)
#define EXP(req) (&(req)->conn->exp)

static uint32_t native_fua(nbdsdk_request *req) {
        return (req->flags & NBDSDK_FUA) && EXP(req)->fua == NBDSDK_CAP_NATIVE ? NBDSDK_FUA : 0;
}

static bool emulated_fua(nbdsdk_request *req) {
        return (req->flags & NBDSDK_FUA) && EXP(req)->fua == NBDSDK_CAP_EMULATE;
}

/* After a write-like step: flush (emulated FUA) or finish. */
static int then_flush_or_done(nbdsdk_request *req, int next_step) {
        req->step = emulated_fua(req) ? next_step : STEP_DONE;
        return 0;
}

static int step_read(nbdsdk_request *req) {
        const struct nbdsdk_ops *ops = OPS(req);
        nbdsdk_extents *x = &req->extents;
        switch (req->step) {
        case 0: {
                nbdsdk_conn *conn = req->conn;
                uint32_t min = conn->server->sparse_read_min;
                bool sparse = conn->structured && !(req->wire_flags & NBDSDK_CMD_FLAG_DF) &&
                              min && req->length >= min && EXP(req)->extents;
                if (!sparse) {
                        req->step = STEP_DONE;
                        return ops->pread(req, req->buf, req->length, req->offset, 0, UD(req));
                }
                extents_init(x, req->offset, req->length);
                req->step = 1;
                req->tolerate_failure = true;
                return ops->block_status(req, req->length, req->offset, 0, x, UD(req));
        }
        case 1:
                /* Block status is only a hint here: on failure read everything. */
                if (req->last_result < 0)
                        extents_init(x, req->offset, req->length);
                if (x->next < x->end && nbdsdk_extents_add(x, x->end - x->next, 0) < 0)
                        return -ENOMEM;
                req->extent_index = 0;
                req->progress = req->offset;
                req->step = 2;
                return 0;
        default: {
                size_t i = req->extent_index;
                while (i < x->n && (x->v[i].type & NBDSDK_EXTENT_ZERO))
                        req->progress += x->v[i++].length;
                if (i == x->n) {
                        req->step = STEP_DONE;
                        return 0;
                }
                uint64_t start = req->progress, len = 0;
                while (i < x->n && !(x->v[i].type & NBDSDK_EXTENT_ZERO))
                        len += x->v[i++].length;
                req->extent_index = i;
                req->progress += len;
                return ops->pread(req, (char *) req->buf + (start - req->offset), len, start, 0, UD(req));
        }
        }
}

static int step_write(nbdsdk_request *req) {
        if (req->step == 0) {
                then_flush_or_done(req, 1);
                return OPS(req)->pwrite(req, req->buf, req->length, req->offset, native_fua(req), UD(req));
        }
        req->step = STEP_DONE;
        return OPS(req)->flush(req, 0, UD(req));
}

static int step_flush(nbdsdk_request *req) {
        req->step = STEP_DONE;
        return OPS(req)->flush(req, 0, UD(req));
}

static int step_trim(nbdsdk_request *req) {
        if (req->step == 0) {
                then_flush_or_done(req, 1);
                return OPS(req)->trim(req, req->length, req->offset, native_fua(req), UD(req));
        }
        req->step = STEP_DONE;
        return OPS(req)->flush(req, 0, UD(req));
}

/* Steps: 0 start, 1 check the native result, 2 write zeroes, 3 flush. */
static int step_zero(nbdsdk_request *req) {
        const struct nbdsdk_ops *ops = OPS(req);
        switch (req->step) {
        case 0:
                if (EXP(req)->zero == NBDSDK_CAP_NATIVE) {
                        req->step = 1;
                        req->tolerate_failure = true;
                        return ops->zero(req, req->length, req->offset,
                                         (req->flags & ~NBDSDK_FUA) | native_fua(req), UD(req));
                }
                /* Writing zeroes is never faster than a write (spec: FAST_ZERO). */
                if (req->flags & NBDSDK_FAST_ZERO)
                        return -ENOTSUP;
                req->step = 2;
                req->progress = 0;
                return 0;
        case 1: {
                int r = req->last_result;
                bool unsupported = r == -ENOTSUP || r == -EOPNOTSUPP;
                if (r < 0 && (!unsupported || (req->flags & NBDSDK_FAST_ZERO)))
                        return r;
                if (r < 0) {
                        req->step = 2; /* the backend cannot: fall back to writing */
                        req->progress = 0;
                        return 0;
                }
                return then_flush_or_done(req, 3);
        }
        case 2: {
                uint64_t chunk = req->length - req->progress;
                if (chunk > EMULATE_CHUNK)
                        chunk = EMULATE_CHUNK;
                uint64_t off = req->offset + req->progress;
                req->progress += chunk;
                if (req->progress == req->length)
                        then_flush_or_done(req, 3);
                return ops->pwrite(req, zero_buffer, chunk, off, native_fua(req), UD(req));
        }
        default:
                req->step = STEP_DONE;
                return ops->flush(req, 0, UD(req));
        }
}

static int step_cache(nbdsdk_request *req) {
        const struct nbdsdk_ops *ops = OPS(req);
        if (EXP(req)->cache == NBDSDK_CAP_NATIVE) {
                req->step = STEP_DONE;
                return ops->cache(req, req->length, req->offset, 0, UD(req));
        }
        /* Emulated: read the range into a scratch buffer, a chunk at a time. */
        uint64_t chunk = req->length - req->progress;
        if (chunk > EMULATE_CHUNK)
                chunk = EMULATE_CHUNK;
        if (!req->scratch && !(req->scratch = malloc(chunk)))
                return -ENOMEM;
        uint64_t off = req->offset + req->progress;
        req->progress += chunk;
        if (req->progress == req->length)
                req->step = STEP_DONE;
        return ops->pread(req, req->scratch, chunk, off, 0, UD(req));
}

/* One step per selected context: base:allocation from the backend (or one
 * allocated extent without it), registered contexts from their namespace. */
static int step_block_status(nbdsdk_request *req) {
        const meta_selection *m = &req->conn->meta;
        if (req->step == 0) {
                if (!(req->contexts = calloc(m->n, sizeof *req->contexts)))
                        return -ENOMEM;
                req->n_contexts = m->n;
                req->progress = 0;
                req->step = 1;
        }
        if (req->progress > 0 && req->contexts[req->progress - 1].n == 0) {
                log_error("block status for %s reported no extents", m->v[req->progress - 1].name);
                return -EIO;
        }
        if (req->progress == m->n) {
                req->step = STEP_DONE;
                return 0;
        }
        const meta_context *c = &m->v[req->progress];
        nbdsdk_extents *x = &req->contexts[req->progress++];
        extents_init(x, req->offset, req->length);
        uint32_t flags = req->flags & NBDSDK_REQ_ONE;
        if (c->ns) {
                x->any_status = true;
                return c->ns->ns.block_status(req, c->name, req->length, req->offset, flags, x, c->ns->userdata);
        }
        if (!EXP(req)->extents)
                return nbdsdk_extents_add(x, req->length, 0); /* allocated, contents unknown: always true */
        return OPS(req)->block_status(req, req->length, req->offset, flags, x, UD(req));
}

static int step(nbdsdk_request *req) {
        switch (req->type) {
        case NBDSDK_CMD_READ: return step_read(req);
        case NBDSDK_CMD_WRITE: return step_write(req);
        case NBDSDK_CMD_FLUSH: return step_flush(req);
        case NBDSDK_CMD_TRIM: return step_trim(req);
        case NBDSDK_CMD_WRITE_ZEROES: return step_zero(req);
        case NBDSDK_CMD_CACHE: return step_cache(req);
        case NBDSDK_CMD_BLOCK_STATUS: return step_block_status(req);
        default: {
                /* A private command: its handler is the whole data path. */
                const command_entry *c = req->command;
                req->step = STEP_DONE;
                return c->cmd.handle(req, c->userdata);
        }
        }
}

bool datapath_run(nbdsdk_request *req, int result, int *retresult) {
        for (;;) {
                if ((result < 0 && !req->tolerate_failure) || req->step == STEP_DONE) {
                        *retresult = result < 0 ? result : 0;
                        return true;
                }
                req->tolerate_failure = false;
                req->last_result = result;
                atomic_store(&req->deferred, 1);
                result = step(req);
                if (result == NBDSDK_DEFER)
                        return false; /* do not touch REQ: it may already be resumed */
                if (!atomic_exchange(&req->deferred, 0)) {
                        /* The callback called nbdsdk_request_complete() yet did not
                         * return NBDSDK_DEFER: its completion is queued, so wait for it. */
                        log_error("a callback completed its request but returned %d, not NBDSDK_DEFER", result);
                        return false;
                }
                if (result > 0) {
                        log_error("a callback returned %d; callbacks return 0, NBDSDK_DEFER or -errno", result);
                        result = -EIO;
                }
        }
}
