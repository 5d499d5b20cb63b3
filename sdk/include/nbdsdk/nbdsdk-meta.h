/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metadata contexts of your own (e.g. "x-myext:dirty"), negotiated with
 * LIST/SET_META_CONTEXT and answered in NBD_CMD_BLOCK_STATUS next to
 * base:allocation. See nbdsdk_meta(3). */
#ifndef NBDSDK_META_H
#define NBDSDK_META_H

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct nbdsdk_meta_list nbdsdk_meta_list;

struct nbdsdk_meta_namespace {
        const char *name;        /* the namespace, without its colon: "x-myext" */
        /* LIST_META_CONTEXT: add every context of this namespace that QUERY
         * (what follows "name:", "" for all) matches on EXPORT_NAME, with
         * nbdsdk_meta_list_add(). Returns 0 or -errno. */
        int (*list)(nbdsdk_conn *conn, const char *export_name, const char *query,
                    nbdsdk_meta_list *list, void *userdata);
        /* SET_META_CONTEXT: may CONTEXT (the full name) be selected on
         * EXPORT_NAME? 1 yes, 0 unknown (ignored), or -errno. */
        int (*select)(nbdsdk_conn *conn, const char *export_name, const char *context, void *userdata);
        /* BLOCK_STATUS for a selected CONTEXT: add extents from OFFSET with
         * nbdsdk_extents_add() (any 32-bit status). Returns 0, -errno,
         * NBDSDK_DEFER, or NBDSDK_WOULD_BLOCK to be called again on a worker
         * (inline-first servers, where nbdsdk_request_may_block() is false). */
        int (*block_status)(nbdsdk_request *req, const char *context, uint64_t count, uint64_t offset,
                            uint32_t flags, nbdsdk_extents *extents, void *userdata);
};

/* Register a namespace (copied; NS_SIZE is sizeof(struct nbdsdk_meta_namespace);
 * the name string is not copied and must stay valid while registered).
 * RETSLOT (may be NULL) receives a slot that undoes the registration
 * (nbdsdk_slot(3)). Returns 0, -EINVAL (NULL or missing fields, a name with
 * ':' or empty), -EEXIST ("base" or a namespace registered already), -EBUSY
 * (the server runs), -ENOMEM. */
int nbdsdk_server_add_meta_namespace(nbdsdk_server *server, const struct nbdsdk_meta_namespace *ns,
                                     size_t ns_size, void *userdata, nbdsdk_slot **retslot);
/* From a list callback: offer CONTEXT, which must be "namespace:leaf" of the
 * namespace being asked. Duplicates are ignored. Returns 0, -EINVAL, -ENOMEM. */
int nbdsdk_meta_list_add(nbdsdk_meta_list *list, const char *context);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
