/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Requests the core must refuse before any callback sees them (spec
 * "Request types", "Block size constraints", "Error values"), each with its
 * exact error, the stream staying in sync afterwards; and the protocol
 * errors that end a connection. */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* The next request is still parsed and served: nothing was left unread. */
static void still_usable(const char *what) {
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "%s: after %s the next READ is served", mode, what);
        CHECK(tc_pending(tc) == 0 && !tc_closed(tc), "%s: after %s the stream is in sync", mode, what);
        td_clear_log(td);
}

/* Send a request (with PAYLOAD_LEN bytes of payload) that must get WANT. */
static void refused(uint16_t flags, uint16_t type, uint64_t offset, uint64_t length, size_t payload_len,
                    uint32_t want, const char *what) {
        static uint64_t cookie = 1000;
        uint8_t *payload = payload_len ? calloc(1, payload_len) : NULL;
        if (type == NBDSDK_CMD_WRITE && tc->extended)
                flags |= NBDSDK_CMD_FLAG_PAYLOAD_LEN;
        tc_request(tc, flags, type, ++cookie, offset, length, payload, payload_len);
        free(payload);
        CHECK(!tc_closed(tc), "%s: %s: refused, not disconnected", mode, what);
        uint32_t err = tc_reply_status(tc, cookie);
        CHECK(err == want, "%s: %s: error %u, expected %u", mode, what, err, want);
        CHECK(td->n_log == 0, "%s: %s: no callback may see it, got \"%s\"", mode, what, td->log);
        still_usable(what);
}

static void past_the_end_in(tc_mode m) {
        open_disk(m, m != TC_SIMPLE);
        const uint64_t end = DISK_SIZE;
        refused(0, NBDSDK_CMD_READ, end - 4096, 8192, 0, NBDSDK_EINVAL, "READ across the end");
        refused(0, NBDSDK_CMD_READ, end, 512, 0, NBDSDK_EINVAL, "READ at the end");
        refused(0, NBDSDK_CMD_READ, 2 * end, 512, 0, NBDSDK_EINVAL, "READ beyond the end");
        refused(0, NBDSDK_CMD_TRIM, end - 4096, 8192, 0, NBDSDK_EINVAL, "TRIM across the end");
        refused(0, NBDSDK_CMD_CACHE, end - 4096, 8192, 0, NBDSDK_EINVAL, "CACHE across the end");
        if (m != TC_SIMPLE)
                refused(0, NBDSDK_CMD_BLOCK_STATUS, end, 4096, 0, NBDSDK_EINVAL, "BLOCK_STATUS at the end");
        refused(0, NBDSDK_CMD_WRITE, end - 4096, 8192, 8192, NBDSDK_ENOSPC, "WRITE across the end");
        refused(0, NBDSDK_CMD_WRITE_ZEROES, end - 4096, 8192, 0, NBDSDK_ENOSPC, "WRITE_ZEROES across the end");
        /* Up to the last byte is fine. */
        uint8_t buf[4096];
        CHECK(tc_read(tc, 0, 1, end - 4096, buf, sizeof buf) == 0, "%s: READ of the last block", mode);
        close_disk();
}
ALL_MODES(past_the_end)

static void offset_plus_length_overflow_in(tc_mode m) {
        open_disk(m, false);
        const uint64_t off = UINT64_MAX - 511;
        refused(0, NBDSDK_CMD_READ, off, 1024, 0, NBDSDK_EINVAL, "READ wrapping around");
        refused(0, NBDSDK_CMD_TRIM, off, 1024, 0, NBDSDK_EINVAL, "TRIM wrapping around");
        refused(0, NBDSDK_CMD_WRITE, off, 1024, 1024, NBDSDK_ENOSPC, "WRITE wrapping around");
        refused(0, NBDSDK_CMD_WRITE_ZEROES, off, 1024, 0, NBDSDK_ENOSPC, "WRITE_ZEROES wrapping around");
        close_disk();
}
ALL_MODES(offset_plus_length_overflow)

static void zero_length_in(tc_mode m) {
        open_disk(m, false);
        refused(0, NBDSDK_CMD_READ, 0, 0, 0, NBDSDK_EINVAL, "zero-length READ");
        refused(0, NBDSDK_CMD_WRITE, 0, 0, 0, NBDSDK_EINVAL, "zero-length WRITE");
        refused(0, NBDSDK_CMD_TRIM, 0, 0, 0, NBDSDK_EINVAL, "zero-length TRIM");
        refused(0, NBDSDK_CMD_WRITE_ZEROES, 0, 0, 0, NBDSDK_EINVAL, "zero-length WRITE_ZEROES");
        refused(0, NBDSDK_CMD_CACHE, 0, 0, 0, NBDSDK_EINVAL, "zero-length CACHE");
        close_disk();
}
ALL_MODES(zero_length)

static void misaligned_to_the_minimum_block_in(tc_mode m) {
        td = td_new(1 << 20);
        td->min_block = 512;
        td->pref_block = 4096;
        td->max_block = 1 << 20;
        open_disk(m, false);
        refused(0, NBDSDK_CMD_READ, 100, 512, 0, NBDSDK_EINVAL, "READ at a misaligned offset");
        refused(0, NBDSDK_CMD_READ, 0, 100, 0, NBDSDK_EINVAL, "READ of a misaligned length");
        refused(0, NBDSDK_CMD_WRITE, 256, 512, 512, NBDSDK_EINVAL, "WRITE at a misaligned offset");
        refused(0, NBDSDK_CMD_WRITE, 0, 1000, 1000, NBDSDK_EINVAL, "WRITE of a misaligned length");
        refused(0, NBDSDK_CMD_TRIM, 512, 1000, 0, NBDSDK_EINVAL, "misaligned TRIM");
        refused(0, NBDSDK_CMD_WRITE_ZEROES, 511, 512, 0, NBDSDK_EINVAL, "misaligned WRITE_ZEROES");
        refused(0, NBDSDK_CMD_CACHE, 1, 512, 0, NBDSDK_EINVAL, "misaligned CACHE");
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 512, buf, sizeof buf) == 0, "%s: an aligned READ works", mode);
        close_disk();
}
ALL_MODES(misaligned_to_the_minimum_block)

static void unknown_command_in(tc_mode m) {
        open_disk(m, false);
        refused(0, NBDSDK_CMD_RESIZE, 0, 0, 0, NBDSDK_EINVAL, "RESIZE (never advertised)");
        refused(0, 9, 0, 4096, 0, NBDSDK_EINVAL, "command 9");
        refused(0, 0xffff, 0, 4096, 0, NBDSDK_EINVAL, "command 0xffff");
        close_disk();
}
ALL_MODES(unknown_command)

static void unknown_flags_in(tc_mode m) {
        open_disk(m, false);
        refused(1u << 9, NBDSDK_CMD_READ, 0, 4096, 0, NBDSDK_EINVAL, "READ with flag bit 9");
        refused(1u << 15, NBDSDK_CMD_WRITE, 0, 4096, 4096, NBDSDK_EINVAL, "WRITE with flag bit 15");
        refused(1u << 6, NBDSDK_CMD_TRIM, 0, 4096, 0, NBDSDK_EINVAL, "TRIM with flag bit 6");
        close_disk();
}
ALL_MODES(unknown_flags)

/* Structured replies, so that DF itself is valid on a READ. */
static void flags_on_the_wrong_command_in(tc_mode m) {
        open_disk(m, true);
        refused(NBDSDK_CMD_FLAG_DF, NBDSDK_CMD_WRITE, 0, 4096, 4096, NBDSDK_EINVAL, "DF on WRITE");
        refused(NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_READ, 0, 4096, 0, NBDSDK_EINVAL, "REQ_ONE on READ");
        refused(NBDSDK_CMD_FLAG_NO_HOLE, NBDSDK_CMD_READ, 0, 4096, 0, NBDSDK_EINVAL, "NO_HOLE on READ");
        refused(NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_TRIM, 0, 4096, 0, NBDSDK_EINVAL, "FAST_ZERO on TRIM");
        refused(NBDSDK_CMD_FLAG_DF, NBDSDK_CMD_BLOCK_STATUS, 0, 4096, 0, NBDSDK_EINVAL, "DF on BLOCK_STATUS");
        refused(NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_WRITE_ZEROES, 0, 4096, 0, NBDSDK_EINVAL,
                "REQ_ONE on WRITE_ZEROES");
        close_disk();
}
static void flags_on_the_wrong_command(void) {
        flags_on_the_wrong_command_in(TC_STRUCTURED);
        flags_on_the_wrong_command_in(TC_EXTENDED);
}

static void not_advertised_in(tc_mode m) {
        td = td_new(1 << 20);
        td->has_flush = false;
        open_disk(m, false);
        CHECK(!(eflags & (NBDSDK_FLAG_SEND_FLUSH | NBDSDK_FLAG_SEND_FUA)), "%s: no flush, no FUA advertised", mode);
        refused(0, NBDSDK_CMD_FLUSH, 0, 0, 0, NBDSDK_EINVAL, "FLUSH without SEND_FLUSH");
        refused(NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_WRITE, 0, 4096, 4096, NBDSDK_EINVAL, "FUA without SEND_FUA");
        refused(NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_READ, 0, 4096, 0, NBDSDK_EINVAL, "FUA on READ without SEND_FUA");
        close_disk();

        td = td_new(1 << 20);
        td->has_trim = false;
        td->can_cache = NBDSDK_CAP_NONE;
        td->can_fast_zero = 0;
        open_disk(m, false);
        CHECK(!(eflags & (NBDSDK_FLAG_SEND_TRIM | NBDSDK_FLAG_SEND_CACHE | NBDSDK_FLAG_SEND_FAST_ZERO)),
              "%s: no trim, cache or fast zero advertised", mode);
        refused(0, NBDSDK_CMD_TRIM, 0, 4096, 0, NBDSDK_EINVAL, "TRIM without SEND_TRIM");
        refused(0, NBDSDK_CMD_CACHE, 0, 4096, 0, NBDSDK_EINVAL, "CACHE without SEND_CACHE");
        refused(NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_WRITE_ZEROES, 0, 4096, 0, NBDSDK_EINVAL,
                "FAST_ZERO without SEND_FAST_ZERO");
        close_disk();

        td = td_new(1 << 20);
        td->can_zero = NBDSDK_CAP_NONE;
        open_disk(m, false);
        CHECK(!(eflags & (NBDSDK_FLAG_SEND_WRITE_ZEROES | NBDSDK_FLAG_SEND_FAST_ZERO)),
              "%s: no write zeroes advertised", mode);
        refused(0, NBDSDK_CMD_WRITE_ZEROES, 0, 4096, 0, NBDSDK_EINVAL, "WRITE_ZEROES without SEND_WRITE_ZEROES");
        close_disk();
}
ALL_MODES(not_advertised)

static void df_without_structured_replies(void) {
        open_disk(TC_SIMPLE, false);
        CHECK(!(eflags & NBDSDK_FLAG_SEND_DF), "DF is not advertised without structured replies");
        refused(NBDSDK_CMD_FLAG_DF, NBDSDK_CMD_READ, 0, 4096, 0, NBDSDK_EINVAL, "DF with simple replies");
        close_disk();
}

static void block_status_without_a_context_in(tc_mode m) {
        open_disk(m, false);
        refused(0, NBDSDK_CMD_BLOCK_STATUS, 0, 4096, 0, NBDSDK_EINVAL, "BLOCK_STATUS without SET_META_CONTEXT");
        close_disk();
}
ALL_MODES(block_status_without_a_context)

static void writes_on_a_read_only_export_in(tc_mode m) {
        for (int how = 0; how < 2; how++) {
                td = td_new(1 << 20);
                if (how == 1)
                        td->can_write = 0;
                server = td_server(td);
                if (how == 0)
                        CHECK(nbdsdk_server_set_read_only(server, true) == 0, "read-only");
                open_disk(m, false);
                CHECK(eflags & NBDSDK_FLAG_READ_ONLY, "%s: READ_ONLY advertised", mode);
                CHECK(!(eflags & (NBDSDK_FLAG_SEND_TRIM | NBDSDK_FLAG_SEND_WRITE_ZEROES | NBDSDK_FLAG_SEND_FUA)),
                      "%s: no write-side features on a read-only export", mode);
                refused(0, NBDSDK_CMD_WRITE, 0, 4096, 4096, NBDSDK_EPERM, "WRITE on a read-only export");
                refused(0, NBDSDK_CMD_TRIM, 0, 4096, 0, NBDSDK_EPERM, "TRIM on a read-only export");
                refused(0, NBDSDK_CMD_WRITE_ZEROES, 0, 4096, 0, NBDSDK_EPERM, "WRITE_ZEROES on a read-only export");
                close_disk();
        }
}
ALL_MODES(writes_on_a_read_only_export)

/* Extended headers hang up on oversized payloads instead (test-extended.c). */
static void oversized_read_and_write_in(tc_mode m) {
        td = td_new(4 << 20);
        server = td_server(td);
        CHECK(nbdsdk_server_set_max_payload(server, 1 << 20) == 0, "max payload 1 MiB");
        open_disk(m, false);
        refused(0, NBDSDK_CMD_READ, 0, 2 << 20, 0, NBDSDK_EINVAL, "READ over the maximum payload");
        refused(0, NBDSDK_CMD_WRITE, 0, 2 << 20, 2 << 20, NBDSDK_EINVAL, "WRITE over the maximum payload");
        /* Commands without payload are not limited by it. */
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 1, 0, 2 << 20) == 0, "%s: a 2 MiB TRIM is fine", mode);
        close_disk();

        /* The backend's own maximum block size. */
        td = td_new(1 << 20);
        td->min_block = 1;
        td->pref_block = 4096;
        td->max_block = 65536;
        open_disk(m, false);
        refused(0, NBDSDK_CMD_READ, 0, 131072, 0, NBDSDK_EINVAL, "READ over the block size maximum");
        refused(0, NBDSDK_CMD_WRITE, 0, 131072, 131072, NBDSDK_EINVAL, "WRITE over the block size maximum");
        close_disk();
}
static void oversized_read_and_write(void) {
        oversized_read_and_write_in(TC_SIMPLE);
        oversized_read_and_write_in(TC_STRUCTURED);
}

static void flush_with_offset_or_length_in(tc_mode m) {
        open_disk(m, false);
        refused(0, NBDSDK_CMD_FLUSH, 4096, 0, 0, NBDSDK_EINVAL, "FLUSH with an offset");
        refused(0, NBDSDK_CMD_FLUSH, 0, 4096, 0, NBDSDK_EINVAL, "FLUSH with a length");
        close_disk();
}
ALL_MODES(flush_with_offset_or_length)

static void bad_request_magic_closes_in(tc_mode m) {
        static const uint32_t magics[] = { 0x12560953, 0x25609514, 0 };
        for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++) {
                open_disk(m, false);
                uint8_t h[32] = { 0 };
                wire_put32(h, magics[i]);
                tc_send(tc, h, tc->extended ? 32 : 28);
                CHECK(tc_closed(tc), "%s: magic 0x%08x cannot be resynchronised: hang up", mode, magics[i]);
                CHECK(tc_pending(tc) == 0, "%s: no reply to a bad magic", mode);
                close_disk();
        }
}
ALL_MODES(bad_request_magic_closes)

/* The client goes away in the middle of a request's WHAT: the server waits
 * for the rest until then, and closes without a reply or a callback. */
static void vanish_midway(const char *what) {
        CHECK(!tc_closed(tc), "%s: waiting for the rest of the %s", mode, what);
        tc_hangup(tc);
        CHECK(tc_closed(tc), "%s: closed once the client is gone", mode);
        CHECK(tc_pending(tc) == 0 && td->n_log == 0, "%s: a partial %s: nothing sent, nothing done", mode, what);
}

static void client_vanishing_mid_header_in(tc_mode m) {
        open_disk(m, false);
        uint8_t h[32] = { 0 };
        wire_put32(h, tc->extended ? NBDSDK_MAGIC_EXT_REQUEST : NBDSDK_MAGIC_REQUEST);
        tc_send(tc, h, 10);
        vanish_midway("header");
        close_disk();
}
ALL_MODES(client_vanishing_mid_header)

static void client_vanishing_mid_payload_in(tc_mode m) {
        open_disk(m, false);
        uint8_t data[1000] = { 1 };
        tc_send_write(tc, 0, 1, 0, 8192, data, sizeof data);
        vanish_midway("payload");
        close_disk();
}
ALL_MODES(client_vanishing_mid_payload)

static void client_vanishing_with_requests_in_flight_in(tc_mode m) {
        td = td_new(1 << 20);
        td->defer = true;
        open_disk(m, false);
        uint8_t data[4096] = { 1 };
        tc_send_write(tc, 0, 1, 0, sizeof data, data, sizeof data);
        CHECK(td->n_deferred == 1, "%s: the WRITE is in flight", mode);
        tc_hangup(tc);
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "%s: completing after the client left", mode);
        tc_run(tc);
        CHECK(tc_closed(tc), "%s: closed once the last request finished", mode);
        close_disk();
}
ALL_MODES(client_vanishing_with_requests_in_flight)

TCASE_MAIN(T(past_the_end), T(offset_plus_length_overflow), T(zero_length), T(misaligned_to_the_minimum_block),
           T(unknown_command), T(unknown_flags), T(flags_on_the_wrong_command), T(not_advertised),
           T(df_without_structured_replies), T(block_status_without_a_context), T(writes_on_a_read_only_export),
           T(oversized_read_and_write), T(flush_with_offset_or_length), T(bad_request_magic_closes),
           T(client_vanishing_mid_header), T(client_vanishing_mid_payload),
           T(client_vanishing_with_requests_in_flight))
