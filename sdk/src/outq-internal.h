/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The queue of bytes waiting to go to the client, written with scatter-gather I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include "transport-internal.h"

#define OUT_HEAD_MAX 64

typedef struct out_item out_item;
struct out_item {
        out_item *next;
        uint8_t head[OUT_HEAD_MAX];      /* a header, copied in */
        size_t head_len;
        const void *data;                /* an optional payload, not copied */
        size_t data_len;
        size_t sent;
        void (*release)(void *owner);    /* called once the item is sent or dropped */
        void *owner;
};

typedef struct {
        out_item *first, *last;
        out_item *spare;                 /* recycled items */
        size_t bytes;
} outq;

/* Append an item: HEAD is copied (at most OUT_HEAD_MAX bytes); DATA must stay
 * valid until RELEASE(OWNER) runs. Returns 0 or -ENOMEM (RELEASE is then called). */
int outq_push(outq *q, const void *head, size_t head_len, const void *data, size_t data_len,
              void (*release)(void *owner), void *owner);
/* Write as much as the transport takes. Returns 0 when the queue is empty,
 * -EAGAIN when the transport is full, other -errno on failure. */
int outq_flush(outq *q, transport *t);
static inline int outq_is_empty(const outq *q) { return q->first == NULL; }
/* Drop everything (releasing owners) and free the spare items. */
void outq_clear(outq *q);
