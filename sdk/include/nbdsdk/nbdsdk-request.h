/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_request: one request in transmission. See nbdsdk_request(3). */
#ifndef NBDSDK_REQUEST_H
#define NBDSDK_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

nbdsdk_conn *nbdsdk_request_get_conn(nbdsdk_request *req);
/* The wire command (NBDSDK_CMD_*), offset and length of the request. */
uint16_t nbdsdk_request_get_command(nbdsdk_request *req);
uint64_t nbdsdk_request_get_offset(nbdsdk_request *req);
uint64_t nbdsdk_request_get_length(nbdsdk_request *req);

/* Whether a data callback may block now: true on a worker thread and on
 * servers without workers; false while the request runs on the loop thread of
 * a server that can move it (nbdsdk_server_set_inline_first()), where a
 * callback that would block returns NBDSDK_WOULD_BLOCK instead. */
bool nbdsdk_request_may_block(nbdsdk_request *req);

/* Finish a request whose callback returned NBDSDK_DEFER: ERROR is 0 or a negative
 * errno. Safe from any thread, exactly once; on the thread that runs the
 * server's sd-event loop it makes no system call (the request continues in the
 * loop's next round), from others it wakes the loop. Returns 0, -EINVAL (NULL,
 * or ERROR positive), -EALREADY (not deferred, or completed already). */
int nbdsdk_request_complete(nbdsdk_request *req, int error);

/* Attach a human-readable reason to a failing request; clients that negotiated
 * structured replies receive it in the error chunk (at most 4096 bytes are sent).
 * Returns 0, -EINVAL, -ENOMEM. */
int nbdsdk_request_set_error_message(nbdsdk_request *req, const char *format, ...)
        __attribute__((format(printf, 2, 3)));

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
