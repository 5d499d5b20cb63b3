/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bounded, reproducible stand-in for a coverage-guided fuzzer: build valid
 * client sessions, mutate them with a seeded PRNG (flip, overwrite with
 * interesting values, truncate, duplicate), and run each through
 * fuzz_one(). Usage: fuzz-mutate [ITERATIONS [SEED]]. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nbdsdk/nbdsdk-protocol.h>
#include "fuzz-connection.h"
#include "wire-internal.h"

typedef struct {
        uint8_t buf[8192];
        size_t len;
} session;

static void put(session *s, const void *p, size_t n) {
        if (n && s->len + n <= sizeof s->buf) {
                memcpy(s->buf + s->len, p, n);
                s->len += n;
        }
}

static void option(session *s, uint32_t opt, const void *data, uint32_t len) {
        uint8_t h[16];
        wire_put64(h, NBDSDK_MAGIC_OPTS);
        wire_put32(h + 8, opt);
        wire_put32(h + 12, len);
        put(s, h, 16);
        put(s, data, len);
}

static void request(session *s, bool ext, uint16_t flags, uint16_t type, uint64_t off, uint64_t len,
                    size_t payload) {
        uint8_t h[32];
        wire_put32(h, ext ? NBDSDK_MAGIC_EXT_REQUEST : NBDSDK_MAGIC_REQUEST);
        wire_put16(h + 4, flags);
        wire_put16(h + 6, type);
        wire_put64(h + 8, off ^ 0x1234);
        wire_put64(h + 16, off);
        if (ext)
                wire_put64(h + 24, len);
        else
                wire_put32(h + 24, (uint32_t) len);
        put(s, h, ext ? 32 : 28);
        static const uint8_t pattern[4096] = { 0xab };
        put(s, pattern, payload < sizeof pattern ? payload : sizeof pattern);
}

/* A valid session; VARIANT chooses simple/structured/extended replies. */
static void build(session *s, unsigned variant) {
        s->len = 0;
        uint8_t shape = (uint8_t) (variant * 7);
        put(s, &shape, 1);
        uint8_t flags[4];
        wire_put32(flags, NBDSDK_FLAG_C_FIXED_NEWSTYLE | NBDSDK_FLAG_C_NO_ZEROES);
        put(s, flags, 4);
        option(s, NBDSDK_OPT_LIST, NULL, 0);
        bool ext = variant % 3 == 2;
        if (variant % 3 == 1)
                option(s, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0);
        if (ext)
                option(s, NBDSDK_OPT_EXTENDED_HEADERS, NULL, 0);
        uint8_t meta[4 + 4 + 4 + 15];
        wire_put32(meta, 0);
        wire_put32(meta + 4, 1);
        wire_put32(meta + 8, 15);
        memcpy(meta + 12, "base:allocation", 15);
        option(s, NBDSDK_OPT_SET_META_CONTEXT, meta, sizeof meta);
        option(s, NBDSDK_OPT_LIST_META_CONTEXT, meta, sizeof meta);
        uint8_t info[4 + 2 + 6];
        wire_put32(info, 0);
        wire_put16(info + 4, 3);
        wire_put16(info + 6, NBDSDK_INFO_NAME);
        wire_put16(info + 8, NBDSDK_INFO_DESCRIPTION);
        wire_put16(info + 10, NBDSDK_INFO_BLOCK_SIZE);
        option(s, NBDSDK_OPT_INFO, info, sizeof info);
        option(s, NBDSDK_OPT_GO, info, sizeof info);
        uint16_t pl = ext ? NBDSDK_CMD_FLAG_PAYLOAD_LEN : 0;
        request(s, ext, pl, NBDSDK_CMD_WRITE, 4096, 4096, 4096);
        request(s, ext, NBDSDK_CMD_FLAG_FUA | pl, NBDSDK_CMD_WRITE, 512, 1024, 1024);
        request(s, ext, 0, NBDSDK_CMD_READ, 0, 16384, 0);
        request(s, ext, NBDSDK_CMD_FLAG_DF, NBDSDK_CMD_READ, 4096, 8192, 0);
        request(s, ext, 0, NBDSDK_CMD_BLOCK_STATUS, 0, 65536, 0);
        request(s, ext, NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_BLOCK_STATUS, 0, 65536, 0);
        request(s, ext, NBDSDK_CMD_FLAG_NO_HOLE, NBDSDK_CMD_WRITE_ZEROES, 8192, 8192, 0);
        request(s, ext, NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_WRITE_ZEROES, 0, 4096, 0);
        request(s, ext, 0, NBDSDK_CMD_TRIM, 0, 4096, 0);
        request(s, ext, 0, NBDSDK_CMD_CACHE, 0, 65536, 0);
        request(s, ext, 0, NBDSDK_CMD_FLUSH, 0, 0, 0);
        request(s, ext, 0, NBDSDK_CMD_DISC, 0, 0, 0);
}

static uint64_t rng;
static uint32_t next_random(void) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t) (rng >> 33);
}

static void mutate(session *s) {
        static const uint32_t interesting[] = { 0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
                                                0x7fffffff, 0x80000000, 0xffffffff, 4096, 4097, 65536 };
        unsigned n = 1 + next_random() % 4;
        for (unsigned i = 0; i < n && s->len > 1; i++) {
                size_t at = 1 + next_random() % (s->len - 1);
                switch (next_random() % 5) {
                case 0:
                        s->buf[at] ^= (uint8_t) (1u << (next_random() % 8));
                        break;
                case 1:
                        s->buf[at] = (uint8_t) next_random();
                        break;
                case 2:
                        if (at + 4 <= s->len)
                                wire_put32(s->buf + at, interesting[next_random() % (sizeof interesting / 4)]);
                        break;
                case 3:
                        s->len = at; /* truncate */
                        break;
                default:
                        if (s->len + 28 <= sizeof s->buf) { /* duplicate a slice */
                                memmove(s->buf + at + 28, s->buf + at, s->len - at);
                                s->len += 28;
                        }
                }
        }
}

int main(int argc, char **argv) {
        unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000;
        rng = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
        session s;
        /* The unmutated sessions first: they must run clean too. */
        for (unsigned v = 0; v < 36; v++) {
                build(&s, v);
                fuzz_one(s.buf, s.len);
        }
        for (unsigned long i = 0; i < iterations; i++) {
                build(&s, next_random() % 36);
                mutate(&s);
                fuzz_one(s.buf, s.len);
        }
        printf("ok - %lu mutated sessions\n", iterations);
        return 0;
}
