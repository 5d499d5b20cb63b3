/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server's stash of large request buffers (buffers.c): what it keeps,
 * what it hands out, its bounds, and a connection's buffers going to the
 * next connection. */
#include <stdlib.h>
#include <string.h>
#include "buffers-internal.h"
#include "conn-internal.h"
#include "server-internal.h"
#include "wire-internal.h"
#include "tcase.h"
#include "tclient.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static void small_buffers_are_not_kept(void) {
        buffer_stash st;
        buffer_stash_init(&st);
        buffer_stash_give(&st, malloc(4 * KIB), 4 * KIB);
        buffer_stash_give(&st, malloc(STASH_MIN_BUFFER - 1), STASH_MIN_BUFFER - 1);
        buffer_stash_give(&st, NULL, 0);
        CHECK(st.n == 0 && st.bytes == 0, "buffers below %u bytes are freed, not kept (kept %zu)", STASH_MIN_BUFFER,
              st.n);
        size_t cap = 0;
        CHECK(buffer_stash_take(&st, STASH_MIN_BUFFER, &cap) == NULL, "an empty stash hands out nothing");
        void *big = malloc(MIB);
        buffer_stash_give(&st, big, MIB);
        CHECK(buffer_stash_take(&st, 4 * KIB, &cap) == NULL && st.n == 1,
              "a small request gets no kept buffer (malloc serves it)");
        buffer_stash_fini(&st);
}

static void take_gives_the_smallest_that_fits(void) {
        buffer_stash st;
        buffer_stash_init(&st);
        void *big = malloc(MIB), *small = malloc(128 * KIB), *mid = malloc(256 * KIB);
        buffer_stash_give(&st, big, MIB);
        buffer_stash_give(&st, small, 128 * KIB);
        buffer_stash_give(&st, mid, 256 * KIB);
        CHECK(st.n == 3 && st.bytes == MIB + 384 * KIB, "three buffers kept, %zu bytes", st.bytes);
        size_t cap = 0;
        CHECK(buffer_stash_take(&st, 2 * MIB, &cap) == NULL, "nothing kept holds 2 MiB");
        CHECK(buffer_stash_take(&st, 100 * KIB, &cap) == small && cap == 128 * KIB,
              "100 KiB gets the 128 KiB buffer (cap %zu)", cap);
        CHECK(buffer_stash_take(&st, 200 * KIB, &cap) == mid && cap == 256 * KIB,
              "200 KiB gets the 256 KiB buffer (cap %zu)", cap);
        CHECK(buffer_stash_take(&st, 200 * KIB, &cap) == big && cap == MIB, "then the 1 MiB one (cap %zu)", cap);
        CHECK(st.n == 0 && st.bytes == 0, "the stash is empty again (%zu, %zu bytes)", st.n, st.bytes);
        free(small);
        free(mid);
        free(big);
        buffer_stash_fini(&st);
}

/* A request that gives its buffer back and the next that takes one: the
 * same buffer, still in the caches, not the one kept longest. */
static void of_equal_buffers_the_last_given_comes_first(void) {
        buffer_stash st;
        buffer_stash_init(&st);
        void *v[4];
        for (int i = 0; i < 4; i++)
                buffer_stash_give(&st, v[i] = malloc(MIB), MIB);
        size_t cap;
        CHECK(buffer_stash_take(&st, MIB, &cap) == v[3], "the last given first");
        CHECK(buffer_stash_take(&st, MIB, &cap) == v[2], "then the one before");
        buffer_stash_give(&st, v[3], MIB);
        CHECK(buffer_stash_take(&st, MIB, &cap) == v[3], "a buffer given back comes first again");
        CHECK(buffer_stash_take(&st, MIB, &cap) == v[1] && buffer_stash_take(&st, MIB, &cap) == v[0],
              "then the older ones, newest first");
        for (int i = 0; i < 4; i++)
                free(v[i]);
        buffer_stash_fini(&st);
}

static void bounded_in_bytes_and_number(void) {
        buffer_stash st;
        buffer_stash_init(&st);
        for (unsigned i = 0; i < STASH_MAX_BYTES / MIB + 3; i++)
                buffer_stash_give(&st, malloc(MIB), MIB);
        CHECK(st.n == STASH_MAX_BYTES / MIB && st.bytes == STASH_MAX_BYTES, "at most %u bytes kept (%zu in %zu)",
              STASH_MAX_BYTES, st.bytes, st.n);
        buffer_stash_fini(&st);
        buffer_stash_init(&st);
        for (unsigned i = 0; i < STASH_MAX_BUFFERS + 10; i++)
                buffer_stash_give(&st, malloc(STASH_MIN_BUFFER), STASH_MIN_BUFFER);
        CHECK(st.n == STASH_MAX_BUFFERS, "at most %u buffers kept (%zu)", STASH_MAX_BUFFERS, st.n);
        buffer_stash_fini(&st);
}

/* A backend that copies (no map): its pread shows which buffer a read uses. */
#define DISK (1u * MIB)
static char disk[DISK];
static void *last_buf;
static const void *last_write_buf;

static int64_t b_size(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return DISK; }
static int b_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) flags; (void) ud;
        last_buf = buf;
        memcpy(buf, disk + off, count);
        return 0;
}

static int b_pwrite(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) flags; (void) ud;
        last_write_buf = buf;
        memcpy(disk + off, buf, count);
        return 0;
}

static const struct nbdsdk_ops b_ops = { .name = "buffers", .get_size = b_size, .pread = b_pread,
                                         .pwrite = b_pwrite };

static void *read_once(nbdsdk_server *s, uint64_t len) {
        static char got[MIB];
        tclient *tc = tc_open(s, TC_SIMPLE, false, NULL);
        last_buf = NULL;
        CHECK(tc_read(tc, 0, 1, 4096, got, len) == 0, "the read succeeds");
        CHECK(memcmp(got, disk + 4096, len) == 0, "the read returns the disk's data");
        void *buf = last_buf;
        tc_free(tc);
        return buf;
}

static void a_closed_connection_leaves_its_buffer_to_the_next(void) {
        for (size_t i = 0; i < DISK; i++)
                disk[i] = (char) (i * 7 + 3);
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(&b_ops, sizeof b_ops, NULL, &s) == 0, "server");
        void *first = read_once(s, 256 * KIB);
        CHECK(first != NULL, "pread was called");
        CHECK(s->buffers.n == 1 && s->buffers.v[0].buf == first && s->buffers.v[0].cap >= 256 * KIB,
              "the ended connection's 256 KiB buffer is kept by the server (%zu kept)", s->buffers.n);
        void *second = read_once(s, 200 * KIB);
        CHECK(second == first, "the next connection reads into the same buffer");
        CHECK(s->buffers.n == 1 && s->buffers.v[0].buf == first,
              "and leaves it to the server again (%zu kept, none new)", s->buffers.n);
        tclient *tc = tc_open(s, TC_SIMPLE, false, NULL);
        char got[4 * KIB];
        CHECK(tc_read(tc, 0, 1, 0, got, sizeof got) == 0 && last_buf != first, "a 4 KiB read uses a buffer of its own");
        CHECK(s->buffers.n == 1, "and leaves the kept one there (%zu kept)", s->buffers.n);
        tc_free(tc);
        nbdsdk_server_unref(s);
}

/* The buffers a backend reads into and writes from start on a page (on a
 * cache line below 4 KiB): the kernel's copies into them are several times
 * faster than at malloc's alignment, and direct I/O needs it. */
static void request_buffers_start_on_a_page(void) {
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(&b_ops, sizeof b_ops, NULL, &s) == 0, "server");
        static const uint32_t lens[] = { MIB - 4 * KIB, 64 * KIB, 4 * KIB, 512 };
        static char data[MIB];
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
                uint32_t len = lens[i];
                uintptr_t align = len >= 4 * KIB ? 4 * KIB : 64;
                /* A connection of its own: no buffer of a bigger request to reuse. */
                void *buf = read_once(s, len);
                CHECK((uintptr_t) buf % align == 0, "a %u-byte read's buffer %p is aligned to %zu bytes", len, buf,
                      (size_t) align);
                tclient *tc = tc_open(s, TC_SIMPLE, false, NULL);
                CHECK(tc_write(tc, 0, 1, 0, data, len) == 0, "a %u-byte write", len);
                CHECK((uintptr_t) last_write_buf % align == 0, "a %u-byte write's buffer %p is aligned to %zu bytes",
                      len, last_write_buf, (size_t) align);
                tc_free(tc);
        }
        void *b = buffer_alloc(3 * KIB);
        CHECK(b && (uintptr_t) b % 64 == 0, "buffer_alloc below a page: a cache line");
        free(b);
        nbdsdk_server_unref(s);
}

/* A WRITE's buffer leaves the bytes in flight once the write is done, not
 * when its reply has gone out; a READ's stays until its data is sent. The
 * client takes no reply until the end (a one-byte socket buffer). */
static void a_write_gives_its_buffer_back_before_its_reply(void) {
        enum { LEN = 256 * KIB };
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(&b_ops, sizeof b_ops, NULL, &s) == 0, "server");
        tclient *tc = tc_open(s, TC_SIMPLE, false, NULL);
        mem_peer_set_write_budget(tc->peer, 1);
        static char data[LEN];
        memset(data, 0x5a, sizeof data);
        tc_send_write(tc, 0, 1, 0, LEN, data, LEN);
        CHECK(memcmp(disk, data, LEN) == 0, "the WRITE is done");
        CHECK(tc->conn->in_flight == 1, "its reply waits to go out (%u in flight)", tc->conn->in_flight);
        CHECK(tc->conn->bytes_in_flight == 0 && s->buffers.n == 1 && s->buffers.v[0].cap >= LEN,
              "its buffer is back with the server (%llu bytes in flight, %zu kept)",
              (unsigned long long) tc->conn->bytes_in_flight, s->buffers.n);
        tc_request(tc, 0, NBDSDK_CMD_READ, 2, 0, LEN, NULL, 0);
        CHECK(tc->conn->in_flight == 2 && tc->conn->bytes_in_flight == LEN && s->buffers.n == 0,
              "a READ takes it and holds it while its reply waits (%llu bytes in flight, %zu kept)",
              (unsigned long long) tc->conn->bytes_in_flight, s->buffers.n);
        mem_peer_set_write_budget(tc->peer, 0);
        tc_run(tc);
        uint8_t h[16];
        tc_recv(tc, h, sizeof h);
        CHECK(wire_get32(h + 4) == 0 && wire_get64(h + 8) == 1, "the WRITE's reply");
        static char got[LEN];
        CHECK(tc_simple_reply(tc, 2, got, LEN) == 0 && memcmp(got, data, LEN) == 0, "the READ's reply and data");
        tc_free(tc);
        nbdsdk_server_unref(s);
}

TCASE_MAIN(T(small_buffers_are_not_kept), T(take_gives_the_smallest_that_fits), T(of_equal_buffers_the_last_given_comes_first),
           T(bounded_in_bytes_and_number),
           T(a_closed_connection_leaves_its_buffer_to_the_next), T(request_buffers_start_on_a_page),
           T(a_write_gives_its_buffer_back_before_its_reply))
