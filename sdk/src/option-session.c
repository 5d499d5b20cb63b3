/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Options about the session itself: NBD_OPT_ABORT and NBD_OPT_STARTTLS. */
#include "conn-internal.h"
#include "server-internal.h"
#include "options-internal.h"

int option_abort(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len, void *userdata) {
        (void) data;
        (void) len; /* spec: the server SHOULD ignore any data */
        (void) userdata;
        /* Spec: the server MUST reply with an ACK, then the client closes. */
        int r = option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
        conn_set_state(conn, CONN_FLUSH_CLOSE);
        return r;
}

int option_starttls(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len, void *userdata) {
        (void) data;
        (void) userdata;
        if (len != 0)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
        /* NOTLS mode (spec "TLS support"): ERR_POLICY, never ERR_TLS_REQD. */
        if (conn->server->tls_mode == NBDSDK_TLS_OFF)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_POLICY, "TLS is not configured on this server");
        if (conn->tls)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "TLS is already in use");
        /* Spec: what was negotiated before TLS does not count after it. */
        conn->structured = conn->extended = false;
        meta_selection_clear(&conn->meta);
        export_close(conn);
        int r = option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
        conn_set_state(conn, CONN_TLS_HANDSHAKE);
        return r;
}
