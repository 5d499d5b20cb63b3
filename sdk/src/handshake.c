/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The handshake states: greeting, client flags, and reading options
 * (spec "Handshake phase", fixed newstyle). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

/* What to do when reading returned R <= 0: block, or close. */
static conn_step input_stalled(nbdsdk_conn *conn, int r, const char *where) {
        if (r == 0)
                return STEP_BLOCK;
        if (r == -EPIPE)
                conn_close(conn, "client disconnected %s", where);
        else
                conn_close(conn, "read failed %s: %s", where, strerror(-r));
        return STEP_AGAIN;
}

conn_step state_greeting(nbdsdk_conn *conn) {
        uint8_t g[18];
        wire_put64(g, NBDSDK_MAGIC_INIT);
        wire_put64(g + 8, NBDSDK_MAGIC_OPTS);
        wire_put16(g + 16, NBDSDK_FLAG_FIXED_NEWSTYLE | NBDSDK_FLAG_NO_ZEROES);
        if (outq_push(&conn->out, g, sizeof g, NULL, 0, NULL, NULL) < 0) {
                conn_close(conn, "out of memory");
                return STEP_AGAIN;
        }
        conn_set_state(conn, CONN_CLIENT_FLAGS);
        return STEP_AGAIN;
}

conn_step state_client_flags(nbdsdk_conn *conn) {
        int r = conn_need(conn, 4);
        if (r <= 0)
                return input_stalled(conn, r, "before sending its flags");
        uint32_t flags = wire_get32(conn->ibuf + conn->ipos);
        conn->ipos += 4;
        /* Spec: the server MUST drop the connection on flags it does not know. */
        if (flags & ~(uint32_t) (NBDSDK_FLAG_C_FIXED_NEWSTYLE | NBDSDK_FLAG_C_NO_ZEROES)) {
                conn_close(conn, "client set unknown handshake flags 0x%08x", flags);
                return STEP_AGAIN;
        }
        conn->client_flags = flags;
        conn->fixed_newstyle = flags & NBDSDK_FLAG_C_FIXED_NEWSTYLE;
        conn->no_zeroes = flags & NBDSDK_FLAG_C_NO_ZEROES;
        conn_set_state(conn, CONN_OPT_HEADER);
        return STEP_AGAIN;
}

conn_step state_opt_header(nbdsdk_conn *conn) {
        int r = conn_need(conn, 16);
        if (r < 0 && r == -EPIPE && conn->ipos == conn->iend) {
                conn_end(conn, "client closed during option haggling");
                return STEP_AGAIN;
        }
        if (r <= 0)
                return input_stalled(conn, r, "in the middle of an option");
        const uint8_t *p = conn->ibuf + conn->ipos;
        uint64_t magic = wire_get64(p);
        conn->opt = wire_get32(p + 8);
        conn->opt_len = wire_get32(p + 12);
        conn->ipos += 16;
        if (magic != NBDSDK_MAGIC_OPTS) {
                conn_close(conn, "bad option magic 0x%016llx", (unsigned long long) magic);
                return STEP_AGAIN;
        }
        nbdsdk_server *server = conn->server;
        if (++conn->n_options > server->max_options) {
                conn_close(conn, "client sent more than %u options", server->max_options);
                return STEP_AGAIN;
        }
        if (conn->opt_len > server->max_option_payload) {
                conn->discard_left = conn->opt_len;
                conn_set_state(conn, CONN_OPT_DISCARD);
                return STEP_AGAIN;
        }
        free(conn->opt_data);
        conn->opt_data = malloc(conn->opt_len ? conn->opt_len : 1);
        if (!conn->opt_data) {
                conn_close(conn, "out of memory");
                return STEP_AGAIN;
        }
        conn->opt_have = 0;
        conn_set_state(conn, CONN_OPT_PAYLOAD);
        return STEP_AGAIN;
}

conn_step state_opt_payload(nbdsdk_conn *conn) {
        int r = conn_fill_into(conn, conn->opt_data, conn->opt_len, &conn->opt_have);
        if (r <= 0)
                return input_stalled(conn, r, "in the middle of an option's data");
        conn_set_state(conn, CONN_OPT_DISPATCH);
        return STEP_AGAIN;
}

conn_step state_opt_discard(nbdsdk_conn *conn) {
        int r = conn_skip(conn);
        if (r <= 0)
                return input_stalled(conn, r, "in the middle of an option's data");
        conn_set_state(conn, CONN_OPT_HEADER);
        if (!conn->fixed_newstyle) {
                conn_close(conn, "oversized option %u from a client without fixed newstyle", conn->opt);
                return STEP_AGAIN;
        }
        option_reply_error(conn, conn->opt, NBDSDK_REP_ERR_TOO_BIG,
                           "option data of %u bytes is over this server's limit of %u",
                           conn->opt_len, conn->server->max_option_payload);
        return STEP_AGAIN;
}

conn_step state_opt_dispatch(nbdsdk_conn *conn) {
        uint32_t opt = conn->opt;
        /* Without fixed newstyle, EXPORT_NAME is the only option a client may
         * send and there is no way to answer anything else. */
        if (!conn->fixed_newstyle && opt != NBDSDK_OPT_EXPORT_NAME) {
                conn_close(conn, "client without fixed newstyle sent option %u", opt);
                return STEP_AGAIN;
        }
        if (conn->server->shutting_down && opt != NBDSDK_OPT_ABORT && opt != NBDSDK_OPT_EXPORT_NAME) {
                option_reply_error(conn, opt, NBDSDK_REP_ERR_SHUTDOWN, "the server is shutting down");
                conn_set_state(conn, CONN_OPT_HEADER);
                return STEP_AGAIN;
        }
        if (conn->server->tls_mode == NBDSDK_TLS_REQUIRE && !conn->tls && opt != NBDSDK_OPT_STARTTLS &&
            opt != NBDSDK_OPT_ABORT) {
                /* Spec "TLS support", FORCEDTLS: EXPORT_NAME cannot be answered. */
                if (opt == NBDSDK_OPT_EXPORT_NAME) {
                        conn_close(conn, "client asked for an export without TLS, which this server requires");
                        return STEP_AGAIN;
                }
                option_reply_error(conn, opt, NBDSDK_REP_ERR_TLS_REQD,
                                   "this server requires TLS: send NBD_OPT_STARTTLS first");
                conn_set_state(conn, CONN_OPT_HEADER);
                return STEP_AGAIN;
        }
        const option_entry *e = option_registry_find(&conn->server->options, opt);
        if (!e) {
                option_reply_error(conn, opt, NBDSDK_REP_ERR_UNSUP, "option %u is not supported", opt);
                conn_set_state(conn, CONN_OPT_HEADER);
                return STEP_AGAIN;
        }
        log_debug("conn %llu: option %s (%u), %u bytes", (unsigned long long) conn->id, e->name, opt,
                  conn->opt_len);
        /* The handler runs in OPT_DISPATCH (where replies may be sent) and
         * moves on to OPT_HEADER unless it chose another state, or deferred. */
        conn->opt_answered = false;
        option_replies_open(conn);
        conn->opt_entry = e;
        int r = e->fn(conn, opt, conn->opt_data, conn->opt_len, e->userdata);
        conn->opt_entry = NULL;
        if (r < 0) {
                if (!conn_is_closed(conn))
                        conn_close(conn, "option %s failed: %s", e->name, strerror(-r));
                return STEP_AGAIN;
        }
        if (option_replies_take(conn, r == NBDSDK_DEFER)) {
                log_debug("conn %llu: option %s deferred", (unsigned long long) conn->id, e->name);
                conn_set_state(conn, CONN_OPT_WAIT);
                return STEP_AGAIN;
        }
        if (conn->state == CONN_OPT_DISPATCH) {
                if (!conn->opt_answered) {
                        log_error("the handler of option %s gave no final reply", e->name);
                        option_reply_error(conn, opt, NBDSDK_REP_ERR_INVALID,
                                           "the server's handler for option %u did not answer", opt);
                }
                conn_set_state(conn, CONN_OPT_HEADER);
        }
        return STEP_AGAIN;
}

conn_step state_opt_wait(nbdsdk_conn *conn) {
        if (!option_replies_take(conn, true)) {
                conn_set_state(conn, CONN_OPT_HEADER);
                return STEP_AGAIN;
        }
        /* Spec: the client MUST NOT send another option before the final
         * reply; all it may do meanwhile is hang up, which reading shows. */
        int r = conn->ipos < conn->iend ? 1 : conn_need(conn, 1);
        if (r > 0) {
                conn_close(conn, "client sent more data before the final reply to option %u", conn->opt);
                return STEP_AGAIN;
        }
        return input_stalled(conn, r, "while its option was deferred");
}

/* After STARTTLS's ACK: that goes out in the clear, then the handshake runs
 * over the socket, and the options go on over TLS. */
conn_step state_tls_handshake(nbdsdk_conn *conn) {
        if (!outq_is_empty(&conn->out))
                return STEP_BLOCK;
        if (!conn->tls) {
                /* The client may send nothing between STARTTLS and its TLS
                 * hello: bytes already read would be taken as coming over TLS. */
                if (conn->ipos != conn->iend) {
                        conn_close(conn, "client sent data after NBD_OPT_STARTTLS before its TLS handshake");
                        return STEP_AGAIN;
                }
                nbdsdk_server *s = conn->server;
                int r = transport_tls_new(conn->transport, s->tls_creds, s->tls_verify_peer, &conn->transport);
                if (r < 0) {
                        conn_close(conn, "cannot start TLS: %s", strerror(-r));
                        return STEP_AGAIN;
                }
                conn->tls = true;
        }
        const char *why = NULL;
        int r = transport_tls_handshake(conn->transport, &why);
        if (r == 0)
                return STEP_BLOCK;
        if (r < 0) {
                conn_close(conn, "TLS handshake failed: %s", why);
                return STEP_AGAIN;
        }
        if (log_is_verbose()) {
                char desc[256];
                transport_tls_describe(conn->transport, desc, sizeof desc);
                const char *user = transport_tls_username(conn->transport);
                log_debug("conn %llu: TLS %s%s%s", (unsigned long long) conn->id, desc, user ? ", PSK user " : "",
                          user ? user : "");
        }
        conn_set_state(conn, CONN_OPT_HEADER);
        return STEP_AGAIN;
}
