/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_server: the exports, the limits, the listeners and the loop. See nbdsdk_server(3). */
#ifndef NBDSDK_SERVER_H
#define NBDSDK_SERVER_H

#include <stdint.h>
#include <stdbool.h>
#include <nbdsdk/nbdsdk-ops.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct sd_event sd_event;

/* Create a server around OPS (copied; OPS_SIZE is sizeof(struct nbdsdk_ops)
 * as the caller knows it). Returns 0, -EINVAL (NULL arguments, missing
 * get_size, or both pread and map, OPS_SIZE too small), -ENOMEM, or -errno
 * from creating its eventfd (-EMFILE ...). */
int nbdsdk_server_new(const struct nbdsdk_ops *ops, size_t ops_size, void *userdata,
                      nbdsdk_server **retserver);
nbdsdk_server *nbdsdk_server_ref(nbdsdk_server *server);
nbdsdk_server *nbdsdk_server_unref(nbdsdk_server *server); /* takes NULL, returns NULL */

/* Settings; all return 0, -EINVAL for a bad value or NULL server, -EBUSY once
 * the server runs (is attached to a loop or serves a connection), and the
 * string setters -ENOMEM. The export name and description are the default
 * export's (see nbdsdk_export(3)); the name defaults to "", and naming it
 * as another export is -EEXIST. Read-only applies to every export. */
int nbdsdk_server_set_export_name(nbdsdk_server *server, const char *name);
int nbdsdk_server_set_description(nbdsdk_server *server, const char *description);
int nbdsdk_server_set_read_only(nbdsdk_server *server, bool read_only);
/* Largest READ or WRITE payload: 1 MiB .. 2 GiB, default 32 MiB. */
int nbdsdk_server_set_max_payload(nbdsdk_server *server, uint32_t bytes);
/* Requests and payload bytes in flight on one connection before it stops reading
 * (back-pressure). Defaults 256 requests and 128 MiB; the byte limit must be at
 * least the maximum payload. */
int nbdsdk_server_set_max_in_flight(nbdsdk_server *server, uint32_t requests, uint64_t bytes);
/* Options one client may send (default 128) and the largest option payload
 * (default 65536; 1024 .. 16 MiB); larger payloads get NBD_REP_ERR_TOO_BIG. */
int nbdsdk_server_set_option_limits(nbdsdk_server *server, uint32_t max_options,
                                    uint32_t max_option_payload);
/* Seconds a client may take to finish the handshake (default 10; 0 = unlimited),
 * and an idle limit in transmission (default 0 = none). */
int nbdsdk_server_set_timeouts(nbdsdk_server *server, unsigned handshake_sec, unsigned idle_sec);
/* 0 (default): callbacks run on the loop thread. N > 0: data callbacks run on
 * N worker threads (for backends that block). At most 1024. */
int nbdsdk_server_set_threads(nbdsdk_server *server, unsigned threads);
/* The number of worker threads set (0 for NULL). */
unsigned nbdsdk_server_get_threads(nbdsdk_server *server);
/* With worker threads: run each request on the loop thread first, and move it
 * to a worker only when a data callback returns NBDSDK_WOULD_BLOCK (backends
 * whose calls usually finish at once, such as reads from the page cache, save
 * two thread hand-offs per request). Connections whose export has layers run
 * on workers all the same. Default false. */
int nbdsdk_server_set_inline_first(nbdsdk_server *server, bool inline_first);
/* Debug messages on stderr; this is process-wide and may change at any time. */
int nbdsdk_server_set_verbose(nbdsdk_server *server, bool verbose);
/* At most N connections at once (0, the default: no limit). While the limit
 * is reached the listeners stop accepting; clients wait in the backlog. */
int nbdsdk_server_set_max_connections(nbdsdk_server *server, unsigned n);
/* Called on the loop thread when a connection is made (OPENED) and when it
 * has closed and finished all its requests (CLOSED); either may be NULL. A
 * server that should end with its last client (qemu-nbd without -t) calls
 * nbdsdk_server_shutdown() from CLOSED when nbdsdk_server_get_n_connections()
 * is 0. */
int nbdsdk_server_set_connection_callbacks(nbdsdk_server *server,
                                           void (*opened)(nbdsdk_conn *conn, void *userdata),
                                           void (*closed)(nbdsdk_conn *conn, void *userdata),
                                           void *userdata);
/* Sparse reads: on connections with structured replies, the 4 KiB blocks
 * of zeroes in reads of at least MIN_LENGTH bytes are sent as holes. 0 turns
 * this off; the default is 65536 (shorter reads gain too little). */
int nbdsdk_server_set_sparse_reads(nbdsdk_server *server, uint32_t min_length);
/* Request batching on sd-event loops: a connection whose client keeps
 * requests in flight may wait USEC microseconds after answering before it
 * reads again, so that one wake-up finds several requests. Each connection
 * measures, in turn, whether waiting serves its client more requests per
 * second (or as many for clearly less CPU per request), and waits only
 * while it does; it also measures whether waiting a quarter as long serves
 * clearly more, and then waits that long. With -v (nbdsdk_debug) each
 * trial's figures and outcome are logged. 0 turns this off; at most 1000;
 * default 60. */
int nbdsdk_server_set_batch_wait(nbdsdk_server *server, uint32_t usec);
/* Polling on sd-event loops: a connection whose client sends one request
 * at a time, and that is the server's only connection, may keep reading for
 * up to USEC microseconds after answering, so that the next request finds
 * it awake instead of waking it. Each connection measures, in turn, whether
 * polling serves its client at least 15 % more requests per second, and
 * polls only while it does (polling spends the loop thread's CPU). 0 turns
 * this off; at most 1000; default 50. */
int nbdsdk_server_set_poll(nbdsdk_server *server, uint32_t usec);

/* Listeners. HOST may be NULL (all addresses); PORT may be "0" (pick one; see
 * nbdsdk_server_get_port). Return 0 or -errno (-EADDRINUSE, -EACCES, ...). */
int nbdsdk_server_listen_tcp(nbdsdk_server *server, const char *host, const char *port);
int nbdsdk_server_listen_unix(nbdsdk_server *server, const char *path);
/* Take over a socket that is already listening. FD is owned afterwards (closed
 * on failure too). Returns 0, -EBADF, -EINVAL (not listening), -errno. */
int nbdsdk_server_listen_fd(nbdsdk_server *server, int fd);
/* Take the sockets passed by systemd socket activation (LISTEN_FDS, LISTEN_PID;
 * LISTEN_FDNAMES are logged with -v); returns how many were taken (0 if none
 * were passed) or -errno (the sockets not taken are closed). */
int nbdsdk_server_listen_activation(nbdsdk_server *server);
/* TCP port of the first TCP listener; -ENOENT if there is none, -EINVAL,
 * or -errno from getsockname(). */
int nbdsdk_server_get_port(nbdsdk_server *server);

/* Serve one already-connected socket (inetd, socketpair). FD is owned afterwards
 * (closed on failure too). Returns 0, -EBADF, -EINVAL, -ENOMEM, -errno.
 * With NBDSDK_SERVE_NO_HANDSHAKE the connection starts in transmission with
 * the default export (the peer negotiated elsewhere, as for the kernel's
 * NBD_SET_SOCK); no structured replies are used then. */
#define NBDSDK_SERVE_NO_HANDSHAKE (1u << 0)
int nbdsdk_server_serve_fd(nbdsdk_server *server, int fd, unsigned flags, nbdsdk_conn **retconn);
/* Connect the default export to this machine's kernel NBD device DEVICE
 * (/dev/nbd0 ..., with the nbd module loaded), as qemu-nbd -c does: served on
 * a socket pair without a handshake, the device given the export's size,
 * block size and flags. It stays connected until it is disconnected
 * (nbd-client -d) or the connection ends (a server shutdown). Returns 0,
 * -EINVAL, -ENOMEM, or -errno from opening or setting up the device (-ENOENT:
 * no such device; -EBUSY: connected already; -ENOTTY: not an NBD device). */
int nbdsdk_server_connect_device(nbdsdk_server *server, const char *device, nbdsdk_conn **retconn);

/* Attach to an sd-event loop (NULL: the thread's default loop). Listeners,
 * connections, timers and worker completions become sources of that loop.
 * Returns 0, -EBUSY if attached already, -errno. Detaching removes those
 * sources; completions still waiting for their replies leave the completion
 * fd readable for the next loop (or host). */
int nbdsdk_server_attach_event(nbdsdk_server *server, sd_event *event, int64_t priority);
int nbdsdk_server_detach_event(nbdsdk_server *server);
sd_event *nbdsdk_server_get_event(nbdsdk_server *server);

/* Stop accepting; connections finish their requests in flight, later requests
 * get ESHUTDOWN and options NBD_REP_ERR_SHUTDOWN, then they close. When the
 * last connection is gone the loop's exit is requested if EXIT_LOOP is true. */
int nbdsdk_server_shutdown(nbdsdk_server *server, bool exit_loop);
/* Connections currently open. */
unsigned nbdsdk_server_get_n_connections(nbdsdk_server *server);

/* For hosts that drive connections with the readiness API (nbdsdk_conn(3))
 * instead of sd-event: an fd that becomes readable when requests finished on
 * worker threads or by asynchronous backends wait to be replied to, and the
 * call that replies to them. get_completion_fd returns the fd or -EINVAL;
 * process_completions returns 0 or -EINVAL. */
int nbdsdk_server_get_completion_fd(nbdsdk_server *server);
int nbdsdk_server_process_completions(nbdsdk_server *server);
void *nbdsdk_server_get_userdata(nbdsdk_server *server);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
