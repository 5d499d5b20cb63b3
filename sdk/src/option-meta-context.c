/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (spec "Metadata
 * querying"): only the base namespace exists, with base:allocation. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "options-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

static const char base_allocation[] = "base:allocation";

/* Does QUERY select base:allocation? "base:" is a wildcard for LIST only;
 * other namespaces and unknown base: leaves are ignored, not errors. */
static bool query_matches(const uint8_t *q, uint32_t qlen, bool list) {
        if (qlen == sizeof base_allocation - 1 && memcmp(q, base_allocation, qlen) == 0)
                return true;
        return list && qlen == 5 && memcmp(q, "base:", 5) == 0;
}

static int reply_context(nbdsdk_conn *conn, uint32_t option, uint32_t id) {
        uint8_t buf[4 + sizeof base_allocation - 1];
        wire_put32(buf, id);
        memcpy(buf + 4, base_allocation, sizeof base_allocation - 1);
        return option_reply(conn, option, NBDSDK_REP_META_CONTEXT, buf, sizeof buf);
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
        if (len < 8)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "option data too short");
        uint32_t namelen = wire_get32(data);
        if (namelen > len - 8)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "export name length %u runs past the option data", namelen);
        if (namelen > NBDSDK_MAX_STRING)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_TOO_BIG,
                                          "export name longer than %d bytes", NBDSDK_MAX_STRING);
        uint32_t nq = wire_get32(data + 4 + namelen);
        size_t pos = 8 + namelen;
        bool match = false;
        for (uint32_t i = 0; i < nq; i++) {
                if (len - pos < 4)
                        return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                                  "query %u runs past the option data", i);
                uint32_t qlen = wire_get32(data + pos);
                pos += 4;
                if (qlen > len - pos)
                        return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                                  "query %u runs past the option data", i);
                if (qlen > NBDSDK_MAX_STRING)
                        return option_reply_error(conn, option, NBDSDK_REP_ERR_TOO_BIG,
                                                  "query %u is longer than %d bytes", i, NBDSDK_MAX_STRING);
                match |= query_matches(data + pos, qlen, list);
                pos += qlen;
        }
        if (pos != len)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID,
                                          "%zu bytes of option data follow the last query", len - pos);
        char *name = strndup((const char *) data + 4, namelen);
        if (!name)
                return -ENOMEM;
        const export_entry *x = server_find_export(conn->server, name);
        free(name);
        if (!x)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_UNKNOWN, "no such export");
        /* Zero queries: LIST lists everything, SET selects nothing. */
        if (list && nq == 0)
                match = true;
        int r = 0;
        if (match) {
                r = reply_context(conn, option, list ? 0 : META_ID_BASE_ALLOCATION);
                if (!list) {
                        conn->meta.base_allocation = true;
                        conn->meta.export_name = strdup(x->name);
                        if (!conn->meta.export_name)
                                return -ENOMEM;
                }
        }
        if (r >= 0)
                r = option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
        return r;
}
