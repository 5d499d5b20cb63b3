/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_conn: one client connection. See nbdsdk_conn(3). */
#ifndef NBDSDK_CONN_H
#define NBDSDK_CONN_H

#include <stdint.h>
#include <stdbool.h>
#include <nbdsdk/nbdsdk-ops.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Both may be called from any thread. */
nbdsdk_conn *nbdsdk_conn_ref(nbdsdk_conn *conn);
nbdsdk_conn *nbdsdk_conn_unref(nbdsdk_conn *conn); /* takes NULL, returns NULL */
nbdsdk_server *nbdsdk_conn_get_server(nbdsdk_conn *conn);

/* The export the client selected ("" until one is selected). */
const char *nbdsdk_conn_get_export_name(nbdsdk_conn *conn);
bool nbdsdk_conn_is_read_only(nbdsdk_conn *conn);
/* A per-connection pointer for the backend, typically set in ops->open. */
void nbdsdk_conn_set_handle(nbdsdk_conn *conn, void *handle);
void *nbdsdk_conn_get_handle(nbdsdk_conn *conn);
/* Name of the connection's current state, e.g. "OPT_HEADER" (for debugging). */
const char *nbdsdk_conn_get_state_name(nbdsdk_conn *conn);
/* The connection's number, 1 for the server's first, as the library's log
 * messages name it ("conn 3: ..."); 0 for NULL. */
uint64_t nbdsdk_conn_get_id(nbdsdk_conn *conn);

/* Readiness API, for a host that polls the connection's fd itself instead of
 * attaching the server to sd-event: poll get_fd() for get_events() (EPOLLIN,
 * EPOLLOUT bits) until the deadline from get_timeout() (CLOCK_MONOTONIC usec,
 * UINT64_MAX for none), then call process() with what happened. process()
 * returns 0 while the connection lives and -ECONNRESET once it has closed
 * (-EINVAL for NULL). With worker threads or asynchronous backends, also poll
 * nbdsdk_server_get_completion_fd() (see nbdsdk_server(3)). get_fd returns
 * the fd, -EINVAL or -ECONNRESET; get_timeout 0 or -EINVAL. On TCP, the
 * fd's SO_RCVLOWAT is raised while a large payload is arriving, so that it
 * polls readable once the rest is there (see nbdsdk_conn(3)). */
int nbdsdk_conn_get_fd(nbdsdk_conn *conn);
/* The fd written to: the same as get_fd except for stdin/stdout connections,
 * where EPOLLIN is polled on get_fd and EPOLLOUT on get_write_fd. */
int nbdsdk_conn_get_write_fd(nbdsdk_conn *conn);
uint32_t nbdsdk_conn_get_events(nbdsdk_conn *conn);
int nbdsdk_conn_get_timeout(nbdsdk_conn *conn, uint64_t *retusec);
int nbdsdk_conn_process(nbdsdk_conn *conn, uint32_t revents);

/* Close the connection now, failing what is in flight. */
int nbdsdk_conn_kill(nbdsdk_conn *conn);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
