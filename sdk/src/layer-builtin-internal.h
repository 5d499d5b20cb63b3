/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The built-in layers, each made for an export by its config keys. Nearest
 * the client: the request log and stats (they see what the client sees),
 * then error injection, then copy-on-write right over the backend. */
#pragma once

#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

/* Register each layer's config keys on SERVER. Return 0 or -errno. */
int layer_cow_register(nbdsdk_server *server);
int layer_stats_register(nbdsdk_server *server);
int layer_error_register(nbdsdk_server *server);
int layer_log_register(nbdsdk_server *server);

/* layer-wrap.c: a layer that passes every command down, asking BEFORE first
 * (0 to go on, or -errno to fail the command) and telling AFTER the result
 * and the time it took. Its data starts with a wrap_hooks; either hook may
 * be NULL. */
typedef struct {
        int (*before)(nbdsdk_request *req, uint16_t command, uint64_t count, uint64_t offset, uint32_t flags,
                      void *data);
        void (*after)(nbdsdk_request *req, uint16_t command, uint64_t count, int result, uint64_t nsec,
                      void *data);
} wrap_hooks;

/* The name the built-in layers use for COMMAND ("read", "zero", ...), or
 * NULL for a command they do not see. */
const char *wrap_command_name(unsigned command);
/* A wrapping layer called NAME at PRIORITY, with REPORT and UNLOAD. */
struct nbdsdk_layer layer_wrap(const char *name, int priority, void (*report)(void *), void (*unload)(void *));
/* The export's layer made from TEMPLATE, made now with NEW_DATA() if missing.
 * Returns its data, or NULL (-ENOMEM, or the add failed: *retr says). */
void *layer_find_or_add(nbdsdk_export *exp, const struct nbdsdk_layer *tmpl, void *(*new_data)(void), int *retr);
