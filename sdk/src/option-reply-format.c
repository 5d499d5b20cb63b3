/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Options that choose the reply format: NBD_OPT_STRUCTURED_REPLY and
 * NBD_OPT_EXTENDED_HEADERS (which implies structured replies). */
#include "conn-internal.h"
#include "options-internal.h"

int option_structured_reply(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                            void *userdata) {
        (void) data;
        (void) userdata;
        if (len != 0)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "NBD_OPT_STRUCTURED_REPLY takes no data");
        if (conn->extended)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_EXT_HEADER_REQD,
                                          "extended headers are already in use");
        conn->structured = true;
        return option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
}

int option_extended_headers(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                            void *userdata) {
        (void) data;
        (void) userdata;
        if (len != 0)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "NBD_OPT_EXTENDED_HEADERS takes no data");
        conn->extended = true;
        conn->structured = true;
        return option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
}
