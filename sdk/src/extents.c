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
        e->start = e->next = e->seen_offset = start;
        e->seen_i = 0;
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

int nbdsdk_extents_new(uint64_t offset, uint64_t length, nbdsdk_extents **retextents) {
        if (!retextents || length == 0 || offset + length < offset)
                return -EINVAL;
        nbdsdk_extents *e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        extents_init(e, offset, length);
        *retextents = e;
        return 0;
}

void nbdsdk_extents_free(nbdsdk_extents *e) {
        if (!e)
                return;
        extents_fini(e);
        free(e);
}

size_t nbdsdk_extents_count(nbdsdk_extents *e) { return e ? e->n : 0; }

int nbdsdk_extents_get(nbdsdk_extents *e, size_t i, uint64_t *retoffset, uint64_t *retlength, uint32_t *rettype) {
        if (!e || i >= e->n)
                return -EINVAL;
        if (i < e->seen_i) {
                e->seen_i = 0;
                e->seen_offset = e->start;
        }
        for (; e->seen_i < i; e->seen_i++)
                e->seen_offset += e->v[e->seen_i].length;
        if (retoffset)
                *retoffset = e->seen_offset;
        if (retlength)
                *retlength = e->v[i].length;
        if (rettype)
                *rettype = e->v[i].type;
        return 0;
}
