/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The option registry (a direct table for small numbers, a short list beyond)
 * and the fixed-newstyle option reply (spec "Option reply"). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "server-internal.h"
#include "options-internal.h"
#include "wire-internal.h"

static option_entry *registry_slot(option_registry *r, uint32_t option, int create) {
        if (option < OPTION_DIRECT)
                return &r->direct[option];
        for (size_t i = 0; i < r->n_far; i++)
                if (r->far[i].option == option)
                        return &r->far[i].entry;
        if (!create)
                return NULL;
        struct option_far *far = realloc(r->far, (r->n_far + 1) * sizeof *far);
        if (!far)
                return NULL;
        r->far = far;
        far[r->n_far] = (struct option_far) { .option = option };
        return &far[r->n_far++].entry;
}

int option_registry_add(option_registry *r, uint32_t option, const char *name,
                        option_handler fn, void *userdata, int replace) {
        option_entry *e = registry_slot(r, option, 0);
        if (e && e->fn && !replace)
                return -EEXIST;
        if (!e && !(e = registry_slot(r, option, 1)))
                return -ENOMEM;
        *e = (option_entry) { .fn = fn, .userdata = userdata, .name = name };
        return 0;
}

const option_entry *option_registry_find(const option_registry *r, uint32_t option) {
        const option_entry *e = registry_slot((option_registry *) r, option, 0);
        return e && e->fn ? e : NULL;
}

void option_registry_fini(option_registry *r) {
        free(r->far);
        r->far = NULL;
        r->n_far = 0;
}

int options_register_builtin(option_registry *r) {
        static const struct {
                uint32_t option;
                const char *name;
                option_handler fn;
        } builtin[] = {
                { NBDSDK_OPT_EXPORT_NAME, "EXPORT_NAME", option_export_name },
                { NBDSDK_OPT_ABORT, "ABORT", option_abort },
                { NBDSDK_OPT_LIST, "LIST", option_list },
                { NBDSDK_OPT_STARTTLS, "STARTTLS", option_starttls },
                { NBDSDK_OPT_INFO, "INFO", option_info_go },
                { NBDSDK_OPT_GO, "GO", option_info_go },
                { NBDSDK_OPT_STRUCTURED_REPLY, "STRUCTURED_REPLY", option_structured_reply },
                { NBDSDK_OPT_LIST_META_CONTEXT, "LIST_META_CONTEXT", option_meta_context },
                { NBDSDK_OPT_SET_META_CONTEXT, "SET_META_CONTEXT", option_meta_context },
                { NBDSDK_OPT_EXTENDED_HEADERS, "EXTENDED_HEADERS", option_extended_headers },
        };
        for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
                int r2 = option_registry_add(r, builtin[i].option, builtin[i].name, builtin[i].fn, NULL, 0);
                if (r2 < 0)
                        return r2;
        }
        return 0;
}

int option_reply(nbdsdk_conn *conn, uint32_t option, uint32_t type, const void *data, size_t len) {
        if (type == NBDSDK_REP_ACK || (type & NBDSDK_REP_FLAG_ERROR))
                conn->opt_answered = true;
        uint8_t head[OUT_HEAD_MAX];
        wire_put64(head, NBDSDK_MAGIC_OPT_REPLY);
        wire_put32(head + 8, option);
        wire_put32(head + 12, type);
        wire_put32(head + 16, (uint32_t) len);
        /* Short data rides in the header; longer data is copied out. */
        if (len <= OUT_HEAD_MAX - 20) {
                if (len)
                        memcpy(head + 20, data, len);
                return outq_push(&conn->out, head, 20 + len, NULL, 0, NULL, NULL);
        }
        void *copy = malloc(len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        return outq_push(&conn->out, head, 20, copy, len, free, copy);
}

int option_reply_parts(nbdsdk_conn *conn, uint32_t option, uint32_t type, const void *head, size_t hlen,
                       const void *data, size_t len) {
        uint8_t *buf = malloc(hlen + len + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, head, hlen);
        if (len)
                memcpy(buf + hlen, data, len);
        int r = option_reply(conn, option, type, buf, hlen + len);
        free(buf);
        return r;
}

int option_parse_export_name(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                             size_t trailer, char **retname, size_t *retend) {
        if (len < 4 + trailer)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "option data too short"), 1;
        uint32_t namelen = wire_get32(data);
        if (namelen > len - 4 - trailer)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "export name length %u runs past the option data", namelen), 1;
        if (namelen > NBDSDK_MAX_STRING)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_TOO_BIG,
                                          "export name longer than %d bytes", NBDSDK_MAX_STRING), 1;
        if (memchr(data + 4, 0, namelen))
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "export name contains NUL"), 1;
        if (!(*retname = strndup((const char *) data + 4, namelen)))
                return -ENOMEM;
        *retend = 4 + namelen;
        return 0;
}

static int option_reply_verror(nbdsdk_conn *conn, uint32_t option, uint32_t type, const char *format,
                               va_list ap) {
        char msg[NBDSDK_MAX_STRING + 1];
        int n = vsnprintf(msg, sizeof msg, format, ap);
        if (n < 0)
                n = 0;
        if ((size_t) n >= sizeof msg)
                n = sizeof msg - 1;
        return option_reply(conn, option, type, msg, (size_t) n);
}

int option_reply_error(nbdsdk_conn *conn, uint32_t option, uint32_t type, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        int r = option_reply_verror(conn, option, type, format, ap);
        va_end(ap);
        return r;
}

/* Public API. */

int nbdsdk_server_add_option(nbdsdk_server *s, uint32_t option, const char *name,
                             nbdsdk_option_handler handler, void *userdata, unsigned flags) {
        if (!s || !name || !handler || (flags & ~NBDSDK_OPTION_REPLACE))
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        return option_registry_add(&s->options, option, name, (option_handler) handler, userdata,
                                   flags & NBDSDK_OPTION_REPLACE);
}

int nbdsdk_conn_option_reply(nbdsdk_conn *conn, uint32_t type, const void *data, size_t length) {
        if (!conn || conn->state != CONN_OPT_DISPATCH || conn->opt_answered || (length && !data) ||
            length > UINT32_MAX)
                return -EINVAL;
        return option_reply(conn, conn->opt, type, data, length);
}

int nbdsdk_conn_option_error(nbdsdk_conn *conn, uint32_t type, const char *format, ...) {
        if (!conn || !format || !(type & NBDSDK_REP_FLAG_ERROR) || conn->state != CONN_OPT_DISPATCH ||
            conn->opt_answered)
                return -EINVAL;
        va_list ap;
        va_start(ap, format);
        int r = option_reply_verror(conn, conn->opt, type, format, ap);
        va_end(ap);
        return r;
}
