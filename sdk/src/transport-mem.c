/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-memory transport: two byte queues, no fds, fully deterministic. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "transport-internal.h"

typedef struct {
        unsigned char *data;
        size_t start, end, cap;
} byteq;

struct mem_peer {
        byteq to_server, to_client;
        int client_closed;
        int server_gone;
        size_t write_budget;
        size_t wanted;
        size_t writes;
        transport *server;
};

typedef struct {
        transport base;
        mem_peer *peer;
} mem_transport;

static int byteq_push(byteq *q, const void *data, size_t len) {
        if (len == 0)
                return 0;
        if (q->start > 0 && q->end + len > q->cap) {
                memmove(q->data, q->data + q->start, q->end - q->start);
                q->end -= q->start;
                q->start = 0;
        }
        if (q->end + len > q->cap) {
                size_t cap = q->cap ? q->cap : 4096;
                while (cap < q->end + len)
                        cap *= 2;
                unsigned char *p = realloc(q->data, cap);
                if (!p)
                        return -ENOMEM;
                q->data = p;
                q->cap = cap;
        }
        memcpy(q->data + q->end, data, len);
        q->end += len;
        return 0;
}

static size_t byteq_pop(byteq *q, void *buf, size_t len) {
        size_t n = q->end - q->start;
        if (n > len)
                n = len;
        if (buf && n)
                memcpy(buf, q->data + q->start, n);
        q->start += n;
        return n;
}

static ssize_t mem_read(transport *t, void *buf, size_t len) {
        mem_peer *p = ((mem_transport *) t)->peer;
        if (!p)
                return -EPIPE;
        size_t n = byteq_pop(&p->to_server, buf, len);
        if (n > 0)
                return (ssize_t) n;
        return p->client_closed ? 0 : -EAGAIN;
}

static ssize_t mem_writev(transport *t, const struct iovec *iov, int iovcnt) {
        mem_peer *p = ((mem_transport *) t)->peer;
        if (!p || p->client_closed)
                return -EPIPE;
        /* write_budget models a socket buffer: at most that many unread bytes. */
        size_t pending = p->to_client.end - p->to_client.start;
        size_t room = SIZE_MAX;
        if (p->write_budget)
                room = pending >= p->write_budget ? 0 : p->write_budget - pending;
        if (room == 0)
                return -EAGAIN;
        size_t total = 0;
        for (int i = 0; i < iovcnt && total < room; i++) {
                size_t n = iov[i].iov_len;
                if (n > room - total)
                        n = room - total;
                if (byteq_push(&p->to_client, iov[i].iov_base, n) < 0)
                        return total ? (ssize_t) total : -ENOMEM;
                total += n;
        }
        if (total > 0)
                p->writes++;
        return (ssize_t) total;
}

static int mem_get_fd(transport *t) { (void) t; return -1; }

static void mem_want(transport *t, size_t n) {
        mem_transport *m = (mem_transport *) t;
        if (m->peer)
                m->peer->wanted = n;
}

static void mem_free(transport *t) {
        mem_transport *m = (mem_transport *) t;
        if (m->peer) {
                m->peer->server_gone = 1;
                m->peer->server = NULL;
        }
        free(m);
}

static const struct transport_ops mem_ops = {
        .read = mem_read, .writev = mem_writev, .want = mem_want,
        .get_read_fd = mem_get_fd, .get_write_fd = mem_get_fd, .free = mem_free,
};

int transport_mem_new(transport **retserver, mem_peer **retpeer) {
        mem_peer *p = calloc(1, sizeof *p);
        mem_transport *m = calloc(1, sizeof *m);
        if (!p || !m) {
                free(p);
                free(m);
                return -ENOMEM;
        }
        m->base.ops = &mem_ops;
        m->peer = p;
        p->server = &m->base;
        *retserver = &m->base;
        *retpeer = p;
        return 0;
}

int mem_peer_send(mem_peer *p, const void *data, size_t len) { return byteq_push(&p->to_server, data, len); }
size_t mem_peer_recv(mem_peer *p, void *buf, size_t len) { return byteq_pop(&p->to_client, buf, len); }
size_t mem_peer_pending(mem_peer *p) { return p->to_client.end - p->to_client.start; }
size_t mem_peer_wanted(mem_peer *p) { return p->wanted; }
size_t mem_peer_writes(mem_peer *p) { return p->writes; }
void mem_peer_close(mem_peer *p) { p->client_closed = 1; }
int mem_peer_server_closed(mem_peer *p) { return p->server_gone; }
void mem_peer_set_write_budget(mem_peer *p, size_t bytes) { p->write_budget = bytes; }

mem_peer *mem_peer_free(mem_peer *p) {
        if (!p)
                return NULL;
        if (p->server)
                ((mem_transport *) p->server)->peer = NULL;
        free(p->to_server.data);
        free(p->to_client.data);
        free(p);
        return NULL;
}
