/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The registry of private commands (nbdsdk_command(3)). */
#pragma once

#include <stdbool.h>
#include <nbdsdk/nbdsdk.h>

typedef struct command_entry {
        struct nbdsdk_command cmd;
        void *userdata;
} command_entry;

/* The registered command TYPE, or NULL (standard commands are never here). */
const command_entry *command_find(nbdsdk_server *server, uint16_t type);
/* Is TYPE legal on CONN (registered, and enabled there if per connection)? */
bool command_enabled(nbdsdk_conn *conn, const command_entry *e);
void commands_fini(nbdsdk_server *server);
void conn_commands_fini(nbdsdk_conn *conn);
