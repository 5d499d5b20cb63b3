/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encoding a request's reply: simple, structured (spec "Structured reply
 * chunk message") or with extended headers; the request is freed when the
 * last byte of its reply has been written. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "request-internal.h"
#include "wire-internal.h"

/* The reply's last byte is written (or, on a closed connection, dropped). */
static void release_request(void *owner) {
        nbdsdk_request *req = owner;
        if (req->conn->chain.n[NBDSDK_STAGE_AFTER_REPLY] && !conn_is_closed(req->conn))
                stages_after_reply(req);
        request_free(req);
}

/* Queue one piece of REQ's reply; LAST hands the request to the queue.
 * Returns false (with the connection closed and REQ freed) on failure. */
static bool push(nbdsdk_request *req, const uint8_t *head, size_t hlen, const void *data,
                 size_t dlen, bool last) {
        nbdsdk_conn *conn = req->conn;
        int r = outq_push(&conn->out, head, hlen, data, dlen, last ? release_request : NULL,
                          last ? req : NULL);
        if (r < 0) {
                if (!last)
                        request_free(req);
                conn_close(conn, "out of memory queueing a reply");
                return false;
        }
        return true;
}

/* A structured chunk header (20 bytes) or extended one (32 bytes). */
static size_t chunk_header(nbdsdk_request *req, uint8_t *h, uint16_t flags, uint16_t type,
                           uint64_t payload_len) {
        if (req->conn->extended) {
                wire_put32(h, NBDSDK_MAGIC_EXT_REPLY);
                wire_put16(h + 4, flags);
                wire_put16(h + 6, type);
                wire_put64(h + 8, req->cookie);
                wire_put64(h + 16, req->offset);
                wire_put64(h + 24, payload_len);
                return 32;
        }
        wire_put32(h, NBDSDK_MAGIC_STRUCTURED_REPLY);
        wire_put16(h + 4, flags);
        wire_put16(h + 6, type);
        wire_put64(h + 8, req->cookie);
        wire_put32(h + 16, (uint32_t) payload_len);
        return 20;
}

static void reply_simple(nbdsdk_request *req) {
        uint8_t h[16];
        wire_put32(h, NBDSDK_MAGIC_SIMPLE_REPLY);
        wire_put32(h + 4, req->error);
        wire_put64(h + 8, req->cookie);
        const void *data = NULL;
        size_t len = 0;
        if (req->error == 0 && req->type == NBDSDK_CMD_READ) {
                data = req->data;
                len = req->length;
        } else if (req->error == 0) {
                data = req->reply_data;
                len = req->reply_data_len;
        }
        push(req, h, sizeof h, data, len, true);
}

static void reply_error_chunk(nbdsdk_request *req) {
        uint8_t h[OUT_HEAD_MAX];
        size_t mlen = req->error_msg ? strlen(req->error_msg) : 0;
        size_t n = chunk_header(req, h, NBDSDK_REPLY_FLAG_DONE, NBDSDK_REPLY_TYPE_ERROR, 6 + mlen);
        wire_put32(h + n, req->error);
        wire_put16(h + n + 4, (uint16_t) mlen);
        push(req, h, n + 6, req->error_msg, mlen, true);
}

static void reply_done_chunk(nbdsdk_request *req) {
        uint8_t h[OUT_HEAD_MAX];
        size_t n = chunk_header(req, h, NBDSDK_REPLY_FLAG_DONE, NBDSDK_REPLY_TYPE_NONE, 0);
        push(req, h, n, NULL, 0, true);
}

static bool push_data_chunk(nbdsdk_request *req, uint64_t off, uint64_t len, bool last) {
        uint8_t h[OUT_HEAD_MAX];
        size_t n = chunk_header(req, h, last ? NBDSDK_REPLY_FLAG_DONE : 0, NBDSDK_REPLY_TYPE_OFFSET_DATA, 8 + len);
        wire_put64(h + n, off);
        return push(req, h, n + 8, (char *) req->data + (off - req->offset), len, last);
}

static bool push_hole_chunk(nbdsdk_request *req, uint64_t off, uint64_t len, bool last) {
        uint8_t h[OUT_HEAD_MAX];
        size_t n = chunk_header(req, h, last ? NBDSDK_REPLY_FLAG_DONE : 0, NBDSDK_REPLY_TYPE_OFFSET_HOLE, 12);
        wire_put64(h + n, off);
        wire_put32(h + n + 8, (uint32_t) len);
        return push(req, h, n + 12, NULL, 0, last);
}

/* A read: one data chunk, or (sparse reads) data and hole chunks following
 * the extents the data path found; consecutive data extents are merged. */
static void reply_read(nbdsdk_request *req) {
        const nbdsdk_extents *x = &req->extents;
        if (x->n == 0) {
                push_data_chunk(req, req->offset, req->length, true);
                return;
        }
        uint64_t off = req->offset;
        size_t i = 0;
        while (i < x->n) {
                bool zero = x->v[i].type & NBDSDK_EXTENT_ZERO;
                uint64_t len = 0;
                while (i < x->n && !!(x->v[i].type & NBDSDK_EXTENT_ZERO) == zero)
                        len += x->v[i++].length;
                bool last = i == x->n;
                if (!(zero ? push_hole_chunk(req, off, len, last) : push_data_chunk(req, off, len, last)))
                        return;
                off += len;
        }
}

/* One chunk per selected context, the last one final. */
static void reply_block_status(nbdsdk_request *req) {
        bool ext = req->conn->extended;
        size_t esize = ext ? 16 : 8, total = 0;
        for (size_t c = 0; c < req->n_contexts; c++)
                total += req->contexts[c].n;
        uint8_t *p = malloc(total * esize);
        if (!p) {
                request_fail(req, NBDSDK_ENOMEM, "out of memory for the block status reply");
                reply_error_chunk(req);
                return;
        }
        req->reply_buf = p;
        for (size_t c = 0; c < req->n_contexts; c++) {
                const nbdsdk_extents *x = &req->contexts[c];
                size_t n = (req->flags & NBDSDK_REQ_ONE) && x->n > 1 ? 1 : x->n;
                uint8_t *start = p;
                for (size_t i = 0; i < n; i++, p += esize) {
                        if (ext) {
                                wire_put64(p, x->v[i].length);
                                wire_put64(p + 8, x->v[i].type);
                        } else {
                                /* Compact requests are shorter than 4 GiB, and so are their extents. */
                                wire_put32(p, (uint32_t) x->v[i].length);
                                wire_put32(p + 4, x->v[i].type);
                        }
                }
                uint8_t h[OUT_HEAD_MAX];
                size_t extra = ext ? 8 : 4;
                bool last = c + 1 == req->n_contexts;
                size_t hl = chunk_header(req, h, last ? NBDSDK_REPLY_FLAG_DONE : 0,
                                         ext ? NBDSDK_REPLY_TYPE_BLOCK_STATUS_EXT : NBDSDK_REPLY_TYPE_BLOCK_STATUS,
                                         extra + n * esize);
                wire_put32(h + hl, (uint32_t) c + 1); /* the context's id */
                if (ext)
                        wire_put32(h + hl + 4, (uint32_t) n);
                if (!push(req, h, hl + extra, start, n * esize, last))
                        return;
        }
}

void request_reply(nbdsdk_request *req) {
        nbdsdk_conn *conn = req->conn;
        if (conn_is_closed(conn)) {
                request_free(req);
                return;
        }
        if (req->type != NBDSDK_CMD_READ || req->error)
                request_drop_buffer(req); /* the reply sends nothing from it */
        if (!conn->structured)
                reply_simple(req);
        else if (req->error)
                reply_error_chunk(req);
        else if (req->type == NBDSDK_CMD_READ)
                reply_read(req);
        else if (req->type == NBDSDK_CMD_BLOCK_STATUS)
                reply_block_status(req);
        else if (req->reply_data_len) {
                /* A private command's data, as one data chunk at the request's offset. */
                uint8_t h[OUT_HEAD_MAX];
                size_t n = chunk_header(req, h, NBDSDK_REPLY_FLAG_DONE, NBDSDK_REPLY_TYPE_OFFSET_DATA,
                                        8 + req->reply_data_len);
                wire_put64(h + n, req->offset);
                push(req, h, n + 8, req->reply_data, req->reply_data_len, true);
        }
        else if (conn->extended)
                reply_done_chunk(req);
        else
                reply_simple(req);
}
