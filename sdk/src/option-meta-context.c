/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (spec "Metadata
 * querying"): the base namespace (base:allocation) and the namespaces
 * extensions registered (nbdsdk_meta(3)). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "options-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

static const char base_allocation[] = "base:allocation";

static bool is(const uint8_t *q, uint32_t qlen, const char *text) {
        return qlen == strlen(text) && memcmp(q, text, qlen) == 0;
}

/* The registered namespace a query names ("ns:..."), or NULL: queries in
 * unknown namespaces are ignored (spec). */
static const meta_namespace_entry *query_namespace(nbdsdk_conn *conn, const uint8_t *q, uint32_t qlen) {
        const uint8_t *colon = memchr(q, ':', qlen);
        return colon ? server_find_meta_namespace(conn->server, (const char *) q, (size_t) (colon - q)) : NULL;
}

/* LIST: add what QUERY matches. "base:" is a wildcard for base (spec). */
static int list_query(nbdsdk_conn *conn, const char *export_name, const uint8_t *q, uint32_t qlen,
                      nbdsdk_meta_list *found) {
        if (is(q, qlen, base_allocation) || is(q, qlen, "base:")) {
                found->prefix = "base:";
                return nbdsdk_meta_list_add(found, base_allocation);
        }
        const meta_namespace_entry *e = query_namespace(conn, q, qlen);
        if (!e)
                return 0;
        size_t plen = strlen(e->ns.name) + 1;
        char *prefix = strndup((const char *) q, plen), *leaf = strndup((const char *) q + plen, qlen - plen);
        int r = prefix && leaf ? 0 : -ENOMEM;
        if (r == 0) {
                found->prefix = prefix;
                r = e->ns.list(conn, export_name, leaf, found, e->userdata);
        }
        free(prefix);
        free(leaf);
        return r;
}

/* LIST with no query: everything of every namespace. */
static int list_all(nbdsdk_conn *conn, const char *export_name, nbdsdk_meta_list *found) {
        int r = list_query(conn, export_name, (const uint8_t *) "base:", 5, found);
        for (size_t i = 0; r >= 0 && i < conn->server->n_meta_namespaces; i++) {
                const char *name = conn->server->meta_namespaces[i].ns.name;
                char *q;
                if (asprintf(&q, "%s:", name) < 0)
                        return -ENOMEM;
                r = list_query(conn, export_name, (const uint8_t *) q, (uint32_t) strlen(q), found);
                free(q);
        }
        return r;
}

/* SET: select what QUERY names exactly; "base:" selects nothing (spec). */
static int set_query(nbdsdk_conn *conn, const char *export_name, const uint8_t *q, uint32_t qlen) {
        if (is(q, qlen, base_allocation))
                return meta_selection_add(&conn->meta, NULL, base_allocation);
        const meta_namespace_entry *e = query_namespace(conn, q, qlen);
        if (!e)
                return 0;
        char *name = strndup((const char *) q, qlen);
        if (!name)
                return -ENOMEM;
        int r = e->ns.select(conn, export_name, name, e->userdata);
        if (r == 1)
                r = meta_selection_add(&conn->meta, e, name);
        free(name);
        return r < 0 ? r : 0;
}

/* Check the layout of NQ queries from FIRST: 0, or the error reply type. */
static uint32_t check_queries(const uint8_t *data, size_t len, size_t first, uint32_t nq) {
        size_t pos = first;
        for (uint32_t i = 0; i < nq; i++) {
                if (len - pos < 4)
                        return NBDSDK_REP_ERR_INVALID;
                uint32_t qlen = wire_get32(data + pos);
                pos += 4;
                if (qlen > len - pos)
                        return NBDSDK_REP_ERR_INVALID;
                if (qlen > NBDSDK_MAX_STRING)
                        return NBDSDK_REP_ERR_TOO_BIG;
                pos += qlen;
        }
        return pos == len ? 0 : NBDSDK_REP_ERR_INVALID;
}

static int reply_context(nbdsdk_conn *conn, uint32_t option, uint32_t id, const char *name) {
        uint8_t head[4];
        wire_put32(head, id);
        return option_reply_parts(conn, option, NBDSDK_REP_META_CONTEXT, head, sizeof head, name, strlen(name));
}

int option_meta_context(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len,
                        void *userdata) {
        (void) userdata;
        bool list = option == NBDSDK_OPT_LIST_META_CONTEXT;
        if (!list)
                meta_selection_clear(&conn->meta); /* spec: replaced even if this fails */
        if (!list && !conn->structured)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "negotiate structured replies before NBD_OPT_SET_META_CONTEXT");
        /* Layout: name length (4), name, query count (4), then length (4) + query each. */
        char *name;
        size_t first;
        int r = option_parse_export_name(conn, option, data, len, 4, &name, &first);
        if (r != 0)
                return r < 0 ? r : 0;
        uint32_t nq = wire_get32(data + first);
        first += 4;
        size_t pos = first;
        /* Check the whole layout before acting on any query. */
        uint32_t bad = check_queries(data, len, first, nq);
        if (bad) {
                free(name);
                if (bad == NBDSDK_REP_ERR_TOO_BIG)
                        return option_reply_error(conn, option, bad, "a query is longer than %d bytes",
                                                  NBDSDK_MAX_STRING);
                return option_reply_error(conn, option, bad, "the queries do not match the option's length");
        }
        const nbdsdk_export *x = server_find_export(conn->server, name);
        free(name);
        if (!x)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_UNKNOWN, "no such export");

        nbdsdk_meta_list found = { 0 };
        r = 0;
        if (list && nq == 0)
                r = list_all(conn, x->name, &found); /* spec: zero queries list everything */
        pos = first;
        for (uint32_t i = 0; r >= 0 && i < nq; i++) {
                uint32_t qlen = wire_get32(data + pos);
                const uint8_t *q = data + pos + 4;
                pos += 4 + qlen;
                r = list ? list_query(conn, x->name, q, qlen, &found) : set_query(conn, x->name, q, qlen);
        }
        if (r < 0) {
                meta_list_clear(&found);
                if (!list)
                        meta_selection_clear(&conn->meta);
                return r == -ENOMEM ? r : option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                                             "a metadata namespace failed: %s", strerror(-r));
        }
        if (list) {
                for (size_t i = 0; r >= 0 && i < found.n; i++)
                        r = reply_context(conn, option, 0, found.names[i]); /* spec: id SHOULD be 0 */
                meta_list_clear(&found);
        } else {
                for (size_t i = 0; r >= 0 && i < conn->meta.n; i++)
                        r = reply_context(conn, option, (uint32_t) i + 1, conn->meta.v[i].name);
                if (r >= 0 && conn->meta.n && !(conn->meta.export_name = strdup(x->name)))
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
        return r;
}
