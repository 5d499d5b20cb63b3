/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metadata contexts this server knows, and a connection's selection. */
#include <stdlib.h>
#include <string.h>
#include "meta-context-internal.h"

void meta_selection_clear(meta_selection *m) {
        m->base_allocation = false;
        free(m->export_name);
        m->export_name = NULL;
}
