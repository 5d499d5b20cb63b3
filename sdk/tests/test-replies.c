/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Structured replies to READ (spec "Structured reply chunk message"):
 * sparse reads as OFFSET_DATA and OFFSET_HOLE chunks, DF, and ERROR chunks
 * carrying the backend's message. */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* Write SEED's pattern over OFFSET..+LEN through the protocol. */
static void put(uint64_t offset, size_t len, unsigned seed) {
        uint8_t *buf = malloc(len);
        fill(buf, len, seed);
        CHECK(tc_write(tc, 0, 99, offset, buf, len) == 0, "%s: WRITE", mode);
        free(buf);
        td_clear_log(td);
}

#define CHUNKS_MAX 16
typedef struct {
        uint16_t type, flags;
        uint64_t offset, length;        /* content chunks */
        uint8_t *payload;
        uint64_t plen;
} chunk;

/* Every chunk of one reply, up to the one flagged DONE (which must be last). */
static unsigned read_chunks(uint64_t cookie, uint64_t req_offset, chunk *v) {
        unsigned n = 0;
        for (;;) {
                CHECK(n < CHUNKS_MAX, "%s: at most %d chunks expected", mode, CHUNKS_MAX);
                chunk *c = &v[n++];
                c->type = tc_chunk(tc, cookie, &c->flags, &c->payload, &c->plen);
                if (tc->extended)
                        CHECK(tc->chunk_offset == req_offset, "%s: extended chunks carry the request's offset", mode);
                if (c->type == NBDSDK_REPLY_TYPE_OFFSET_DATA) {
                        CHECK(c->plen > 8, "%s: a data chunk has data", mode);
                        c->offset = wire_get64(c->payload);
                        c->length = c->plen - 8;
                } else if (c->type == NBDSDK_REPLY_TYPE_OFFSET_HOLE) {
                        CHECK(c->plen == 12, "%s: a hole chunk is 12 bytes", mode);
                        c->offset = wire_get64(c->payload);
                        c->length = wire_get32(c->payload + 8);
                }
                if (c->flags & NBDSDK_REPLY_FLAG_DONE)
                        break;
        }
        CHECK(tc_pending(tc) == 0, "%s: nothing follows the DONE chunk", mode);
        return n;
}

static void free_chunks(chunk *v, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                free(v[i].payload);
}

/* The content chunks tile OFFSET..+LEN exactly, in any order; data chunks
 * hold the disk's bytes, hole chunks lie over zeroes. Returns the number of
 * hole chunks. */
static unsigned check_tiling(const chunk *v, unsigned n, uint64_t offset, uint64_t len) {
        uint64_t pos = offset;
        unsigned holes = 0;
        while (pos < offset + len) {
                const chunk *c = NULL;
                for (unsigned i = 0; i < n && !c; i++)
                        if ((v[i].type == NBDSDK_REPLY_TYPE_OFFSET_DATA || v[i].type == NBDSDK_REPLY_TYPE_OFFSET_HOLE) &&
                            v[i].offset == pos)
                                c = &v[i];
                CHECK(c, "%s: a content chunk starts at %llu", mode, (unsigned long long) pos);
                CHECK(c->offset + c->length <= offset + len, "%s: the chunk at %llu stays in the request", mode,
                      (unsigned long long) pos);
                if (c->type == NBDSDK_REPLY_TYPE_OFFSET_DATA)
                        CHECK(memcmp(c->payload + 8, td->data + pos, c->length) == 0, "%s: data at %llu", mode,
                              (unsigned long long) pos);
                else {
                        holes++;
                        for (uint64_t i = 0; i < c->length; i++)
                                CHECK(td->data[pos + i] == 0, "%s: a hole over nonzero data at %llu", mode,
                                      (unsigned long long) (pos + i));
                }
                pos += c->length;
        }
        uint64_t total = 0;
        for (unsigned i = 0; i < n; i++) {
                CHECK(i == n - 1 || !(v[i].flags & NBDSDK_REPLY_FLAG_DONE), "%s: only the last chunk is DONE", mode);
                if (v[i].type == NBDSDK_REPLY_TYPE_OFFSET_DATA || v[i].type == NBDSDK_REPLY_TYPE_OFFSET_HOLE)
                        total += v[i].length;
        }
        CHECK(total == len, "%s: no overlapping chunks (%llu bytes for %llu)", mode, (unsigned long long) total,
              (unsigned long long) len);
        return holes;
}

static void sparse_read_sends_holes_in(tc_mode m) {
        open_disk(m, false);
        put(8192, 4096, 1);
        put(20480, 8192, 2);
        chunk v[CHUNKS_MAX];
        tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, 65536, NULL, 0);
        unsigned n = read_chunks(1, 0, v);
        /* hole 0+8192, data 8192+4096, hole 12288+8192, data 20480+8192, hole 28672+36864 */
        CHECK(n == 5, "%s: five content chunks, got %u", mode, n);
        CHECK(check_tiling(v, n, 0, 65536) == 3, "%s: three of them holes", mode);
        CHECK(strcmp(td->log, "r") == 0, "%s: one read, no block status: \"%s\"", mode, td->log);
        free_chunks(v, n);

        /* All zeroes: one HOLE chunk. */
        td_clear_log(td);
        tc_request(tc, 0, NBDSDK_CMD_READ, 2, 65536, 65536, NULL, 0);
        n = read_chunks(2, 65536, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_OFFSET_HOLE && v[0].offset == 65536 && v[0].length == 65536,
              "%s: an unwritten range is one hole", mode);
        CHECK(strcmp(td->log, "r") == 0, "%s: read, then found zero: \"%s\"", mode, td->log);
        free_chunks(v, n);

        /* All data: one DATA chunk. */
        tc_request(tc, 0, NBDSDK_CMD_READ, 3, 20480, 8192, NULL, 0);
        n = read_chunks(3, 20480, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_OFFSET_DATA, "%s: a written range is one data chunk", mode);
        check_tiling(v, n, 20480, 8192);
        free_chunks(v, n);
        close_disk();
}

/* Below the sparse-read minimum (default 64 KiB) a read is one data chunk;
 * the minimum can be lowered. */
static void short_reads_are_not_sparse_by_default_in(tc_mode m) {
        for (int lowered = 0; lowered < 2; lowered++) {
                td = td_new(1 << 20);
                server = td_server(td);
                if (lowered)
                        CHECK(nbdsdk_server_set_sparse_reads(server, 4096) == 0, "minimum 4096");
                open_disk(m, false);
                chunk v[CHUNKS_MAX];
                tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, 4096, NULL, 0);
                unsigned n = read_chunks(1, 0, v);
                uint16_t want = lowered ? NBDSDK_REPLY_TYPE_OFFSET_HOLE : NBDSDK_REPLY_TYPE_OFFSET_DATA;
                CHECK(n == 1 && v[0].type == want, "%s: a 4 KiB unwritten read is one %s chunk", mode,
                      lowered ? "hole" : "data");
                CHECK(strcmp(td->log, "r") == 0, "%s: backend calls \"%s\"", mode, td->log);
                free_chunks(v, n);
                close_disk();
        }
}

static void df_read_is_one_data_chunk_in(tc_mode m) {
        open_disk(m, false);
        put(8192, 4096, 3);
        chunk v[CHUNKS_MAX];
        tc_request(tc, NBDSDK_CMD_FLAG_DF, NBDSDK_CMD_READ, 1, 4096, 16384, NULL, 0);
        unsigned n = read_chunks(1, 4096, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_OFFSET_DATA && v[0].offset == 4096 && v[0].length == 16384,
              "%s: DF: one data chunk over the whole range, holes merged in", mode);
        check_tiling(v, n, 4096, 16384);
        CHECK(strcmp(td->log, "r") == 0, "%s: DF: one read: \"%s\"", mode, td->log);
        free_chunks(v, n);
        close_disk();
}

/* Holes are zeroes in the data: a backend without block status gets them
 * too, written zeroes are holes as well, and 0 turns them off. */
static void sparse_reads_come_from_the_data_in(tc_mode m) {
        for (int how = 0; how < 2; how++) {
                td = td_new(1 << 20);
                td->has_block_status = false;
                server = td_server(td);
                if (how == 1)
                        CHECK(nbdsdk_server_set_sparse_reads(server, 0) == 0, "sparse reads off");
                open_disk(m, false);
                put(8192, 4096, 4);
                uint8_t zeroes[4096] = { 0 };
                CHECK(tc_write(tc, 0, 9, 16384, zeroes, sizeof zeroes) == 0, "write a block of zeroes");
                td_clear_log(td);
                chunk v[CHUNKS_MAX];
                tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, 65536, NULL, 0);
                unsigned n = read_chunks(1, 0, v);
                if (how == 0)
                        CHECK(n == 3 && check_tiling(v, n, 0, 65536) == 2 && v[1].type == NBDSDK_REPLY_TYPE_OFFSET_DATA &&
                              v[1].offset == 8192 && v[1].length == 4096,
                              "%s: hole, the data block, one hole over the rest (written zeroes too)", mode);
                else
                        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_OFFSET_DATA && v[0].length == 65536 &&
                              check_tiling(v, n, 0, 65536) == 0, "%s: sparse reads off: one data chunk", mode);
                CHECK(strcmp(td->log, "r") == 0, "%s: one pread: \"%s\"", mode, td->log);
                free_chunks(v, n);
                close_disk();
        }
}

/* LEN bytes written at the start, then every READ (and WRITE_ZEROES) fails
 * with EIO and MSG. */
static void open_failing_disk(tc_mode m, size_t len, const char *msg) {
        open_disk(m, false);
        put(0, len, 5);
        td->pread_result = -EIO;
        td->zero_result = -EIO;
        td->error_message = msg;
}

static void read_error_is_an_error_chunk_with_the_message_in(tc_mode m) {
        static const char msg[] = "medium error at sector 7";
        open_failing_disk(m, 8192, msg);
        chunk v[CHUNKS_MAX];
        tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, 8192, NULL, 0);
        unsigned n = read_chunks(1, 0, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_ERROR && (v[0].flags & NBDSDK_REPLY_FLAG_DONE),
              "%s: one final ERROR chunk, got type 0x%x", mode, v[0].type);
        CHECK(v[0].plen == 6 + strlen(msg), "%s: error, message length, message", mode);
        CHECK(wire_get32(v[0].payload) == NBDSDK_EIO, "%s: EIO", mode);
        CHECK(wire_get16(v[0].payload + 4) == strlen(msg) && memcmp(v[0].payload + 6, msg, strlen(msg)) == 0,
              "%s: the backend's message: \"%s\"", mode, (char *) v[0].payload + 6);
        free_chunks(v, n);
        /* The same failure on a command without data. */
        tc_request(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 2, 0, 4096, NULL, 0);
        n = read_chunks(2, 0, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_ERROR && wire_get32(v[0].payload) == NBDSDK_EIO &&
              wire_get16(v[0].payload + 4) == strlen(msg) && memcmp(v[0].payload + 6, msg, strlen(msg)) == 0,
              "%s: WRITE_ZEROES failure: ERROR chunk with the message", mode);
        free_chunks(v, n);
        close_disk();
}

static void error_message_is_at_most_4096_bytes_in(tc_mode m) {
        char *msg = malloc(5001);
        memset(msg, 'x', 5000);
        msg[5000] = 0;
        open_failing_disk(m, 4096, msg);
        chunk v[CHUNKS_MAX];
        tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, 4096, NULL, 0);
        unsigned n = read_chunks(1, 0, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_ERROR, "%s: ERROR chunk", mode);
        CHECK(wire_get16(v[0].payload + 4) == NBDSDK_MAX_STRING && v[0].plen == 6 + NBDSDK_MAX_STRING,
              "%s: the message is cut to 4096 bytes (spec), got %u", mode, wire_get16(v[0].payload + 4));
        free_chunks(v, n);
        close_disk();
        free(msg);
}

static void read_error_with_simple_replies(void) {
        open_disk(TC_SIMPLE, false);
        td->pread_result = -EIO;
        td->error_message = "lost";
        uint8_t buf[4096];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == NBDSDK_EIO, "simple reply: EIO");
        CHECK(tc_pending(tc) == 0, "simple reply: no data after an error");
        close_disk();
}

/* Spec: with structured replies a READ is always answered with chunks, even
 * when it is refused before reaching the backend. */
static void early_read_errors_are_chunks_in(tc_mode m) {
        open_disk(m, false);
        chunk v[CHUNKS_MAX];
        tc_request(tc, 0, NBDSDK_CMD_READ, 1, 2 << 20, 4096, NULL, 0);
        unsigned n = read_chunks(1, 2 << 20, v);
        CHECK(n == 1 && v[0].type == NBDSDK_REPLY_TYPE_ERROR && v[0].plen >= 6 &&
              wire_get32(v[0].payload) == NBDSDK_EINVAL, "%s: a READ past the end: one ERROR chunk, EINVAL", mode);
        CHECK(wire_get16(v[0].payload + 4) == v[0].plen - 6, "%s: the message fills the chunk", mode);
        CHECK(td->n_log == 0, "%s: no callback", mode);
        free_chunks(v, n);
        close_disk();
}

STRUCTURED_MODES(sparse_read_sends_holes)
STRUCTURED_MODES(short_reads_are_not_sparse_by_default)
STRUCTURED_MODES(df_read_is_one_data_chunk)
STRUCTURED_MODES(sparse_reads_come_from_the_data)
STRUCTURED_MODES(read_error_is_an_error_chunk_with_the_message)
STRUCTURED_MODES(error_message_is_at_most_4096_bytes)
STRUCTURED_MODES(early_read_errors_are_chunks)

TCASE_MAIN(T(sparse_read_sends_holes), T(short_reads_are_not_sparse_by_default), T(df_read_is_one_data_chunk), T(sparse_reads_come_from_the_data),
           T(read_error_is_an_error_chunk_with_the_message), T(error_message_is_at_most_4096_bytes),
           T(read_error_with_simple_replies), T(early_read_errors_are_chunks))
