/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metadata contexts: the namespaces that exist (base, and registered ones),
 * and the contexts a connection selected. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-meta.h>

typedef struct meta_namespace_entry {
        struct nbdsdk_meta_namespace ns;
        void *userdata;
} meta_namespace_entry;

/* A selected context; its id on the wire is its index + 1. */
typedef struct {
        const meta_namespace_entry *ns;  /* NULL: base:allocation */
        char *name;
} meta_context;

typedef struct {
        meta_context *v;
        size_t n;
        char *export_name;       /* the export the selection was made for */
} meta_selection;

void meta_selection_clear(meta_selection *m);
static inline bool meta_selection_any(const meta_selection *m) { return m->n > 0; }
/* Add NAME (copied) unless selected already. Returns 0 or -ENOMEM. */
int meta_selection_add(meta_selection *m, const meta_namespace_entry *ns, const char *name);

/* The list a LIST_META_CONTEXT query builds. */
struct nbdsdk_meta_list {
        char **names;
        size_t n;
        const char *prefix;      /* "namespace:" being asked, for checks */
};
void meta_list_clear(nbdsdk_meta_list *l);
