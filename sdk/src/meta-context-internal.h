/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metadata contexts: which exist, and which a connection selected. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Context ids handed to clients. */
#define META_ID_BASE_ALLOCATION 1

typedef struct {
        bool base_allocation;    /* selected by SET_META_CONTEXT */
        char *export_name;       /* the export the selection was made for */
} meta_selection;

void meta_selection_clear(meta_selection *m);
static inline bool meta_selection_any(const meta_selection *m) { return m->base_allocation; }
