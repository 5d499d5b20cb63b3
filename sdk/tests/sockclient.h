/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A blocking NBD client on a real socket, for the tests that drive servers
 * through loops (sd-event, poll, GLib) rather than the in-memory transport.
 * Every helper fails the test on a short read or write. */
#pragma once

#include <stdint.h>
#include <stddef.h>

int sc_connect_unix(const char *path);
void sc_write(int fd, const void *buf, size_t len);
void sc_read(int fd, void *buf, size_t len);
/* The client's flags (fixed newstyle, no zeroes) and EXPORT_NAME "", sent
 * without waiting for the greeting. */
void sc_send_export_name(int fd);
/* Greeting, fixed newstyle flags, EXPORT_NAME ""; returns the export size. */
uint64_t sc_handshake(int fd);
void sc_request(int fd, uint16_t type, uint64_t cookie, uint64_t off, uint32_t len);
/* Reads a simple reply header: returns its error, sets *RETCOOKIE. */
uint32_t sc_reply(int fd, uint64_t *retcookie);
/* A whole session on the socket at PATH: handshake (the export must be
 * EXPORT_SIZE bytes), N_BLOCKS 4 KiB writes of a pattern with all of them in
 * flight, the reads of them back likewise, then DISC and the server's close.
 * Returns how many bytes read back differ from what was written. */
unsigned sc_write_read_back(const char *path, uint64_t export_size, int n_blocks);
