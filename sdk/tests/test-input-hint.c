/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* While a large payload is on its way, the connection tells the transport
 * how much more it needs, and a TCP transport turns that into SO_RCVLOWAT so
 * that one wake-up brings the whole rest instead of a few KiB. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "tcase.h"
#include "fixture.h"

#define PAYLOAD (512 * 1024)
#define FIRST 1000 /* payload bytes sent along with the header */

static void payload_rest_is_wanted_in(tc_mode m) {
        open_disk(m, false);
        uint8_t *data = malloc(PAYLOAD);
        CHECK(data, "memory");
        fill(data, PAYLOAD, 3);
        tc_send_write(tc, 0, 1, 0, PAYLOAD, data, FIRST);
        CHECK(mem_peer_wanted(tc->peer) == PAYLOAD - FIRST,
              "%s: the transport is told the rest of the payload (%zu), not %zu", mode,
              (size_t) (PAYLOAD - FIRST), mem_peer_wanted(tc->peer));
        CHECK(mem_peer_send(tc->peer, data + FIRST, PAYLOAD - FIRST) == 0, "queueing");
        tc_run(tc);
        CHECK(tc_reply_status(tc, 1) == 0, "%s: the WRITE succeeds", mode);
        CHECK(memcmp(td->data, data, PAYLOAD) == 0, "%s: the whole payload reached the disk", mode);
        CHECK(mem_peer_wanted(tc->peer) == 1, "%s: waiting for a header, any byte will do (got %zu)", mode,
              mem_peer_wanted(tc->peer));
        free(data);
        close_disk();
}
ALL_MODES(payload_rest_is_wanted)

static void skipped_payload_rest_is_wanted_in(tc_mode m) {
        open_disk(m, false);
        uint8_t *data = calloc(1, PAYLOAD);
        CHECK(data, "memory");
        /* Past the end: refused, and its payload is skipped to stay in step. */
        tc_send_write(tc, 0, 2, DISK_SIZE - 4096, PAYLOAD, data, FIRST);
        CHECK(mem_peer_wanted(tc->peer) == PAYLOAD - FIRST, "%s: the rest of the skipped payload is wanted (got %zu)",
              mode, mem_peer_wanted(tc->peer));
        CHECK(mem_peer_send(tc->peer, data + FIRST, PAYLOAD - FIRST) == 0, "queueing");
        tc_run(tc);
        CHECK(tc_reply_status(tc, 2) != 0, "%s: the WRITE past the end fails", mode);
        CHECK(mem_peer_wanted(tc->peer) == 1, "%s: then any byte will do (got %zu)", mode,
              mem_peer_wanted(tc->peer));
        CHECK(tc_read(tc, 0, 3, 0, data, 4096) == 0, "%s: the stream is still in step", mode);
        free(data);
        close_disk();
}
ALL_MODES(skipped_payload_rest_is_wanted)

/* A connected pair: *SERVER is the accepted end. */
static void tcp_pair(int *server, int *client) {
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        CHECK(l >= 0 && bind(l, (struct sockaddr *) &a, sizeof a) == 0 && listen(l, 1) == 0 &&
              getsockname(l, (struct sockaddr *) &a, &len) == 0, "a loopback listener: %m");
        *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(*client >= 0 && connect(*client, (struct sockaddr *) &a, sizeof a) == 0, "connect: %m");
        *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        CHECK(*server >= 0, "accept: %m");
        close(l);
}

static int lowat(int fd) {
        int v = 0;
        socklen_t len = sizeof v;
        CHECK(getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, &len) == 0, "getsockopt: %m");
        return v;
}

static bool readable(int fd, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void send_all(int fd, const uint8_t *buf, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
                CHECK(n > 0, "send: %m");
                buf += n;
                len -= (size_t) n;
        }
}

static void tcp_waits_for_the_whole_rest(void) {
        int s, c;
        tcp_pair(&s, &c);
        transport *t;
        CHECK(transport_fd_new(s, s, &t) == 0, "transport");
        static uint8_t buf[200000];
        t->ops->want(t, sizeof buf);
        CHECK(lowat(s) == (int) sizeof buf, "SO_RCVLOWAT is the wanted count, got %d", lowat(s));
        send_all(c, buf, sizeof buf / 2);
        CHECK(!readable(s, 200), "half the wanted bytes do not wake the reader");
        send_all(c, buf, sizeof buf / 2);
        CHECK(readable(s, 10000), "all of them do");
        t->ops->want(t, 16 * 1024 * 1024);
        CHECK(lowat(s) == 1024 * 1024, "large waits are capped at 1 MiB, got %d", lowat(s));
        t->ops->want(t, 4096);
        CHECK(lowat(s) == 1, "small waits are not worth a mark: back to 1, got %d", lowat(s));
        t->ops->want(t, sizeof buf);
        shutdown(c, SHUT_WR);
        uint8_t tmp[65536];
        while (t->ops->read(t, tmp, sizeof tmp) > 0)
                ;
        CHECK(readable(s, 10000), "end of stream is reported whatever the mark");
        CHECK(t->ops->read(t, tmp, sizeof tmp) == 0, "and reads as end of stream");
        t->ops->free(t);
        close(c);
}

static void unix_sockets_are_left_alone(void) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %m");
        transport *t;
        CHECK(transport_fd_new(sv[0], sv[0], &t) == 0, "transport");
        t->ops->want(t, 200000);
        CHECK(lowat(sv[0]) == 1, "no mark on a Unix socket, whose poll ignores it (got %d)", lowat(sv[0]));
        CHECK(write(sv[1], "x", 1) == 1, "write");
        CHECK(readable(sv[0], 10000), "one byte wakes the reader");
        t->ops->free(t);
        close(sv[1]);
}

TCASE_MAIN(T(payload_rest_is_wanted), T(skipped_payload_rest_is_wanted),
           T(tcp_waits_for_the_whole_rest), T(unix_sockets_are_left_alone))
