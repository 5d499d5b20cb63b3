/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <nbdsdk/nbdsdk.h>
#include "batch-internal.h"
#include "outq-internal.h"
#include "transport-internal.h"
#include "export-internal.h"
#include "meta-context-internal.h"
#include "stages-internal.h"
#include "options-internal.h"

/* The connection's states, in one dense enum; conn-states.c holds the table. */
typedef enum {
        CONN_GREETING,          /* queue the newstyle greeting */
        CONN_CLIENT_FLAGS,      /* read the client's 32-bit flags */
        CONN_OPT_HEADER,        /* read IHAVEOPT, option, length */
        CONN_OPT_PAYLOAD,       /* read the option's data */
        CONN_OPT_DISCARD,       /* skip an oversized option's data */
        CONN_OPT_DISPATCH,      /* run the option's handler */
        CONN_OPT_WAIT,          /* the handler deferred: wait for its final reply */
        CONN_TLS_HANDSHAKE,     /* STARTTLS acknowledged: send that, then the TLS handshake */
        CONN_REQ_HEADER,        /* read a request header */
        CONN_REQ_PAYLOAD,       /* read a WRITE (or private) payload */
        CONN_REQ_DISCARD,       /* skip the payload of a refused request */
        CONN_DRAIN,             /* DISC or shutdown: let requests finish, then close */
        CONN_FLUSH_CLOSE,       /* send what is queued, then close (ABORT) */
        CONN_CLOSED,
        _CONN_STATE_MAX
} conn_state;

typedef enum { PHASE_HANDSHAKE, PHASE_OPTIONS, PHASE_TRANSMISSION, PHASE_CLOSING } conn_phase;
/* DIR_TRANSPORT: whichever way the transport's handshake waits. */
typedef enum { DIR_NONE, DIR_READ, DIR_WRITE, DIR_TRANSPORT } conn_dir;
typedef enum { STEP_AGAIN, STEP_BLOCK } conn_step;

typedef struct {
        const char *name;
        conn_step (*enter)(nbdsdk_conn *conn);
        conn_dir dir;
        conn_phase phase;
} conn_state_info;

extern const conn_state_info conn_states[_CONN_STATE_MAX];

/* Enter functions: handshake.c and transmission.c. */
conn_step state_greeting(nbdsdk_conn *conn);
conn_step state_client_flags(nbdsdk_conn *conn);
conn_step state_opt_header(nbdsdk_conn *conn);
conn_step state_opt_payload(nbdsdk_conn *conn);
conn_step state_opt_discard(nbdsdk_conn *conn);
conn_step state_opt_dispatch(nbdsdk_conn *conn);
conn_step state_opt_wait(nbdsdk_conn *conn);
conn_step state_tls_handshake(nbdsdk_conn *conn);
conn_step state_req_header(nbdsdk_conn *conn);
conn_step state_req_payload(nbdsdk_conn *conn);
conn_step state_req_discard(nbdsdk_conn *conn);
conn_step state_drain(nbdsdk_conn *conn);
conn_step state_flush_close(nbdsdk_conn *conn);
conn_step state_closed(nbdsdk_conn *conn);


#define CONN_IBUF_SIZE (64 * 1024)

struct nbdsdk_conn {
        atomic_uint n_ref;              /* an option handler's thread may hold one */
        nbdsdk_server *server;
        uint64_t id;                    /* 1, 2, ... in the server's order: what logs call it */
        nbdsdk_conn *prev, *next;       /* the server's list */
        transport *transport;
        conn_state state;

        /* Input: a buffer that many headers are parsed from per read. */
        uint8_t *ibuf;
        size_t ipos, iend;
        uint64_t discard_left;          /* bytes still to skip */
        bool eof;
        bool input_drained;             /* the last read came up short: wait for an event */

        outq out;

        /* Negotiation. */
        uint32_t client_flags;
        bool fixed_newstyle, no_zeroes;
        bool structured, extended;
        bool tls;                       /* the transport is TLS (its handshake may be under way) */
        uint32_t n_options;
        uint32_t opt, opt_len;
        uint8_t *opt_data;
        size_t opt_have;
        bool opt_answered;              /* the option got its final reply */
        const option_entry *opt_entry;  /* the handler running now (OPT_DISPATCH) */
        option_replies replies;         /* an extension handler's, from any thread */
        meta_selection meta;
        uint16_t *commands;             /* per-connection commands enabled */
        size_t n_commands;

        /* The export, once selected (INFO opens it too, GO or EXPORT_NAME keeps it). */
        export_state exp;               /* the top level: what the client sees */
        nbdsdk_next *levels;            /* with layers: levels[top..bottom], the backend last */
        unsigned top, bottom;           /* 0, 0 without layers */
        bool snapshot;                  /* the backend keeps a native snapshot for it */
        void *handle;

        /* Transmission. */
        stage_chain chain;              /* compiled when transmission starts */
        bool zero_copy;                 /* READ and WRITE straight from and into exp.memory */
        uint32_t user_flags;            /* nbdsdk_conn_set_flags() */
        nbdsdk_request *cur;            /* request whose payload is being read */
        nbdsdk_request *req_cache;      /* finished requests kept for reuse */
        unsigned n_req_cache;
        size_t req_cache_bytes;         /* their buffers' sizes */
        uint32_t in_flight;
        uint64_t bytes_in_flight;
        bool disc;                      /* NBD_CMD_DISC received */
        bool shutdown;                  /* server shutting down */

        uint64_t deadline;              /* CLOCK_MONOTONIC usec, UINT64_MAX = none */
        sd_event_source *io_source, *io_wsource, *timer_source;
        bool in_run;
        uint32_t run_requests;          /* request headers read by this run */
        batch_state batch;
        uint64_t hold_until;            /* batching: read again at this time (0: now) */
        sd_event_source *hold_source;   /* its timer, on sd-event loops only */
        bool woken;                     /* on the server's completion queue, */
        nbdsdk_conn *next_woken;        /* linked here (workers.c, under its lock) */
};

/* Create a connection on T (taken over). Starts with the greeting, or in
 * transmission with the default export when NO_HANDSHAKE is given. */
int conn_new(nbdsdk_server *server, transport *t, unsigned flags, nbdsdk_conn **ret);
/* Run the state machine until it blocks; then flush output. */
void conn_run(nbdsdk_conn *conn);
/* Move to another state (all transitions go through here). */
void conn_set_state(nbdsdk_conn *conn, conn_state state);
/* Hard disconnect: close the transport now, with a reason for the log. */
void conn_close(nbdsdk_conn *conn, const char *format, ...) __attribute__((format(printf, 2, 3)));
/* A normal end (DISC, ABORT, the client closing between messages): logged
 * only with -v. */
void conn_end(nbdsdk_conn *conn, const char *why);
bool conn_is_closed(const nbdsdk_conn *conn);
/* Back-pressure: true while the connection may read no new request (the
 * limits on requests and bytes in flight, or 4 MiB of replies not sent that
 * hold buffers). */
bool conn_requests_blocked(const nbdsdk_conn *conn);
/* The wanted poll events, derived from the state table and the output queue. */
uint32_t conn_wanted_events(nbdsdk_conn *conn);
/* Enter transmission with the selected export (after GO or EXPORT_NAME). */
void conn_enter_transmission(nbdsdk_conn *conn);
/* Called when a request leaves the connection (reply sent or dropped). */
void conn_request_gone(nbdsdk_conn *conn, uint64_t bytes);
/* Re-arm timers and update event sources after a run. */
void conn_update_event_sources(nbdsdk_conn *conn);
void conn_check_timeout(nbdsdk_conn *conn, uint64_t now);
/* A request arrived: restart the idle timer. */
void conn_touch(nbdsdk_conn *conn);

/* Input helpers (conn-input.c). conn_need: make N bytes available at
 * conn->ibuf + conn->ipos; returns 1 ready, 0 would block, -errno (-EPIPE on
 * end of stream). conn_fill_into: copy/read into DST until *HAVE == LEN. */
int conn_need(nbdsdk_conn *conn, size_t n);
int conn_fill_into(nbdsdk_conn *conn, void *dst, size_t len, size_t *have);
int conn_skip(nbdsdk_conn *conn);
/* Polling: one more read after the input ran dry. Returns 1 something came,
 * 0 nothing yet, -errno (-EPIPE at the end of the stream). */
int conn_poll_input(nbdsdk_conn *conn);
/* Tell the transport how many more bytes the current state needs before it
 * can progress (the rest of a payload being read or skipped; else 1). */
void conn_input_hint(nbdsdk_conn *conn);
