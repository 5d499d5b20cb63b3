/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The transmission states: read request headers and payloads, hand requests
 * to the data path, and wind down on DISC or shutdown (spec "Transmission
 * phase"). Replies are queued by the requests themselves, in any order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

static bool conn_idle(const nbdsdk_conn *conn) {
        return conn->in_flight == 0 && outq_is_empty(&conn->out);
}

static conn_step payload_stalled(nbdsdk_conn *conn, int r) {
        if (r == 0)
                return STEP_BLOCK;
        conn_close(conn, "client disconnected in the middle of a request payload");
        return STEP_AGAIN;
}

conn_step state_req_header(nbdsdk_conn *conn) {
        if (conn_requests_blocked(conn))
                return STEP_BLOCK; /* back-pressure: read nothing until replies go out */
        size_t hsize = conn->extended ? 32 : 28;
        int r = conn_need(conn, hsize);
        if (r == 0) {
                if (conn->shutdown && conn_idle(conn) && conn->ipos == conn->iend)
                        conn_end(conn, "server shutdown: connection idle");
                return STEP_BLOCK;
        }
        if (r < 0) {
                if (r == -EPIPE && conn->ipos == conn->iend) {
                        conn_set_state(conn, CONN_DRAIN);
                        conn->disc = true;
                        log_debug("conn %llu: client closed without NBD_CMD_DISC", (unsigned long long) conn->id);
                } else
                        conn_close(conn, "client disconnected in the middle of a request header");
                return STEP_AGAIN;
        }
        const uint8_t *p = conn->ibuf + conn->ipos;
        uint32_t magic = wire_get32(p);
        uint32_t want = conn->extended ? NBDSDK_MAGIC_EXT_REQUEST : NBDSDK_MAGIC_REQUEST;
        if (magic != want) {
                conn_close(conn, "bad request magic 0x%08x (expected 0x%08x)", magic, want);
                return STEP_AGAIN;
        }
        nbdsdk_request *req = request_new(conn);
        if (!req) {
                conn_close(conn, "out of memory");
                return STEP_AGAIN;
        }
        req->wire_flags = wire_get16(p + 4);
        req->type = wire_get16(p + 6);
        req->cookie = wire_get64(p + 8);
        req->offset = wire_get64(p + 16);
        if (conn->extended) {
                req->length = wire_get64(p + 24);
                if (req->wire_flags & NBDSDK_CMD_FLAG_PAYLOAD_LEN)
                        req->payload_len = req->length;
        } else {
                req->length = wire_get32(p + 24);
                /* Compact headers: the command alone says whether a payload follows. */
                const command_entry *c;
                if (req->type == NBDSDK_CMD_WRITE ||
                    (req->type > NBDSDK_CMD_BLOCK_STATUS && (c = command_find(conn->server, req->type)) &&
                     (c->cmd.flags & NBDSDK_COMMAND_PAYLOAD)))
                        req->payload_len = req->length;
        }
        conn->ipos += hsize;
        conn->run_requests++;
        conn_touch(conn);
        if (conn->extended && req->type == NBDSDK_CMD_WRITE && !(req->wire_flags & NBDSDK_CMD_FLAG_PAYLOAD_LEN)) {
                /* Spec (extended headers): WRITE MUST carry PAYLOAD_LEN; without it
                 * there is no telling how much data follows. */
                request_free(req);
                conn_close(conn, "NBD_CMD_WRITE without NBD_CMD_FLAG_PAYLOAD_LEN under extended headers");
                return STEP_AGAIN;
        }
        if (req->payload_len > conn->server->max_payload && conn->extended) {
                /* Spec: an oversized payload SHOULD lead to a hard disconnect. */
                conn_close(conn, "request payload of %llu bytes is over the maximum",
                           (unsigned long long) req->payload_len);
                request_free(req);
                return STEP_AGAIN;
        }

        if (req->type == NBDSDK_CMD_DISC) {
                /* Spec: no reply; finish what is in flight, then close. */
                request_free(req);
                conn->disc = true;
                conn_set_state(conn, CONN_DRAIN);
                return STEP_AGAIN;
        }

        const char *msg = NULL;
        uint32_t err = conn->chain.n[NBDSDK_STAGE_RECEIVED] ? stages_received(req, &msg) : 0;
        if (err == 0)
                err = request_validate(req, &msg);
        /* Zero copy, or a buffer for the payload coming in or the data going out. */
        req->direct = err == 0 && conn->zero_copy &&
                      (req->type == NBDSDK_CMD_READ || (req->type == NBDSDK_CMD_WRITE && !(req->flags & NBDSDK_FUA)));
        uint64_t bufsize = req->direct ? 0 : req->payload_len ? req->payload_len
                                         : req->type == NBDSDK_CMD_READ ? req->length : 0;
        if (err == 0 && bufsize > 0) {
                if (request_reserve(req, bufsize) < 0) {
                        err = NBDSDK_ENOMEM;
                        msg = "out of memory for the request's data";
                } else {
                        req->bytes = bufsize;
                        conn->bytes_in_flight += bufsize;
                }
        }
        req->data = req->direct ? conn->exp.memory + req->offset : req->buf;
        if (err != 0) {
                request_fail(req, err, msg);
                if (req->payload_len > 0) {
                        /* The payload is on its way regardless: skip it to stay in sync. */
                        conn->discard_left = req->payload_len;
                        conn->cur = req;
                        conn_set_state(conn, CONN_REQ_DISCARD);
                } else
                        request_reply(req);
                return STEP_AGAIN;
        }
        if (req->payload_len > 0) {
                conn->cur = req;
                conn_set_state(conn, CONN_REQ_PAYLOAD);
                return STEP_AGAIN;
        }
        request_dispatch(req);
        return STEP_AGAIN;
}

conn_step state_req_payload(nbdsdk_conn *conn) {
        nbdsdk_request *req = conn->cur;
        int r = conn_fill_into(conn, req->data, req->payload_len, &req->buf_have);
        if (r <= 0)
                return payload_stalled(conn, r);
        conn->cur = NULL;
        conn_set_state(conn, CONN_REQ_HEADER);
        request_dispatch(req);
        return STEP_AGAIN;
}

conn_step state_req_discard(nbdsdk_conn *conn) {
        int r = conn_skip(conn);
        if (r <= 0)
                return payload_stalled(conn, r);
        nbdsdk_request *req = conn->cur;
        conn->cur = NULL;
        conn_set_state(conn, CONN_REQ_HEADER);
        request_reply(req);
        return STEP_AGAIN;
}

conn_step state_drain(nbdsdk_conn *conn) {
        if (conn_idle(conn)) {
                conn_end(conn, conn->disc ? "client disconnected" : "drained");
                return STEP_AGAIN;
        }
        return STEP_BLOCK;
}

conn_step state_flush_close(nbdsdk_conn *conn) {
        if (outq_is_empty(&conn->out)) {
                conn_end(conn, "option haggling ended");
                return STEP_AGAIN;
        }
        return STEP_BLOCK;
}

conn_step state_closed(nbdsdk_conn *conn) {
        (void) conn;
        return STEP_BLOCK;
}
