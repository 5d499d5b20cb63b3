/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server object: ops, exports, limits, connections. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "conn-internal.h"
#include "layers-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"
#include "slot-internal.h"

/* The fields every backend must be able to see in struct nbdsdk_ops. */
#define OPS_MIN_SIZE (offsetof(struct nbdsdk_ops, pread) + sizeof(void *))

int nbdsdk_server_new(const struct nbdsdk_ops *ops, size_t ops_size, void *userdata,
                      nbdsdk_server **retserver) {
        if (!ops || !retserver || ops_size < OPS_MIN_SIZE)
                return -EINVAL;
        nbdsdk_server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        /* Fields the caller's (older) struct does not have stay NULL. */
        memcpy(&s->ops, ops, ops_size < sizeof s->ops ? ops_size : sizeof s->ops);
        if (!s->ops.get_size || !(s->ops.pread || s->ops.map)) {
                free(s);
                return -EINVAL;
        }
        s->n_ref = 1;
        s->userdata = userdata;
        buffer_stash_init(&s->buffers);
        log_set_program(s->ops.name); /* messages carry the program's name */
        s->max_payload = 32u << 20;
        s->max_requests = 256;
        s->max_bytes = 128u << 20;
        s->max_options = 128;
        s->max_option_payload = 65536;
        s->handshake_timeout_sec = 10;
        s->sparse_read_min = 65536;
        s->batch_wait_usec = 60;
        s->poll_usec = 50;
        s->priority = 0;
        s->completions.efd = -1;
        nbdsdk_export *exp;
        int r = server_add_export(s, "", userdata, &exp);
        if (r == 0)
                r = options_register_builtin(&s->options);
        if (r == 0)
                r = layers_register_builtin(s);
        if (r == 0)
                r = server_tls_register(s);
        if (r == 0)
                r = completion_queue_init(&s->completions);
        if (r < 0) {
                nbdsdk_server_unref(s);
                return r;
        }
        *retserver = s;
        return 0;
}

nbdsdk_server *nbdsdk_server_ref(nbdsdk_server *s) {
        if (s)
                s->n_ref++;
        return s;
}

nbdsdk_server *nbdsdk_server_unref(nbdsdk_server *s) {
        if (!s || --s->n_ref > 0)
                return NULL;
        s->workers = worker_pool_free(s->workers);
        server_close_listeners(s);
        nbdsdk_server_detach_event(s);
        completion_queue_fini(&s->completions);
        option_registry_fini(&s->options);
        commands_fini(s);
        free(s->meta_namespaces);
        config_keys_fini(s);
        free(s->stages);
        slots_free(s);
        server_free_exports(s);
        buffer_stash_fini(&s->buffers);
        tls_creds_free(s->tls_creds);
        free(s);
        return NULL;
}

static int set_string(char **field, const char *value) {
        char *copy = NULL;
        if (value && !(copy = strdup(value)))
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int nbdsdk_server_set_export_name(nbdsdk_server *s, const char *name) {
        CHECK_SETTABLE(s);
        if (!name || strlen(name) > NBDSDK_MAX_STRING)
                return -EINVAL;
        nbdsdk_export *other = server_find_export(s, name);
        if (other && other != s->default_export)
                return -EEXIST;
        return set_string(&s->default_export->name, name);
}

int nbdsdk_server_set_description(nbdsdk_server *s, const char *description) {
        return s ? nbdsdk_export_set_description(s->default_export, description) : -EINVAL;
}

int nbdsdk_server_set_read_only(nbdsdk_server *s, bool read_only) {
        CHECK_SETTABLE(s);
        s->read_only = read_only;
        return 0;
}

int nbdsdk_server_set_max_payload(nbdsdk_server *s, uint32_t bytes) {
        CHECK_SETTABLE(s);
        if (bytes < (1u << 20) || bytes > (1u << 31))
                return -EINVAL;
        s->max_payload = bytes;
        if (s->max_bytes < bytes)
                s->max_bytes = bytes;
        return 0;
}

int nbdsdk_server_set_max_in_flight(nbdsdk_server *s, uint32_t requests, uint64_t bytes) {
        CHECK_SETTABLE(s);
        if (requests == 0 || bytes < s->max_payload)
                return -EINVAL;
        s->max_requests = requests;
        s->max_bytes = bytes;
        return 0;
}

int nbdsdk_server_set_option_limits(nbdsdk_server *s, uint32_t max_options, uint32_t max_option_payload) {
        CHECK_SETTABLE(s);
        if (max_options == 0 || max_option_payload < 1024 || max_option_payload > (16u << 20))
                return -EINVAL;
        s->max_options = max_options;
        s->max_option_payload = max_option_payload;
        return 0;
}

int nbdsdk_server_set_timeouts(nbdsdk_server *s, unsigned handshake_sec, unsigned idle_sec) {
        CHECK_SETTABLE(s);
        s->handshake_timeout_sec = handshake_sec;
        s->idle_timeout_sec = idle_sec;
        return 0;
}

int nbdsdk_server_set_threads(nbdsdk_server *s, unsigned threads) {
        CHECK_SETTABLE(s);
        if (threads > 1024)
                return -EINVAL;
        s->n_threads = threads;
        return 0;
}

unsigned nbdsdk_server_get_threads(nbdsdk_server *s) {
        return s ? s->n_threads : 0;
}

int nbdsdk_server_set_inline_first(nbdsdk_server *s, bool inline_first) {
        CHECK_SETTABLE(s);
        s->inline_first = inline_first;
        return 0;
}

int nbdsdk_server_set_verbose(nbdsdk_server *s, bool verbose) {
        if (!s)
                return -EINVAL;
        log_set_verbose(verbose);
        return 0;
}

int nbdsdk_server_set_max_connections(nbdsdk_server *s, unsigned n) {
        if (!s)
                return -EINVAL;
        s->max_conns = n;
        server_event_update_listeners(s);
        return 0;
}

int nbdsdk_server_set_connection_callbacks(nbdsdk_server *s, void (*opened)(nbdsdk_conn *, void *),
                                           void (*closed)(nbdsdk_conn *, void *), void *userdata) {
        CHECK_SETTABLE(s);
        s->conn_opened = opened;
        s->conn_closed = closed;
        s->conn_userdata = userdata;
        return 0;
}

int nbdsdk_server_set_sparse_reads(nbdsdk_server *s, uint32_t min_length) {
        CHECK_SETTABLE(s);
        s->sparse_read_min = min_length;
        return 0;
}

int nbdsdk_server_set_batch_wait(nbdsdk_server *s, uint32_t usec) {
        CHECK_SETTABLE(s);
        if (usec > 1000)
                return -EINVAL;
        s->batch_wait_usec = usec;
        return 0;
}

int nbdsdk_server_set_poll(nbdsdk_server *s, uint32_t usec) {
        CHECK_SETTABLE(s);
        if (usec > 1000)
                return -EINVAL;
        s->poll_usec = usec;
        return 0;
}

void *nbdsdk_server_get_userdata(nbdsdk_server *s) {
        return s ? s->userdata : NULL;
}

unsigned nbdsdk_server_get_n_connections(nbdsdk_server *s) {
        return s ? s->n_conns : 0;
}

int server_start(nbdsdk_server *s) {
        if (s->running)
                return 0;
        int r = server_tls_check(s);
        if (r < 0)
                return r;
        /* Layers wait for the level below: never on the loop thread. */
        if (s->n_threads == 0 && layers_present(s))
                s->n_threads = LAYER_THREADS;
        if (s->n_threads > 0) {
                r = worker_pool_new(s->n_threads, request_run_on_worker, &s->workers);
                if (r < 0)
                        return r;
        }
        stages_seal(s);
        s->running = true;
        return 0;
}

void server_add_conn(nbdsdk_server *s, nbdsdk_conn *conn) {
        conn->next = s->conns;
        if (s->conns)
                s->conns->prev = conn;
        s->conns = conn;
        s->n_conns++;
        nbdsdk_conn_ref(conn);
        server_event_update_listeners(s);
        if (s->conn_opened)
                s->conn_opened(conn, s->conn_userdata);
}

void server_remove_conn(nbdsdk_server *s, nbdsdk_conn *conn) {
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                s->conns = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        conn->prev = conn->next = NULL;
        s->n_conns--;
        server_event_update_listeners(s);
        if (s->n_conns == 0 && s->exit_loop_when_idle && s->event)
                sd_event_exit(s->event, 0);
        nbdsdk_conn_unref(conn);
}

#define COMPLETION_BATCH_CONNS 16

/* Run each connection of BATCH once, and let it go. */
static void run_batch(nbdsdk_conn **batch, size_t n) {
        for (size_t i = 0; i < n; i++) {
                conn_run(batch[i]);
                nbdsdk_conn_unref(batch[i]);
        }
}

/* Every request that came back first, then each of their connections once:
 * the replies of requests that finished together leave in one write, and
 * the input that they let in is read once. */
void server_process_completions(nbdsdk_server *s) {
        nbdsdk_conn *batch[COMPLETION_BATCH_CONNS];
        size_t n = 0;
        for (nbdsdk_request *req = completion_queue_take(&s->completions), *next; req; req = next) {
                next = req->next;
                nbdsdk_conn *conn = nbdsdk_conn_ref(req->conn);
                request_resume_on_loop(req);
                size_t i = 0;
                while (i < n && batch[i] != conn)
                        i++;
                if (i < n) {
                        nbdsdk_conn_unref(conn);
                        continue;
                }
                if (n == COMPLETION_BATCH_CONNS) {
                        run_batch(batch, n);
                        n = 0;
                }
                batch[n++] = conn;
        }
        run_batch(batch, n);
        /* Connections whose deferred option got replies since. */
        for (nbdsdk_conn *conn; (conn = completion_queue_take_conn(&s->completions));) {
                conn_run(conn);
                nbdsdk_conn_unref(conn);
        }
}

int server_serve_transport(nbdsdk_server *s, transport *t, unsigned flags, nbdsdk_conn **retconn) {
        int r = server_start(s);
        if (r < 0) {
                t->ops->free(t);
                return r;
        }
        nbdsdk_conn *conn;
        r = conn_new(s, t, flags, &conn);
        if (r < 0)
                return r;
        if (s->event) {
                r = server_event_add_conn(s, conn);
                if (r < 0) {
                        nbdsdk_conn_kill(conn);
                        nbdsdk_conn_unref(conn);
                        return r;
                }
        }
        conn_run(conn);
        if (retconn)
                *retconn = conn;
        else
                nbdsdk_conn_unref(conn);
        return 0;
}

int nbdsdk_server_serve_fd(nbdsdk_server *s, int fd, unsigned flags, nbdsdk_conn **retconn) {
        if (fd < 0)
                return -EBADF;
        transport *t;
        int r = !s || (flags & ~NBDSDK_SERVE_NO_HANDSHAKE) ? -EINVAL : transport_fd_new(fd, fd, &t);
        if (r < 0) {
                close(fd); /* the fd is ours whatever happens */
                return r;
        }
        return server_serve_transport(s, t, flags, retconn);
}

int nbdsdk_server_shutdown(nbdsdk_server *s, bool exit_loop) {
        if (!s)
                return -EINVAL;
        s->shutting_down = true;
        s->exit_loop_when_idle = exit_loop;
        server_close_listeners(s);
        nbdsdk_conn *next;
        for (nbdsdk_conn *c = s->conns; c; c = next) {
                next = c->next;
                if (conn_states[c->state].phase == PHASE_TRANSMISSION)
                        c->shutdown = true;
                conn_run(c);
        }
        if (s->n_conns == 0 && exit_loop && s->event)
                sd_event_exit(s->event, 0);
        return 0;
}

void server_stop(nbdsdk_server *s) {
        while (s->conns)
                nbdsdk_conn_kill(s->conns);
        s->workers = worker_pool_free(s->workers);
        server_process_completions(s);
}

int nbdsdk_server_get_completion_fd(nbdsdk_server *s) {
        return s ? s->completions.efd : -EINVAL;
}

int nbdsdk_server_process_completions(nbdsdk_server *s) {
        if (!s)
                return -EINVAL;
        completion_queue_clear_wake(&s->completions);
        server_process_completions(s);
        return 0;
}
