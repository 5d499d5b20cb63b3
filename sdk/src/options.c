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
#include "slot-internal.h"
#include "wire-internal.h"

/* Where OPTION's stack of handlers starts (NULL: none yet, and CREATE false). */
static option_entry **registry_top(option_registry *r, uint32_t option, bool create) {
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

int option_registry_add(option_registry *r, uint32_t option, const char *name, option_handler fn,
                        void *userdata, bool replace, option_entry **retentry) {
        option_entry **top = registry_top(r, option, false);
        if (top && *top && !replace)
                return -EEXIST;
        option_entry *e = malloc(sizeof *e);
        if (!e || (!top && !(top = registry_top(r, option, true)))) {
                free(e);
                return -ENOMEM;
        }
        *e = (option_entry) { .fn = fn, .userdata = userdata, .name = name, .replaced = *top };
        *top = e;
        if (retentry)
                *retentry = e;
        return 0;
}

void option_registry_remove(option_registry *r, uint32_t option, option_entry *entry) {
        option_entry **p = registry_top(r, option, false);
        while (*p != entry)
                p = &(*p)->replaced;
        *p = entry->replaced;
        free(entry);
}

const option_entry *option_registry_find(const option_registry *r, uint32_t option) {
        option_entry **top = registry_top((option_registry *) r, option, false);
        return top ? *top : NULL;
}

static void free_stack(option_entry *e) {
        while (e) {
                option_entry *next = e->replaced;
                free(e);
                e = next;
        }
}

void option_registry_fini(option_registry *r) {
        for (size_t i = 0; i < OPTION_DIRECT; i++)
                free_stack(r->direct[i]);
        for (size_t i = 0; i < r->n_far; i++)
                free_stack(r->far[i].entry);
        free(r->far);
        *r = (option_registry) { 0 };
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
                int r2 = option_registry_add(r, builtin[i].option, builtin[i].name, builtin[i].fn, NULL,
                                             false, NULL);
                if (r2 < 0)
                        return r2;
        }
        return 0;
}

int option_reply(nbdsdk_conn *conn, uint32_t option, uint32_t type, const void *data, size_t len) {
        if (option_reply_is_final(type))
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

/* An error reply's message: at most NBDSDK_MAX_STRING bytes. Returns its length. */
static size_t format_message(char msg[NBDSDK_MAX_STRING + 1], const char *format, va_list ap) {
        int n = vsnprintf(msg, NBDSDK_MAX_STRING + 1, format, ap);
        return n < 0 ? 0 : n > NBDSDK_MAX_STRING ? NBDSDK_MAX_STRING : (size_t) n;
}

int option_reply_error(nbdsdk_conn *conn, uint32_t option, uint32_t type, const char *format, ...) {
        char msg[NBDSDK_MAX_STRING + 1];
        va_list ap;
        va_start(ap, format);
        size_t n = format_message(msg, format, ap);
        va_end(ap);
        return option_reply(conn, option, type, msg, n);
}

/* Public API. */

static void option_slot_remove(nbdsdk_slot *slot) {
        option_registry_remove(&slot->server->options, (uint32_t) slot->id, (option_entry *) slot->ptr);
}

int nbdsdk_server_add_option(nbdsdk_server *s, uint32_t option, const char *name,
                             nbdsdk_option_handler handler, void *userdata, unsigned flags,
                             nbdsdk_slot **retslot) {
        if (!s || !name || !handler || (flags & ~NBDSDK_OPTION_REPLACE))
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(s, option_slot_remove)))
                return -ENOMEM;
        option_entry *e = NULL;
        int r = option_registry_add(&s->options, option, name, (option_handler) handler, userdata,
                                    flags & NBDSDK_OPTION_REPLACE, &e);
        return slot_commit(slot, r, option, e, retslot);
}

/* From inside a handler, on the loop thread, before any reply of its own:
 * the handler it replaced answers, with DATA. A built-in one replies at once,
 * so the option is then over for the caller too. */
int nbdsdk_conn_option_next(nbdsdk_conn *conn, const void *data, size_t length) {
        if (!conn || (length && !data) || length > UINT32_MAX)
                return -EINVAL;
        const option_entry *self = conn->opt_entry;
        if (!self || !self->replaced || conn->state != CONN_OPT_DISPATCH || !option_replies_untouched(conn))
                return -EINVAL;
        conn->opt_entry = self->replaced;
        int r = self->replaced->fn(conn, conn->opt, data, length, self->replaced->userdata);
        conn->opt_entry = self;
        if (conn->opt_answered)
                option_replies_take(conn, false);
        return r;
}

/* These two may run on any thread (after NBDSDK_DEFER): they touch only
 * the connection's reply queue. */
int nbdsdk_conn_option_reply(nbdsdk_conn *conn, uint32_t type, const void *data, size_t length) {
        if (!conn || (length && !data) || length > UINT32_MAX)
                return -EINVAL;
        return option_replies_push(conn, type, data, length);
}

int nbdsdk_conn_option_error(nbdsdk_conn *conn, uint32_t type, const char *format, ...) {
        if (!conn || !format || !(type & NBDSDK_REP_FLAG_ERROR))
                return -EINVAL;
        char msg[NBDSDK_MAX_STRING + 1];
        va_list ap;
        va_start(ap, format);
        size_t n = format_message(msg, format, ap);
        va_end(ap);
        return option_replies_push(conn, type, msg, n);
}
