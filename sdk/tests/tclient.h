/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A scripted NBD client over the in-memory transport, for unit tests: it
 * sends bytes, runs the server's state machine, and checks what comes back.
 * Every check failure prints the rule that broke and exits 1. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>
#include "transport-internal.h"

typedef struct {
        nbdsdk_server *server;
        nbdsdk_conn *conn;
        mem_peer *peer;
        bool extended;           /* requests and replies use 32-byte headers */
        bool structured;         /* structured replies (implied by extended headers) */
        uint32_t meta_id;        /* base:allocation's id, from tc_set_meta_context */
        uint64_t chunk_offset;   /* offset field of the last extended chunk read */
} tclient;

#define CHECK(cond, ...) do { if (!(cond)) tc_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)
void tc_fail(const char *file, int line, const char *cond, const char *format, ...)
        __attribute__((noreturn, format(printf, 4, 5)));

/* A connection to SERVER (already configured), before the greeting is read. */
tclient *tc_connect(nbdsdk_server *server);
/* As tc_connect, then greeting and flags (FIXED_NEWSTYLE | NO_ZEROES). */
tclient *tc_connect_fixed(nbdsdk_server *server);
void tc_free(tclient *tc);

/* Run the server until it blocks (and finish queued completions). */
void tc_run(tclient *tc);
void tc_send(tclient *tc, const void *data, size_t len);
/* Exactly LEN bytes of server output must be ready. */
void tc_recv(tclient *tc, void *buf, size_t len);
/* Run the server until WANT bytes wait for the client (or it closed; at most 5 s). */
void tc_wait_for(tclient *tc, size_t want);
size_t tc_pending(tclient *tc);
bool tc_closed(tclient *tc);
/* Close the client side and let the server see it. */
void tc_hangup(tclient *tc);

/* Handshake. */
void tc_read_greeting(tclient *tc);
void tc_send_flags(tclient *tc, uint32_t flags);
void tc_send_option(tclient *tc, uint32_t option, const void *data, uint32_t len);
/* One option reply: checks magic and option; returns its type, DATA (malloc'd,
 * may be NULL) and length. */
uint32_t tc_option_reply(tclient *tc, uint32_t option, uint8_t **data, uint32_t *len);
/* Send OPTION and expect a single reply of TYPE (data ignored). */
void tc_option_expect(tclient *tc, uint32_t option, const void *data, uint32_t len, uint32_t type);
void tc_structured(tclient *tc);
void tc_extended(tclient *tc);
void tc_set_meta_context(tclient *tc, const char *export, const char *query);
/* NBD_OPT_GO on NAME with the given info requests; returns size and flags. */
void tc_go(tclient *tc, const char *name, uint64_t *retsize, uint16_t *retflags);

/* Transmission. */
/* A request header for TYPE in H (extended or not); returns its length. */
size_t tc_encode_request(uint8_t h[32], bool extended, uint16_t flags, uint16_t type, uint64_t cookie,
                         uint64_t offset, uint64_t length);
void tc_request(tclient *tc, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                uint64_t length, const void *payload, size_t payload_len);
/* A simple reply: returns the error; DATA (may be NULL) receives DATALEN bytes. */
uint32_t tc_simple_reply(tclient *tc, uint64_t cookie, void *data, size_t datalen);
/* One structured (or extended) chunk: returns its type; fills flags, payload
 * (malloc'd) and payload length. */
uint16_t tc_chunk(tclient *tc, uint64_t cookie, uint16_t *retflags, uint8_t **payload, uint64_t *retlen);
/* Expect the final reply to a request without data: success or ERROR. */
uint32_t tc_reply_status(tclient *tc, uint64_t cookie);
/* Read with structured replies into BUF (holes zero-filled); returns the error
 * and counts data/hole chunks. */
uint32_t tc_structured_read(tclient *tc, uint64_t cookie, uint64_t offset, void *buf, uint64_t len,
                            unsigned *retdata_chunks, unsigned *rethole_chunks);

/* Every reply to one option, up to and including the final one (ACK or an
 * error); nothing may follow the final reply. */
#define TC_REPLIES_MAX 16
typedef struct {
        unsigned n;
        uint32_t type[TC_REPLIES_MAX];
        uint32_t len[TC_REPLIES_MAX];
        uint8_t *data[TC_REPLIES_MAX]; /* malloc'd, NUL-terminated */
} tc_replies;
void tc_option_replies(tclient *tc, uint32_t option, tc_replies *out);
void tc_replies_free(tc_replies *r);
/* The stream is still in sync: nothing stray is pending and the next option
 * (NBD_OPT_LIST) gets its complete answer (SERVER, then ACK). */
void tc_check_in_sync(tclient *tc);

/* Transmission helpers. A connection is opened in one of three reply modes. */
typedef enum { TC_SIMPLE, TC_STRUCTURED, TC_EXTENDED, TC_MODES } tc_mode;
extern const char *const tc_mode_names[TC_MODES];
/* Connect, negotiate MODE (and base:allocation when META), then GO on the
 * default export; returns the transmission flags in RETFLAGS (may be NULL). */
tclient *tc_open(nbdsdk_server *server, tc_mode mode, bool meta, uint16_t *retflags);
/* READ in any mode (holes zero-filled); returns the NBD error. */
uint32_t tc_read(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, void *buf, uint64_t len);
/* Send a WRITE of LEN bytes (PAYLOAD_LEN under extended headers) with
 * DATALEN bytes of DATA, fewer to cut the payload short; no reply is read. */
void tc_send_write(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, uint64_t len, const void *data,
                   size_t datalen);
/* WRITE (with PAYLOAD_LEN under extended headers); returns the NBD error. */
uint32_t tc_write(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, const void *buf, uint64_t len);
/* A request without payload and its data-less reply; returns the NBD error. */
uint32_t tc_command(tclient *tc, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset, uint64_t len);
/* A successful BLOCK_STATUS reply: one final chunk of type 5 (or 6 under
 * extended headers) for the selected context; its extents. */
#define TC_EXTENTS_MAX 64
typedef struct {
        unsigned n;
        uint64_t length[TC_EXTENTS_MAX];
        uint64_t status[TC_EXTENTS_MAX];
} tc_extents;
void tc_block_status_reply(tclient *tc, uint64_t cookie, tc_extents *out);
