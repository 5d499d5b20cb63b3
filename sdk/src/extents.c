/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The extents a backend reports for a range: contiguous from the range's
 * start, merged by type, cut at the range's end. */
#include <errno.h>
#include <stdlib.h>
#include "request-internal.h"

/* Spec: a server SHOULD send at most 2^20 extents in one chunk; we stop
 * earlier, which only shortens the reply (the client asks again). */
#define EXTENTS_MAX 65536

void extents_init(nbdsdk_extents *e, uint64_t start, uint64_t length) {
        /* The array is kept for reuse. */
        e->n = 0;
        e->start = e->next = start;
        e->end = start + length;
}

void extents_fini(nbdsdk_extents *e) {
        free(e->v);
        *e = (nbdsdk_extents) { 0 };
}

int nbdsdk_extents_add(nbdsdk_extents *e, uint64_t length, uint32_t type) {
        if (!e || length == 0 ||
            (!e->any_status && (type & ~(uint32_t) (NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO))))
                return -EINVAL;
        if (e->next >= e->end)
                return 0;
        if (length > e->end - e->next)
                length = e->end - e->next;
        if (e->n > 0 && e->v[e->n - 1].type == type) {
                e->v[e->n - 1].length += length;
                e->next += length;
                return 0;
        }
        if (e->n == EXTENTS_MAX) {
                e->end = e->next; /* full: ignore the rest */
                return 0;
        }
        if (e->n == e->cap) {
                size_t cap = e->cap ? e->cap * 2 : 8;
                struct nbdsdk_extent *v = realloc(e->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                e->v = v;
                e->cap = cap;
        }
        e->v[e->n++] = (struct nbdsdk_extent) { length, type };
        e->next += length;
        return 0;
}
