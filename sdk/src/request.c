/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A request's life: created from a header, run through the data path (on the
 * loop thread, a worker, or an asynchronous backend), replied to, freed once
 * the reply is sent. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "errno-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"

/* Finished requests are kept per connection with their buffers, so that the
 * steady state allocates nothing per request. Large buffers matter most:
 * malloc serves them with fresh mmap'd pages, and first-touch page faults are
 * what large reads and writes would otherwise cost. The bytes kept are
 * bounded per connection; large buffers a connection lets go of go to the
 * server's stash (buffers.c), for the next connection. */
#define REQUEST_CACHE_MAX 64
#define REQUEST_CACHE_BYTES (64u << 20)

nbdsdk_request *request_new(nbdsdk_conn *conn) {
        nbdsdk_request *req = conn->req_cache;
        if (req) {
                conn->req_cache = req->next;
                conn->n_req_cache--;
                void *buf = req->buf;
                size_t cap = req->buf_cap;
                nbdsdk_extents x = req->extents;
                conn->req_cache_bytes -= cap;
                memset(req, 0, sizeof *req);
                req->buf = buf;
                req->buf_cap = cap;
                req->extents = x;
                req->extents.n = 0;
        } else if (!(req = calloc(1, sizeof *req)))
                return NULL;
        req->conn = nbdsdk_conn_ref(conn);
        conn->in_flight++;
        return req;
}

int request_reserve(nbdsdk_request *req, size_t size) {
        if (req->buf_cap >= size)
                return 0;
        /* A cached request may hold a big enough buffer: trade buffers. */
        for (nbdsdk_request *c = req->conn->req_cache; c; c = c->next)
                if (c->buf_cap >= size) {
                        void *buf = c->buf;
                        size_t cap = c->buf_cap;
                        req->conn->req_cache_bytes += req->buf_cap - cap;
                        c->buf = req->buf;
                        c->buf_cap = req->buf_cap;
                        req->buf = buf;
                        req->buf_cap = cap;
                        return 0;
                }
        /* Or one the server kept; the one too small goes there. */
        buffer_stash *stash = &req->conn->server->buffers;
        size_t cap = size;
        void *buf = buffer_stash_take(stash, size, &cap);
        if (!buf && !(buf = buffer_alloc(size)))
                return -ENOMEM;
        buffer_stash_give(stash, req->buf, req->buf_cap);
        req->buf = buf;
        req->buf_cap = cap;
        return 0;
}

/* REQ's buffer goes to the server's stash (which frees what it does not keep). */
static void give_buffer(nbdsdk_request *req) {
        buffer_stash_give(&req->conn->server->buffers, req->buf, req->buf_cap);
        req->buf = NULL;
        req->buf_cap = 0;
}

void request_drop_buffer(nbdsdk_request *req) {
        if (req->buf_cap < STASH_MIN_BUFFER)
                return; /* small: it stays, for the request's next use */
        give_buffer(req);
        req->data = NULL;
        req->conn->bytes_in_flight -= req->bytes;
        req->bytes = 0;
}

/* A request that is not kept: its buffer to the stash, the rest freed. */
static void discard(nbdsdk_request *req) {
        give_buffer(req);
        extents_fini(&req->extents);
        free(req);
}

void request_free(nbdsdk_request *req) {
        nbdsdk_conn *conn = req->conn;
        conn_request_gone(conn, req->bytes);
        free(req->error_msg);
        free(req->op.scratch);
        free(req->reply_buf);
        free(req->reply_data);
        for (size_t i = 0; i < req->n_contexts; i++)
                extents_fini(&req->contexts[i]);
        free(req->contexts);
        if (conn->req_cache_bytes + req->buf_cap > REQUEST_CACHE_BYTES)
                give_buffer(req);
        if (conn->n_req_cache < REQUEST_CACHE_MAX && !conn_is_closed(conn)) {
                req->next = conn->req_cache;
                conn->req_cache = req;
                conn->n_req_cache++;
                conn->req_cache_bytes += req->buf_cap;
        } else
                discard(req);
        nbdsdk_conn_unref(conn);
}

void request_cache_clear(nbdsdk_conn *conn) {
        while (conn->req_cache) {
                nbdsdk_request *req = conn->req_cache;
                conn->req_cache = req->next;
                discard(req);
        }
        conn->n_req_cache = 0;
        conn->req_cache_bytes = 0;
}

void request_fail(nbdsdk_request *req, uint32_t nbd_error, const char *message) {
        req->error = nbd_error;
        free(req->error_msg);
        req->error_msg = message ? strdup(message) : NULL;
}

/* Run REQ's pipeline from where it stands, with RESULT from its last step:
 * here on the loop thread (servers without workers, and inline-first ones,
 * where a callback may send it on with NBDSDK_WOULD_BLOCK), or on a worker.
 * Layers wait for the level below, so layered connections use workers; zero-
 * copy requests that call nothing have nothing to wait for. */
static void run(nbdsdk_request *req, int result) {
        nbdsdk_conn *conn = req->conn;
        nbdsdk_server *server = conn->server;
        bool here = (server->inline_first && conn->top == conn->bottom) || datapath_calls_nothing(req);
        if (server->workers && !here) {
                req->resume_result = result;
                worker_pool_push(server->workers, req);
                return;
        }
        req->may_move = server->workers != NULL;
        if (request_pipeline_run(req, result, &result))
                request_finish(req, result);
}

void request_dispatch(nbdsdk_request *req) { run(req, 0); }

void request_finish(nbdsdk_request *req, int result) {
        if (result < 0 && req->error == 0) {
                bool fast_zero = req->type == NBDSDK_CMD_WRITE_ZEROES && (req->flags & NBDSDK_FAST_ZERO);
                bool df = req->type == NBDSDK_CMD_READ && (req->wire_flags & NBDSDK_CMD_FLAG_DF);
                req->error = errno_to_nbd(result, fast_zero, df);
                if (!req->error_msg)
                        req->error_msg = strdup(strerror(-result));
        }
        request_reply(req);
}

/* On a worker thread: run the data path from where it stands. */
void request_run_on_worker(nbdsdk_request *req) {
        int result;
        if (request_pipeline_run(req, req->resume_result, &result)) {
                req->resume_result = result;
                req->finished = true;
                completion_queue_push(&req->conn->server->completions, req, true);
        }
}

/* On the loop thread: a queued request comes back, finished or resumed. */
void request_resume_on_loop(nbdsdk_request *req) {
        if (req->finished)
                request_finish(req, req->resume_result);
        else
                run(req, req->resume_result);
}

/* Public API. */

nbdsdk_conn *nbdsdk_request_get_conn(nbdsdk_request *req) { return req ? req->conn : NULL; }
uint16_t nbdsdk_request_get_command(nbdsdk_request *req) { return req ? req->type : 0; }
uint64_t nbdsdk_request_get_offset(nbdsdk_request *req) { return req ? req->offset : 0; }
uint64_t nbdsdk_request_get_length(nbdsdk_request *req) { return req ? req->length : 0; }
bool nbdsdk_request_may_block(nbdsdk_request *req) { return req && !req->may_move; }

int nbdsdk_request_complete(nbdsdk_request *req, int error) {
        if (!req || error > 0)
                return -EINVAL;
        if (!atomic_exchange(&req->deferred, 0))
                return -EALREADY;
        if (req->waiter) {
                datapath_wake(req->waiter, error);
                return 0;
        }
        req->resume_continue = false;
        req->resume_result = error;
        server_queue_completion(req->conn->server, req);
        return 0;
}

int nbdsdk_request_set_error_message(nbdsdk_request *req, const char *format, ...) {
        if (!req || !format)
                return -EINVAL;
        char *msg;
        va_list ap;
        va_start(ap, format);
        int n = vasprintf(&msg, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if (n > NBDSDK_MAX_STRING)
                msg[NBDSDK_MAX_STRING] = '\0';
        free(req->error_msg);
        req->error_msg = msg;
        return 0;
}
