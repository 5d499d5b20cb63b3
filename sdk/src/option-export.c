/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Selecting an export: NBD_OPT_EXPORT_NAME, NBD_OPT_INFO and NBD_OPT_GO. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "options-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

static const uint8_t zero_padding[124];

int option_export_name(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                       void *userdata) {
        (void) option;
        (void) userdata;
        /* No error reply exists for EXPORT_NAME: every refusal is a hard disconnect. */
        if (conn->extended) {
                conn_close(conn, "NBD_OPT_EXPORT_NAME after extended headers were negotiated");
                return 0;
        }
        if (conn->server->shutting_down) {
                conn_close(conn, "NBD_OPT_EXPORT_NAME while the server is shutting down");
                return 0;
        }
        if (len > NBDSDK_MAX_STRING || memchr(data, 0, len)) {
                conn_close(conn, "NBD_OPT_EXPORT_NAME with an invalid name");
                return 0;
        }
        char *name = strndup((const char *) data, len);
        if (!name)
                return -ENOMEM;
        const nbdsdk_export *x = server_find_export(conn->server, name);
        if (x && server_tls_hides(conn, x)) {
                conn_close(conn, "client asked for export \"%s\" without TLS, which it requires", name);
                free(name);
                return 0;
        }
        const char *msg;
        int r = export_open(conn, name, &msg);
        if (r < 0) {
                conn_close(conn, "cannot serve export \"%s\": %s", name, msg);
                free(name);
                return 0;
        }
        free(name);
        uint8_t head[10];
        wire_put64(head, conn->exp.size);
        wire_put16(head + 8, export_eflags(conn));
        r = outq_push(&conn->out, head, sizeof head, conn->no_zeroes ? NULL : zero_padding,
                      conn->no_zeroes ? 0 : sizeof zero_padding, NULL, NULL);
        if (r < 0)
                return r;
        conn_enter_transmission(conn);
        return 0;
}

static int reply_info(nbdsdk_conn *conn, uint32_t option, uint16_t type, const void *data, size_t len) {
        uint8_t head[2];
        wire_put16(head, type);
        return option_reply_parts(conn, option, NBDSDK_REP_INFO, head, sizeof head, data, len);
}

int option_info_go(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                   void *userdata) {
        (void) userdata;
        /* Layout: name length (4), name, request count (2), requests (2 each). */
        char *name;
        size_t pos;
        int r = option_parse_export_name(conn, option, data, len, 2, &name, &pos);
        if (r != 0)
                return r < 0 ? r : 0;
        uint16_t nreq = wire_get16(data + pos);
        if (len != pos + 2 + 2 * (size_t) nreq) {
                free(name);
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "option length does not match %u information requests", nreq);
        }
        bool want_name = false, want_description = false, want_block_size = false;
        for (uint16_t i = 0; i < nreq; i++) {
                switch (wire_get16(data + pos + 2 + 2 * i)) {
                case NBDSDK_INFO_NAME: want_name = true; break;
                case NBDSDK_INFO_DESCRIPTION: want_description = true; break;
                case NBDSDK_INFO_BLOCK_SIZE: want_block_size = true; break;
                default: break; /* spec: ignore unknown requests */
                }
        }
        const char *msg;
        const nbdsdk_export *x = server_find_export(conn->server, name);
        if (x && server_tls_hides(conn, x)) {
                r = option_reply_error(conn, option, NBDSDK_REP_ERR_TLS_REQD,
                                       "export \"%s\" is served over TLS only: send NBD_OPT_STARTTLS first", name);
                free(name);
                return r;
        }
        r = export_open(conn, name, &msg);
        /* -ENOENT may also come from the backend's or a layer's open. */
        if (r == -ENOENT && !x)
                r = option_reply_error(conn, option, NBDSDK_REP_ERR_UNKNOWN, "no export named \"%s\"", name);
        else if (r < 0)
                r = option_reply_error(conn, option, NBDSDK_REP_ERR_UNKNOWN, "cannot open export \"%s\": %s (%s)",
                                       name, msg, strerror(-r));
        else {
                const export_state *e = &conn->exp;
                if (want_block_size) {
                        uint8_t bs[12];
                        wire_put32(bs, e->min_block);
                        wire_put32(bs + 4, e->pref_block);
                        wire_put32(bs + 8, e->max_block);
                        r = reply_info(conn, option, NBDSDK_INFO_BLOCK_SIZE, bs, sizeof bs);
                }
                uint8_t ex[10];
                wire_put64(ex, e->size);
                wire_put16(ex + 8, export_eflags(conn));
                if (r >= 0)
                        r = reply_info(conn, option, NBDSDK_INFO_EXPORT, ex, sizeof ex);
                if (r >= 0 && want_name)
                        r = reply_info(conn, option, NBDSDK_INFO_NAME, e->entry->name, strlen(e->entry->name));
                if (r >= 0 && want_description && e->entry->description)
                        r = reply_info(conn, option, NBDSDK_INFO_DESCRIPTION, e->entry->description,
                                       strlen(e->entry->description));
                if (r >= 0)
                        r = option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
                if (r >= 0 && option == NBDSDK_OPT_GO) {
                        /* Contexts chosen for another export do not carry over. */
                        if (conn->meta.export_name && strcmp(conn->meta.export_name, e->entry->name) != 0)
                                meta_selection_clear(&conn->meta);
                        conn_enter_transmission(conn);
                }
        }
        free(name);
        return r;
}
