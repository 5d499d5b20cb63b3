/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every rule a request must pass before a callback sees it (spec "Request
 * types", "Block size constraints", "Error values"). */
#include "commands-internal.h"
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

/* The export range rules (spec "Request types"): past the end is ENOSPC for
 * writes and EINVAL otherwise; the minimum block size must be respected. */
static uint32_t validate_range(nbdsdk_request *req, bool writes, const char **retmsg) {
        const export_state *e = &req->conn->exp;
        if (req->offset > e->size || req->length > e->size - req->offset)
                FAIL(writes ? NBDSDK_ENOSPC : NBDSDK_EINVAL, "request runs past the end of the export");
        /* The tail of an export whose size is not a multiple is exempt. */
        uint64_t mask = e->min_block - 1;
        if ((req->offset & mask) || ((req->length & mask) && req->offset + req->length != e->size))
                FAIL(NBDSDK_EINVAL, "request not aligned to the minimum block size");
        return 0;
}

/* A registered private command (nbdsdk_command(3)). */
static uint32_t validate_private(nbdsdk_request *req, const char **retmsg) {
        nbdsdk_conn *conn = req->conn;
        const command_entry *c = req->type > NBDSDK_CMD_BLOCK_STATUS ? command_find(conn->server, req->type) : NULL;
        if (!c)
                FAIL(NBDSDK_EINVAL, "unknown command");
        if (!command_enabled(conn, c))
                FAIL(NBDSDK_EINVAL, "command not negotiated on this connection");
        uint32_t cf = c->cmd.flags;
        uint16_t allowed = (cf & NBDSDK_COMMAND_FUA) ? NBDSDK_CMD_FLAG_FUA : 0;
        if (conn->extended && (cf & NBDSDK_COMMAND_PAYLOAD))
                allowed |= NBDSDK_CMD_FLAG_PAYLOAD_LEN;
        if (req->wire_flags & ~allowed)
                FAIL(NBDSDK_EINVAL, "command flag not valid for this command");
        if (conn->extended && (cf & NBDSDK_COMMAND_PAYLOAD) && !(req->wire_flags & NBDSDK_CMD_FLAG_PAYLOAD_LEN))
                FAIL(NBDSDK_EINVAL, "this command needs NBD_CMD_FLAG_PAYLOAD_LEN");
        if ((cf & NBDSDK_COMMAND_WRITES) && !conn->exp.writable)
                FAIL(NBDSDK_EPERM, "the export is read-only");
        uint64_t max = c->cmd.max_length ? c->cmd.max_length : conn->exp.max_block;
        if (req->length > max)
                FAIL(NBDSDK_EINVAL, "request longer than this command allows");
        uint32_t err = (cf & NBDSDK_COMMAND_RANGE) ? validate_range(req, cf & NBDSDK_COMMAND_WRITES, retmsg) : 0;
        if (err)
                return err;
        req->command = c;
        req->flags = (req->wire_flags & NBDSDK_CMD_FLAG_FUA) ? NBDSDK_FUA : 0;
        return 0;
}

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
                return validate_private(req, retmsg);
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
                uint32_t err = validate_range(req, req->type == NBDSDK_CMD_WRITE ||
                                                   req->type == NBDSDK_CMD_WRITE_ZEROES, retmsg);
                if (err)
                        return err;
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
