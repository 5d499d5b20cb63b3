/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Registered key=value settings (nbdsdk_config(3)). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "server-internal.h"
#include "slot-internal.h"

static bool valid_key(const char *key) {
        if (!isalpha((unsigned char) key[0]))
                return false;
        for (const char *c = key; *c; c++)
                if (!isalnum((unsigned char) *c) && !strchr("-_.", *c))
                        return false;
        return true;
}

static const config_key *find_key(nbdsdk_server *s, const char *key) {
        for (size_t i = 0; i < s->n_config_keys; i++)
                if (strcmp(s->config_keys[i].key, key) == 0)
                        return &s->config_keys[i];
        return NULL;
}

static void config_key_slot_remove(nbdsdk_slot *slot) {
        nbdsdk_server *s = slot->server;
        config_key *k = (config_key *) find_key(s, slot->ptr);
        free(k->key);
        free(k->help);
        slot_array_remove(s->config_keys, &s->n_config_keys, sizeof *k, k);
}

static int add_key(nbdsdk_server *s, const char *key, const char *help, nbdsdk_config_handler handler,
                   void *userdata, bool server_wide, nbdsdk_slot **retslot) {
        if (!s || !key || !handler || !valid_key(key))
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        if (find_key(s, key))
                return -EEXIST;
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(s, config_key_slot_remove)))
                return -ENOMEM;
        config_key *v = realloc(s->config_keys, (s->n_config_keys + 1) * sizeof *v);
        if (!v)
                return slot_commit(slot, -ENOMEM, 0, NULL, retslot);
        s->config_keys = v;
        config_key *k = &v[s->n_config_keys];
        *k = (config_key) { .key = strdup(key), .help = help ? strdup(help) : NULL, .handler = handler,
                            .userdata = userdata, .server_wide = server_wide };
        if (!k->key || (help && !k->help)) {
                free(k->key);
                free(k->help);
                return slot_commit(slot, -ENOMEM, 0, NULL, retslot);
        }
        s->n_config_keys++;
        /* The slot names the key by the registry's own copy. */
        return slot_commit(slot, 0, 0, k->key, retslot);
}

int nbdsdk_server_add_config_key(nbdsdk_server *s, const char *key, const char *help,
                                 nbdsdk_config_handler handler, void *userdata, nbdsdk_slot **retslot) {
        return add_key(s, key, help, handler, userdata, false, retslot);
}

int config_key_add_server_wide(nbdsdk_server *s, const char *key, const char *help,
                               nbdsdk_config_handler handler) {
        return add_key(s, key, help, handler, NULL, true, NULL);
}

bool config_key_is_server_wide(nbdsdk_server *s, const char *key) {
        const config_key *k = find_key(s, key);
        return k && k->server_wide;
}

int nbdsdk_export_config(nbdsdk_export *exp, const char *key, const char *value) {
        if (!exp || !key || !value)
                return -EINVAL;
        nbdsdk_server *s = exp->server;
        if (s->running)
                return -EBUSY;
        const config_key *k = find_key(s, key);
        if (k)
                return k->handler(exp, key, value, k->userdata);
        return s->ops.config ? s->ops.config(key, value, exp->userdata) : -ENOENT;
}

int nbdsdk_server_config(nbdsdk_server *s, const char *key, const char *value) {
        return s ? nbdsdk_export_config(s->default_export, key, value) : -EINVAL;
}

void config_keys_fini(nbdsdk_server *s) {
        for (size_t i = 0; i < s->n_config_keys; i++) {
                free(s->config_keys[i].key);
                free(s->config_keys[i].help);
        }
        free(s->config_keys);
        s->config_keys = NULL;
        s->n_config_keys = 0;
}
