/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_next_*(): a layer's calls to the level below, each a run of the
 * data path at that level, to its end. */
#include <errno.h>
#include "conn-internal.h"
#include "layers-internal.h"
#include "request-internal.h"

nbdsdk_conn *nbdsdk_next_get_conn(nbdsdk_next *next) { return next ? next->conn : NULL; }

int64_t nbdsdk_next_get_size(nbdsdk_next *next) { return next ? (int64_t) next->caps.size : -EINVAL; }

int nbdsdk_next_get_capability(nbdsdk_next *next, int which) {
        if (!next)
                return -EINVAL;
        const export_state *c = &next->caps;
        switch (which) {
        case NBDSDK_CAN_WRITE: return c->writable;
        case NBDSDK_CAN_FLUSH: return c->flush;
        case NBDSDK_CAN_TRIM: return c->trim;
        case NBDSDK_CAN_ZERO: return c->zero;
        case NBDSDK_CAN_FAST_ZERO: return c->fast_zero;
        case NBDSDK_CAN_FUA: return c->fua;
        case NBDSDK_CAN_CACHE: return c->cache;
        case NBDSDK_CAN_MULTI_CONN: return c->multi_conn;
        case NBDSDK_CAN_EXTENTS: return c->extents;
        case NBDSDK_IS_ROTATIONAL: return c->rotational;
        default: return -EINVAL;
        }
}

/* Check a call and run it below. ALLOWED are the flags the command takes. */
static int run_below(nbdsdk_next *next, nbdsdk_request *req, uint16_t type, void *buf, uint64_t count,
                     uint64_t offset, uint32_t flags, uint32_t allowed, nbdsdk_extents *x) {
        if (!next || !req || req->conn != next->conn || (flags & ~allowed))
                return -EINVAL;
        const export_state *c = &next->caps;
        bool ranged = type != NBDSDK_CMD_FLUSH;
        if (ranged && (count == 0 || offset > c->size || count > c->size - offset))
                return -EINVAL;
        bool offered;
        switch (type) {
        case NBDSDK_CMD_WRITE: offered = c->writable; break;
        case NBDSDK_CMD_FLUSH: offered = c->flush; break;
        case NBDSDK_CMD_TRIM: offered = c->trim; break;
        case NBDSDK_CMD_WRITE_ZEROES:
                offered = c->zero != NBDSDK_CAP_NONE && (c->fast_zero || !(flags & NBDSDK_FAST_ZERO));
                break;
        case NBDSDK_CMD_CACHE: offered = c->cache != NBDSDK_CAP_NONE; break;
        default: offered = true; break;
        }
        if (!offered)
                return -EOPNOTSUPP;
        if ((flags & NBDSDK_FUA) && c->fua == NBDSDK_CAP_NONE)
                return -EOPNOTSUPP;
        dp_op op = { .type = type, .flags = flags, .buf = buf, .offset = offset, .length = count,
                     .level = next->index, .extents = x };
        return datapath_run_sync(req, &op);
}

int nbdsdk_next_pread(nbdsdk_next *next, nbdsdk_request *req, void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags) {
        if (!buf)
                return -EINVAL;
        return run_below(next, req, NBDSDK_CMD_READ, buf, count, offset, flags, 0, NULL);
}

int nbdsdk_next_pwrite(nbdsdk_next *next, nbdsdk_request *req, const void *buf, uint64_t count, uint64_t offset,
                       uint32_t flags) {
        if (!buf)
                return -EINVAL;
        return run_below(next, req, NBDSDK_CMD_WRITE, (void *) buf, count, offset, flags, NBDSDK_FUA, NULL);
}

int nbdsdk_next_flush(nbdsdk_next *next, nbdsdk_request *req, uint32_t flags) {
        return run_below(next, req, NBDSDK_CMD_FLUSH, NULL, 0, 0, flags, 0, NULL);
}

int nbdsdk_next_trim(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags) {
        return run_below(next, req, NBDSDK_CMD_TRIM, NULL, count, offset, flags, NBDSDK_FUA, NULL);
}

int nbdsdk_next_zero(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags) {
        return run_below(next, req, NBDSDK_CMD_WRITE_ZEROES, NULL, count, offset, flags,
                         NBDSDK_FUA | NBDSDK_MAY_TRIM | NBDSDK_FAST_ZERO, NULL);
}

int nbdsdk_next_cache(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset, uint32_t flags) {
        return run_below(next, req, NBDSDK_CMD_CACHE, NULL, count, offset, flags, 0, NULL);
}

int nbdsdk_next_block_status(nbdsdk_next *next, nbdsdk_request *req, uint64_t count, uint64_t offset,
                             uint32_t flags, nbdsdk_extents *extents) {
        if (!extents || extents->any_status || extents->start != offset || extents->end - extents->start != count)
                return -EINVAL;
        extents_init(extents, offset, count);
        return run_below(next, req, NBDSDK_CMD_BLOCK_STATUS, NULL, count, offset, flags, NBDSDK_REQ_ONE, extents);
}
