/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path: each command as a short sequence of steps, each step one
 * callback, so that any callback may finish later (NBDSDK_DEFER) and the
 * request continues from the next step. A run happens at one level of the
 * connection's chain (a layer, or the backend at the bottom), with that
 * level's capabilities: emulation of what it lacks lives here — FUA by
 * flushing, write-zeroes by writing zeroes, cache by reading — and, for the
 * client's request, sparse reads. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "commands-internal.h"
#include "conn-internal.h"
#include "layers-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"

#define STEP_DONE (-1)
#define EMULATE_CHUNK (1u << 20)

/* Never written: the source of emulated write-zeroes. */
static char zero_buffer[EMULATE_CHUNK];

struct sync_waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        int result;
};

static const export_state *caps_of(nbdsdk_request *req, const dp_op *op) {
        nbdsdk_conn *conn = req->conn;
        return op->level == conn->top ? &conn->exp : &conn->levels[op->level].caps;
}

/* The client's own request (sparse reads, every selected context). */
static bool is_top(nbdsdk_request *req, const dp_op *op) { return op == &req->op; }

/* One callback of OP's level: the backend's, a layer's, or — for a layer
 * without it — the same operation run one level down. */
static int call(nbdsdk_request *req, const dp_op *op, uint16_t type, void *buf, uint64_t count,
                uint64_t offset, uint32_t flags, nbdsdk_extents *x) {
        nbdsdk_conn *conn = req->conn;
        if (op->level == conn->bottom) {
                const struct nbdsdk_ops *ops = &conn->server->ops;
                void *ud = conn->exp.entry->userdata;
                char *memory = caps_of(req, op)->memory;
                switch (type) {
                case NBDSDK_CMD_READ:
                        if (!ops->pread)
                                return memcpy(buf, memory + offset, count), 0;
                        return ops->pread(req, buf, count, offset, flags, ud);
                case NBDSDK_CMD_WRITE:
                        if (!ops->pwrite)
                                return memcpy(memory + offset, buf, count), 0;
                        return ops->pwrite(req, buf, count, offset, flags, ud);
                case NBDSDK_CMD_FLUSH: return ops->flush(req, flags, ud);
                case NBDSDK_CMD_TRIM: return ops->trim(req, count, offset, flags, ud);
                case NBDSDK_CMD_WRITE_ZEROES: return ops->zero(req, count, offset, flags, ud);
                case NBDSDK_CMD_CACHE: return ops->cache(req, count, offset, flags, ud);
                default: return ops->block_status(req, count, offset, flags, x, ud);
                }
        }
        const layer_entry *l = conn->levels[op->level].layer;
        const struct nbdsdk_layer *y = &l->layer;
        nbdsdk_next *next = &conn->levels[op->level + 1];
        switch (type) {
        case NBDSDK_CMD_READ:
                if (y->pread)
                        return y->pread(req, next, buf, count, offset, flags, l->data);
                break;
        case NBDSDK_CMD_WRITE:
                if (y->pwrite)
                        return y->pwrite(req, next, buf, count, offset, flags, l->data);
                break;
        case NBDSDK_CMD_FLUSH:
                if (y->flush)
                        return y->flush(req, next, flags, l->data);
                break;
        case NBDSDK_CMD_TRIM:
                if (y->trim)
                        return y->trim(req, next, count, offset, flags, l->data);
                break;
        case NBDSDK_CMD_WRITE_ZEROES:
                if (y->zero)
                        return y->zero(req, next, count, offset, flags, l->data);
                break;
        case NBDSDK_CMD_CACHE:
                if (y->cache)
                        return y->cache(req, next, count, offset, flags, l->data);
                break;
        default:
                if (y->block_status)
                        return y->block_status(req, next, count, offset, flags, x, l->data);
                break;
        }
        dp_op below = { .type = type, .flags = flags, .buf = buf, .offset = offset, .length = count,
                        .level = op->level + 1, .extents = x };
        return datapath_run_sync(req, &below);
}

static uint32_t native_fua(nbdsdk_request *req, const dp_op *op) {
        return (op->flags & NBDSDK_FUA) && caps_of(req, op)->fua == NBDSDK_CAP_NATIVE ? NBDSDK_FUA : 0;
}

static bool emulated_fua(nbdsdk_request *req, const dp_op *op) {
        return (op->flags & NBDSDK_FUA) && caps_of(req, op)->fua == NBDSDK_CAP_EMULATE;
}

/* After a write-like step: flush (emulated FUA) or finish. */
static int then_flush_or_done(nbdsdk_request *req, dp_op *op, int next_step) {
        op->step = emulated_fua(req, op) ? next_step : STEP_DONE;
        return 0;
}

/* Sparse reads: the zero blocks of what was read (4 KiB, aligned in the
 * export) become holes in the reply, as extents for the encoder. Zero runs
 * are found in the data itself, so layers see the client's READ whole and
 * no backend is asked for block status per read. */
#define HOLE_BLOCK 4096

static int find_holes(nbdsdk_request *req, const dp_op *op) {
        nbdsdk_extents *x = &req->extents;
        uint64_t end = op->offset + op->length;
        extents_init(x, op->offset, op->length);
        for (uint64_t pos = op->offset; pos < end;) {
                uint64_t next = (pos / HOLE_BLOCK + 1) * HOLE_BLOCK;
                if (next > end)
                        next = end;
                const char *p = (const char *) op->buf + (pos - op->offset);
                size_t n = next - pos;
                bool zero = p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
                int r = nbdsdk_extents_add(x, n, zero ? NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO : 0);
                if (r < 0)
                        return r;
                pos = next;
        }
        if (x->next != end || (x->n == 1 && x->v[0].type == 0))
                x->n = 0; /* too many pieces, or no hole: one data chunk */
        return 0;
}

/* Zero copy: the reply goes out from the export's memory. Looking for zero
 * blocks there would touch every page once more than sending them does, so
 * the backend's block status (cheap for memory) tells where the holes are. */
static int memory_holes(nbdsdk_request *req, dp_op *op) {
        extents_init(&req->extents, op->offset, op->length);
        if (!caps_of(req, op)->extents) {
                op->step = STEP_DONE;
                return 0;
        }
        op->tolerate_failure = true; /* without block status, the read is sent whole */
        return call(req, op, NBDSDK_CMD_BLOCK_STATUS, NULL, op->length, op->offset, 0, &req->extents);
}

static int memory_holes_found(nbdsdk_request *req, dp_op *op) {
        nbdsdk_extents *x = &req->extents;
        bool any_zero = false;
        for (size_t i = 0; i < x->n; i++)
                any_zero |= (x->v[i].type & NBDSDK_EXTENT_ZERO) != 0;
        if (op->last_result < 0 || x->next < op->offset + op->length || !any_zero)
                x->n = 0; /* one data chunk */
        return 0;
}

/* The client's READ gets a sparse reply (structured, no DF, long enough). */
static bool sparse_read(nbdsdk_request *req) {
        nbdsdk_conn *conn = req->conn;
        uint32_t min = conn->server->sparse_read_min;
        return req->type == NBDSDK_CMD_READ && conn->structured && !(req->wire_flags & NBDSDK_CMD_FLAG_DF) && min &&
               req->length >= min;
}

bool datapath_calls_nothing(nbdsdk_request *req) {
        return req->direct && (req->type == NBDSDK_CMD_WRITE || !sparse_read(req));
}

static int step_read(nbdsdk_request *req, dp_op *op) {
        if (op->step == 0) {
                bool sparse = is_top(req, op) && sparse_read(req);
                op->step = sparse ? 1 : STEP_DONE;
                if (req->direct && is_top(req, op))
                        return sparse ? memory_holes(req, op) : 0;
                return call(req, op, NBDSDK_CMD_READ, op->buf, op->length, op->offset, 0, NULL);
        }
        op->step = STEP_DONE;
        if (req->direct)
                return memory_holes_found(req, op);
        return find_holes(req, op);
}

static int step_write(nbdsdk_request *req, dp_op *op) {
        if (req->direct && is_top(req, op)) {
                op->step = STEP_DONE; /* zero copy: the payload was received in place */
                return 0;
        }
        if (op->step == 0) {
                then_flush_or_done(req, op, 1);
                return call(req, op, NBDSDK_CMD_WRITE, op->buf, op->length, op->offset, native_fua(req, op), NULL);
        }
        op->step = STEP_DONE;
        return call(req, op, NBDSDK_CMD_FLUSH, NULL, 0, 0, 0, NULL);
}

static int step_flush(nbdsdk_request *req, dp_op *op) {
        op->step = STEP_DONE;
        return call(req, op, NBDSDK_CMD_FLUSH, NULL, 0, 0, 0, NULL);
}

static int step_trim(nbdsdk_request *req, dp_op *op) {
        if (op->step == 0) {
                then_flush_or_done(req, op, 1);
                return call(req, op, NBDSDK_CMD_TRIM, NULL, op->length, op->offset, native_fua(req, op), NULL);
        }
        op->step = STEP_DONE;
        return call(req, op, NBDSDK_CMD_FLUSH, NULL, 0, 0, 0, NULL);
}

/* Steps: 0 start, 1 check the native result, 2 write zeroes, 3 flush. */
static int step_zero(nbdsdk_request *req, dp_op *op) {
        switch (op->step) {
        case 0:
                if (caps_of(req, op)->zero == NBDSDK_CAP_NATIVE) {
                        op->step = 1;
                        op->tolerate_failure = true;
                        return call(req, op, NBDSDK_CMD_WRITE_ZEROES, NULL, op->length, op->offset,
                                    (op->flags & ~NBDSDK_FUA) | native_fua(req, op), NULL);
                }
                /* Writing zeroes is never faster than a write (spec: FAST_ZERO). */
                if (op->flags & NBDSDK_FAST_ZERO)
                        return -ENOTSUP;
                op->step = 2;
                op->progress = 0;
                return 0;
        case 1: {
                int r = op->last_result;
                bool unsupported = r == -ENOTSUP || r == -EOPNOTSUPP;
                if (r < 0 && (!unsupported || (op->flags & NBDSDK_FAST_ZERO)))
                        return r;
                if (r < 0) {
                        op->step = 2; /* it cannot: fall back to writing */
                        op->progress = 0;
                        return 0;
                }
                return then_flush_or_done(req, op, 3);
        }
        case 2: {
                uint64_t chunk = op->length - op->progress;
                if (chunk > EMULATE_CHUNK)
                        chunk = EMULATE_CHUNK;
                uint64_t off = op->offset + op->progress;
                op->progress += chunk;
                if (op->progress == op->length)
                        then_flush_or_done(req, op, 3);
                return call(req, op, NBDSDK_CMD_WRITE, zero_buffer, chunk, off, native_fua(req, op), NULL);
        }
        default:
                op->step = STEP_DONE;
                return call(req, op, NBDSDK_CMD_FLUSH, NULL, 0, 0, 0, NULL);
        }
}

static int step_cache(nbdsdk_request *req, dp_op *op) {
        if (caps_of(req, op)->cache == NBDSDK_CAP_NATIVE) {
                op->step = STEP_DONE;
                return call(req, op, NBDSDK_CMD_CACHE, NULL, op->length, op->offset, 0, NULL);
        }
        /* Emulated: read the range into a scratch buffer, a chunk at a time. */
        uint64_t chunk = op->length - op->progress;
        if (chunk > EMULATE_CHUNK)
                chunk = EMULATE_CHUNK;
        if (!op->scratch && !(op->scratch = buffer_alloc(chunk)))
                return -ENOMEM;
        uint64_t off = op->offset + op->progress;
        op->progress += chunk;
        if (op->progress == op->length)
                op->step = STEP_DONE;
        return call(req, op, NBDSDK_CMD_READ, op->scratch, chunk, off, 0, NULL);
}

/* base:allocation into X: from the level, or one allocated extent without it. */
static int allocation(nbdsdk_request *req, dp_op *op, nbdsdk_extents *x) {
        if (!caps_of(req, op)->extents)
                return nbdsdk_extents_add(x, op->length, 0); /* allocated, contents unknown: always true */
        return call(req, op, NBDSDK_CMD_BLOCK_STATUS, NULL, op->length, op->offset, op->flags & NBDSDK_REQ_ONE, x);
}

/* The client's request: one step per selected context, base:allocation from
 * the chain, registered contexts from their namespace. Below a layer: the
 * caller's base:allocation list. */
static int step_block_status(nbdsdk_request *req, dp_op *op) {
        if (!is_top(req, op)) {
                op->step = STEP_DONE;
                return allocation(req, op, op->extents);
        }
        const meta_selection *m = &req->conn->meta;
        if (op->step == 0) {
                /* Already there when the step runs again on a worker (NBDSDK_WOULD_BLOCK). */
                if (!req->contexts && !(req->contexts = calloc(m->n, sizeof *req->contexts)))
                        return -ENOMEM;
                req->n_contexts = m->n;
                op->progress = 0;
                op->step = 1;
        }
        if (op->progress > 0 && req->contexts[op->progress - 1].n == 0) {
                log_error("block status for %s reported no extents", m->v[op->progress - 1].name);
                return -EIO;
        }
        if (op->progress == m->n) {
                op->step = STEP_DONE;
                return 0;
        }
        const meta_context *c = &m->v[op->progress];
        nbdsdk_extents *x = &req->contexts[op->progress++];
        extents_init(x, op->offset, op->length);
        if (c->ns) {
                x->any_status = true;
                return c->ns->ns.block_status(req, c->name, op->length, op->offset,
                                              op->flags & NBDSDK_REQ_ONE, x, c->ns->userdata);
        }
        return allocation(req, op, x);
}

static int step(nbdsdk_request *req, dp_op *op) {
        switch (op->type) {
        case NBDSDK_CMD_READ: return step_read(req, op);
        case NBDSDK_CMD_WRITE: return step_write(req, op);
        case NBDSDK_CMD_FLUSH: return step_flush(req, op);
        case NBDSDK_CMD_TRIM: return step_trim(req, op);
        case NBDSDK_CMD_WRITE_ZEROES: return step_zero(req, op);
        case NBDSDK_CMD_CACHE: return step_cache(req, op);
        case NBDSDK_CMD_BLOCK_STATUS: return step_block_status(req, op);
        default: {
                /* A private command: its handler is the whole data path. */
                const command_entry *c = req->command;
                op->step = STEP_DONE;
                return c->cmd.handle(req, c->userdata);
        }
        }
}

void datapath_begin(nbdsdk_request *req) {
        req->op = (dp_op) { .type = req->type, .flags = req->flags, .buf = req->data, .offset = req->offset,
                            .length = req->length, .level = req->conn->top };
}

/* A step's result, checked: callbacks return 0, NBDSDK_DEFER, -errno, or
 * NBDSDK_WOULD_BLOCK where nbdsdk_request_may_block() is false. */
static int checked(int result) {
        if (result == NBDSDK_WOULD_BLOCK) {
                log_error("a callback returned NBDSDK_WOULD_BLOCK where it may block (nbdsdk_request_may_block)");
                return -EIO;
        }
        if (result > 0) {
                log_error("a callback returned %d; callbacks return 0, NBDSDK_DEFER or -errno", result);
                return -EIO;
        }
        return result;
}

/* The step in SAVED would block: undo it and run it again on a worker. */
static void move_to_worker(nbdsdk_request *req, dp_op *saved, int result) {
        saved->scratch = req->op.scratch; /* allocated by the step: kept */
        req->op = *saved;
        atomic_store(&req->deferred, 0);
        req->may_move = false;
        req->resume_result = result;
        worker_pool_push(req->conn->server->workers, req);
}

bool datapath_run(nbdsdk_request *req, int result, int *retresult) {
        dp_op *op = &req->op;
        for (;;) {
                if ((result < 0 && !op->tolerate_failure) || op->step == STEP_DONE) {
                        *retresult = result < 0 ? result : 0;
                        return true;
                }
                dp_op saved = *op;
                op->tolerate_failure = false;
                op->last_result = result;
                atomic_store(&req->deferred, 1);
                int r = step(req, op);
                if (r == NBDSDK_DEFER)
                        return false; /* do not touch REQ: it may already be resumed */
                if (r == NBDSDK_WOULD_BLOCK && req->may_move) {
                        move_to_worker(req, &saved, result);
                        return false;
                }
                result = r;
                if (!atomic_exchange(&req->deferred, 0)) {
                        /* The callback called nbdsdk_request_complete() yet did not
                         * return NBDSDK_DEFER: its completion is queued, so wait for it. */
                        log_error("a callback completed its request but returned %d, not NBDSDK_DEFER", result);
                        return false;
                }
                result = checked(result);
        }
}

int datapath_run_sync(nbdsdk_request *req, dp_op *op) {
        /* The level above is inside a callback of its own: its deferred flag
         * and waiter come back when this run ends. */
        int outer = atomic_load(&req->deferred);
        sync_waiter *outer_waiter = req->waiter;
        sync_waiter w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        int result = 0;
        while (!(result < 0 && !op->tolerate_failure) && op->step != STEP_DONE) {
                op->tolerate_failure = false;
                op->last_result = result;
                w.done = false;
                req->waiter = &w;
                atomic_store(&req->deferred, 1);
                result = step(req, op);
                if (result == NBDSDK_DEFER || !atomic_exchange(&req->deferred, 0)) {
                        pthread_mutex_lock(&w.lock);
                        while (!w.done)
                                pthread_cond_wait(&w.cond, &w.lock);
                        result = w.result;
                        pthread_mutex_unlock(&w.lock);
                } else {
                        result = checked(result);
                }
        }
        free(op->scratch);
        req->waiter = outer_waiter;
        atomic_store(&req->deferred, outer);
        return result < 0 ? result : 0;
}

void datapath_wake(sync_waiter *w, int result) {
        pthread_mutex_lock(&w->lock);
        w->result = result;
        w->done = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}
