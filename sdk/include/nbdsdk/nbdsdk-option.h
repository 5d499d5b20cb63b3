/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Extending option negotiation: handlers for NBD_OPT_* numbers, including
 * private ones and replacements of the built-in options. See nbdsdk_option(3). */
#ifndef NBDSDK_OPTION_H
#define NBDSDK_OPTION_H

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Handle OPTION's DATA (LENGTH bytes, at most the server's option payload
 * limit; valid during the call only) on CONN: send any number of replies
 * with nbdsdk_conn_option_reply(), ending with a final one (NBDSDK_REP_ACK or
 * an error), and return 0; or return NBDSDK_DEFER and send the rest, final
 * reply included, later from any thread (the connection reads no further
 * option meanwhile; hold a reference with nbdsdk_conn_ref() until the final
 * reply is sent); or return a negative errno to drop the connection. A
 * handler that returns 0 without a final reply makes the library answer
 * NBDSDK_REP_ERR_INVALID. */
typedef int (*nbdsdk_option_handler)(nbdsdk_conn *conn, uint32_t option, const void *data,
                                     size_t length, void *userdata);

/* Let HANDLER answer OPTION; NAME is for logs. With NBDSDK_OPTION_REPLACE an
 * existing handler (a built-in one too) is replaced, and comes back when this
 * registration is dropped. RETSLOT (may be NULL) receives a slot that undoes
 * the registration (nbdsdk_slot(3)). Returns 0, -EINVAL, -EEXIST (taken and
 * not REPLACE), -EBUSY (the server runs), -ENOMEM. */
#define NBDSDK_OPTION_REPLACE (1u << 0)
int nbdsdk_server_add_option(nbdsdk_server *server, uint32_t option, const char *name,
                             nbdsdk_option_handler handler, void *userdata, unsigned flags,
                             nbdsdk_slot **retslot);

/* From a handler registered with NBDSDK_OPTION_REPLACE, while it runs and
 * before it replied itself: let the handler it replaced (a built-in one, or
 * an earlier extension's) answer the option, with DATA and LENGTH (the
 * handler's own, or rewritten ones), and return what that handler returned,
 * which the caller returns in turn; it replies nothing after. Returns
 * -EINVAL when called elsewhere (no handler running, one that replaced
 * nothing, after a reply of its own or after NBDSDK_DEFER). */
int nbdsdk_conn_option_next(nbdsdk_conn *conn, const void *data, size_t length);

/* Reply to the option being handled with TYPE (NBDSDK_REP_*) and DATA
 * (copied). Error types (bit 31) and ACK are final. From the handler, or,
 * after it returned NBDSDK_DEFER, from any thread. Returns 0, -EINVAL (no
 * option is being handled, or a reply after the final one), -ENOTCONN (the
 * connection has closed), -ENOMEM. */
int nbdsdk_conn_option_reply(nbdsdk_conn *conn, uint32_t type, const void *data, size_t length);
/* The same for an error TYPE carrying a printf-style message. */
int nbdsdk_conn_option_error(nbdsdk_conn *conn, uint32_t type, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
