/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server's exports: each a name, a description, a read-only switch and
 * the userdata its backend callbacks get. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "layers-internal.h"
#include "server-internal.h"

int server_add_export(nbdsdk_server *s, const char *name, void *userdata, nbdsdk_export **ret) {
        nbdsdk_export **v = realloc(s->exports, (s->n_exports + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        s->exports = v;
        nbdsdk_export *e = calloc(1, sizeof *e);
        if (!e || !(e->name = strdup(name))) {
                free(e);
                return -ENOMEM;
        }
        e->server = s;
        e->userdata = userdata;
        s->exports[s->n_exports++] = e;
        if (!s->default_export)
                s->default_export = e;
        *ret = e;
        return 0;
}

nbdsdk_export *server_find_export(nbdsdk_server *s, const char *name) {
        if (name[0] == '\0')
                return s->default_export;
        for (size_t i = 0; i < s->n_exports; i++)
                if (strcmp(s->exports[i]->name, name) == 0)
                        return s->exports[i];
        return NULL;
}

void server_free_exports(nbdsdk_server *s) {
        for (size_t i = 0; i < s->n_exports; i++) {
                layers_free(s->exports[i]);
                if (s->ops.free_export && s->exports[i]->userdata != s->userdata)
                        s->ops.free_export(s->exports[i], s->exports[i]->userdata);
                free(s->exports[i]->name);
                free(s->exports[i]->description);
                free(s->exports[i]);
        }
        free(s->exports);
}

int nbdsdk_server_add_export(nbdsdk_server *s, const char *name, void *userdata, nbdsdk_export **retexport) {
        if (!s || !name || strlen(name) > NBDSDK_MAX_STRING)
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        /* The empty name is the default export's, whatever its own name. */
        if (server_find_export(s, name))
                return -EEXIST;
        nbdsdk_export *e;
        int r = server_add_export(s, name, userdata, &e);
        if (r == 0 && retexport)
                *retexport = e;
        return r;
}

nbdsdk_export *nbdsdk_server_get_export(nbdsdk_server *s, const char *name) {
        return s ? server_find_export(s, name ? name : "") : NULL;
}

int nbdsdk_server_set_default_export(nbdsdk_server *s, const char *name) {
        if (!s || !name)
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        nbdsdk_export *e = server_find_export(s, name);
        if (!e)
                return -ENOENT;
        s->default_export = e;
        return 0;
}

int nbdsdk_export_set_description(nbdsdk_export *e, const char *description) {
        if (!e || (description && strlen(description) > NBDSDK_MAX_STRING))
                return -EINVAL;
        if (e->server->running)
                return -EBUSY;
        char *copy = NULL;
        if (description && !(copy = strdup(description)))
                return -ENOMEM;
        free(e->description);
        e->description = copy;
        return 0;
}

int nbdsdk_export_set_read_only(nbdsdk_export *e, bool read_only) {
        if (!e)
                return -EINVAL;
        if (e->server->running)
                return -EBUSY;
        e->read_only = read_only;
        return 0;
}

const char *nbdsdk_export_get_name(nbdsdk_export *e) {
        return e ? e->name : "";
}

void *nbdsdk_export_get_userdata(nbdsdk_export *e) {
        return e ? e->userdata : NULL;
}

nbdsdk_server *nbdsdk_export_get_server(nbdsdk_export *e) {
        return e ? e->server : NULL;
}
