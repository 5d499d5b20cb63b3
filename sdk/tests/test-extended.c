/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Extended headers in transmission (extension-ext-header branch of the spec):
 * 32-byte requests and replies, PAYLOAD_LEN, 64-bit effect lengths, no
 * simple replies. */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* A success without data: exactly one NONE chunk with DONE. */
static void expect_none(uint64_t cookie, uint64_t offset, const char *what) {
        uint16_t flags;
        uint64_t len;
        uint8_t *p;
        uint16_t type = tc_chunk(tc, cookie, &flags, &p, &len);
        CHECK(type == NBDSDK_REPLY_TYPE_NONE && flags == NBDSDK_REPLY_FLAG_DONE && len == 0,
              "%s: NONE chunk with DONE (type 0x%x flags %u length %llu: %s)", what, type, flags,
              (unsigned long long) len, type == NBDSDK_REPLY_TYPE_ERROR ? (char *) p + 6 : "");
        CHECK(tc->chunk_offset == offset, "%s: reply offset %llu equals the request's %llu", what,
              (unsigned long long) tc->chunk_offset, (unsigned long long) offset);
        CHECK(tc_pending(tc) == 0, "%s: nothing follows", what);
        free(p);
}

static void write_with_payload_len(void) {
        open_disk(TC_EXTENDED, false);
        uint8_t data[4096], back[4096];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (uint8_t) (i * 13 + 1);
        tc_request(tc, NBDSDK_CMD_FLAG_PAYLOAD_LEN, NBDSDK_CMD_WRITE, 1, 4096, sizeof data, data, sizeof data);
        expect_none(1, 4096, "WRITE");
        CHECK(strcmp(td->log, "w") == 0 && memcmp(td->data + 4096, data, sizeof data) == 0, "the data is written");
        CHECK(tc_read(tc, 0, 2, 4096, back, sizeof back) == 0 && memcmp(back, data, sizeof data) == 0,
              "READ returns it");
        close_disk();
}

static void write_without_payload_len_closes(void) {
        open_disk(TC_EXTENDED, false);
        uint8_t data[4096] = { 0 };
        tc_request(tc, 0, NBDSDK_CMD_WRITE, 1, 0, sizeof data, data, sizeof data);
        CHECK(tc_closed(tc), "spec: WRITE MUST carry PAYLOAD_LEN; the payload size is unknown: hang up");
        CHECK(tc_pending(tc) == 0 && td->n_log == 0, "no reply, no write");
        close_disk();
}

static void oversized_write_payload_closes(void) {
        td = td_new(4 << 20);
        server = td_server(td);
        CHECK(nbdsdk_server_set_max_payload(server, 1 << 20) == 0, "max payload 1 MiB");
        open_disk(TC_EXTENDED, false);
        uint8_t *data = calloc(1, 2 << 20);
        tc_request(tc, NBDSDK_CMD_FLAG_PAYLOAD_LEN, NBDSDK_CMD_WRITE, 1, 0, 2 << 20, data, 2 << 20);
        free(data);
        CHECK(tc_closed(tc), "spec: a payload over the maximum SHOULD lead to a hard disconnect");
        CHECK(td->n_log == 0, "nothing written");
        close_disk();
}

/* Spec: a payload on a command that takes none is consumed and answered EINVAL. */
static void payload_on_a_command_without_one_is_skipped(void) {
        open_disk(TC_EXTENDED, true);
        static const uint16_t cmds[] = { NBDSDK_CMD_READ, NBDSDK_CMD_TRIM, NBDSDK_CMD_FLUSH, NBDSDK_CMD_CACHE,
                                         NBDSDK_CMD_WRITE_ZEROES, NBDSDK_CMD_BLOCK_STATUS };
        uint8_t junk[100];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t) (0x25 + i); /* looks like a request magic if misparsed */
        for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
                tc_request(tc, NBDSDK_CMD_FLAG_PAYLOAD_LEN, cmds[i], 10 + i, 0, sizeof junk, junk, sizeof junk);
                CHECK(!tc_closed(tc), "command %u: the payload is skipped, no disconnect", cmds[i]);
                CHECK(tc_reply_status(tc, 10 + i) == NBDSDK_EINVAL, "command %u with a payload: EINVAL", cmds[i]);
                CHECK(tc_pending(tc) == 0 && td->n_log == 0, "command %u: no callback", cmds[i]);
                uint8_t buf[512];
                CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "command %u: the next request is in sync", cmds[i]);
                td_clear_log(td);
        }
        close_disk();
}

/* A backend of 8 GiB that stores nothing: it records the lengths it is given. */
#define BIG_SIZE (UINT64_C(8) << 30)
static uint64_t big_count;
static char big_log[8];

static void big_note(char c, uint64_t count) {
        size_t n = strlen(big_log);
        if (n + 1 < sizeof big_log) {
                big_log[n] = c;
                big_log[n + 1] = 0;
        }
        big_count = count;
}
static int64_t big_size(nbdsdk_conn *c, void *ud) { (void) c; (void) ud; return (int64_t) BIG_SIZE; }
static int big_pread(nbdsdk_request *r, void *buf, uint64_t count, uint64_t off, uint32_t f, void *ud) {
        (void) r; (void) off; (void) f; (void) ud;
        big_note('r', count);
        memset(buf, 0, count);
        return 0;
}
static int big_pwrite(nbdsdk_request *r, const void *buf, uint64_t count, uint64_t off, uint32_t f, void *ud) {
        (void) r; (void) buf; (void) off; (void) f; (void) ud;
        big_note('w', count);
        return 0;
}
static int big_trim(nbdsdk_request *r, uint64_t count, uint64_t off, uint32_t f, void *ud) {
        (void) r; (void) off; (void) f; (void) ud;
        big_note('t', count);
        return 0;
}
static int big_zero(nbdsdk_request *r, uint64_t count, uint64_t off, uint32_t f, void *ud) {
        (void) r; (void) off; (void) f; (void) ud;
        big_note('z', count);
        return 0;
}
static int big_block_status(nbdsdk_request *r, uint64_t count, uint64_t off, uint32_t f, nbdsdk_extents *x,
                            void *ud) {
        (void) r; (void) off; (void) f; (void) ud;
        big_note('b', count);
        return nbdsdk_extents_add(x, count, NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO);
}

static void effect_lengths_are_64_bits(void) {
        static const struct nbdsdk_ops ops = {
                .get_size = big_size, .pread = big_pread, .pwrite = big_pwrite, .trim = big_trim,
                .zero = big_zero, .block_status = big_block_status,
        };
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &server) == 0, "server");
        tc = tc_open(server, TC_EXTENDED, true, NULL);
        const uint64_t five = UINT64_C(5) << 30, off = UINT64_C(1) << 30;

        big_log[0] = 0;
        tc_request(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 1, off, five, NULL, 0);
        expect_none(1, off, "5 GiB WRITE_ZEROES");
        CHECK(strcmp(big_log, "z") == 0 && big_count == five, "zero got all 5 GiB, got %llu",
              (unsigned long long) big_count);

        big_log[0] = 0;
        tc_request(tc, 0, NBDSDK_CMD_TRIM, 2, off, five, NULL, 0);
        expect_none(2, off, "5 GiB TRIM");
        CHECK(strcmp(big_log, "t") == 0 && big_count == five, "trim got all 5 GiB");

        big_log[0] = 0;
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 3, off, five, NULL, 0);
        tc_extents x;
        tc_block_status_reply(tc, 3, &x);
        CHECK(tc->chunk_offset == off, "block status reply offset equals the request's");
        CHECK(strcmp(big_log, "b") == 0 && big_count == five, "block_status asked about all 5 GiB");
        uint64_t sum = 0;
        for (unsigned i = 0; i < x.n; i++) {
                CHECK(x.status[i] == (NBDSDK_STATE_HOLE | NBDSDK_STATE_ZERO), "extent %u is a hole", i);
                sum += x.length[i];
        }
        /* Spec: the reply may cover less than asked, never more (without REQ_ONE only
         * the last extent could run past, and this backend stops at the end). */
        CHECK(x.n >= 1 && sum <= five, "the extents describe at most the request: %llu", (unsigned long long) sum);

        tc_request(tc, NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_BLOCK_STATUS, 4, off, five, NULL, 0);
        tc_block_status_reply(tc, 4, &x);
        CHECK(x.n == 1 && x.length[0] <= five, "REQ_ONE: one extent, no longer than asked");

        /* The past-the-end check sees all 64 bits. */
        uint64_t past = BIG_SIZE - off + 4096;
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 5, off, past) == NBDSDK_ENOSPC, "WRITE_ZEROES past the end");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 6, off, past) == NBDSDK_EINVAL, "TRIM past the end");
        tc_free(tc);
        server = nbdsdk_server_unref(server);
}

/* A length over 32 bits is not truncated: on a 1 MiB disk it runs past the end. */
static void long_effect_lengths_are_not_truncated(void) {
        open_disk(TC_EXTENDED, true);
        const uint64_t len = (UINT64_C(1) << 32) + 4096;
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 1, 0, len) == NBDSDK_ENOSPC, "WRITE_ZEROES: ENOSPC");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 2, 0, len) == NBDSDK_EINVAL, "TRIM: EINVAL");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 3, 0, len) == NBDSDK_EINVAL, "BLOCK_STATUS: EINVAL");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_READ, 4, 0, len) == NBDSDK_EINVAL, "READ: EINVAL");
        CHECK(td->n_log == 0, "no callback saw a truncated length: \"%s\"", td->log);
        close_disk();
}

static void compact_request_after_negotiation_closes(void) {
        open_disk(TC_EXTENDED, false);
        uint8_t h[32] = { 0 };
        wire_put32(h, NBDSDK_MAGIC_REQUEST);
        wire_put16(h + 6, NBDSDK_CMD_READ);
        wire_put64(h + 8, 1);
        wire_put32(h + 24, 512);
        /* 28 bytes of compact header, then the start of the next one. */
        tc_send(tc, h, 28);
        tc_send(tc, h, 4);
        CHECK(tc_closed(tc), "a compact request after extended headers: hang up");
        CHECK(tc_pending(tc) == 0 && td->n_log == 0, "no reply, no callback");
        close_disk();
}

static void replies_carry_the_request_offset(void) {
        open_disk(TC_EXTENDED, true);
        uint8_t data[4096] = { 7 };
        tc_request(tc, NBDSDK_CMD_FLAG_PAYLOAD_LEN, NBDSDK_CMD_WRITE, 1, 12288, sizeof data, data, sizeof data);
        expect_none(1, 12288, "WRITE");
        uint8_t buf[8192];
        CHECK(tc_read(tc, 0, 2, 8192, buf, sizeof buf) == 0, "READ");
        CHECK(tc->chunk_offset == 8192, "READ chunks carry the request offset");
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 3, 4096, 16384, NULL, 0);
        tc_extents x;
        tc_block_status_reply(tc, 3, &x);
        CHECK(tc->chunk_offset == 4096, "BLOCK_STATUS reply offset");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_READ, 4, 2 << 20, 512) == NBDSDK_EINVAL, "READ past the end");
        CHECK(tc->chunk_offset == 2 << 20, "an ERROR chunk carries the request offset too");
        close_disk();
}

static void successes_without_data_are_none_chunks(void) {
        open_disk(TC_EXTENDED, false);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 1, 0, 0, NULL, 0);
        expect_none(1, 0, "FLUSH");
        tc_request(tc, 0, NBDSDK_CMD_TRIM, 2, 8192, 4096, NULL, 0);
        expect_none(2, 8192, "TRIM");
        tc_request(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 3, 16384, 4096, NULL, 0);
        expect_none(3, 16384, "WRITE_ZEROES");
        tc_request(tc, 0, NBDSDK_CMD_CACHE, 4, 0, 65536, NULL, 0);
        expect_none(4, 0, "CACHE");
        CHECK(strcmp(td->log, "ftzc") == 0, "each reached the backend: \"%s\"", td->log);
        close_disk();
}

TCASE_MAIN(T(write_with_payload_len), T(write_without_payload_len_closes), T(oversized_write_payload_closes),
           T(payload_on_a_command_without_one_is_skipped), T(effect_lengths_are_64_bits),
           T(long_effect_lengths_are_not_truncated), T(compact_request_after_negotiation_closes),
           T(replies_carry_the_request_offset), T(successes_without_data_are_none_chunks))
