/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The primary's side of XNBD_SYNC: an NBD client to each replica. At start
 * it connects, negotiates the extension and copies the blocks whose
 * checksums differ, blocking; then it runs on the server's sd-event loop,
 * sending each change the clients make and completing their requests when
 * every replica has answered. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
#include <unistd.h>
#include "xnbd-sync.h"

#define START_TIMEOUT_SEC 30   /* for each step of the blocking start */
#define OPTION_REPLY_MAX 65536 /* longer option replies are refused */
#define TRIM_PIECE 0xfffff000u /* TRIM and WRITE_ZEROES longer than a request holds are split */
#define SEND_IOV 64            /* iovecs per sendmsg */

/* A request to send: its header, and the client's payload in place (the
 * request's buffer stays valid until it completes, which is after every
 * replica has received it or been dropped). */
struct segment {
        unsigned char head[28];
        const unsigned char *data;
        uint32_t len;
};

struct xs_replica {
        char *address;
        int fd;
        unsigned timeout_sec;
        bool transmission;      /* negotiated: requests may be sent */
        bool lost;
        sd_event_source *io, *timer;
        sd_event_source *flush; /* sends what the loop's last round queued, at once */
        GQueue *out;            /* segments not sent yet; OUT_DONE bytes of the first are */
        size_t out_done;
        unsigned char in[4096]; /* replies read, IN_HAVE bytes */
        size_t in_have;
        GHashTable *pending;    /* cookie -> struct forward, answered when the reply comes */
        uint64_t next_cookie;
        uint64_t last_answer;   /* CLOCK_MONOTONIC µs: the last reply, or the first request after none */
};

/* A client's request, waiting for WAITING replicas (plus one while it is sent). */
struct forward {
        nbdsdk_request *req;
        unsigned waiting;
};

const char *xs_replica_address(const struct xs_replica *r) { return r->address; }

static void put_be(unsigned char *p, uint64_t v, int bytes) {
        for (int i = bytes - 1; i >= 0; i--, v >>= 8)
                p[i] = (unsigned char) v;
}

uint64_t xs_get_be(const unsigned char *p, int bytes) {
        uint64_t v = 0;
        for (int i = 0; i < bytes; i++)
                v = v << 8 | p[i];
        return v;
}

static int say(struct xs_replica *r, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));
static int say(struct xs_replica *r, int error, const char *format, ...) {
        char text[1024];
        va_list ap;
        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        return nbdsdk_error(error, "replica %s: %s", r->address, text);
}

int xs_replica_new(const char *address, struct xs_replica **retr) {
        struct xs_replica *r = g_new0(struct xs_replica, 1);
        r->address = g_strdup(address);
        r->fd = -1;
        r->out = g_queue_new();
        r->pending = g_hash_table_new(NULL, NULL);
        *retr = r;
        return 0;
}

/* ---- connecting (blocking) ---- */

static int connect_unix(struct xs_replica *r, const char *path) {
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sun.sun_path)
                return say(r, -ENAMETOOLONG, "the socket's path is too long");
        strcpy(sun.sun_path, path);
        if ((r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            connect(r->fd, (struct sockaddr *) &sun, sizeof sun) < 0)
                return say(r, -errno, "cannot connect: %m");
        return 0;
}

/* HOST:PORT, HOST an IPv6 address in brackets or anything getaddrinfo takes. */
static int connect_tcp(struct xs_replica *r, const char *address) {
        const char *colon = strrchr(address, ':');
        if (!colon || colon == address || !colon[1])
                return say(r, -EINVAL, "expected unix:PATH or HOST:PORT");
        char *host = g_strndup(address, (gsize) (colon - address));
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                memmove(host, host + 1, strlen(host) - 2);
                host[strlen(host) - 2] = '\0';
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *list;
        int e = getaddrinfo(host, colon + 1, &hints, &list);
        g_free(host);
        if (e != 0)
                return say(r, -EINVAL, "cannot resolve: %s", gai_strerror(e));
        int r_errno = ECONNREFUSED;
        for (struct addrinfo *a = list; a && r->fd < 0; a = a->ai_next) {
                r->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (r->fd >= 0 && connect(r->fd, a->ai_addr, a->ai_addrlen) < 0) {
                        r_errno = errno;
                        close(r->fd);
                        r->fd = -1;
                }
        }
        freeaddrinfo(list);
        if (r->fd < 0)
                return say(r, -r_errno, "cannot connect: %s", strerror(r_errno));
        (void) setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
        return 0;
}

static int send_all(struct xs_replica *r, const void *buf, size_t len) {
        for (const char *p = buf; len > 0;) {
                ssize_t n = send(r->fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return say(r, -errno, "cannot send: %s", errno == EAGAIN ? "timed out" : strerror(errno));
                p += n, len -= (size_t) n;
        }
        return 0;
}

static int recv_all(struct xs_replica *r, void *buf, size_t len) {
        for (char *p = buf; len > 0;) {
                ssize_t n = recv(r->fd, p, len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n == 0)
                        return say(r, -EPIPE, "the server closed the connection");
                if (n < 0)
                        return say(r, -errno, "cannot receive: %s", errno == EAGAIN ? "timed out" : strerror(errno));
                p += n, len -= (size_t) n;
        }
        return 0;
}

static int send_option(struct xs_replica *r, uint32_t option, const void *data, uint32_t len) {
        unsigned char h[16];
        put_be(h, NBDSDK_MAGIC_OPTS, 8);
        put_be(h + 8, option, 4);
        put_be(h + 12, len, 4);
        int e = send_all(r, h, sizeof h);
        return e < 0 || len == 0 ? e : send_all(r, data, len);
}

/* One reply to OPTION: its type, and its data (NUL-terminated) in a new DATA. */
static int recv_option_reply(struct xs_replica *r, uint32_t option, uint32_t *rettype, char **retdata,
                             uint32_t *retlen) {
        unsigned char h[20];
        int e = recv_all(r, h, sizeof h);
        if (e < 0)
                return e;
        uint32_t len = (uint32_t) xs_get_be(h + 16, 4);
        if (xs_get_be(h, 8) != NBDSDK_MAGIC_OPT_REPLY || xs_get_be(h + 8, 4) != option || len > OPTION_REPLY_MAX)
                return say(r, -EPROTO, "not an NBD option reply to option %u", option);
        char *data = g_malloc(len + 1);
        if ((e = recv_all(r, data, len)) < 0) {
                g_free(data);
                return e;
        }
        data[len] = '\0';
        *rettype = (uint32_t) xs_get_be(h + 12, 4), *retdata = data, *retlen = len;
        return 0;
}

/* An error reply's message, as the server wrote it. */
static int refused(struct xs_replica *r, const char *what, uint32_t type, const char *message) {
        if (type == NBDSDK_REP_ERR_UNSUP)
                return say(r, -EPROTO, "%s is not supported (is this an xnbd-sync server?)", what);
        return say(r, -EPROTO, "%s refused: %s", what, *message ? message : "(no message)");
}

static int negotiate_sync(struct xs_replica *r, uint64_t size) {
        unsigned char greeting[18], size_be[8];
        int e = recv_all(r, greeting, sizeof greeting);
        if (e < 0)
                return e;
        uint16_t hflags = (uint16_t) xs_get_be(greeting + 16, 2);
        if (xs_get_be(greeting, 8) != NBDSDK_MAGIC_INIT || xs_get_be(greeting + 8, 8) != NBDSDK_MAGIC_OPTS ||
            !(hflags & NBDSDK_FLAG_FIXED_NEWSTYLE))
                return say(r, -EPROTO, "not a fixed-newstyle NBD server");
        unsigned char cflags[4];
        put_be(cflags, NBDSDK_FLAG_C_FIXED_NEWSTYLE | (hflags & NBDSDK_FLAG_NO_ZEROES ? NBDSDK_FLAG_C_NO_ZEROES : 0), 4);
        put_be(size_be, size, 8);
        if ((e = send_all(r, cflags, sizeof cflags)) < 0 ||
            (e = send_option(r, XNBD_OPT_SYNC, size_be, sizeof size_be)) < 0)
                return e;
        uint32_t type, len;
        char *data;
        if ((e = recv_option_reply(r, XNBD_OPT_SYNC, &type, &data, &len)) < 0)
                return e;
        if (type != NBDSDK_REP_ACK)
                e = refused(r, "XNBD_SYNC", type, data);
        g_free(data);
        return e;
}

/* NBD_OPT_GO on the default export: its size and transmission flags, which
 * must let every change through. */
static int negotiate_go(struct xs_replica *r, uint64_t size) {
        static const unsigned char go[6]; /* no name, no information requests */
        int e = send_option(r, NBDSDK_OPT_GO, go, sizeof go);
        uint32_t type = 0, len;
        char *data = NULL;
        uint16_t tflags = 0;
        for (; e == 0; g_free(data), data = NULL) {
                if ((e = recv_option_reply(r, NBDSDK_OPT_GO, &type, &data, &len)) < 0)
                        return e;
                if (type == NBDSDK_REP_ACK)
                        break;
                if (type & NBDSDK_REP_FLAG_ERROR)
                        e = refused(r, "NBD_OPT_GO", type, data);
                else if (type == NBDSDK_REP_INFO && len == 12 && xs_get_be((unsigned char *) data, 2) == NBDSDK_INFO_EXPORT) {
                        if (xs_get_be((unsigned char *) data + 2, 8) != size)
                                e = say(r, -EPROTO, "the export's size changed");
                        tflags = (uint16_t) xs_get_be((unsigned char *) data + 10, 2);
                }
        }
        g_free(data);
        const uint16_t needed = NBDSDK_FLAG_SEND_FLUSH | NBDSDK_FLAG_SEND_FUA | NBDSDK_FLAG_SEND_TRIM |
                                NBDSDK_FLAG_SEND_WRITE_ZEROES;
        if (e == 0 && (tflags & NBDSDK_FLAG_READ_ONLY))
                e = say(r, -EROFS, "the export is read-only");
        else if (e == 0 && (tflags & needed) != needed)
                e = say(r, -EPROTO, "the export does not take flush, FUA, trim and write-zeroes (flags 0x%x)",
                        tflags);
        return e;
}

static void put_request(unsigned char h[28], uint16_t wflags, uint16_t type, uint64_t cookie, uint64_t off,
                        uint32_t len) {
        put_be(h, NBDSDK_MAGIC_REQUEST, 4);
        put_be(h + 4, wflags, 2);
        put_be(h + 6, type, 2);
        put_be(h + 8, cookie, 8);
        put_be(h + 16, off, 8);
        put_be(h + 24, len, 4);
}

/* One request during the start, and its reply (and REPLY_LEN bytes of data). */
static int request(struct xs_replica *r, uint16_t type, uint64_t off, uint32_t len, const void *data, void *reply,
                   size_t reply_len) {
        unsigned char h[28], rh[16];
        uint64_t cookie = ++r->next_cookie;
        put_request(h, 0, type, cookie, off, len);
        int e = send_all(r, h, sizeof h);
        if (e == 0 && data)
                e = send_all(r, data, len);
        if (e == 0)
                e = recv_all(r, rh, sizeof rh);
        if (e < 0)
                return e;
        if (xs_get_be(rh, 4) != NBDSDK_MAGIC_SIMPLE_REPLY || xs_get_be(rh + 8, 8) != cookie)
                return say(r, -EPROTO, "an unexpected reply");
        if (xs_get_be(rh + 4, 4) != 0)
                return say(r, -EIO, "command %u at %llu failed with NBD error %u", type, (unsigned long long) off,
                           (unsigned) xs_get_be(rh + 4, 4));
        return reply_len ? recv_all(r, reply, reply_len) : 0;
}

/* Copy each block whose checksum differs, then flush. */
static int copy_differences(struct xs_replica *r, struct xs_disk *d) {
        size_t sums_len = XNBD_SUM_MAX / XNBD_SUM_BLOCK * XNBD_SUM_LEN;
        unsigned char *ours = g_malloc(sums_len), *theirs = g_malloc(sums_len), *block = g_malloc(XNBD_SUM_BLOCK);
        uint64_t copied = 0, blocks = 0;
        int e = 0;
        for (uint64_t off = 0; e == 0 && off < d->size; off += XNBD_SUM_MAX) {
                uint32_t len = d->size - off < XNBD_SUM_MAX ? (uint32_t) (d->size - off) : XNBD_SUM_MAX;
                uint32_t n = (len + XNBD_SUM_BLOCK - 1) / XNBD_SUM_BLOCK;
                if ((e = request(r, XNBD_CMD_SUM, off, len, NULL, theirs, n * XNBD_SUM_LEN)) < 0 ||
                    (e = xs_sums(d, off, len, ours)) < 0)
                        break;
                for (uint32_t i = 0; e == 0 && i < n; i++, blocks++) {
                        if (memcmp(ours + i * XNBD_SUM_LEN, theirs + i * XNBD_SUM_LEN, XNBD_SUM_LEN) == 0)
                                continue;
                        uint64_t at = off + (uint64_t) i * XNBD_SUM_BLOCK;
                        uint32_t bl = len - i * XNBD_SUM_BLOCK < XNBD_SUM_BLOCK ? len - i * XNBD_SUM_BLOCK
                                                                               : XNBD_SUM_BLOCK;
                        if ((e = xs_disk_pread(d, block, bl, at)) == 0 &&
                            (e = request(r, NBDSDK_CMD_WRITE, at, bl, block, NULL, 0)) == 0)
                                copied++;
                }
        }
        if (e == 0 && copied > 0)
                e = request(r, NBDSDK_CMD_FLUSH, 0, 0, NULL, NULL, 0);
        if (e == 0)
                say(r, 0, "in sync: %llu of %llu blocks of %u KiB differed and were copied",
                    (unsigned long long) copied, (unsigned long long) blocks, XNBD_SUM_BLOCK / 1024);
        g_free(ours), g_free(theirs), g_free(block);
        return e;
}

int xs_replica_start(struct xs_replica *r, struct xs_disk *d) {
        r->timeout_sec = d->timeout_sec;
        int e = g_str_has_prefix(r->address, "unix:") ? connect_unix(r, r->address + 5)
                                                      : connect_tcp(r, r->address);
        struct timeval tv = { .tv_sec = START_TIMEOUT_SEC };
        if (e == 0 && (setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
                       setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0))
                e = say(r, -errno, "cannot set a timeout: %m");
        if (e == 0 && (e = negotiate_sync(r, d->size)) == 0 && (e = negotiate_go(r, d->size)) == 0)
                e = copy_differences(r, d);
        /* From here on, only the loop sends and receives. */
        if (e == 0 && fcntl(r->fd, F_SETFL, O_NONBLOCK) < 0)
                e = say(r, -errno, "cannot make the socket non-blocking: %m");
        r->transmission = e == 0;
        return e;
}

/* ---- running (on the loop) ---- */

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* One replica fewer waited for; the last completes the client's request. */
static void answered(struct forward *f) {
        if (--f->waiting > 0)
                return;
        nbdsdk_request_complete(f->req, 0);
        g_free(f);
}

/* A replica that fails is left behind: the primary serves on without it. */
static void lose(struct xs_replica *r, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void lose(struct xs_replica *r, const char *format, ...) {
        if (r->lost)
                return;
        char why[512];
        va_list ap;
        va_start(ap, format);
        vsnprintf(why, sizeof why, format, ap);
        va_end(ap);
        say(r, 0, "dropped (%s); changes are no longer copied to it", why);
        r->lost = true;
        r->io = sd_event_source_disable_unref(r->io);
        r->timer = sd_event_source_disable_unref(r->timer);
        r->flush = sd_event_source_disable_unref(r->flush);
        g_queue_clear_full(r->out, g_free); /* before the requests that own the payloads complete */
        r->out_done = 0;
        close(r->fd);
        r->fd = -1;
        GHashTableIter it;
        gpointer f;
        g_hash_table_iter_init(&it, r->pending);
        while (g_hash_table_iter_next(&it, NULL, &f)) {
                g_hash_table_iter_steal(&it);
                answered(f);
        }
}

/* EPOLLOUT only while the socket is full. */
static void want_output(struct xs_replica *r, bool full) {
        (void) sd_event_source_set_io_events(r->io, EPOLLIN | (full ? EPOLLOUT : 0));
}

/* Drop the segments SENT more bytes cover. */
static void sent(struct xs_replica *r, size_t sent) {
        sent += r->out_done;
        for (struct segment *seg; (seg = g_queue_peek_head(r->out)) && sent >= sizeof seg->head + seg->len;) {
                sent -= sizeof seg->head + seg->len;
                g_free(g_queue_pop_head(r->out));
        }
        r->out_done = sent;
}

/* As much of the queue as the socket takes, SEND_IOV pieces per call. */
static void send_queued(struct xs_replica *r) {
        while (!g_queue_is_empty(r->out)) {
                struct iovec iov[SEND_IOV];
                size_t n = 0, want = 0, skip = r->out_done;
                for (GList *l = r->out->head; l && n + 2 <= SEND_IOV; l = l->next, skip = 0) {
                        struct segment *seg = l->data;
                        if (skip < sizeof seg->head)
                                iov[n++] = (struct iovec) { seg->head + skip, sizeof seg->head - skip };
                        skip = skip < sizeof seg->head ? 0 : skip - sizeof seg->head;
                        if (seg->len > skip)
                                iov[n++] = (struct iovec) { (void *) (seg->data + skip), seg->len - skip };
                }
                for (size_t i = 0; i < n; i++)
                        want += iov[i].iov_len;
                ssize_t done = sendmsg(r->fd, &(struct msghdr) { .msg_iov = iov, .msg_iovlen = n },
                                       MSG_NOSIGNAL | MSG_DONTWAIT);
                if (done < 0 && errno == EINTR)
                        continue;
                if (done < 0 && errno == EAGAIN)
                        break;
                if (done < 0) {
                        lose(r, "cannot send: %m");
                        return;
                }
                sent(r, (size_t) done);
                if ((size_t) done < want)
                        break;
        }
        want_output(r, !g_queue_is_empty(r->out));
}

/* Replies until the socket is empty (a read shorter than asked says so). */
static void read_replies(struct xs_replica *r) {
        for (;;) {
                size_t space = sizeof r->in - r->in_have;
                ssize_t n = recv(r->fd, r->in + r->in_have, space, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        if (n == 0)
                                lose(r, "it closed the connection");
                        else
                                lose(r, "cannot receive: %m");
                        return;
                }
                r->in_have += (size_t) n;
                size_t at = 0;
                for (; r->in_have - at >= 16; at += 16) {
                        const unsigned char *h = r->in + at;
                        uint32_t error = (uint32_t) xs_get_be(h + 4, 4);
                        struct forward *f = NULL;
                        gpointer key = GSIZE_TO_POINTER((gsize) xs_get_be(h + 8, 8));
                        if (xs_get_be(h, 4) != NBDSDK_MAGIC_SIMPLE_REPLY ||
                            !g_hash_table_steal_extended(r->pending, key, NULL, (gpointer *) &f)) {
                                lose(r, "it sent a reply to no request of ours");
                                return;
                        }
                        r->last_answer = now_usec();
                        answered(f);
                        if (error != 0) {
                                lose(r, "it failed a change with NBD error %u", error);
                                return;
                        }
                }
                memmove(r->in, r->in + at, r->in_have - at);
                r->in_have -= at;
                if ((size_t) n < space)
                        return;
        }
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *ud) {
        struct xs_replica *r = ud;
        if (revents & EPOLLOUT)
                send_queued(r);
        if (!r->lost && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                read_replies(r);
        return 0;
}

/* Every second while changes wait: a replica that leaves them unanswered
 * too long is dropped. An idle primary is not woken. */
static int on_tick(sd_event_source *s, uint64_t usec, void *ud) {
        struct xs_replica *r = ud;
        if (g_hash_table_size(r->pending) == 0)
                return 0;
        if (now_usec() - r->last_answer > r->timeout_sec * 1000000ull) {
                lose(r, "no answer for %u s", r->timeout_sec);
                return 0;
        }
        (void) sd_event_source_set_time_relative(s, 1000000);
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_flush(sd_event_source *s, void *ud) {
        send_queued(ud);
        return 0;
}

/* The replica joins the server's loop with the first change it is sent. */
static int attach(struct xs_replica *r, nbdsdk_server *server) {
        sd_event *e = nbdsdk_server_get_event(server);
        int err = e ? sd_event_add_io(e, &r->io, r->fd, EPOLLIN, on_io, r) : -ENXIO;
        if (err == 0 && (err = sd_event_add_defer(e, &r->flush, on_flush, r)) == 0)
                err = sd_event_source_set_enabled(r->flush, SD_EVENT_OFF);
        if (err == 0 && r->timeout_sec > 0 &&
            (err = sd_event_add_time_relative(e, &r->timer, CLOCK_MONOTONIC, 1000000, 0, on_tick, r)) == 0)
                err = sd_event_source_set_enabled(r->timer, SD_EVENT_OFF);
        if (err < 0)
                lose(r, "cannot watch its socket: %s", strerror(-err));
        return err;
}

static void queue(struct xs_replica *r, struct forward *f, uint16_t type, uint16_t wflags, uint64_t off,
                  uint32_t len, const void *data) {
        struct segment *seg = g_new(struct segment, 1);
        uint64_t cookie = (gsize) ++r->next_cookie;
        put_request(seg->head, wflags, type, cookie, off, len);
        seg->data = data;
        seg->len = data ? len : 0;
        g_queue_push_tail(r->out, seg);
        if (g_hash_table_size(r->pending) == 0) {
                r->last_answer = now_usec();
                if (r->timer && sd_event_source_get_enabled(r->timer, NULL) == 0) {
                        (void) sd_event_source_set_time_relative(r->timer, 1000000);
                        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
                }
        }
        g_hash_table_insert(r->pending, GSIZE_TO_POINTER((gsize) cookie), f);
        f->waiting++;
}

int xs_replicas_forward(struct xs_disk *d, nbdsdk_request *req, uint16_t type, uint16_t wflags, uint64_t off,
                        uint64_t count, const void *data) {
        struct forward *f = NULL;
        for (unsigned i = 0; i < d->n_replicas; i++) {
                struct xs_replica *r = d->replicas[i];
                if (r->lost || (!r->io && attach(r, nbdsdk_conn_get_server(nbdsdk_request_get_conn(req))) < 0))
                        continue;
                if (!f) {
                        f = g_new0(struct forward, 1);
                        f->req = req;
                        f->waiting = 1; /* ours until every replica has it */
                }
                /* A replica with nothing in flight gets the change at once;
                 * others, what the loop's round queued, in one call after it. */
                bool idle = g_hash_table_size(r->pending) == 0;
                uint64_t at = off, left = count;
                do {
                        uint32_t n = left > TRIM_PIECE ? TRIM_PIECE : (uint32_t) left;
                        queue(r, f, type, wflags, at, n, data);
                        at += n, left -= n;
                } while (left > 0);
                if (idle)
                        send_queued(r);
                else
                        (void) sd_event_source_set_enabled(r->flush, SD_EVENT_ONESHOT);
        }
        if (!f)
                return 0;
        if (--f->waiting == 0) { /* every replica was lost while it was sent */
                g_free(f);
                return 0;
        }
        return NBDSDK_DEFER;
}

void xs_replica_free(struct xs_replica *r) {
        if (!r)
                return;
        if (r->transmission && !r->lost) {
                unsigned char h[28]; /* a polite goodbye, if the socket takes it now */
                put_request(h, 0, NBDSDK_CMD_DISC, ++r->next_cookie, 0, 0);
                (void) !send(r->fd, h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        sd_event_source_disable_unref(r->io);
        sd_event_source_disable_unref(r->timer);
        sd_event_source_disable_unref(r->flush);
        if (r->fd >= 0)
                close(r->fd);
        g_hash_table_unref(r->pending);
        g_queue_free_full(r->out, g_free);
        g_free(r->address);
        g_free(r);
}
