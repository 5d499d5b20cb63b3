/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The frame of the log, statistics and error layers: every command passed
 * down unchanged, with a hook before (which may fail it) and one after. */
#include <errno.h>
#include <time.h>
#include "layer-builtin-internal.h"
#include "layers-internal.h"

const char *wrap_command_name(unsigned command) {
        static const char *const names[] = {
                [NBDSDK_CMD_READ] = "read", [NBDSDK_CMD_WRITE] = "write", [NBDSDK_CMD_FLUSH] = "flush",
                [NBDSDK_CMD_TRIM] = "trim", [NBDSDK_CMD_CACHE] = "cache", [NBDSDK_CMD_WRITE_ZEROES] = "zero",
                [NBDSDK_CMD_BLOCK_STATUS] = "block-status",
        };
        return command < sizeof names / sizeof *names ? names[command] : NULL;
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* Run CALL between the hooks. */
#define WRAP(command, count, offset, flags, call) \
        do { \
                const wrap_hooks *h = data; \
                uint64_t t0 = now_ns(); \
                int r = h->before ? h->before(req, (command), (count), (offset), (flags), data) : 0; \
                if (r == 0) \
                        r = (call); \
                if (h->after) \
                        h->after(req, (command), (count), r, now_ns() - t0, data); \
                return r; \
        } while (0)

static int wrap_pread(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags, void *data) {
        WRAP(NBDSDK_CMD_READ, count, offset, flags, nbdsdk_next_pread(next, req, buf, count, offset, flags));
}

static int wrap_pwrite(nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count, uint64_t offset,
                       uint32_t flags, void *data) {
        WRAP(NBDSDK_CMD_WRITE, count, offset, flags, nbdsdk_next_pwrite(next, req, buf, count, offset, flags));
}

static int wrap_flush(nbdsdk_request *req, nbdsdk_next *next, uint32_t flags, void *data) {
        WRAP(NBDSDK_CMD_FLUSH, 0, 0, flags, nbdsdk_next_flush(next, req, flags));
}

static int wrap_trim(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset, uint32_t flags,
                     void *data) {
        WRAP(NBDSDK_CMD_TRIM, count, offset, flags, nbdsdk_next_trim(next, req, count, offset, flags));
}

static int wrap_zero(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset, uint32_t flags,
                     void *data) {
        WRAP(NBDSDK_CMD_WRITE_ZEROES, count, offset, flags, nbdsdk_next_zero(next, req, count, offset, flags));
}

static int wrap_cache(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset, uint32_t flags,
                      void *data) {
        WRAP(NBDSDK_CMD_CACHE, count, offset, flags, nbdsdk_next_cache(next, req, count, offset, flags));
}

static int wrap_block_status(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset,
                             uint32_t flags, nbdsdk_extents *extents, void *data) {
        WRAP(NBDSDK_CMD_BLOCK_STATUS, count, offset, flags,
             nbdsdk_next_block_status(next, req, count, offset, flags, extents));
}

static int wrap_capability(nbdsdk_next *next, int which, int below, void *data) {
        (void) next;
        (void) data;
        return layers_pass_capability(which, below);
}

struct nbdsdk_layer layer_wrap(const char *name, int priority, void (*report)(void *), void (*unload)(void *)) {
        return (struct nbdsdk_layer) {
                .name = name, .priority = priority, .capability = wrap_capability,
                .pread = wrap_pread, .pwrite = wrap_pwrite, .flush = wrap_flush, .trim = wrap_trim,
                .zero = wrap_zero, .cache = wrap_cache, .block_status = wrap_block_status,
                .report = report, .unload = unload,
        };
}
