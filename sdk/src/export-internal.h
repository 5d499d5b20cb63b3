/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The export a connection selected: its size, block sizes and capabilities,
 * computed once from the ops when the export is opened. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>

typedef struct {
        bool open;
        nbdsdk_export *entry;    /* the server's export it is */
        uint64_t size;
        uint32_t min_block, pref_block, max_block;
        bool writable, flush, trim, fast_zero, multi_conn, extents, rotational;
        int zero, fua, cache;    /* NBDSDK_CAP_* */
        char *memory;            /* the backend's ops->map (its level only), or NULL */
} export_state;

/* Open NAME for CONN: ops->open, get_size, block sizes, can_*. On failure
 * returns -errno and fills *retmsg with a reason (static or conn-owned). */
int export_open(nbdsdk_conn *conn, const char *name, const char **retmsg);
void export_close(nbdsdk_conn *conn);
/* The 16-bit transmission flags for the open export. */
uint16_t export_eflags(nbdsdk_conn *conn);
