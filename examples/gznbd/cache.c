/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cache of decompressed stretches. A stretch is decompressed once however
 * many threads want it at the same time (the others wait for it), and the
 * least recently used unused stretches go first when over the limit. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "gznbd.h"

struct gz_stretch {
        size_t point;
        unsigned char *data;
        uint64_t len;
        unsigned refs;
        bool ready;
        int error;                      /* decompression failed (no longer in by_point) */
        struct gz_stretch *prev, *next; /* in the LRU list while refs is 0 */
};

int gz_cache_init(struct gz_cache *c, size_t n_points, uint64_t limit) {
        *c = (struct gz_cache) { .limit = limit };
        if (!(c->by_point = calloc(n_points, sizeof *c->by_point)))
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->loaded, NULL);
        return 0;
}

static void stretch_free(struct gz_stretch *s) {
        free(s->data);
        free(s);
}

void gz_cache_fini(struct gz_cache *c, size_t n_points) {
        if (!c->by_point)
                return;
        for (size_t i = 0; i < n_points; i++)
                if (c->by_point[i])
                        stretch_free(c->by_point[i]);
        free(c->by_point);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->loaded);
}

static void lru_unlink(struct gz_cache *c, struct gz_stretch *s) {
        *(s->prev ? &s->prev->next : &c->lru_head) = s->next;
        *(s->next ? &s->next->prev : &c->lru_tail) = s->prev;
        s->prev = s->next = NULL;
}

/* Drop unused stretches, oldest first, until within the limit. */
static void evict(struct gz_cache *c) {
        while (c->bytes > c->limit && c->lru_tail) {
                struct gz_stretch *s = c->lru_tail;
                lru_unlink(c, s);
                c->by_point[s->point] = NULL;
                c->bytes -= s->len;
                stretch_free(s);
        }
}

/* Called with the lock held. */
static void release(struct gz_cache *c, struct gz_stretch *s) {
        if (--s->refs > 0)
                return;
        if (s->error) {
                stretch_free(s);
                return;
        }
        s->next = c->lru_head;
        *(c->lru_head ? &c->lru_head->prev : &c->lru_tail) = s;
        c->lru_head = s;
        evict(c);
}

/* Wait for a stretch another thread is decompressing. */
static int wait_loaded(struct gz_cache *c, struct gz_stretch *s) {
        if (s->refs++ == 0)
                lru_unlink(c, s);
        c->hits++;
        while (!s->ready && !s->error)
                pthread_cond_wait(&c->loaded, &c->lock);
        int r = s->error;
        if (r)
                release(c, s);
        return r;
}

/* Fault the buffer's fresh pages in with one call: decompressing into it
 * would take a page fault per 4 KiB otherwise. Only a speed-up: errors
 * (kernels before 5.14) change nothing. */
static void prefault(unsigned char *p, uint64_t len) {
        uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
        uintptr_t start = ((uintptr_t) p + page - 1) & ~(page - 1), end = ((uintptr_t) p + len) & ~(page - 1);
        if (start < end)
                (void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
}

static int load(struct gz_cache *c, int fd, const struct gz_index *idx, size_t i, struct gz_stretch **rets) {
        struct gz_stretch *s = calloc(1, sizeof *s);
        uint64_t len = gz_index_end(idx, i) - idx->points[i].out;
        if (!s || !(s->data = malloc(len))) {
                free(s);
                return -ENOMEM;
        }
        *s = (struct gz_stretch) { .point = i, .data = s->data, .len = len, .refs = 1 };
        prefault(s->data, len);
        c->by_point[i] = s;
        c->bytes += len;
        c->decompressed++;
        evict(c);
        pthread_mutex_unlock(&c->lock);
        int r = gz_extract(fd, idx, i, s->data);
        pthread_mutex_lock(&c->lock);
        if (r < 0) {
                s->error = r;
                c->by_point[i] = NULL;
                c->bytes -= len;
                release(c, s);
        } else
                s->ready = true;
        pthread_cond_broadcast(&c->loaded);
        *rets = s;
        return r;
}

int gz_cache_get(struct gz_cache *c, int fd, const struct gz_index *idx, size_t i, bool only_cached,
                 struct gz_stretch **retstretch, const unsigned char **retdata) {
        pthread_mutex_lock(&c->lock);
        struct gz_stretch *s = c->by_point[i];
        int r;
        if (only_cached && (!s || !s->ready))
                r = 1;
        else
                r = s ? wait_loaded(c, s) : load(c, fd, idx, i, &s);
        pthread_mutex_unlock(&c->lock);
        if (r == 0) {
                *retstretch = s;
                *retdata = s->data;
        }
        return r;
}

void gz_cache_put(struct gz_cache *c, struct gz_stretch *s) {
        pthread_mutex_lock(&c->lock);
        release(c, s);
        pthread_mutex_unlock(&c->lock);
}
