/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <nbdsdk/nbdsdk.h>
#include "buffers-internal.h"
#include "commands-internal.h"
#include "meta-context-internal.h"
#include "stages-internal.h"
#include "options-internal.h"
#include "tls-internal.h"
#include "transport-internal.h"
#include "workers-internal.h"

/* One export (exports.c): what LIST shows and what a connection opens. */
struct nbdsdk_export {
        nbdsdk_server *server;
        char *name;
        char *description;
        bool read_only;
        bool tls_only;           /* hidden from, and refused to, clients without TLS */
        void *userdata;          /* handed to the backend's callbacks for this export */
        struct layer_entry_s *layers; /* by priority, nearest the client first */
        size_t n_layers;
        uint64_t n_layers_added;
};

typedef struct {
        char *key;
        char *help;
        nbdsdk_config_handler handler;
        void *userdata;
        bool server_wide;        /* configures the server, whichever export it is given for */
} config_key;

typedef struct {
        int fd;
        bool is_tcp;
        char *unix_path;         /* unlinked when the server goes */
        sd_event_source *source;
} listener;

struct nbdsdk_server {
        atomic_uint n_ref;       /* a connection's last reference may go on any thread */
        struct nbdsdk_ops ops;
        void *userdata;

        nbdsdk_export **exports; /* in the order they were added */
        size_t n_exports;
        nbdsdk_export *default_export; /* served for the empty name */
        bool read_only;          /* every export */
        uint32_t max_payload;
        uint32_t max_requests;
        uint64_t max_bytes;
        uint32_t max_options;
        uint32_t max_option_payload;
        unsigned handshake_timeout_sec;
        unsigned idle_timeout_sec;
        unsigned n_threads;
        bool inline_first;         /* requests start on the loop thread */
        uint32_t sparse_read_min;  /* 0 = no sparse reads */
        uint32_t batch_wait_usec;  /* 0 = no batching */
        uint32_t poll_usec;        /* 0 = no polling */
        int tls_mode;              /* enum nbdsdk_tls_mode */
        bool tls_verify_peer;
        tls_creds *tls_creds;      /* NULL until certificates or keys are given */
        bool running;            /* settings are frozen */

        option_registry options;
        command_entry *commands;
        size_t n_commands;
        meta_namespace_entry *meta_namespaces;
        size_t n_meta_namespaces;
        config_key *config_keys;
        size_t n_config_keys;
        stage_entry *stages;     /* sorted when the server starts */
        size_t n_stages;
        nbdsdk_slot *slots;      /* handed out by registrations (slot.c) */

        listener *listeners;
        size_t n_listeners;

        sd_event *event;
        int64_t priority;
        sd_event_source *completion_source;
        sd_event_source *completion_defer; /* wakes the loop from its own thread */
        _Atomic pthread_t loop_thread; /* the thread that last ran a connection */

        nbdsdk_conn *conns;      /* doubly linked through conn->prev/next */
        unsigned n_conns;
        uint64_t conns_made;     /* ever: the last connection's id */
        unsigned max_conns;      /* 0 = unlimited */
        void (*conn_opened)(nbdsdk_conn *conn, void *userdata);
        void (*conn_closed)(nbdsdk_conn *conn, void *userdata);
        void *conn_userdata;
        bool shutting_down;
        bool exit_loop_when_idle;

        completion_queue completions;
        worker_pool *workers;
        buffer_stash buffers;    /* request buffers between connections */
};

/* The setters' check: a server, and not running yet. */
#define CHECK_SETTABLE(s) do { if (!(s)) return -EINVAL; if ((s)->running) return -EBUSY; } while (0)

/* TLS settings (server-tls.c): the config keys, and whether the settings
 * can serve a handshake (-EINVAL, logged, if not). */
int server_tls_register(nbdsdk_server *server);
int server_tls_check(nbdsdk_server *server);
/* Whether CONN may not see or open EXP: a TLS-only export, no TLS. */
bool server_tls_hides(const nbdsdk_conn *conn, const nbdsdk_export *exp);

/* Freeze the settings and start what a running server needs (workers).
 * Idempotent. Returns 0 or -errno. */
int server_start(nbdsdk_server *server);
void config_keys_fini(nbdsdk_server *server);
/* The library's own server-wide keys (TLS): registered like an extension's,
 * and also accepted where settings of the whole server go (nbdsdk_main's
 * [general]). */
int config_key_add_server_wide(nbdsdk_server *server, const char *key, const char *help,
                               nbdsdk_config_handler handler);
bool config_key_is_server_wide(nbdsdk_server *server, const char *key);
/* Close every connection, stop the workers, and drop what they finished. */
void server_stop(nbdsdk_server *server);
/* The registered namespace NAME (LEN bytes, no colon), or NULL. */
const meta_namespace_entry *server_find_meta_namespace(nbdsdk_server *server, const char *name, size_t len);
/* The export called NAME ("" is the default export), or NULL. */
nbdsdk_export *server_find_export(nbdsdk_server *server, const char *name);
/* Add an export called NAME serving USERDATA (exports.c). Returns 0 or -errno. */
int server_add_export(nbdsdk_server *server, const char *name, void *userdata, nbdsdk_export **ret);
void server_free_exports(nbdsdk_server *server);
/* Close and forget every listener (server-listen.c). */
void server_close_listeners(nbdsdk_server *server);
/* Start accepting on a listener through sd-event (server-event.c). */
int server_event_add_listener(nbdsdk_server *server, listener *l);
/* Accept or not, following the connection limit (server-event.c). */
void server_event_update_listeners(nbdsdk_server *server);
/* Connection bookkeeping, called by conn.c. */
void server_add_conn(nbdsdk_server *server, nbdsdk_conn *conn);
void server_remove_conn(nbdsdk_server *server, nbdsdk_conn *conn);
/* Run queued completions (asynchronous backends, workers) on the loop thread. */
void server_process_completions(nbdsdk_server *server);
/* From any thread: bring REQ back to the loop thread (server-event.c). */
void server_queue_completion(nbdsdk_server *server, nbdsdk_request *req);
/* From any thread: run CONN on the loop thread (a deferred option's reply). */
void server_queue_conn(nbdsdk_server *server, nbdsdk_conn *conn);
/* sd-event glue for one connection (server-event.c). */
int server_event_add_conn(nbdsdk_server *server, nbdsdk_conn *conn);
/* Serve an already-made transport (fd, or in-memory for tests). */
int server_serve_transport(nbdsdk_server *server, transport *t, unsigned flags, nbdsdk_conn **retconn);
