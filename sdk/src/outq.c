/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "outq-internal.h"

#define OUTQ_IOV 64

int outq_push(outq *q, const void *head, size_t head_len, const void *data, size_t data_len,
              void (*release)(void *owner), void *owner) {
        out_item *it = q->spare;
        if (it)
                q->spare = it->next;
        else if (!(it = malloc(sizeof *it))) {
                if (release)
                        release(owner);
                return -ENOMEM;
        }
        if (head_len > OUT_HEAD_MAX)
                abort();
        memcpy(it->head, head, head_len);
        it->head_len = head_len;
        it->data = data;
        it->data_len = data_len;
        it->sent = 0;
        it->release = release;
        it->owner = owner;
        it->next = NULL;
        if (q->last)
                q->last->next = it;
        else
                q->first = it;
        q->last = it;
        q->bytes += head_len + data_len;
        return 0;
}

static void outq_pop(outq *q) {
        out_item *it = q->first;
        q->first = it->next;
        if (!q->first)
                q->last = NULL;
        if (it->release)
                it->release(it->owner);
        it->next = q->spare;
        q->spare = it;
}

int outq_flush(outq *q, transport *t) {
        while (q->first) {
                struct iovec iov[OUTQ_IOV];
                int n = 0;
                for (out_item *it = q->first; it && n < OUTQ_IOV - 1; it = it->next) {
                        size_t skip = it->sent;
                        if (skip < it->head_len) {
                                iov[n++] = (struct iovec) { it->head + skip, it->head_len - skip };
                                skip = 0;
                        } else
                                skip -= it->head_len;
                        if (it->data_len > skip)
                                iov[n++] = (struct iovec) { (char *) it->data + skip, it->data_len - skip };
                }
                ssize_t w = t->ops->writev(t, iov, n);
                if (w < 0)
                        return (int) w;
                if (w == 0)
                        return -EAGAIN;
                q->bytes -= (size_t) w;
                while (w > 0) {
                        out_item *it = q->first;
                        size_t left = it->head_len + it->data_len - it->sent;
                        if ((size_t) w < left) {
                                it->sent += (size_t) w;
                                break;
                        }
                        w -= (ssize_t) left;
                        outq_pop(q);
                }
        }
        return 0;
}

void outq_clear(outq *q) {
        while (q->first)
                outq_pop(q);
        q->bytes = 0;
        while (q->spare) {
                out_item *it = q->spare;
                q->spare = it->next;
                free(it);
        }
}
