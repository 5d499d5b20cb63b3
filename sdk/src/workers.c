/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Worker threads for blocking backends, and the completion queue that brings
 * results (and connections with news from other threads) back to the loop
 * thread (an eventfd makes the loop wake up). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "conn-internal.h"
#include "request-internal.h"
#include "workers-internal.h"

int completion_queue_init(completion_queue *q) {
        q->first = q->last = NULL;
        q->conns = NULL;
        q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->efd < 0)
                return -errno;
        pthread_mutex_init(&q->lock, NULL);
        return 0;
}

void completion_queue_fini(completion_queue *q) {
        if (q->efd >= 0) {
                close(q->efd);
                pthread_mutex_destroy(&q->lock);
        }
        q->efd = -1;
}

/* Each list wakes the loop when it stops being empty: the loop reads the
 * eventfd, then empties both (server_process_completions). */
static void wake_loop(completion_queue *q) {
        uint64_t one = 1;
        (void) !write(q->efd, &one, sizeof one);
}

void completion_queue_clear_wake(completion_queue *q) {
        uint64_t n;
        (void) !read(q->efd, &n, sizeof n);
}

void completion_queue_push(completion_queue *q, nbdsdk_request *req, bool wake) {
        req->next = NULL;
        pthread_mutex_lock(&q->lock);
        bool was_empty = q->first == NULL;
        if (q->last)
                q->last->next = req;
        else
                q->first = req;
        q->last = req;
        pthread_mutex_unlock(&q->lock);
        if (was_empty && wake)
                wake_loop(q);
}

void completion_queue_push_conn(completion_queue *q, nbdsdk_conn *conn, bool wake) {
        pthread_mutex_lock(&q->lock);
        bool was_empty = q->conns == NULL, push = !conn->woken;
        if (push) {
                conn->woken = true;
                conn->next_woken = q->conns;
                q->conns = nbdsdk_conn_ref(conn);
        }
        pthread_mutex_unlock(&q->lock);
        if (push && was_empty && wake)
                wake_loop(q);
}

void completion_queue_wake_if_queued(completion_queue *q) {
        pthread_mutex_lock(&q->lock);
        bool queued = q->first || q->conns;
        pthread_mutex_unlock(&q->lock);
        if (queued)
                wake_loop(q);
}

nbdsdk_request *completion_queue_take(completion_queue *q) {
        pthread_mutex_lock(&q->lock);
        nbdsdk_request *all = q->first;
        q->first = q->last = NULL;
        pthread_mutex_unlock(&q->lock);
        return all;
}

nbdsdk_conn *completion_queue_take_conn(completion_queue *q) {
        pthread_mutex_lock(&q->lock);
        nbdsdk_conn *conn = q->conns;
        if (conn) {
                /* Unlinked before it runs, so that it can be pushed again meanwhile. */
                q->conns = conn->next_woken;
                conn->woken = false;
        }
        pthread_mutex_unlock(&q->lock);
        return conn;
}

struct worker_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        nbdsdk_request *first, *last;
        bool stopping;
        void (*run)(nbdsdk_request *req);
        unsigned n;
        pthread_t threads[];
};

static void *worker_main(void *arg) {
        worker_pool *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->first && !p->stopping)
                        pthread_cond_wait(&p->cond, &p->lock);
                nbdsdk_request *req = p->first;
                if (!req)
                        break;
                p->first = req->next;
                if (!p->first)
                        p->last = NULL;
                pthread_mutex_unlock(&p->lock);
                p->run(req);
                pthread_mutex_lock(&p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int worker_pool_new(unsigned n, void (*run)(nbdsdk_request *req), worker_pool **ret) {
        worker_pool *p = calloc(1, sizeof *p + n * sizeof(pthread_t));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->run = run;
        for (; p->n < n; p->n++) {
                int r = pthread_create(&p->threads[p->n], NULL, worker_main, p);
                if (r != 0) {
                        worker_pool_free(p);
                        return -r;
                }
        }
        *ret = p;
        return 0;
}

void worker_pool_push(worker_pool *p, nbdsdk_request *req) {
        req->next = NULL;
        pthread_mutex_lock(&p->lock);
        if (p->last)
                p->last->next = req;
        else
                p->first = req;
        p->last = req;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

worker_pool *worker_pool_free(worker_pool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n; i++)
                pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}
