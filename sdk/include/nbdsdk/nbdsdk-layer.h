/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Data-path layers: code stacked between the client's requests and the
 * backend, each reaching the layer below through nbdsdk_next_*() calls.
 * See nbdsdk_layer(3). */
#ifndef NBDSDK_LAYER_H
#define NBDSDK_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* The layer below a layer, on one connection. */
typedef struct nbdsdk_next nbdsdk_next;

/* Capabilities, for struct nbdsdk_layer.capability and nbdsdk_next_get_capability().
 * WRITE ... EXTENTS and ROTATIONAL are 0 or 1; ZERO, FUA and CACHE are NBDSDK_CAP_*. */
#define NBDSDK_CAN_WRITE      0
#define NBDSDK_CAN_FLUSH      1
#define NBDSDK_CAN_TRIM       2
#define NBDSDK_CAN_ZERO       3
#define NBDSDK_CAN_FAST_ZERO  4
#define NBDSDK_CAN_FUA        5
#define NBDSDK_CAN_CACHE      6
#define NBDSDK_CAN_MULTI_CONN 7
#define NBDSDK_CAN_EXTENTS    8
#define NBDSDK_IS_ROTATIONAL  9

/* The built-in layers' priorities (struct nbdsdk_layer.priority), for
 * placing a layer among them: the request log nearest the client, then
 * statistics, then error injection, then copy-on-write right over the
 * backend. */
#define NBDSDK_PRIORITY_LOG    500
#define NBDSDK_PRIORITY_STATS 1000
#define NBDSDK_PRIORITY_ERROR 2000
#define NBDSDK_PRIORITY_COW   3000

/* From a layer's open: leave this layer out of the connection's chain. */
#define NBDSDK_LAYER_SKIP 1

/* Every callback is optional: a data callback a layer leaves NULL passes the
 * request to the layer below unchanged. DATA is the pointer given to
 * nbdsdk_export_add_layer(). Data callbacks get the request being served
 * and return 0, a negative errno, or NBDSDK_DEFER (then finish it with
 * nbdsdk_request_complete()). The struct is copied, and passed with its size,
 * so that later versions can append fields. */
struct nbdsdk_layer {
        const char *name;
        int priority;      /* lower sits nearer the client; ties in the order added */

        /* Per connection, after the layers below have opened: 0, NBDSDK_LAYER_SKIP,
         * or a negative errno (the client's export selection fails). */
        int (*open)(nbdsdk_conn *conn, nbdsdk_next *next, void *data);
        void (*close)(nbdsdk_conn *conn, void *data);
        /* The size this layer shows; NULL: the size below. */
        int64_t (*get_size)(nbdsdk_next *next, void *data);
        /* Capability WHICH (NBDSDK_CAN_*) as this layer offers it, given BELOW,
         * the value of the layer below; NULL: BELOW for everything. Asked once
         * per connection and cached. */
        int (*capability)(nbdsdk_next *next, int which, int below, void *data);

        int (*pread)(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count,
                     uint64_t offset, uint32_t flags, void *data);
        int (*pwrite)(nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count,
                      uint64_t offset, uint32_t flags, void *data);
        int (*flush)(nbdsdk_request *req, nbdsdk_next *next, uint32_t flags, void *data);
        int (*trim)(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset,
                    uint32_t flags, void *data);
        int (*zero)(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset,
                    uint32_t flags, void *data);
        int (*cache)(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset,
                     uint32_t flags, void *data);
        int (*block_status)(nbdsdk_request *req, nbdsdk_next *next, uint64_t count,
                            uint64_t offset, uint32_t flags, nbdsdk_extents *extents, void *data);

        /* nbdsdk_main() calls this on SIGUSR1 (e.g. to write statistics). */
        void (*report)(void *data);
        /* The layer is gone (its slot dropped, or the server freed). */
        void (*unload)(void *data);
};

/* Stack LAYER (copied; LAYER_SIZE is sizeof(struct nbdsdk_layer)) on EXP.
 * Exports with layers run their requests on worker threads (4 unless
 * nbdsdk_server_set_threads() says otherwise), because a layer waits for the
 * layer below. Returns 0, -EINVAL (NULL, no name), -EBUSY (the server runs),
 * -ENOMEM. RETSLOT may be NULL (see nbdsdk_slot(3)). */
int nbdsdk_export_add_layer(nbdsdk_export *exp, const struct nbdsdk_layer *layer,
                            size_t layer_size, void *data, nbdsdk_slot **retslot);

/* The layer below: calls from a layer's callbacks, on the request being
 * served. Each runs the layer below to completion (waiting if it defers),
 * with the library's emulation of what that layer lacks (FUA by flushing,
 * zeroes by writing, cache by reading). They return 0 or a negative errno:
 * -EINVAL (NULL, a range past the end, unknown flags), -EOPNOTSUPP (the layer
 * below does not offer it), or the layer below's error. */
nbdsdk_conn *nbdsdk_next_get_conn(nbdsdk_next *next);
int64_t nbdsdk_next_get_size(nbdsdk_next *next);
int nbdsdk_next_get_capability(nbdsdk_next *next, int which); /* -EINVAL for unknown WHICH */
int nbdsdk_next_pread(nbdsdk_next *next, nbdsdk_request *req, void *buf, uint64_t count,
                      uint64_t offset, uint32_t flags);
int nbdsdk_next_pwrite(nbdsdk_next *next, nbdsdk_request *req, const void *buf, uint64_t count,
                       uint64_t offset, uint32_t flags);
int nbdsdk_next_flush(nbdsdk_next *next, nbdsdk_request *req, uint32_t flags);
int nbdsdk_next_trim(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset,
                     uint32_t flags);
int nbdsdk_next_zero(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset,
                     uint32_t flags);
int nbdsdk_next_cache(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset,
                      uint32_t flags);
/* Fills EXTENTS (made with nbdsdk_extents_new() for the same range). */
int nbdsdk_next_block_status(nbdsdk_next *next, nbdsdk_request *req, uint64_t count,
                             uint64_t offset, uint32_t flags, nbdsdk_extents *extents);

/* A list of base:allocation extents for OFFSET..OFFSET+LENGTH, for asking the
 * layer below. new returns 0, -EINVAL, -ENOMEM; free takes NULL. count is the
 * number of extents; get fills the I-th's offset, length and type and returns
 * 0 or -EINVAL (I out of range). */
int nbdsdk_extents_new(uint64_t offset, uint64_t length, nbdsdk_extents **retextents);
void nbdsdk_extents_free(nbdsdk_extents *extents);
size_t nbdsdk_extents_count(nbdsdk_extents *extents);
int nbdsdk_extents_get(nbdsdk_extents *extents, size_t i, uint64_t *retoffset, uint64_t *retlength,
                       uint32_t *rettype);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
