/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Extending transmission: private commands, legal only where registered and,
 * if so declared, only on connections that negotiated them. See
 * nbdsdk_command(3). */
#ifndef NBDSDK_COMMAND_H
#define NBDSDK_COMMAND_H

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* What a command's requests look like (struct nbdsdk_command.flags). */
#define NBDSDK_COMMAND_PAYLOAD        (1u << 0) /* LENGTH bytes of payload follow the header */
#define NBDSDK_COMMAND_DATA_OUT       (1u << 1) /* a successful reply carries data */
#define NBDSDK_COMMAND_WRITES         (1u << 2) /* refused with EPERM on read-only exports */
#define NBDSDK_COMMAND_FUA            (1u << 3) /* NBD_CMD_FLAG_FUA may be set */
#define NBDSDK_COMMAND_PER_CONNECTION (1u << 4) /* legal only after nbdsdk_conn_enable_command() */
#define NBDSDK_COMMAND_RANGE          (1u << 5) /* offset+length must lie inside the export */

struct nbdsdk_command {
        const char *name;
        uint16_t type;           /* the wire command number; 0..7 are the standard ones */
        uint32_t flags;          /* NBDSDK_COMMAND_* */
        uint64_t max_length;     /* largest LENGTH accepted; 0: the maximum payload */
        /* Handle a valid request: 0, a negative errno, or NBDSDK_DEFER (then
         * nbdsdk_request_complete() later). Data for NBDSDK_COMMAND_DATA_OUT
         * is given with nbdsdk_request_set_reply_data(). */
        int (*handle)(nbdsdk_request *req, void *userdata);
};

/* Register COMMAND (copied; COMMAND_SIZE is sizeof(struct nbdsdk_command)).
 * Its framing (payload or not) holds on every connection, so the stream stays
 * in sync even where the command is refused. RETSLOT (may be NULL) receives
 * a slot that undoes the registration (nbdsdk_slot(3)). Returns 0, -EINVAL,
 * -EEXIST (a standard or already registered number), -EBUSY (the server
 * runs), -ENOMEM. */
int nbdsdk_server_add_command(nbdsdk_server *server, const struct nbdsdk_command *command,
                              size_t command_size, void *userdata, nbdsdk_slot **retslot);

/* Make a NBDSDK_COMMAND_PER_CONNECTION command legal on CONN, typically from
 * the option handler that negotiated it. Returns 0, -EINVAL, -ENOENT (no such
 * registered command), -ENOMEM. */
int nbdsdk_conn_enable_command(nbdsdk_conn *conn, uint16_t type);

/* For command handlers: the request's payload and wire flags, and the data
 * of a successful reply (copied; at most the maximum payload). */
const void *nbdsdk_request_get_payload(nbdsdk_request *req, size_t *retlength);
uint16_t nbdsdk_request_get_wire_flags(nbdsdk_request *req);
int nbdsdk_request_set_reply_data(nbdsdk_request *req, const void *data, size_t length);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
