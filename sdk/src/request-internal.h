/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

struct nbdsdk_extent {
        uint64_t length;
        uint32_t type;
};

struct nbdsdk_extents {
        uint64_t start, end;     /* the range asked about */
        uint64_t next;           /* where the next extent starts */
        struct nbdsdk_extent *v;
        size_t n, cap;
        bool any_status;         /* a registered context: any 32-bit status */
        size_t seen_i;           /* nbdsdk_extents_get(): where extent SEEN_I starts, */
        uint64_t seen_offset;    /* so that walking the list in order is linear */
};

/* One run of the data path at one level of the connection's chain
 * (datapath.c): the client's request at the top, or a layer's call to the
 * level below. */
typedef struct {
        uint16_t type;
        uint32_t flags;          /* NBDSDK_FUA ... */
        void *buf;
        uint64_t offset, length;
        unsigned level;
        nbdsdk_extents *extents; /* BLOCK_STATUS below a layer: the caller's list */
        int step;
        uint64_t progress;
        bool tolerate_failure;   /* the next step looks at the result itself */
        int last_result;
        void *scratch;
} dp_op;

/* A thread waiting for a callback below a layer to complete. */
typedef struct sync_waiter sync_waiter;

struct nbdsdk_request {
        nbdsdk_conn *conn;
        nbdsdk_request *next;    /* in a completion or worker queue */

        /* From the header. */
        uint64_t cookie;
        uint64_t offset;
        uint64_t length;         /* effect length */
        uint64_t payload_len;    /* bytes of payload following the header */
        uint16_t type;
        uint16_t wire_flags;
        const struct command_entry *command; /* a private command's registration */
        uint32_t flags;          /* NBDSDK_FUA ... for the callbacks */

        void *buf;               /* READ data or WRITE payload */
        void *data;              /* where they are: BUF, or the export's memory (zero copy) */
        bool direct;             /* zero copy: no pread/pwrite at the top level */
        bool may_move;           /* on the loop thread, may move to a worker */
        size_t buf_cap;          /* its allocated size (kept when recycled) */
        size_t buf_have;         /* payload bytes read so far */
        uint64_t bytes;          /* counted against the in-flight byte limit */

        /* Result. */
        uint32_t error;          /* NBD error value, 0 = success */
        char *error_msg;

        /* Data path progress (datapath.c). */
        dp_op op;
        nbdsdk_extents extents;  /* a sparse read's block status */
        atomic_int deferred;     /* a callback returned NBDSDK_DEFER */
        sync_waiter *waiter;     /* set while a layer waits for the level below */
        /* The pipeline around the data path (stages.c). */
        int phase;
        size_t stage_index;
        bool stage_waiting;      /* a stage returned NBDSDK_DEFER */
        bool resume_continue;    /* resumed with nbdsdk_request_resume() */
        int data_result;
        int resume_result;       /* carried through the completion queue */
        bool finished;           /* the data path is done; only the reply is left */

        /* BLOCK_STATUS: the extents of each selected context, in order. */
        nbdsdk_extents *contexts;
        size_t n_contexts;
        /* Encoded block status reply (request-reply.c). */
        void *reply_buf;
        /* A private command's reply data (commands.c). */
        void *reply_data;
        size_t reply_data_len;
};

/* Allocate a request on CONN (recycled from the connection's cache). */
nbdsdk_request *request_new(nbdsdk_conn *conn);
void request_free(nbdsdk_request *req);
/* Make sure req->buf holds SIZE bytes. Returns 0 or -ENOMEM. */
int request_reserve(nbdsdk_request *req, size_t size);
/* The data path is done with REQ's buffer and its reply sends none of it: a
 * large buffer goes to the server's stash (and out of the bytes in flight)
 * now rather than when the reply has been written. */
void request_drop_buffer(nbdsdk_request *req);
/* Free a connection's cache of recycled requests. */
void request_cache_clear(nbdsdk_conn *conn);
/* Fail REQ before it reaches the data path; MESSAGE is static text. */
void request_fail(nbdsdk_request *req, uint32_t nbd_error, const char *message);
/* Check a parsed request against the negotiated state (request-validate.c).
 * Returns 0 or an NBD error value with *retmsg set. */
uint32_t request_validate(nbdsdk_request *req, const char **retmsg);
/* Run the data path (inline or on a worker); ends in request_finish(). */
void request_dispatch(nbdsdk_request *req);
/* Loop thread: the data path ended with RESULT (0 or -errno); reply. */
void request_finish(nbdsdk_request *req, int result);
/* Queue the reply (request-reply.c); the request is freed once it is sent. */
void request_reply(nbdsdk_request *req);
/* Data path (datapath.c): run steps from where the request is; RESULT is the
 * previous step's result. Returns when done (request ready to finish:
 * *retresult set, true) or deferred (false). */
bool datapath_run(nbdsdk_request *req, int result, int *retresult);
/* A zero-copy request whose data path calls no callback at all. */
bool datapath_calls_nothing(nbdsdk_request *req);
/* Start the request's own run (before the first datapath_run). */
void datapath_begin(nbdsdk_request *req);
/* Run OP to its end on this thread, waiting for deferred callbacks.
 * Returns 0 or -errno. */
int datapath_run_sync(nbdsdk_request *req, dp_op *op);
/* nbdsdk_request_complete() for a request a layer waits on: wake it. */
void datapath_wake(sync_waiter *w, int result);
/* Worker-thread and completion glue (request.c). */
void request_run_on_worker(nbdsdk_request *req);
void request_resume_on_loop(nbdsdk_request *req);

void extents_init(nbdsdk_extents *e, uint64_t start, uint64_t length);
void extents_fini(nbdsdk_extents *e);
