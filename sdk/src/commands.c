/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Private commands: registered per server, enabled per connection. Their
 * validation is in request-validate.c, their dispatch in datapath.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "commands-internal.h"
#include "conn-internal.h"
#include "request-internal.h"
#include "server-internal.h"
#include "slot-internal.h"

/* The standard commands (spec "Request types") cannot be registered. */
#define FIRST_FREE_COMMAND (NBDSDK_CMD_BLOCK_STATUS + 1)

const command_entry *command_find(nbdsdk_server *s, uint16_t type) {
        for (size_t i = 0; i < s->n_commands; i++)
                if (s->commands[i].cmd.type == type)
                        return &s->commands[i];
        return NULL;
}

bool command_enabled(nbdsdk_conn *conn, const command_entry *e) {
        if (!(e->cmd.flags & NBDSDK_COMMAND_PER_CONNECTION))
                return true;
        for (size_t i = 0; i < conn->n_commands; i++)
                if (conn->commands[i] == e->cmd.type)
                        return true;
        return false;
}

void commands_fini(nbdsdk_server *s) {
        free(s->commands);
        s->commands = NULL;
        s->n_commands = 0;
}

void conn_commands_fini(nbdsdk_conn *conn) {
        free(conn->commands);
        conn->commands = NULL;
        conn->n_commands = 0;
}

static void command_slot_remove(nbdsdk_slot *slot) {
        nbdsdk_server *s = slot->server;
        command_entry *e = (command_entry *) command_find(s, (uint16_t) slot->id);
        slot_array_remove(s->commands, &s->n_commands, sizeof *e, e);
}

int nbdsdk_server_add_command(nbdsdk_server *s, const struct nbdsdk_command *command, size_t command_size,
                              void *userdata, nbdsdk_slot **retslot) {
        const uint32_t known = NBDSDK_COMMAND_PAYLOAD | NBDSDK_COMMAND_DATA_OUT | NBDSDK_COMMAND_WRITES |
                               NBDSDK_COMMAND_FUA | NBDSDK_COMMAND_PER_CONNECTION | NBDSDK_COMMAND_RANGE;
        if (!s || !command || command_size < offsetof(struct nbdsdk_command, handle) + sizeof(void *))
                return -EINVAL;
        struct nbdsdk_command c = { 0 };
        memcpy(&c, command, command_size < sizeof c ? command_size : sizeof c);
        if (!c.name || !c.handle || (c.flags & ~known))
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        if (c.type < FIRST_FREE_COMMAND || command_find(s, c.type))
                return -EEXIST;
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(s, command_slot_remove)))
                return -ENOMEM;
        command_entry *v = realloc(s->commands, (s->n_commands + 1) * sizeof *v);
        if (v) {
                s->commands = v;
                v[s->n_commands++] = (command_entry) { .cmd = c, .userdata = userdata };
        }
        return slot_commit(slot, v ? 0 : -ENOMEM, c.type, NULL, retslot);
}

int nbdsdk_conn_enable_command(nbdsdk_conn *conn, uint16_t type) {
        if (!conn)
                return -EINVAL;
        const command_entry *e = command_find(conn->server, type);
        if (!e)
                return -ENOENT;
        if (command_enabled(conn, e))
                return 0;
        uint16_t *v = realloc(conn->commands, (conn->n_commands + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        conn->commands = v;
        v[conn->n_commands++] = type;
        return 0;
}

const void *nbdsdk_request_get_payload(nbdsdk_request *req, size_t *retlength) {
        if (!req)
                return NULL;
        if (retlength)
                *retlength = req->payload_len;
        return req->payload_len ? req->buf : NULL;
}

uint16_t nbdsdk_request_get_wire_flags(nbdsdk_request *req) {
        return req ? req->wire_flags : 0;
}

int nbdsdk_request_set_reply_data(nbdsdk_request *req, const void *data, size_t length) {
        if (!req || (length && !data) || length > req->conn->server->max_payload)
                return -EINVAL;
        void *copy = length ? malloc(length) : NULL;
        if (length && !copy)
                return -ENOMEM;
        if (length)
                memcpy(copy, data, length);
        free(req->reply_data);
        req->reply_data = copy;
        req->reply_data_len = length;
        return 0;
}
