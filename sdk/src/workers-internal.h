/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Worker threads for blocking backends, and the queue that brings finished
 * work back to the loop thread, woken through an eventfd. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <nbdsdk/nbdsdk-ops.h>

typedef struct {
        pthread_mutex_t lock;
        nbdsdk_request *first, *last;
        nbdsdk_conn *conns;      /* connections to run (a deferred option got replies) */
        int efd;                 /* readable once the queue stopped being empty */
} completion_queue;

int completion_queue_init(completion_queue *q);
void completion_queue_fini(completion_queue *q);
/* From any thread. WAKE: make the eventfd readable if the queue was empty;
 * without it the caller makes sure that the loop thread looks. */
void completion_queue_push(completion_queue *q, nbdsdk_request *req, bool wake);
/* Loop thread, before taking: the eventfd is no longer readable (pushes
 * after this make it readable again). Taking without it leaves the eventfd
 * readable, and the next wake-up finds the queue empty: harmless. */
void completion_queue_clear_wake(completion_queue *q);
/* Make the eventfd readable if anything is queued (for a new loop to look). */
void completion_queue_wake_if_queued(completion_queue *q);
/* Take everything queued (loop thread). */
nbdsdk_request *completion_queue_take(completion_queue *q);
/* From any thread: have the loop thread run CONN (once, however often it is
 * pushed before it runs). The queue holds a reference meanwhile. WAKE as
 * for completion_queue_push. */
void completion_queue_push_conn(completion_queue *q, nbdsdk_conn *conn, bool wake);
/* Loop thread: one queued connection, or NULL. The caller runs it and drops
 * the queue's reference. */
nbdsdk_conn *completion_queue_take_conn(completion_queue *q);

typedef struct worker_pool worker_pool;
/* Start N threads that call RUN(req) for each queued request. */
int worker_pool_new(unsigned n, void (*run)(nbdsdk_request *req), worker_pool **ret);
void worker_pool_push(worker_pool *pool, nbdsdk_request *req);
/* Finish queued work, join the threads, free. */
worker_pool *worker_pool_free(worker_pool *pool);
