/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An extension's option replies. The handler may send them itself, or
 * return NBDSDK_DEFER and send them later from any thread; either way they
 * are queued under a lock and the loop thread moves them to the output, in
 * order. A deferred option's reply brings the connection back to the loop
 * thread through the completion queue (server_queue_conn), and until the
 * final reply the connection reads no further option (spec: the client MUST
 * NOT send one). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "options-internal.h"
#include "server-internal.h"

struct option_reply_item {
        option_reply_item *next;
        uint32_t type;
        size_t len;
        uint8_t data[];
};

static void free_items(option_reply_item *it) {
        while (it) {
                option_reply_item *next = it->next;
                free(it);
                it = next;
        }
}

void option_replies_init(option_replies *q) {
        *q = (option_replies) { 0 };
        pthread_mutex_init(&q->lock, NULL);
}

void option_replies_fini(option_replies *q) {
        pthread_mutex_destroy(&q->lock);
}

void option_replies_open(nbdsdk_conn *conn) {
        option_replies *q = &conn->replies;
        pthread_mutex_lock(&q->lock);
        q->open = true;
        q->deferred = false;
        pthread_mutex_unlock(&q->lock);
}

int option_replies_push(nbdsdk_conn *conn, uint32_t type, const void *data, size_t len) {
        option_reply_item *it = malloc(sizeof *it + len);
        if (!it)
                return -ENOMEM;
        *it = (option_reply_item) { .type = type, .len = len };
        if (len)
                memcpy(it->data, data, len);
        option_replies *q = &conn->replies;
        pthread_mutex_lock(&q->lock);
        int r = q->closed ? -ENOTCONN : q->open ? 0 : -EINVAL;
        if (r == 0) {
                if (q->last)
                        q->last->next = it;
                else
                        q->first = it;
                q->last = it;
                if (option_reply_is_final(type))
                        q->open = false;
        }
        bool wake = r == 0 && q->deferred;
        pthread_mutex_unlock(&q->lock);
        if (r < 0)
                free(it);
        else if (wake)
                server_queue_conn(conn->server, conn);
        return r;
}

bool option_replies_take(nbdsdk_conn *conn, bool wait) {
        option_replies *q = &conn->replies;
        pthread_mutex_lock(&q->lock);
        option_reply_item *it = q->first;
        q->first = q->last = NULL;
        if (!wait)
                q->open = false;
        q->deferred = q->open;
        bool waiting = q->open;
        pthread_mutex_unlock(&q->lock);
        for (option_reply_item *i = it; i && !conn_is_closed(conn); i = i->next)
                if (option_reply(conn, conn->opt, i->type, i->data, i->len) < 0)
                        conn_close(conn, "out of memory");
        free_items(it);
        return waiting && !conn_is_closed(conn);
}

bool option_replies_untouched(nbdsdk_conn *conn) {
        option_replies *q = &conn->replies;
        pthread_mutex_lock(&q->lock);
        bool untouched = q->open && !q->first;
        pthread_mutex_unlock(&q->lock);
        return untouched;
}

void option_replies_close(option_replies *q) {
        pthread_mutex_lock(&q->lock);
        option_reply_item *it = q->first;
        q->first = q->last = NULL;
        q->closed = true;
        q->open = q->deferred = false;
        pthread_mutex_unlock(&q->lock);
        free_items(it);
}
