/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client connection: lifetime, the run loop over the state table, closing,
 * and the public per-connection API. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"

static uint64_t clock_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static uint64_t now_usec(void) { return clock_usec(CLOCK_MONOTONIC); }

/* Batching's CPU clock (batch.c): the loop thread's, where requests are read
 * and replies sent. */
static uint64_t thread_cpu_usec(void) { return clock_usec(CLOCK_THREAD_CPUTIME_ID); }

static uint64_t deadline_after(unsigned seconds) {
        return seconds ? now_usec() + (uint64_t) seconds * 1000000u : UINT64_MAX;
}

int conn_new(nbdsdk_server *server, transport *t, unsigned flags, nbdsdk_conn **ret) {
        nbdsdk_conn *conn = calloc(1, sizeof *conn);
        if (conn)
                conn->ibuf = malloc(CONN_IBUF_SIZE);
        if (!conn || !conn->ibuf) {
                if (conn)
                        free(conn);
                t->ops->free(t);
                return -ENOMEM;
        }
        conn->n_ref = 1;
        option_replies_init(&conn->replies);
        conn->server = nbdsdk_server_ref(server);
        conn->id = ++server->conns_made;
        conn->transport = t;
        conn->state = CONN_GREETING;
        conn->deadline = deadline_after(server->handshake_timeout_sec);
        server_add_conn(server, conn);
        if (flags & NBDSDK_SERVE_NO_HANDSHAKE) {
                const char *msg;
                int r = export_open(conn, "", &msg);
                if (r < 0) {
                        conn_close(conn, "cannot open the export: %s", msg);
                        nbdsdk_conn_unref(conn);
                        return r;
                }
                conn_enter_transmission(conn);
        }
        *ret = conn;
        return 0;
}

static void conn_free(nbdsdk_conn *conn) {
        outq_clear(&conn->out);
        request_cache_clear(conn);
        free(conn->ibuf);
        free(conn->opt_data);
        meta_selection_clear(&conn->meta);
        conn_commands_fini(conn);
        stage_chain_fini(&conn->chain);
        option_replies_fini(&conn->replies);
        nbdsdk_server_unref(conn->server);
        free(conn);
}

nbdsdk_conn *nbdsdk_conn_ref(nbdsdk_conn *conn) {
        if (conn)
                conn->n_ref++;
        return conn;
}

nbdsdk_conn *nbdsdk_conn_unref(nbdsdk_conn *conn) {
        if (conn && --conn->n_ref == 0)
                conn_free(conn);
        return NULL;
}

/* Logged at -v, but for the steps of each request (a header, then a write's
 * payload): a line or two per request would slow the server down more than
 * anything it measures. */
void conn_set_state(nbdsdk_conn *conn, conn_state state) {
        if (conn->state == state || conn->state == CONN_CLOSED)
                return;
        if (conn_states[conn->state].phase != PHASE_TRANSMISSION || conn_states[state].phase != PHASE_TRANSMISSION)
                log_debug("conn %llu: %s -> %s", (unsigned long long) conn->id, conn_states[conn->state].name,
                          conn_states[state].name);
        conn->state = state;
}

bool conn_is_closed(const nbdsdk_conn *conn) {
        return conn->state == CONN_CLOSED;
}

/* The connection is closed and nothing of it runs any more: close the
 * export and tell the application. */
static void conn_finished(nbdsdk_conn *conn) {
        export_close(conn);
        nbdsdk_server *s = conn->server;
        if (s->conn_closed)
                s->conn_closed(conn, s->conn_userdata);
}

static void conn_shut(nbdsdk_conn *conn) {
        if (conn->state == CONN_CLOSED)
                return;
        nbdsdk_conn_ref(conn);
        conn->state = CONN_CLOSED;
        conn->io_source = sd_event_source_disable_unref(conn->io_source);
        conn->io_wsource = sd_event_source_disable_unref(conn->io_wsource);
        conn->timer_source = sd_event_source_disable_unref(conn->timer_source);
        conn->hold_source = sd_event_source_disable_unref(conn->hold_source);
        if (conn->cur) {
                request_free(conn->cur);
                conn->cur = NULL;
        }
        outq_clear(&conn->out);
        option_replies_close(&conn->replies);
        request_cache_clear(conn);
        conn->transport->ops->free(conn->transport);
        conn->transport = NULL;
        server_remove_conn(conn->server, conn);
        if (conn->in_flight == 0)
                conn_finished(conn);
        nbdsdk_conn_unref(conn);
}

void conn_close(nbdsdk_conn *conn, const char *format, ...) {
        if (conn->state == CONN_CLOSED)
                return;
        char reason[512];
        va_list ap;
        va_start(ap, format);
        vsnprintf(reason, sizeof reason, format, ap);
        va_end(ap);
        log_error("closing connection %llu: %s", (unsigned long long) conn->id, reason);
        conn_shut(conn);
}

void conn_end(nbdsdk_conn *conn, const char *why) {
        if (conn->state == CONN_CLOSED)
                return;
        log_debug("conn %llu: %s", (unsigned long long) conn->id, why);
        conn_shut(conn);
}

void conn_request_gone(nbdsdk_conn *conn, uint64_t bytes) {
        conn->in_flight--;
        conn->bytes_in_flight -= bytes;
        if (conn->state == CONN_CLOSED && conn->in_flight == 0)
                conn_finished(conn);
}

void conn_enter_transmission(nbdsdk_conn *conn) {
        if (stage_chain_compile(conn) < 0) {
                conn_close(conn, "out of memory compiling the request stages");
                return;
        }
        /* Zero copy skips pread and pwrite: only where nothing sits between
         * the client and the backend's memory. */
        conn->zero_copy = conn->exp.memory != NULL;
        for (size_t i = 0; i < STAGE_POINTS; i++)
                if (conn->chain.n[i])
                        conn->zero_copy = false;
        conn->deadline = deadline_after(conn->server->idle_timeout_sec);
        batch_init(&conn->batch, now_usec(), conn->server->batch_wait_usec != 0, conn->server->poll_usec != 0);
        free(conn->opt_data);
        conn->opt_data = NULL;
        conn_set_state(conn, CONN_REQ_HEADER);
}

/* Replies waiting to go out beyond this, holding buffers as large, are more
 * than the client is taking: reading more requests would only hold more
 * buffers until it does. Replies sent from the export's memory hold none and
 * are not limited. Smaller (1 MiB) cost TCP's 1 MiB reads a few per cent. */
#define CONN_OUT_BACKLOG (4u << 20)

bool conn_requests_blocked(const nbdsdk_conn *conn) {
        const nbdsdk_server *s = conn->server;
        return conn->in_flight >= s->max_requests || conn->bytes_in_flight >= s->max_bytes ||
               (conn->out.bytes >= CONN_OUT_BACKLOG && conn->bytes_in_flight >= CONN_OUT_BACKLOG);
}

uint32_t conn_wanted_events(nbdsdk_conn *conn) {
        if (conn->state == CONN_CLOSED)
                return 0;
        uint32_t events = 0;
        if (conn_states[conn->state].dir == DIR_TRANSPORT && conn->tls)
                events |= transport_tls_wants_write(conn->transport) ? EPOLLOUT : EPOLLIN;
        if (conn_states[conn->state].dir == DIR_READ) {
                bool full = conn->state == CONN_REQ_HEADER && conn_requests_blocked(conn);
                if (!full && !conn->hold_until)
                        events |= EPOLLIN;
        }
        if (!outq_is_empty(&conn->out))
                events |= EPOLLOUT;
        return events;
}

void conn_touch(nbdsdk_conn *conn) {
        if (conn->server->idle_timeout_sec)
                conn->deadline = deadline_after(conn->server->idle_timeout_sec);
}

void conn_check_timeout(nbdsdk_conn *conn, uint64_t now) {
        if (conn->state == CONN_CLOSED || now < conn->deadline)
                return;
        if (conn_states[conn->state].phase != PHASE_TRANSMISSION &&
            conn_states[conn->state].phase != PHASE_CLOSING)
                conn_close(conn, "handshake not finished within %u s",
                           conn->server->handshake_timeout_sec);
        else if (conn->in_flight == 0 && conn->server->idle_timeout_sec)
                conn_close(conn, "client idle for %u s", conn->server->idle_timeout_sec);
        else
                conn->deadline = deadline_after(conn->server->idle_timeout_sec);
}

/* Flush queued output. Returns true if that made progress that could unblock
 * the current state (queue emptied, or requests released). */
static bool conn_flush(nbdsdk_conn *conn) {
        if (outq_is_empty(&conn->out) || conn->state == CONN_CLOSED)
                return false;
        uint32_t before = conn->in_flight;
        int r = outq_flush(&conn->out, conn->transport);
        if (r < 0 && r != -EAGAIN) {
                if (r == -EPIPE || r == -ECONNRESET)
                        conn_end(conn, "client went away while we were writing");
                else
                        conn_close(conn, "write failed: %s", strerror(-r));
                return false;
        }
        return outq_is_empty(&conn->out) || conn->in_flight != before;
}

/* Polling: read again and again until DEADLINE; true if input (or the end
 * of it) arrived. */
static bool conn_poll(nbdsdk_conn *conn, uint64_t deadline) {
        do
                if (conn_poll_input(conn) != 0)
                        return true;
        while (now_usec() < deadline);
        return false;
}

/* -v: what a batching trial found. */
static void log_verdict(const nbdsdk_conn *conn) {
        if (!log_is_verbose())
                return;
        char text[256];
        batch_verdict_describe(&conn->batch.last, conn->server->batch_wait_usec, conn->server->poll_usec, text,
                               sizeof text);
        log_debug("conn %llu: batching trial: %s", (unsigned long long) conn->id, text);
}

/* After a run (batch.c), on sd-event loops (a timer ends a hold) and only
 * with every reply sent: hold, or poll while this is the server's only
 * connection (a poll keeps the others waiting). True if polling found input
 * and the run goes on. */
static bool conn_after_run(nbdsdk_conn *conn) {
        const nbdsdk_server *s = conn->server;
        if ((!s->batch_wait_usec && !s->poll_usec) || !conn->hold_source ||
            conn_states[conn->state].phase != PHASE_TRANSMISSION)
                return false;
        uint64_t now = now_usec();
        unsigned verdicts = conn->batch.n_verdicts;
        batch_mode mode = batch_after_run(&conn->batch, now, conn->run_requests, thread_cpu_usec);
        conn->run_requests = 0;
        if (conn->batch.n_verdicts != verdicts)
                log_verdict(conn);
        if (conn->state != CONN_REQ_HEADER || !outq_is_empty(&conn->out))
                return false;
        if (mode == BATCH_HOLD && s->batch_wait_usec)
                conn->hold_until = now + batch_hold_usec(&conn->batch, s->batch_wait_usec);
        return mode == BATCH_POLL && s->poll_usec && conn->in_flight == 0 && s->n_conns == 1 &&
               conn_poll(conn, now + s->poll_usec);
}

void conn_run(nbdsdk_conn *conn) {
        if (conn->in_run || conn->state == CONN_CLOSED)
                return;
        nbdsdk_conn_ref(conn);
        atomic_store_explicit(&conn->server->loop_thread, pthread_self(), memory_order_relaxed);
        conn->in_run = true;
        conn->input_drained = false;
        conn->run_requests = 0;
        conn->hold_until = 0;
        for (;;) {
                if (conn->state == CONN_CLOSED)
                        break;
                if (conn_states[conn->state].enter(conn) == STEP_AGAIN)
                        continue;
                if (!conn_flush(conn) && !conn_after_run(conn))
                        break;
        }
        conn->in_run = false;
        if (conn->state != CONN_CLOSED)
                conn_input_hint(conn);
        conn_update_event_sources(conn);
        nbdsdk_conn_unref(conn);
}

/* Public API. */

nbdsdk_server *nbdsdk_conn_get_server(nbdsdk_conn *conn) {
        return conn ? conn->server : NULL;
}

nbdsdk_export *nbdsdk_conn_get_export(nbdsdk_conn *conn) {
        return conn ? conn->exp.entry : NULL;
}

const char *nbdsdk_conn_get_export_name(nbdsdk_conn *conn) {
        return nbdsdk_export_get_name(nbdsdk_conn_get_export(conn));
}

bool nbdsdk_conn_is_read_only(nbdsdk_conn *conn) {
        return conn && conn->exp.open && !conn->exp.writable;
}

void nbdsdk_conn_set_handle(nbdsdk_conn *conn, void *handle) {
        if (conn)
                conn->handle = handle;
}

void *nbdsdk_conn_get_handle(nbdsdk_conn *conn) {
        return conn ? conn->handle : NULL;
}

const char *nbdsdk_conn_get_state_name(nbdsdk_conn *conn) {
        return conn ? conn_states[conn->state].name : NULL;
}

int nbdsdk_conn_get_fd(nbdsdk_conn *conn) {
        if (!conn)
                return -EINVAL;
        if (conn->state == CONN_CLOSED)
                return -ECONNRESET;
        return conn->transport->ops->get_read_fd(conn->transport);
}

int nbdsdk_conn_get_write_fd(nbdsdk_conn *conn) {
        if (!conn)
                return -EINVAL;
        if (conn->state == CONN_CLOSED)
                return -ECONNRESET;
        return conn->transport->ops->get_write_fd(conn->transport);
}

uint64_t nbdsdk_conn_get_id(nbdsdk_conn *conn) {
        return conn ? conn->id : 0;
}

uint32_t nbdsdk_conn_get_events(nbdsdk_conn *conn) {
        return conn ? conn_wanted_events(conn) : 0;
}

int nbdsdk_conn_get_timeout(nbdsdk_conn *conn, uint64_t *retusec) {
        if (!conn || !retusec)
                return -EINVAL;
        *retusec = conn->hold_until && conn->hold_until < conn->deadline ? conn->hold_until : conn->deadline;
        return 0;
}

int nbdsdk_conn_process(nbdsdk_conn *conn, uint32_t revents) {
        if (!conn)
                return -EINVAL;
        (void) revents; /* the state machine tries whatever it wants and gets EAGAIN otherwise */
        server_process_completions(conn->server);
        conn_check_timeout(conn, now_usec());
        conn_run(conn);
        return conn->state == CONN_CLOSED ? -ECONNRESET : 0;
}

int nbdsdk_conn_kill(nbdsdk_conn *conn) {
        if (!conn)
                return -EINVAL;
        if (conn->state == CONN_CLOSED)
                return -ECONNRESET;
        conn_end(conn, "killed by the application");
        return 0;
}
