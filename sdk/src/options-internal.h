/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The option registry: NBD_OPT_* number -> handler. The built-in options are
 * registered through it like any extension's. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>

/* A handler reads the payload (already validated against the size limit),
 * queues its replies with option_reply*() and returns 0; or returns a
 * negative errno to drop the connection (a hard disconnect). */
typedef int (*option_handler)(nbdsdk_conn *conn, uint32_t option, const uint8_t *data,
                              size_t len, void *userdata);

#define OPTION_DIRECT 32

/* One registration. An option's handlers form a stack: the newest answers,
 * and the ones it replaced come back when it is removed. */
typedef struct option_entry option_entry;
struct option_entry {
        option_handler fn;
        void *userdata;
        const char *name;
        option_entry *replaced;  /* the registration this one replaced, or NULL */
};

typedef struct {
        option_entry *direct[OPTION_DIRECT];
        struct option_far {
                uint32_t option;
                option_entry *entry;
        } *far;
        size_t n_far;
} option_registry;

/* Returns 0 with *RETENTRY (may be NULL), -EEXIST (taken and REPLACE false),
 * -ENOMEM. */
int option_registry_add(option_registry *r, uint32_t option, const char *name, option_handler fn,
                        void *userdata, bool replace, option_entry **retentry);
/* Remove ENTRY, registered for OPTION; what it replaced answers again. */
void option_registry_remove(option_registry *r, uint32_t option, option_entry *entry);
const option_entry *option_registry_find(const option_registry *r, uint32_t option);
void option_registry_fini(option_registry *r);
/* Register the built-in options (option-*.c). */
int options_register_builtin(option_registry *r);

/* The replies of an extension's option handler (option-replies.c). They are
 * queued under LOCK, so that after NBDSDK_DEFER they may come from any
 * thread, and the loop thread moves them to the output. */
typedef struct option_reply_item option_reply_item;
typedef struct {
        pthread_mutex_t lock;
        bool open;               /* an option is being answered and has no final reply yet */
        bool deferred;           /* its handler returned NBDSDK_DEFER: a reply wakes the loop */
        bool closed;             /* the connection is gone */
        option_reply_item *first, *last;
} option_replies;

void option_replies_init(option_replies *q);
void option_replies_fini(option_replies *q);
/* Before a handler runs: take replies for the option CONN is reading. */
void option_replies_open(nbdsdk_conn *conn);
/* Queue a reply (any thread). Returns 0, -EINVAL (no option is open, or it
 * had its final reply), -ENOTCONN (the connection is gone), -ENOMEM. */
int option_replies_push(nbdsdk_conn *conn, uint32_t type, const void *data, size_t len);
/* Loop thread: move the queued replies to the output. With WAIT false the
 * option is over (later replies are refused); with WAIT true, after
 * NBDSDK_DEFER, replies from other threads wake the loop. Returns true while
 * the option waits for its final reply. */
bool option_replies_take(nbdsdk_conn *conn, bool wait);
/* Nothing was queued yet for the open option. */
bool option_replies_untouched(nbdsdk_conn *conn);
/* The connection closed: drop what is queued, refuse the rest. */
void option_replies_close(option_replies *q);

/* Reply helpers (fixed newstyle option replies). DATA is copied. */
static inline bool option_reply_is_final(uint32_t type) {
        return type == NBDSDK_REP_ACK || (type & NBDSDK_REP_FLAG_ERROR);
}
int option_reply(nbdsdk_conn *conn, uint32_t option, uint32_t type, const void *data, size_t len);
/* A reply whose data is HEAD followed by DATA (e.g. a type or id, then a name). */
int option_reply_parts(nbdsdk_conn *conn, uint32_t option, uint32_t type, const void *head, size_t hlen,
                       const void *data, size_t len);
int option_reply_error(nbdsdk_conn *conn, uint32_t option, uint32_t type, const char *format, ...)
        __attribute__((format(printf, 4, 5)));

/* The export name opening INFO, GO and *_META_CONTEXT data: a 32-bit length,
 * the name, then at least TRAILER more bytes. Returns 0 with *RETNAME
 * (malloc'd) and *RETEND (the offset after the name); 1 when it has sent an
 * error reply instead; or -ENOMEM. */
int option_parse_export_name(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                             size_t trailer, char **retname, size_t *retend);

/* The built-in handlers. */
int option_export_name(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_info_go(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_list(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_abort(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_starttls(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_structured_reply(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_extended_headers(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
int option_meta_context(nbdsdk_conn *, uint32_t, const uint8_t *, size_t, void *);
