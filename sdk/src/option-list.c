/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD_OPT_LIST: one NBD_REP_SERVER per export, with its description. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "options-internal.h"
#include "server-internal.h"
#include "wire-internal.h"

int option_list(nbdsdk_conn *conn, uint32_t option, const uint8_t *data, size_t len, void *userdata) {
        (void) data;
        (void) userdata;
        if (len != 0)
                return option_reply_error(conn, option, NBDSDK_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
        nbdsdk_server *s = conn->server;
        for (size_t i = 0; i < s->n_exports; i++) {
                const nbdsdk_export *x = s->exports[i];
                if (server_tls_hides(conn, x))
                        continue; /* spec: MAY be hidden before TLS */
                size_t nl = strlen(x->name), dl = x->description ? strlen(x->description) : 0;
                uint8_t *buf = malloc(4 + nl + dl);
                if (!buf)
                        return -ENOMEM;
                wire_put32(buf, (uint32_t) nl);
                memcpy(buf + 4, x->name, nl);
                if (dl)
                        memcpy(buf + 4 + nl, x->description, dl);
                int r = option_reply(conn, option, NBDSDK_REP_SERVER, buf, 4 + nl + dl);
                free(buf);
                if (r < 0)
                        return r;
        }
        return option_reply(conn, option, NBDSDK_REP_ACK, NULL, 0);
}
