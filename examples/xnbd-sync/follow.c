/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The replica's side of XNBD_SYNC: a primary negotiates it, compares its
 * blocks with XNBD_CMD_SUM, then writes with the standard commands. While it
 * is connected, other clients get the disk read-only; when it goes, the
 * replica takes writes from anyone (the failover). */
#include <errno.h>
#include <stdlib.h>
#include "xnbd-sync.h"

static int sync_option(nbdsdk_conn *conn, uint32_t option, const void *data, size_t length, void *ud) {
        struct xs_disk *d = ud;
        if (length != 8)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_INVALID,
                                                "XNBD_SYNC takes the primary's disk size (8 bytes), not %zu bytes",
                                                length);
        if (d->n_replicas > 0)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY,
                                                "this server is a primary (it replicates to %s); it follows none",
                                                xs_replica_address(d->replicas[0]));
        if (d->primary)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY,
                                                "this server follows a primary already (connection %llu)",
                                                (unsigned long long) nbdsdk_conn_get_id(d->primary));
        if (d->changed_alone)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY,
                                                "clients other than a primary have changed this disk since the "
                                                "server started; a primary would copy over their changes "
                                                "(restart this server to give them up)");
        if (g_hash_table_size(d->writers) > 0)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY,
                                                "%u other client(s) may write here; a replica takes writes from "
                                                "its primary only", g_hash_table_size(d->writers));
        uint64_t size = xs_get_be(data, 8);
        if (size != d->size)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_INVALID,
                                                "the disks differ in size: the primary's has %llu bytes, this "
                                                "one %llu", (unsigned long long) size,
                                                (unsigned long long) d->size);
        int r = nbdsdk_conn_enable_command(conn, XNBD_CMD_SUM);
        if (r < 0)
                return r;
        d->primary = conn;
        nbdsdk_error(0, "following the primary on connection %llu; other clients may only read",
                     (unsigned long long) nbdsdk_conn_get_id(conn));
        return nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0);
}

static int sum_command(nbdsdk_request *req, void *ud) {
        struct xs_disk *d = ud;
        uint64_t count = nbdsdk_request_get_length(req);
        if (count == 0)
                return 0;
        unsigned char *sums = malloc((count + XNBD_SUM_BLOCK - 1) / XNBD_SUM_BLOCK * XNBD_SUM_LEN);
        if (!sums)
                return -ENOMEM;
        int r = xs_sums(d, nbdsdk_request_get_offset(req), count, sums);
        if (r == 0)
                r = nbdsdk_request_set_reply_data(req, sums, (count + XNBD_SUM_BLOCK - 1) / XNBD_SUM_BLOCK * XNBD_SUM_LEN);
        free(sums);
        return r;
}

static const struct nbdsdk_command sum = {
        .name = "XNBD_CMD_SUM",
        .type = XNBD_CMD_SUM,
        .flags = NBDSDK_COMMAND_PER_CONNECTION | NBDSDK_COMMAND_RANGE | NBDSDK_COMMAND_DATA_OUT,
        .max_length = XNBD_SUM_MAX,
        .handle = sum_command,
};

static void closed(nbdsdk_conn *conn, void *ud) {
        struct xs_disk *d = ud;
        g_hash_table_remove(d->writers, conn);
        if (conn == d->primary) {
                d->primary = NULL;
                nbdsdk_error(0, "the primary (connection %llu) has gone; clients may write here now",
                             (unsigned long long) nbdsdk_conn_get_id(conn));
        }
}

int xs_follow_setup(nbdsdk_server *server, struct xs_disk *d) {
        if (!(d->writers = g_hash_table_new(NULL, NULL)))
                return -ENOMEM;
        int r = nbdsdk_server_add_option(server, XNBD_OPT_SYNC, "XNBD_SYNC", sync_option, d, 0, NULL);
        if (r == 0)
                r = nbdsdk_server_add_command(server, &sum, sizeof sum, d, NULL);
        if (r == 0)
                r = nbdsdk_server_set_connection_callbacks(server, NULL, closed, d);
        return r;
}

void xs_follow_note_change(struct xs_disk *d, nbdsdk_request *req) {
        if (nbdsdk_request_get_conn(req) != d->primary)
                d->changed_alone = true;
}

/* Read-only for all but the primary while one is connected. */
int xs_follow_can_write(nbdsdk_conn *conn, struct xs_disk *d) {
        if (d->primary && conn != d->primary)
                return 0;
        if (conn != d->primary)
                g_hash_table_add(d->writers, conn);
        return 1;
}
