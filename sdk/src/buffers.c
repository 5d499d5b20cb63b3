/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Large request buffers outlive their connections: a client that connects
 * again, or several at once (nbdcopy opens four), gets buffers whose pages
 * are already there instead of touching fresh ones. Bounded in number and
 * bytes; the per-connection request cache (request.c) comes first. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "buffers-internal.h"

/* The kernel copies a backend's file into data buffers (pread), and on this
 * VM's AMD EPYC that copy ran 4-5 times slower to malloc's 16-byte alignment:
 * a 1 MiB pread from tmpfs cost 0.64-0.69 s/GiB of CPU into a malloc'd
 * buffer, 0.15 into one on a cache line or a page (a socket's recv showed no
 * such difference). Direct I/O needs the page alignment anyway. */
void *buffer_alloc(size_t size) {
        void *buf;
        return posix_memalign(&buf, size >= 4096 ? 4096 : 64, size) == 0 ? buf : NULL;
}

void buffer_stash_init(buffer_stash *stash) {
        pthread_mutex_init(&stash->lock, NULL);
        stash->n = 0;
        stash->bytes = 0;
}

void buffer_stash_fini(buffer_stash *stash) {
        for (size_t i = 0; i < stash->n; i++)
                free(stash->v[i].buf);
        stash->n = 0;
        stash->bytes = 0;
        pthread_mutex_destroy(&stash->lock);
}

void *buffer_stash_take(buffer_stash *stash, size_t size, size_t *retcap) {
        void *buf = NULL;
        if (size < STASH_MIN_BUFFER)
                return NULL; /* malloc's business, like the small buffers freed */
        pthread_mutex_lock(&stash->lock);
        /* Newest first: of equal sizes, the one given last, whose pages are
         * likeliest still in the caches. */
        size_t best = stash->n;
        for (size_t i = stash->n; i-- > 0;)
                if (stash->v[i].cap >= size && (best == stash->n || stash->v[i].cap < stash->v[best].cap))
                        best = i;
        if (best < stash->n) {
                buf = stash->v[best].buf;
                *retcap = stash->v[best].cap;
                stash->bytes -= stash->v[best].cap;
                stash->n--;
                memmove(&stash->v[best], &stash->v[best + 1], (stash->n - best) * sizeof stash->v[0]);
        }
        pthread_mutex_unlock(&stash->lock);
        return buf;
}

void buffer_stash_give(buffer_stash *stash, void *buf, size_t cap) {
        if (!buf)
                return;
        bool kept = false;
        if (cap >= STASH_MIN_BUFFER) {
                pthread_mutex_lock(&stash->lock);
                if (stash->n < STASH_MAX_BUFFERS && stash->bytes + cap <= STASH_MAX_BYTES) {
                        stash->v[stash->n++] = (stashed_buffer) { buf, cap };
                        stash->bytes += cap;
                        kept = true;
                }
                pthread_mutex_unlock(&stash->lock);
        }
        if (!kept)
                free(buf);
}
