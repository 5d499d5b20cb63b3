/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading from the client: one buffer, refilled in large reads, so that a
 * burst of pipelined request headers costs one system call. */
#include <errno.h>
#include <string.h>
#include "conn-internal.h"
#include "request-internal.h"

/* One read from the transport. A short read means the socket is empty for
 * now: the next attempt is left to the next readiness event instead of
 * costing a system call that would only say EAGAIN. */
static ssize_t conn_read(nbdsdk_conn *conn, void *buf, size_t len) {
        if (conn->input_drained)
                return -EAGAIN;
        ssize_t n = conn->transport->ops->read(conn->transport, buf, len);
        if (n == -ECONNRESET)
                n = 0; /* the client is gone, as with an orderly close */
        if (n == -EAGAIN || (n > 0 && (size_t) n < len))
                conn->input_drained = true;
        if (n == 0)
                conn->eof = true;
        return n;
}

/* conn_read's result as the input helpers return it: the byte count (> 0),
 * 0 would block, -EPIPE at the end of the stream, or -errno. */
static ssize_t read_result(ssize_t n) {
        return n == -EAGAIN ? 0 : n == 0 ? -EPIPE : n;
}

/* Read more into the buffer. Returns > 0, 0 would block, -errno. */
static int conn_fill(nbdsdk_conn *conn) {
        if (conn->ipos == conn->iend)
                conn->ipos = conn->iend = 0;
        else if (conn->iend == CONN_IBUF_SIZE) {
                memmove(conn->ibuf, conn->ibuf + conn->ipos, conn->iend - conn->ipos);
                conn->iend -= conn->ipos;
                conn->ipos = 0;
        }
        ssize_t n = read_result(conn_read(conn, conn->ibuf + conn->iend, CONN_IBUF_SIZE - conn->iend));
        if (n <= 0)
                return (int) n;
        conn->iend += (size_t) n;
        return 1;
}

int conn_need(nbdsdk_conn *conn, size_t n) {
        while (conn->iend - conn->ipos < n) {
                if (conn->eof)
                        return -EPIPE;
                int r = conn_fill(conn);
                if (r <= 0)
                        return r;
        }
        return 1;
}

int conn_fill_into(nbdsdk_conn *conn, void *dst, size_t len, size_t *have) {
        size_t buffered = conn->iend - conn->ipos;
        if (buffered > 0 && *have < len) {
                size_t n = len - *have < buffered ? len - *have : buffered;
                memcpy((char *) dst + *have, conn->ibuf + conn->ipos, n);
                conn->ipos += n;
                *have += n;
        }
        while (*have < len) {
                if (conn->eof)
                        return -EPIPE;
                /* Large remainders go straight into DST; small ones through the buffer. */
                if (len - *have >= CONN_IBUF_SIZE / 2) {
                        ssize_t n = read_result(conn_read(conn, (char *) dst + *have, len - *have));
                        if (n <= 0)
                                return (int) n;
                        *have += (size_t) n;
                } else {
                        int r = conn_fill(conn);
                        if (r <= 0)
                                return r;
                        size_t n = conn->iend - conn->ipos;
                        if (n > len - *have)
                                n = len - *have;
                        memcpy((char *) dst + *have, conn->ibuf + conn->ipos, n);
                        conn->ipos += n;
                        *have += n;
                }
        }
        return 1;
}

int conn_skip(nbdsdk_conn *conn) {
        while (conn->discard_left > 0) {
                size_t buffered = conn->iend - conn->ipos;
                if (buffered == 0) {
                        if (conn->eof)
                                return -EPIPE;
                        int r = conn_fill(conn);
                        if (r <= 0)
                                return r;
                        continue;
                }
                size_t n = buffered < conn->discard_left ? buffered : (size_t) conn->discard_left;
                conn->ipos += n;
                conn->discard_left -= n;
        }
        return 1;
}

int conn_poll_input(nbdsdk_conn *conn) {
        if (conn->eof)
                return -EPIPE;
        conn->input_drained = false;
        return conn_fill(conn);
}

void conn_input_hint(nbdsdk_conn *conn) {
        if (!conn->transport->ops->want)
                return;
        uint64_t rest = 0;
        if (conn->state == CONN_REQ_PAYLOAD)
                rest = conn->cur->payload_len - conn->cur->buf_have;
        else if (conn->state == CONN_REQ_DISCARD)
                rest = conn->discard_left;
        size_t buffered = conn->iend - conn->ipos;
        rest = rest > buffered ? rest - buffered : 1;
        conn->transport->ops->want(conn->transport, rest > SIZE_MAX ? SIZE_MAX : (size_t) rest);
}
