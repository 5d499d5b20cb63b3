/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Block checksums: how a primary finds which blocks of a replica differ
 * from its own without reading them over the network. */
#include <errno.h>
#include <stdlib.h>
#include "xnbd-sync.h"

int xs_sums(struct xs_disk *d, uint64_t off, uint64_t count, unsigned char *sums) {
        unsigned char *buf = malloc(count);
        if (!buf)
                return -ENOMEM;
        int r = xs_disk_pread(d, buf, count, off);
        GChecksum *sha = g_checksum_new(G_CHECKSUM_SHA256);
        for (uint64_t at = 0; r == 0 && at < count; at += XNBD_SUM_BLOCK, sums += XNBD_SUM_LEN) {
                gsize len = XNBD_SUM_LEN;
                g_checksum_reset(sha);
                g_checksum_update(sha, buf + at, count - at < XNBD_SUM_BLOCK ? count - at : XNBD_SUM_BLOCK);
                g_checksum_get_digest(sha, sums, &len);
        }
        g_checksum_free(sha);
        free(buf);
        return r;
}
