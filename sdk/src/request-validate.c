/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every rule a request must pass before a callback sees it (spec "Request
 * types", "Block size constraints", "Error values"). */
#include "conn-internal.h"
#include "request-internal.h"
#include "server-internal.h"

/* Which flags each command may carry (besides FUA, allowed on any command
 * once advertised, and PAYLOAD_LEN, checked separately). */
static uint16_t command_flags(uint16_t type) {
        switch (type) {
        case NBDSDK_CMD_READ: return NBDSDK_CMD_FLAG_DF;
        case NBDSDK_CMD_WRITE_ZEROES: return NBDSDK_CMD_FLAG_NO_HOLE | NBDSDK_CMD_FLAG_FAST_ZERO;
        case NBDSDK_CMD_BLOCK_STATUS: return NBDSDK_CMD_FLAG_REQ_ONE;
        default: return 0;
        }
}

static bool command_writes(uint16_t type) {
        return type == NBDSDK_CMD_WRITE || type == NBDSDK_CMD_TRIM || type == NBDSDK_CMD_WRITE_ZEROES;
}

#define FAIL(err, text) do { *retmsg = (text); return (err); } while (0)

uint32_t request_validate(nbdsdk_request *req, const char **retmsg) {
        nbdsdk_conn *conn = req->conn;
        const export_state *e = &conn->exp;
        uint16_t f = req->wire_flags;

        if (conn->shutdown || conn->server->shutting_down)
                FAIL(NBDSDK_ESHUTDOWN, "the server is shutting down");

        /* Is the command known and advertised? */
        switch (req->type) {
        case NBDSDK_CMD_READ:
        case NBDSDK_CMD_WRITE:
                break;
        case NBDSDK_CMD_FLUSH:
                if (!e->flush)
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_FLUSH was not advertised");
                break;
        case NBDSDK_CMD_TRIM:
                if (!e->trim && e->writable)
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_TRIM was not advertised");
                break;
        case NBDSDK_CMD_CACHE:
                if (e->cache == NBDSDK_CAP_NONE)
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_CACHE was not advertised");
                break;
        case NBDSDK_CMD_WRITE_ZEROES:
                if (e->zero == NBDSDK_CAP_NONE && e->writable)
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_WRITE_ZEROES was not advertised");
                break;
        case NBDSDK_CMD_BLOCK_STATUS:
                if (!meta_selection_any(&conn->meta))
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_BLOCK_STATUS without a selected metadata context");
                break;
        default:
                FAIL(NBDSDK_EINVAL, "unknown command");
        }

        /* Flags: known, allowed for this command, advertised. */
        uint16_t allowed = command_flags(req->type) | NBDSDK_CMD_FLAG_FUA;
        if (conn->extended && req->type == NBDSDK_CMD_WRITE)
                allowed |= NBDSDK_CMD_FLAG_PAYLOAD_LEN;
        if (f & NBDSDK_CMD_FLAG_PAYLOAD_LEN && !(allowed & NBDSDK_CMD_FLAG_PAYLOAD_LEN))
                FAIL(NBDSDK_EINVAL, "this command takes no payload");
        if (f & ~allowed)
                FAIL(NBDSDK_EINVAL, "command flag not valid for this command");
        if ((f & NBDSDK_CMD_FLAG_FUA) && e->fua == NBDSDK_CAP_NONE)
                FAIL(NBDSDK_EINVAL, "NBD_CMD_FLAG_FUA was not advertised");
        if ((f & NBDSDK_CMD_FLAG_DF) && !conn->structured)
                FAIL(NBDSDK_EINVAL, "NBD_CMD_FLAG_DF needs structured replies");
        if ((f & NBDSDK_CMD_FLAG_FAST_ZERO) && !e->fast_zero)
                FAIL(NBDSDK_EINVAL, "NBD_CMD_FLAG_FAST_ZERO was not advertised");

        if (command_writes(req->type) && !e->writable)
                FAIL(NBDSDK_EPERM, "the export is read-only");

        if (req->type == NBDSDK_CMD_FLUSH) {
                if (req->offset != 0 || req->length != 0)
                        FAIL(NBDSDK_EINVAL, "NBD_CMD_FLUSH with a nonzero offset or length");
        } else {
                if (req->length == 0)
                        FAIL(NBDSDK_EINVAL, "zero-length request");
                if (req->offset > e->size || req->length > e->size - req->offset) {
                        if (req->type == NBDSDK_CMD_WRITE || req->type == NBDSDK_CMD_WRITE_ZEROES)
                                FAIL(NBDSDK_ENOSPC, "request runs past the end of the export");
                        FAIL(NBDSDK_EINVAL, "request runs past the end of the export");
                }
                /* The tail of an export whose size is not a multiple is exempt. */
                uint64_t mask = e->min_block - 1;
                if ((req->offset & mask) ||
                    ((req->length & mask) && req->offset + req->length != e->size))
                        FAIL(NBDSDK_EINVAL, "request not aligned to the minimum block size");
                if ((req->type == NBDSDK_CMD_READ || req->type == NBDSDK_CMD_WRITE) &&
                    req->length > e->max_block)
                        FAIL(NBDSDK_EINVAL, "request longer than the maximum payload");
        }

        /* Flags for the callbacks. */
        req->flags = 0;
        if ((f & NBDSDK_CMD_FLAG_FUA) && command_writes(req->type))
                req->flags |= NBDSDK_FUA;
        if (req->type == NBDSDK_CMD_WRITE_ZEROES && !(f & NBDSDK_CMD_FLAG_NO_HOLE))
                req->flags |= NBDSDK_MAY_TRIM;
        if (f & NBDSDK_CMD_FLAG_FAST_ZERO)
                req->flags |= NBDSDK_FAST_ZERO;
        if (f & NBDSDK_CMD_FLAG_REQ_ONE)
                req->flags |= NBDSDK_REQ_ONE;
        return 0;
}
