/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The error-injection layer (error-rate=, error=, error-commands=,
 * error-range=, error-seed=): which commands fail, with which error and
 * message, how often and reproducibly, and its bad settings. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

#define DISK (4 << 20)

/* A DISK-byte disk and a server on it with SETTINGS: key, value, ..., NULL. */
static void error_server(const char *key, ...) {
        td = td_new(DISK);
        server = td_server(td);
        va_list ap;
        va_start(ap, key);
        for (const char *k = key; k; k = va_arg(ap, const char *)) {
                const char *v = va_arg(ap, const char *);
                CHECK(nbdsdk_server_config(server, k, v) == 0, "%s=%s", k, v);
        }
        va_end(ap);
}

/* A READ of LEN bytes at OFF: its NBD error (0: success). */
static uint32_t read_at(uint64_t off, uint64_t len) {
        static uint8_t buf[65536];
        return tc_read(tc, 0, 1, off, buf, len);
}

/* The final error chunk of a structured reply: its error and message. */
static uint32_t error_chunk(uint64_t cookie, char *msg, size_t size) {
        uint16_t flags;
        uint8_t *p;
        uint64_t len;
        uint16_t type = tc_chunk(tc, cookie, &flags, &p, &len);
        CHECK(type == NBDSDK_REPLY_TYPE_ERROR && (flags & NBDSDK_REPLY_FLAG_DONE), "%s: one final error chunk, got %u",
              mode, type);
        CHECK(len >= 6 && wire_get16(p + 4) == len - 6, "%s: the chunk holds an error and a message", mode);
        snprintf(msg, size, "%.*s", (int) (len - 6), (char *) p + 6);
        uint32_t err = wire_get32(p);
        free(p);
        return err;
}

static void rate_one_fails_every_read_in(tc_mode m) {
        error_server("error-rate", "1", NULL);
        open_disk(m, false);
        for (unsigned i = 0; i < 10; i++) {
                if (m == TC_SIMPLE) {
                        CHECK(read_at(i * 4096, 4096) == NBDSDK_EIO, "%s: read %u fails with EIO", mode, i);
                        continue;
                }
                char msg[256];
                tc_request(tc, 0, NBDSDK_CMD_READ, 100 + i, i * 4096, 4096, NULL, 0);
                CHECK(error_chunk(100 + i, msg, sizeof msg) == NBDSDK_EIO, "%s: read %u fails with EIO", mode, i);
                CHECK(strcmp(msg, "error layer: injected Input/output error") == 0, "%s: the message says why: \"%s\"",
                      mode, msg);
        }
        expect_log(""); /* failed before the backend */
        close_disk();
}
ALL_MODES(rate_one_fails_every_read)

static void commands_write_leaves_the_others_alone(void) {
        error_server("error-rate", "1", "error-commands", "write", NULL);
        open_disk(TC_SIMPLE, false);
        uint8_t data[4096];
        fill(data, sizeof data, 1);
        CHECK(read_at(0, 4096) == 0, "read succeeds");
        CHECK(tc_write(tc, 0, 2, 0, data, sizeof data) == NBDSDK_EIO, "write fails");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 3, 0, 4096) == 0, "trim succeeds");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 4, 0, 4096) == 0, "zero succeeds");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_FLUSH, 5, 0, 0) == 0, "flush succeeds");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_CACHE, 6, 0, 4096) == 0, "cache succeeds");
        expect_log("rtzfc");
        close_disk();
}

static void range_fails_only_requests_touching_it(void) {
        error_server("error-rate", "1", "error-range", "1M-2M", NULL);
        open_disk(TC_SIMPLE, false);
        const uint64_t M = 1 << 20;
        CHECK(read_at(0, 4096) == 0, "below the range");
        CHECK(read_at(M - 512, 512) == 0, "ending where the range starts");
        CHECK(read_at(M - 1, 2) == NBDSDK_EIO, "the range's first byte");
        CHECK(read_at(M + 4096, 4096) == NBDSDK_EIO, "inside");
        CHECK(read_at(2 * M - 1, 1) == NBDSDK_EIO, "the range's last byte");
        CHECK(read_at(2 * M, 4096) == 0, "starting where the range ends");
        CHECK(read_at(3 * M, 65536) == 0, "above");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 1, 0, 2 * M) == NBDSDK_EIO, "a trim over it");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_FLUSH, 2, 0, 0) == 0, "flush has no range");
        close_disk();
}

static void chosen_errno_reaches_the_client(void) {
        static const struct { const char *name; uint32_t nbd; } errors[] = {
                { "EIO", NBDSDK_EIO }, { "EPERM", NBDSDK_EPERM }, { "ENOMEM", NBDSDK_ENOMEM },
                { "EINVAL", NBDSDK_EINVAL }, { "ENOSPC", NBDSDK_ENOSPC }, { "ESHUTDOWN", NBDSDK_ESHUTDOWN },
        };
        for (size_t i = 0; i < sizeof errors / sizeof *errors; i++) {
                error_server("error", errors[i].name, "error-rate", "100%", "error-commands", "write,zero", NULL);
                open_disk(TC_SIMPLE, false);
                uint8_t data[512] = { 0 };
                CHECK(tc_write(tc, 0, 1, 0, data, sizeof data) == errors[i].nbd, "error=%s: write fails with it",
                      errors[i].name);
                CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 2, 0, 512) == errors[i].nbd,
                      "error=%s: zero fails with it", errors[i].name);
                close_disk();
        }
}

#define DRAWS 1000

/* Which of DRAWS reads failed, with error-rate=RATE and error-seed=SEED. */
static void failures(const char *rate, const char *seed, bool *failed, unsigned *retn) {
        error_server("error-rate", rate, "error-seed", seed, "error-commands", "read", NULL);
        open_disk(TC_SIMPLE, false);
        unsigned n = 0;
        for (unsigned i = 0; i < DRAWS; i++) {
                uint32_t err = read_at((uint64_t) i * 4096 % DISK, 512);
                CHECK(err == 0 || err == NBDSDK_EIO, "read %u: success or EIO, got %u", i, err);
                failed[i] = err != 0;
                n += failed[i];
        }
        close_disk();
        *retn = n;
}

static void seeded_rate_is_about_right_and_reproducible(void) {
        static bool a[DRAWS], b[DRAWS], c[DRAWS];
        unsigned na, nb, nc;
        failures("0.5", "7", a, &na);
        CHECK(na >= 350 && na <= 650, "error-rate=0.5 failed %u of %d reads", na, DRAWS);
        failures("50%", "7", b, &nb);
        CHECK(memcmp(a, b, sizeof a) == 0, "the same seed (and rate, as a percentage) fails the same reads");
        failures("0.5", "8", c, &nc);
        CHECK(memcmp(a, c, sizeof a) != 0, "another seed fails other reads");
}

static void bad_settings_are_refused(void) {
        td = td_new(DISK);
        server = td_server(td);
        static const char *const bad[][2] = {
                { "error-rate", "2" }, { "error-rate", "x" }, { "error-rate", "-0.1" }, { "error-rate", "" },
                { "error-rate", "101%" }, { "error-rate", "0.5x" }, { "error-rate", "nan" },
                { "error-commands", "bogus" }, { "error-commands", "" }, { "error-commands", "read,,write" },
                { "error-commands", "read,bogus" },
                { "error-range", "5-3" }, { "error-range", "3-3" }, { "error-range", "5" }, { "error-range", "x-7" },
                { "error-range", "1M-" }, { "error-range", "" },
                { "error", "EFOO" }, { "error", "eio" }, { "error", "" }, { "error", "5" },
                { "error-seed", "x" }, { "error-seed", "" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                CHECK(nbdsdk_server_config(server, bad[i][0], bad[i][1]) == -EINVAL, "%s=%s is refused", bad[i][0],
                      bad[i][1]);
        static const char *const good[][2] = {
                { "error-rate", "0" }, { "error-rate", "0.25" }, { "error-rate", "10%" }, { "error-rate", "1" },
                { "error-commands", "read,block-status" }, { "error-commands", "write,flush,trim,zero,cache" },
                { "error-range", "0-1M" }, { "error", "ENOTSUP" }, { "error", "EOVERFLOW" }, { "error-seed", "0x10" },
                { "error-seed", "0" },
        };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                CHECK(nbdsdk_server_config(server, good[i][0], good[i][1]) == 0, "%s=%s is accepted", good[i][0],
                      good[i][1]);
        disk_teardown();
}

TCASE_MAIN(T(rate_one_fails_every_read), T(commands_write_leaves_the_others_alone),
           T(range_fails_only_requests_touching_it), T(chosen_errno_reaches_the_client),
           T(seeded_rate_is_about_right_and_reproducible), T(bad_settings_are_refused))
