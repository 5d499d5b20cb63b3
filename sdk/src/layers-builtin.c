/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The built-in layers' config keys, on every server, and the instance each
 * export gets from the first of them. */
#include <errno.h>
#include "layer-builtin-internal.h"
#include "layers-internal.h"
#include "server-internal.h"

void *layer_find_or_add(nbdsdk_export *exp, const struct nbdsdk_layer *tmpl, void *(*new_data)(void), int *retr) {
        layer_entry *l = layers_find(exp, tmpl->name);
        if (l)
                return l->data;
        void *data = new_data();
        if (!data) {
                *retr = -ENOMEM;
                return NULL;
        }
        if ((*retr = nbdsdk_export_add_layer(exp, tmpl, sizeof *tmpl, data, NULL)) < 0) {
                tmpl->unload(data);
                return NULL;
        }
        return data;
}

int layers_register_builtin(nbdsdk_server *server) {
        int r = layer_log_register(server);
        if (r == 0)
                r = layer_stats_register(server);
        if (r == 0)
                r = layer_error_register(server);
        if (r == 0)
                r = layer_cow_register(server);
        return r;
}
