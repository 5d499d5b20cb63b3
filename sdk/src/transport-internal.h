/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The byte stream a connection runs over: never blocks, never waits. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct transport transport;

struct transport_ops {
        /* > 0 bytes read, 0 end of stream, -EAGAIN nothing yet, other -errno. */
        ssize_t (*read)(transport *t, void *buf, size_t len);
        /* >= 0 bytes written, -EAGAIN, other -errno. */
        ssize_t (*writev)(transport *t, const struct iovec *iov, int iovcnt);
        /* Optional: the reader cannot progress before N more bytes have
         * arrived (N >= 1). A transport may hold read readiness back until
         * then, saving wake-ups that would each bring only part of a large
         * payload; end of stream and errors must still be reported. */
        void (*want)(transport *t, size_t n);
        int (*get_read_fd)(transport *t);
        int (*get_write_fd)(transport *t);
        void (*free)(transport *t);
};

struct transport {
        const struct transport_ops *ops;
};

/* A socket (RFD == WFD) or a pair of fds (stdin/stdout), made non-blocking.
 * The transport owns the fds. */
int transport_fd_new(int rfd, int wfd, transport **ret);

/* An in-memory pair for tests and fuzzers: the server side is a transport,
 * the client side is driven with the functions below. */
typedef struct mem_peer mem_peer;
int transport_mem_new(transport **retserver, mem_peer **retpeer);
/* Queue bytes for the server to read. */
int mem_peer_send(mem_peer *peer, const void *data, size_t len);
/* Take up to LEN bytes the server wrote; returns how many. */
size_t mem_peer_recv(mem_peer *peer, void *buf, size_t len);
size_t mem_peer_pending(mem_peer *peer);
/* The last N the server passed to the transport's want (0: none yet). */
size_t mem_peer_wanted(mem_peer *peer);
/* How many writes of the server's put bytes in the stream so far. */
size_t mem_peer_writes(mem_peer *peer);
/* End the client's side of the stream (the server reads end-of-stream). */
void mem_peer_close(mem_peer *peer);
/* Whether the server side has been freed (the connection closed). */
int mem_peer_server_closed(mem_peer *peer);
/* Let at most BYTES unread bytes wait for the client (0 = unlimited), like a
 * socket buffer, to test partial writes and back-pressure. */
void mem_peer_set_write_budget(mem_peer *peer, size_t bytes);
mem_peer *mem_peer_free(mem_peer *peer);
