/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* struct nbdsdk_ops: what a backend fills in. See nbdsdk_ops(3). */
#ifndef NBDSDK_OPS_H
#define NBDSDK_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct nbdsdk_server nbdsdk_server;
typedef struct nbdsdk_conn nbdsdk_conn;
typedef struct nbdsdk_export nbdsdk_export;
typedef struct nbdsdk_request nbdsdk_request;
typedef struct nbdsdk_extents nbdsdk_extents;

/* Flags handed to the data callbacks (not the wire bits). */
#define NBDSDK_FUA        (1u << 0) /* pwrite, trim, zero: persist before returning */
#define NBDSDK_MAY_TRIM   (1u << 1) /* zero: the range may be deallocated */
#define NBDSDK_FAST_ZERO  (1u << 2) /* zero: fail with -ENOTSUP unless it is fast */
#define NBDSDK_REQ_ONE    (1u << 3) /* block_status: one extent is enough */

/* Levels returned by can_fua, can_zero and can_cache. */
#define NBDSDK_CAP_NONE    0 /* not offered to clients */
#define NBDSDK_CAP_EMULATE 1 /* offered; the library emulates it with other callbacks */
#define NBDSDK_CAP_NATIVE  2 /* offered; the callback does it itself */

/* Extent types for nbdsdk_extents_add(); the same bits as base:allocation. */
#define NBDSDK_EXTENT_HOLE (1u << 0) /* not allocated */
#define NBDSDK_EXTENT_ZERO (1u << 1) /* reads as zeroes */

/* A data callback returns this when it will finish the request later with
 * nbdsdk_request_complete() (asynchronous backends); an option handler when
 * it will send its final reply later (nbdsdk_option(3)). */
#define NBDSDK_DEFER 1

/* A data callback returns this instead of blocking when
 * nbdsdk_request_may_block() is false (it runs on the loop thread of a server
 * with worker threads and nbdsdk_server_set_inline_first()): the library
 * calls it again, with the same arguments, on a worker thread. */
#define NBDSDK_WOULD_BLOCK 2

/* Every callback is optional except get_size and pread (or map). Callbacks return 0 (or
 * the documented non-negative value) on success and a negative errno on
 * failure; the library maps errno values onto the NBD error set. Userdata is
 * the pointer given to nbdsdk_server_new() or nbdsdk_main(). The struct is
 * copied, and passed with its size, so that later versions can append fields. */
struct nbdsdk_ops {
        const char *name;             /* program name, for --help and logs */
        const char *version;          /* backend version, for --version */
        const char *config_help;      /* "key=VALUE  meaning" lines for --help */
        const char *magic_config_key; /* key a bare argument is given to */

        /* Configuration, before the server starts. */
        int (*config)(const char *key, const char *value, void *userdata);
        int (*config_complete)(void *userdata);

        /* Per connection, when a client selects an export. */
        int (*open)(nbdsdk_conn *conn, void *userdata);
        void (*close)(nbdsdk_conn *conn, void *userdata);
        int64_t (*get_size)(nbdsdk_conn *conn, void *userdata);
        int (*get_block_size)(nbdsdk_conn *conn, uint32_t *retminimum,
                              uint32_t *retpreferred, uint32_t *retmaximum, void *userdata);
        int (*can_write)(nbdsdk_conn *conn, void *userdata);
        int (*can_flush)(nbdsdk_conn *conn, void *userdata);
        int (*can_trim)(nbdsdk_conn *conn, void *userdata);
        int (*can_zero)(nbdsdk_conn *conn, void *userdata);      /* NBDSDK_CAP_* */
        int (*can_fast_zero)(nbdsdk_conn *conn, void *userdata);
        int (*can_fua)(nbdsdk_conn *conn, void *userdata);       /* NBDSDK_CAP_* */
        int (*can_cache)(nbdsdk_conn *conn, void *userdata);     /* NBDSDK_CAP_* */
        int (*can_multi_conn)(nbdsdk_conn *conn, void *userdata);
        int (*can_extents)(nbdsdk_conn *conn, void *userdata);
        int (*is_rotational)(nbdsdk_conn *conn, void *userdata);

        /* Data path. Requests reaching these are valid: in range, aligned,
         * advertised, and not writes to a read-only export. The library's
         * buffers (BUF) start on a 4096-byte boundary, on a 64-byte one below
         * 4096 bytes; a layer may pass on part of its own. */
        int (*pread)(nbdsdk_request *req, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, void *userdata);
        int (*pwrite)(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags, void *userdata);
        int (*flush)(nbdsdk_request *req, uint32_t flags, void *userdata);
        int (*trim)(nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags,
                    void *userdata);
        int (*zero)(nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags,
                    void *userdata);
        int (*cache)(nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags,
                     void *userdata);
        int (*block_status)(nbdsdk_request *req, uint64_t count, uint64_t offset,
                            uint32_t flags, nbdsdk_extents *extents, void *userdata);

        /* nbdsdk_main() only: START runs in the process that will serve (after
         * the fork into the background), before the server runs; start threads
         * here, not in config_complete, and register extensions (options,
         * commands, metadata namespaces). STOP runs once every connection has
         * finished. */
        int (*start)(nbdsdk_server *server, void *userdata);
        void (*stop)(nbdsdk_server *server, void *userdata);
        /* nbdsdk_main() only: SETUP runs once the server object exists, before
         * the command line is parsed: register config keys (nbdsdk_config(3))
         * and extensions here. */
        int (*setup)(nbdsdk_server *server, void *userdata);
        /* nbdsdk_main() with --config: NEW_EXPORT is called for each export
         * section after the first (which gets the program's userdata), before
         * its keys are applied; USERDATA is the program's. Put the new export's
         * userdata in *RETUSERDATA. Without it a file may hold one export. */
        int (*new_export)(nbdsdk_export *exp, void *userdata, void **retuserdata);
        /* When the server is freed: once for each export whose userdata is not
         * the server's own (those new_export made, or nbdsdk_server_add_export
         * was given), to free it. */
        void (*free_export)(nbdsdk_export *exp, void *userdata);

        /* Native snapshots, for the copy-on-write layer (cow=, see
         * nbdsdk_layer(3)): when CAN_SNAPSHOT returns 1 for a connection, the
         * cow layer calls SNAPSHOT_BEGIN instead of keeping an overlay and
         * leaves the connection's chain; from then on the backend itself keeps
         * the connection's writes away from the original data (a reflink
         * clone, a storage snapshot). SNAPSHOT_END runs when the connection
         * closes; whether the snapshot outlives it is the backend's choice. */
        int (*can_snapshot)(nbdsdk_conn *conn, void *userdata);
        int (*snapshot_begin)(nbdsdk_conn *conn, void *userdata);
        void (*snapshot_end)(nbdsdk_conn *conn, void *userdata);

        /* Memory backends (zero copy): MAP returns the address of the
         * export's first byte, its get_size bytes contiguous and mapped, for
         * reading and writing, as long as the connection is open; or NULL to be
         * served through pread and pwrite. With an address, the library sends
         * READ replies straight from this memory and receives WRITE payloads
         * straight into it, without calling pread or pwrite, whenever the
         * connection has no layers and no stages (and for writes without FUA);
         * otherwise it copies to and from the memory itself where pread or
         * pwrite is missing. Sparse reads from the memory take their holes
         * from block_status (the memory is not scanned for zeroes). Concurrent requests on overlapping ranges see each
         * other's bytes in any order, as the NBD spec allows. */
        void *(*map)(nbdsdk_conn *conn, void *userdata);
};

/* Append an extent of LENGTH bytes and TYPE (NBDSDK_EXTENT_* for base:allocation;
 * any 32-bit status for a context of your own, see nbdsdk_meta(3)) right after
 * the previous one (the first starts at the request's offset). Extents past
 * the requested range are ignored; adjacent extents of one type are merged.
 * Returns 0, -EINVAL (zero length, unknown type bits), -ENOMEM. */
int nbdsdk_extents_add(nbdsdk_extents *extents, uint64_t length, uint32_t type);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
