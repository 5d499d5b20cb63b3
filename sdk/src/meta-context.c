/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metadata contexts a connection selected, the lists LIST_META_CONTEXT
 * builds, and the registry of namespaces beyond base. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "meta-context-internal.h"
#include "server-internal.h"
#include "slot-internal.h"

void meta_selection_clear(meta_selection *m) {
        for (size_t i = 0; i < m->n; i++)
                free(m->v[i].name);
        free(m->v);
        free(m->export_name);
        *m = (meta_selection) { 0 };
}

int meta_selection_add(meta_selection *m, const meta_namespace_entry *ns, const char *name) {
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->v[i].name, name) == 0)
                        return 0;
        meta_context *v = realloc(m->v, (m->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        m->v = v;
        if (!(v[m->n].name = strdup(name)))
                return -ENOMEM;
        v[m->n++].ns = ns;
        return 0;
}

void meta_list_clear(nbdsdk_meta_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->names[i]);
        free(l->names);
        l->names = NULL;
        l->n = 0;
}

int nbdsdk_meta_list_add(nbdsdk_meta_list *l, const char *context) {
        if (!l || !context || strncmp(context, l->prefix, strlen(l->prefix)) != 0 ||
            strlen(context) > NBDSDK_MAX_STRING)
                return -EINVAL;
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->names[i], context) == 0)
                        return 0;
        char **v = realloc(l->names, (l->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        l->names = v;
        if (!(v[l->n] = strdup(context)))
                return -ENOMEM;
        l->n++;
        return 0;
}

static void meta_namespace_slot_remove(nbdsdk_slot *slot) {
        nbdsdk_server *s = slot->server;
        const char *name = slot->ptr;
        meta_namespace_entry *e = (meta_namespace_entry *) server_find_meta_namespace(s, name, strlen(name));
        slot_array_remove(s->meta_namespaces, &s->n_meta_namespaces, sizeof *e, e);
}

int nbdsdk_server_add_meta_namespace(nbdsdk_server *s, const struct nbdsdk_meta_namespace *ns, size_t ns_size,
                                     void *userdata, nbdsdk_slot **retslot) {
        if (!s || !ns || ns_size < offsetof(struct nbdsdk_meta_namespace, block_status) + sizeof(void *))
                return -EINVAL;
        struct nbdsdk_meta_namespace n = { 0 };
        memcpy(&n, ns, ns_size < sizeof n ? ns_size : sizeof n);
        if (!n.name || !n.name[0] || strchr(n.name, ':') || !n.list || !n.select || !n.block_status)
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        if (strcmp(n.name, "base") == 0 || server_find_meta_namespace(s, n.name, strlen(n.name)))
                return -EEXIST;
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(s, meta_namespace_slot_remove)))
                return -ENOMEM;
        meta_namespace_entry *v = realloc(s->meta_namespaces, (s->n_meta_namespaces + 1) * sizeof *v);
        if (v) {
                s->meta_namespaces = v;
                v[s->n_meta_namespaces++] = (meta_namespace_entry) { .ns = n, .userdata = userdata };
        }
        /* The name must outlive the registration anyway: it identifies it. */
        return slot_commit(slot, v ? 0 : -ENOMEM, 0, n.name, retslot);
}

const meta_namespace_entry *server_find_meta_namespace(nbdsdk_server *s, const char *name, size_t len) {
        for (size_t i = 0; i < s->n_meta_namespaces; i++)
                if (strlen(s->meta_namespaces[i].ns.name) == len &&
                    memcmp(s->meta_namespaces[i].ns.name, name, len) == 0)
                        return &s->meta_namespaces[i];
        return NULL;
}
