/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The copy-on-write layer (cow=ram|file, cow-block-size=SIZE): long random
 * sequences of every command, from two connections sharing the overlay,
 * checked against a model of the disk while the backend is only read;
 * backends with native snapshots taking the overlay's place; bad settings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* xorshift64*: a run is reproduced from the seed it prints on failure. */
static uint64_t rng;

static uint64_t rnd(uint64_t n) {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        return (rng * 0x2545f4914f6cdd1dull >> 11) % n;
}

/* The run and operation being checked, at the head of every message. */
static char what[160];

/* TD and a server on it with cow=HOW and cow-block-size=BLOCK. */
static void cow_server(const char *how, const char *block) {
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "cow", how) == 0, "cow=%s", how);
        if (block)
                CHECK(nbdsdk_server_config(server, "cow-block-size", block) == 0, "cow-block-size=%s", block);
}

/* The cow layer makes any backend a writable, multi-connection disk. */
static tclient *cow_connect(tc_mode m, bool meta) {
        uint16_t flags;
        tclient *c = tc_open(server, m, meta, &flags);
        const uint16_t want = NBDSDK_FLAG_SEND_FLUSH | NBDSDK_FLAG_SEND_FUA | NBDSDK_FLAG_SEND_TRIM |
                              NBDSDK_FLAG_SEND_WRITE_ZEROES | NBDSDK_FLAG_SEND_FAST_ZERO |
                              NBDSDK_FLAG_CAN_MULTI_CONN;
        CHECK((flags & want) == want && !(flags & NBDSDK_FLAG_READ_ONLY), "%s: cow advertises 0x%x, got 0x%x",
              what, want, flags);
        return c;
}

/* The backend was only read (or asked to cache) since the last look. */
static void expect_backend_only_read(void) {
        CHECK(strspn(td->log, "rbc") == td->n_log, "%s: the backend saw \"%s\"", what, td->log);
        td_clear_log(td);
}

static bool all_zero(const uint8_t *p, uint64_t len) {
        for (uint64_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}

/* The model of the disk, the backend's bytes before the run, scratch. */
static uint8_t *model, *orig, *buf;
static uint64_t disk_size;
static uint64_t cookie;

/* A range: unaligned, partial, whole blocks, or up to the end, no longer
 * than LIMIT. */
static void pick_range(uint64_t bs, uint64_t limit, uint64_t *retoff, uint64_t *retlen) {
        uint64_t off = rnd(disk_size), len;
        switch (rnd(4)) {
        case 0: len = 1 + rnd(bs); break;
        case 1: off = off / bs * bs; len = bs * (1 + rnd(3)); break;
        case 2: len = 1 + rnd(3 * bs); break;
        default: off = disk_size - 1 - rnd(bs + bs / 2 < disk_size ? bs + bs / 2 : disk_size); len = disk_size; break;
        }
        if (len > disk_size - off)
                len = disk_size - off;
        if (len > limit)
                len = limit;
        *retoff = off;
        *retlen = len;
}

static void check_read(tclient *c, uint64_t off, uint64_t len, uint16_t flags) {
        CHECK(tc_read(c, flags, ++cookie, off, buf, len) == 0, "%s: read succeeds", what);
        for (uint64_t i = 0; i < len; i++)
                CHECK(buf[i] == model[off + i], "%s: byte %llu reads 0x%02x, the model says 0x%02x", what,
                      (unsigned long long) (off + i), buf[i], model[off + i]);
}

/* Extents cover the request (one with REQ_ONE), and zero ones read as zeroes. */
static void check_block_status(tclient *c, uint64_t off, uint64_t len, uint16_t flags) {
        tc_request(c, flags, NBDSDK_CMD_BLOCK_STATUS, ++cookie, off, len, NULL, 0);
        tc_extents x;
        tc_block_status_reply(c, cookie, &x);
        uint64_t pos = off;
        for (unsigned i = 0; i < x.n; i++) {
                CHECK(x.length[i] <= off + len - pos, "%s: extent %u ends inside the request", what, i);
                if (x.status[i] & NBDSDK_STATE_ZERO)
                        CHECK(all_zero(model + pos, x.length[i]), "%s: extent %llu+%llu is reported zero, the "
                              "model has data", what, (unsigned long long) pos, (unsigned long long) x.length[i]);
                pos += x.length[i];
        }
        if (flags & NBDSDK_CMD_FLAG_REQ_ONE)
                CHECK(x.n == 1, "%s: REQ_ONE gives one extent, got %u", what, x.n);
        else
                CHECK(pos == off + len, "%s: extents cover the request", what);
}

/* One random command from A (structured, base:allocation) or B (simple). */
static void random_op(tclient *a, tclient *b, uint64_t bs) {
        tclient *c = rnd(2) ? a : b;
        uint64_t off, len;
        pick_range(bs, 256 * 1024, &off, &len);
        uint16_t fua = rnd(2) ? NBDSDK_CMD_FLAG_FUA : 0;
        size_t at = strlen(what);
        unsigned op = (unsigned) rnd(100);
        if (op < 30) {
                snprintf(what + at, sizeof what - at, " write %llu+%llu", (unsigned long long) off,
                         (unsigned long long) len);
                for (uint64_t i = 0; i < len; i++)
                        buf[i] = (uint8_t) rnd(256);
                CHECK(tc_write(c, fua, ++cookie, off, buf, len) == 0, "%s: write succeeds", what);
                memcpy(model + off, buf, len);
        } else if (op < 40) {
                snprintf(what + at, sizeof what - at, " trim %llu+%llu", (unsigned long long) off,
                         (unsigned long long) len);
                CHECK(tc_command(c, fua, NBDSDK_CMD_TRIM, ++cookie, off, len) == 0, "%s: trim succeeds", what);
                memset(model + off, 0, len); /* the cow layer's trimmed bytes read as zeroes */
        } else if (op < 52) {
                uint16_t flags = fua | (rnd(2) ? NBDSDK_CMD_FLAG_NO_HOLE : 0) |
                                 (rnd(2) ? NBDSDK_CMD_FLAG_FAST_ZERO : 0);
                snprintf(what + at, sizeof what - at, " zero 0x%x %llu+%llu", flags, (unsigned long long) off,
                         (unsigned long long) len);
                CHECK(tc_command(c, flags, NBDSDK_CMD_WRITE_ZEROES, ++cookie, off, len) == 0, "%s: zero succeeds",
                      what);
                memset(model + off, 0, len);
        } else if (op < 80) {
                uint16_t flags = c == a && rnd(2) ? NBDSDK_CMD_FLAG_DF : 0;
                snprintf(what + at, sizeof what - at, " read 0x%x %llu+%llu", flags, (unsigned long long) off,
                         (unsigned long long) len);
                check_read(c, off, len, flags);
        } else if (op < 85) {
                snprintf(what + at, sizeof what - at, " flush");
                CHECK(tc_command(c, 0, NBDSDK_CMD_FLUSH, ++cookie, 0, 0) == 0, "%s: flush succeeds", what);
        } else if (op < 88) {
                snprintf(what + at, sizeof what - at, " cache %llu+%llu", (unsigned long long) off,
                         (unsigned long long) len);
                CHECK(tc_command(c, 0, NBDSDK_CMD_CACHE, ++cookie, off, len) == 0, "%s: cache succeeds", what);
        } else {
                /* Short enough for TC_EXTENTS_MAX extents, whatever the map. */
                pick_range(bs, 40 * bs < 48 * 1024 ? 40 * bs : 48 * 1024, &off, &len);
                uint16_t flags = rnd(4) ? 0 : NBDSDK_CMD_FLAG_REQ_ONE;
                snprintf(what + at, sizeof what - at, " block-status 0x%x %llu+%llu", flags,
                         (unsigned long long) off, (unsigned long long) len);
                check_block_status(a, off, len, flags);
        }
        expect_backend_only_read();
        what[at] = '\0';
}

/* A backend of 4 KiB blocks, holes (zero, unallocated) and random data, on
 * which writes are refused when READ_ONLY. */
static void random_backend(uint64_t size, bool read_only) {
        td = td_new(size);
        if (read_only)
                td->can_write = 0;
        for (uint64_t b = 0; b * 4096 < size; b++) {
                uint64_t n = size - b * 4096 < 4096 ? size - b * 4096 : 4096;
                td->written[b] = rnd(3) != 0;
                for (uint64_t i = 0; i < n; i++)
                        td->data[b * 4096 + i] = td->written[b] ? (char) rnd(256) : 0;
        }
        disk_size = size;
        orig = malloc(size);
        model = malloc(size);
        buf = malloc(256 * 1024);
        CHECK(orig && model && buf, "out of memory");
        memcpy(orig, td->data, size);
        memcpy(model, td->data, size);
}

static void random_backend_teardown(void) {
        disk_teardown();
        free(orig);
        free(model);
        free(buf);
}

#define OPS_PER_RUN 2000

static void property_run(const char *how, uint64_t bs, uint64_t seed) {
        rng = seed * 0x9e3779b97f4a7c15ull + 1;
        /* Never a multiple of the block size: the last block is partial. */
        uint64_t size = 37 * bs + bs / 3 + 1;
        random_backend(size, seed & 1);
        char block[32];
        snprintf(block, sizeof block, "%llu", (unsigned long long) bs);
        cow_server(how, block);
        snprintf(what, sizeof what, "cow=%s cow-block-size=%s seed %llu", how, block, (unsigned long long) seed);
        tclient *a = cow_connect(seed & 2 ? TC_EXTENDED : TC_STRUCTURED, true);
        tclient *b = cow_connect(TC_SIMPLE, false);
        td_clear_log(td);
        size_t at = strlen(what);
        for (unsigned i = 0; i < OPS_PER_RUN; i++) {
                snprintf(what + at, sizeof what - at, " op %u", i);
                random_op(a, b, bs);
        }
        snprintf(what + at, sizeof what - at, " at the end");
        for (uint64_t off = 0; off < size; off += 256 * 1024)
                check_read(b, off, size - off < 256 * 1024 ? size - off : 256 * 1024, 0);
        CHECK(memcmp(td->data, orig, size) == 0, "%s: the backend's bytes are unchanged", what);
        tc_free(a);
        tc_free(b);
        random_backend_teardown();
}

static void random_commands_match_a_model(const char *how) {
        static const uint64_t blocks[] = { 512, 4096, 65536 };
        for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
                for (uint64_t seed = 1; seed <= 3; seed++)
                        property_run(how, blocks[i], seed);
}

static void random_commands_match_a_model_in_ram(void) { random_commands_match_a_model("ram"); }
static void random_commands_match_a_model_in_a_file(void) { random_commands_match_a_model("file"); }

/* Wait for N simple replies, in any order, all successful. */
static void expect_simple_replies(tclient *c, unsigned n) {
        tc_wait_for(c, n * 16);
        for (unsigned i = 0; i < n; i++) {
                uint8_t h[16];
                tc_recv(c, h, sizeof h);
                CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY && wire_get32(h + 4) == 0,
                      "%s: reply %u is a success", what, i);
        }
}

static void connections_share_the_overlay(void) {
        rng = 1;
        random_backend(DISK_SIZE, false);
        cow_server("ram", NULL);
        snprintf(what, sizeof what, "two connections");
        tclient *a = cow_connect(TC_SIMPLE, false), *b = cow_connect(TC_STRUCTURED, true);
        td_clear_log(td);
        fill(buf, 5000, 1);
        CHECK(tc_write(a, 0, ++cookie, 4196, buf, 5000) == 0, "A writes");
        memcpy(model + 4196, buf, 5000);
        check_read(b, 0, 16384, 0);
        CHECK(tc_command(b, 0, NBDSDK_CMD_WRITE_ZEROES, ++cookie, 4296, 10) == 0, "B zeroes");
        CHECK(tc_command(b, 0, NBDSDK_CMD_TRIM, ++cookie, 65536, 8192) == 0, "B trims");
        memset(model + 4296, 0, 10);
        memset(model + 65536, 0, 8192);
        check_read(a, 0, 16384, 0);
        check_read(a, 65536 - 100, 8292, 0);
        /* The overlay belongs to the export: it outlives the connections. */
        tc_free(a);
        tc_free(b);
        snprintf(what, sizeof what, "a later connection");
        tclient *c = cow_connect(TC_EXTENDED, true);
        check_read(c, 0, 16384, 0);
        check_read(c, 65536 - 100, 8292, 0);
        check_block_status(c, 0, 128 * 1024, 0);
        expect_backend_only_read();
        CHECK(memcmp(td->data, orig, DISK_SIZE) == 0, "the backend's bytes are unchanged");
        tc_free(c);
        random_backend_teardown();
}

/* Many small writes in flight at once from two connections, disjoint bytes
 * sharing blocks: each partial block's read-modify-write keeps the others. */
static void concurrent_partial_writes_keep_each_other(void) {
        rng = 2;
        random_backend(DISK_SIZE, false);
        cow_server("ram", "4K");
        snprintf(what, sizeof what, "concurrent writes");
        tclient *a = cow_connect(TC_SIMPLE, false), *b = cow_connect(TC_SIMPLE, false);
        enum { PIECES = 96, PIECE = 100 };
        for (unsigned i = 0; i < PIECES; i++) {
                tclient *c = i % 2 ? b : a;
                fill(buf + i * PIECE, PIECE, i + 1);
                tc_send_write(c, 0, ++cookie, 1000 + i * PIECE, PIECE, buf + i * PIECE, PIECE);
        }
        memcpy(model + 1000, buf, PIECES * PIECE);
        expect_simple_replies(a, PIECES / 2);
        expect_simple_replies(b, PIECES / 2);
        check_read(a, 0, 16384, 0);
        expect_backend_only_read();
        tc_free(a);
        tc_free(b);
        random_backend_teardown();
}

/* A backend with native snapshots: while one is active, its bytes are a copy
 * of the original ones and writes land there. */
static int snap_can;
static int snap_begin_result;
static unsigned snap_asked, snap_begun, snap_ended;
static char *snap_original;

static int snap_can_snapshot(nbdsdk_conn *conn, void *ud) {
        (void) conn;
        (void) ud;
        snap_asked++;
        return snap_can;
}

static int snap_begin(nbdsdk_conn *conn, void *ud) {
        (void) conn;
        testdisk *t = ud;
        if (snap_begin_result)
                return snap_begin_result;
        if (snap_begun++ == snap_ended) {
                snap_original = t->data;
                CHECK((t->data = malloc(t->size)), "out of memory");
                memcpy(t->data, snap_original, t->size);
        }
        return 0;
}

static void snap_end(nbdsdk_conn *conn, void *ud) {
        (void) conn;
        testdisk *t = ud;
        CHECK(snap_ended < snap_begun, "snapshot_end without snapshot_begin");
        if (++snap_ended == snap_begun) {
                free(t->data);
                t->data = snap_original;
        }
}

/* A snapshotting disk (CAN: can_snapshot's answer) with cow=ram. */
static void snapshot_server(int can) {
        snap_can = can;
        snap_begin_result = 0;
        snap_asked = snap_begun = snap_ended = 0;
        rng = 3;
        random_backend(DISK_SIZE, false);
        struct nbdsdk_ops ops = *td_ops(td);
        ops.can_snapshot = snap_can_snapshot;
        ops.snapshot_begin = snap_begin;
        ops.snapshot_end = snap_end;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, td, &server) == 0, "server");
        CHECK(nbdsdk_server_config(server, "cow", "ram") == 0, "cow=ram");
}

static void native_snapshot_replaces_the_overlay(void) {
        snapshot_server(1);
        snprintf(what, sizeof what, "native snapshot");
        for (unsigned n = 1; n <= 2; n++) {
                uint16_t flags;
                tclient *c = tc_open(server, TC_SIMPLE, false, &flags);
                CHECK(snap_asked == n && snap_begun == n && snap_ended == n - 1,
                      "connection %u: asked %u, begun %u, ended %u", n, snap_asked, snap_begun, snap_ended);
                CHECK(!(flags & NBDSDK_FLAG_CAN_MULTI_CONN), "the backend's own flags: the cow layer left");
                td_clear_log(td);
                fill(buf, 6000, n);
                CHECK(tc_write(c, 0, ++cookie, 5000, buf, 6000) == 0, "write into the snapshot");
                CHECK(strcmp(td->log, "w") == 0, "the backend's pwrite is called: \"%s\"", td->log);
                CHECK(memcmp(td->data + 5000, buf, 6000) == 0, "the write landed in the snapshot");
                memcpy(model + 5000, buf, 6000);
                check_read(c, 4096, 8192, 0);
                memcpy(model, orig, DISK_SIZE); /* the next snapshot starts from the original */
                CHECK(memcmp(snap_original, orig, DISK_SIZE) == 0, "the original bytes are untouched");
                tc_free(c);
                CHECK(snap_ended == n, "connection %u: snapshot_end when it closed", n);
        }
        /* Two at once: a snapshot each, each ended with its connection. */
        tclient *a = tc_open(server, TC_SIMPLE, false, NULL), *b = tc_open(server, TC_EXTENDED, false, NULL);
        CHECK(snap_begun == 4 && snap_ended == 2, "begun %u, ended %u", snap_begun, snap_ended);
        tc_free(a);
        CHECK(snap_ended == 3, "one connection closed: ended %u", snap_ended);
        tc_free(b);
        CHECK(snap_ended == 4, "both closed: ended %u", snap_ended);
        CHECK(memcmp(td->data, orig, DISK_SIZE) == 0, "the original bytes are untouched");
        random_backend_teardown();
}

static void no_native_snapshot_keeps_the_overlay(void) {
        snapshot_server(0);
        snprintf(what, sizeof what, "can_snapshot 0");
        tclient *c = cow_connect(TC_STRUCTURED, true);
        CHECK(snap_asked == 1 && snap_begun == 0, "asked %u, begun %u", snap_asked, snap_begun);
        td_clear_log(td);
        fill(buf, 6000, 1);
        CHECK(tc_write(c, 0, ++cookie, 5000, buf, 6000) == 0, "write into the overlay");
        memcpy(model + 5000, buf, 6000);
        check_read(c, 4096, 8192, 0);
        expect_backend_only_read();
        tc_free(c);
        CHECK(snap_ended == 0, "no snapshot_end without a snapshot");
        CHECK(memcmp(td->data, orig, DISK_SIZE) == 0, "the backend's bytes are unchanged");
        random_backend_teardown();
}

/* NBD_OPT_GO on the default export fails with an error reply that says the
 * export could not open (not that there is none). */
static void expect_go_fails(const char *why) {
        tclient *c = tc_connect_fixed(server);
        static const uint8_t go[6]; /* no name, no info requests */
        tc_send_option(c, NBDSDK_OPT_GO, go, sizeof go);
        uint8_t *msg;
        uint32_t type = tc_option_reply(c, NBDSDK_OPT_GO, &msg, NULL);
        CHECK(type & NBDSDK_REP_FLAG_ERROR, "%s: GO fails, got 0x%x (%s)", why, type, (char *) msg);
        CHECK(strstr((char *) msg, "cannot open export"), "%s: the message tells why: \"%s\"", why, (char *) msg);
        free(msg);
        tc_free(c);
}

static void failing_snapshot_fails_the_export(void) {
        snapshot_server(-EIO);
        expect_go_fails("can_snapshot fails");
        CHECK(snap_begun == 0, "no snapshot begun");
        snap_can = 1;
        snap_begin_result = -ENOSPC;
        expect_go_fails("snapshot_begin fails");
        CHECK(snap_ended == 0, "no snapshot_end for a snapshot that never began");
        random_backend_teardown();
}

static void overlay_file_in_a_missing_directory_fails_the_export(void) {
        td = td_new(DISK_SIZE);
        cow_server("file", NULL);
        const char *old = getenv("TMPDIR");
        char *saved = old ? strdup(old) : NULL;
        setenv("TMPDIR", "/nonexistent-nbdsdk-test", 1);
        expect_go_fails("cow=file in a missing $TMPDIR");
        if (saved)
                setenv("TMPDIR", saved, 1);
        else
                unsetenv("TMPDIR");
        free(saved);
        disk_teardown();
}

static void bad_settings_are_refused(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        static const char *const bad[][2] = {
                { "cow", "bogus" }, { "cow", "" }, { "cow", "RAM" },
                { "cow-block-size", "1000" }, { "cow-block-size", "0" }, { "cow-block-size", "2M" },
                { "cow-block-size", "256" }, { "cow-block-size", "4X" }, { "cow-block-size", "" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                CHECK(nbdsdk_server_config(server, bad[i][0], bad[i][1]) == -EINVAL, "%s=%s is refused", bad[i][0],
                      bad[i][1]);
        static const char *const good[][2] = {
                { "cow", "ram" }, { "cow", "file" }, { "cow-block-size", "512" }, { "cow-block-size", "1M" },
                { "cow-block-size", "64K" },
        };
        for (size_t i = 0; i < sizeof good / sizeof *good; i++)
                CHECK(nbdsdk_server_config(server, good[i][0], good[i][1]) == 0, "%s=%s is accepted", good[i][0],
                      good[i][1]);
        disk_teardown();
}

TCASE_MAIN(T(random_commands_match_a_model_in_ram), T(random_commands_match_a_model_in_a_file),
           T(connections_share_the_overlay), T(concurrent_partial_writes_keep_each_other),
           T(native_snapshot_replaces_the_overlay), T(no_native_snapshot_keeps_the_overlay),
           T(failing_snapshot_fails_the_export), T(overlay_file_in_a_missing_directory_fails_the_export),
           T(bad_settings_are_refused))
