/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory backends (ops.map, nbdsdk_ops(3)): reads sent from the export's
 * memory and writes received into it without pread or pwrite; the copies the
 * library makes itself where stages, layers or FUA rule zero copy out; and
 * the backends that must be refused. */
#include <errno.h>
#include "conn-internal.h"
#include "fixture.h"
#include "tcase.h"

#define MEM_SIZE (1u << 20)

static char mem[MEM_SIZE];
static bool map_gives_null, with_extents;
static unsigned n_pread, n_pwrite, n_flush, n_stage;

static int64_t mem_size(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return MEM_SIZE; }
static void *mem_map(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return map_gives_null ? NULL : mem; }
static int mem_flush(nbdsdk_request *req, uint32_t flags, void *ud) { (void) req; (void) flags; (void) ud; n_flush++; return 0; }

static int mem_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) flags; (void) ud;
        n_pread++;
        memcpy(buf, mem + off, count);
        return 0;
}

static int mem_pwrite(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) flags; (void) ud;
        n_pwrite++;
        memcpy(mem + off, buf, count);
        return 0;
}

/* [64K, 128K) is a hole; the rest data. */
static int mem_block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, nbdsdk_extents *x,
                            void *ud) {
        (void) req; (void) flags; (void) ud;
        for (uint64_t end = off + count; off < end; off += 4096)
                if (nbdsdk_extents_add(x, 4096, off >= 65536 && off < 131072 ? NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO
                                                                              : 0) < 0)
                        return -ENOMEM;
        return 0;
}

/* WITH_RW: pread and pwrite present besides map. */
static nbdsdk_server *mem_server(bool with_rw) {
        memset(mem, 0, sizeof mem);
        n_pread = n_pwrite = n_flush = n_stage = 0;
        map_gives_null = false;
        const struct nbdsdk_ops ops = { .name = "memdisk", .get_size = mem_size, .map = mem_map, .flush = mem_flush,
                                        .pread = with_rw ? mem_pread : NULL, .pwrite = with_rw ? mem_pwrite : NULL,
                                        .block_status = with_extents ? mem_block_status : NULL };
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &s) == 0, "a server with map");
        return s;
}

static void zero_copy_reads_and_writes_in(tc_mode m) {
        nbdsdk_server *s = mem_server(true);
        tclient *c = tc_open(s, m, false, NULL);
        uint8_t data[8192], back[8192];
        fill(data, sizeof data, 7);
        CHECK(tc_write(c, 0, 1, 4096, data, sizeof data) == 0, "%s: WRITE", tc_mode_names[m]);
        CHECK(memcmp(mem + 4096, data, sizeof data) == 0, "%s: the payload is in the export's memory",
              tc_mode_names[m]);
        CHECK(n_pwrite == 0, "%s: received in place, pwrite not called (%u calls)", tc_mode_names[m], n_pwrite);
        /* A change made behind the library's back is what the next READ sends. */
        mem[4096] ^= 0x5a;
        CHECK(tc_read(c, 0, 2, 4096, back, sizeof back) == 0, "%s: READ", tc_mode_names[m]);
        data[0] ^= 0x5a;
        CHECK(memcmp(back, data, sizeof back) == 0, "%s: READ sends the memory as it is now", tc_mode_names[m]);
        CHECK(n_pread == 0, "%s: sent from the memory, pread not called (%u calls)", tc_mode_names[m], n_pread);
        tc_free(c);
        nbdsdk_server_unref(s);
}
ALL_MODES(zero_copy_reads_and_writes)

/* Replies sent from the export's memory hold no buffer: a client that
 * takes none of them still has every READ read (the 4 MiB limit on waiting
 * replies is for replies that hold buffers). */
static void zero_copy_replies_do_not_stop_reading(void) {
        enum { N = 8 };
        nbdsdk_server *s = mem_server(false);
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        mem_peer_set_write_budget(c->peer, 100);
        for (unsigned i = 0; i < N; i++)
                tc_request(c, 0, NBDSDK_CMD_READ, i + 1, 0, MEM_SIZE, NULL, 0);
        CHECK(c->conn->in_flight == N && c->conn->out.bytes > (4u << 20),
              "all %u READs read, %zu bytes of replies waiting (%u in flight)", N, c->conn->out.bytes,
              c->conn->in_flight);
        mem_peer_set_write_budget(c->peer, 0);
        static uint8_t back[MEM_SIZE];
        for (unsigned i = 0; i < N; i++)
                CHECK(tc_simple_reply(c, i + 1, back, sizeof back) == 0, "READ %u answered", i);
        tc_free(c);
        nbdsdk_server_unref(s);
}

/* Zero-copy reads are sparse where the backend's block status says zero (the
 * memory is not scanned): without block status, zeroes are data. */
static void zero_copy_sparse_reads_follow_block_status_in(tc_mode m) {
        with_extents = true;
        nbdsdk_server *s = mem_server(true);
        with_extents = false;
        tclient *c = tc_open(s, m, false, NULL);
        static uint8_t back[256 << 10];
        mem[0] = 1;
        unsigned data_chunks = 0, hole_chunks = 0;
        tc_request(c, 0, NBDSDK_CMD_READ, 3, 0, sizeof back, NULL, 0);
        CHECK(tc_structured_read(c, 3, 0, back, sizeof back, &data_chunks, &hole_chunks) == 0, "%s: READ",
              tc_mode_names[m]);
        CHECK(data_chunks == 2 && hole_chunks == 1, "%s: data, hole, data (%u data, %u holes)", tc_mode_names[m],
              data_chunks, hole_chunks);
        CHECK(back[0] == 1 && memcmp(back + 1, mem + 1, sizeof back - 1) == 0, "%s: the bytes", tc_mode_names[m]);
        CHECK(n_pread == 0, "%s: still no pread", tc_mode_names[m]);
        tc_free(c);
        nbdsdk_server_unref(s);
}
STRUCTURED_MODES(zero_copy_sparse_reads_follow_block_status)

static void zero_copy_reads_are_not_sparse_in(tc_mode m) {
        nbdsdk_server *s = mem_server(true);
        tclient *c = tc_open(s, m, false, NULL);
        static uint8_t back[256 << 10];
        unsigned data_chunks = 0, hole_chunks = 0;
        tc_request(c, 0, NBDSDK_CMD_READ, 3, 0, sizeof back, NULL, 0);
        CHECK(tc_structured_read(c, 3, 0, back, sizeof back, &data_chunks, &hole_chunks) == 0, "%s: READ",
              tc_mode_names[m]);
        CHECK(data_chunks == 1 && hole_chunks == 0, "%s: one data chunk, no holes (%u data, %u holes)",
              tc_mode_names[m], data_chunks, hole_chunks);
        CHECK(back[0] == 0 && memcmp(back, back + 1, sizeof back - 1) == 0, "%s: zeroes", tc_mode_names[m]);
        tc_free(c);
        nbdsdk_server_unref(s);
}
STRUCTURED_MODES(zero_copy_reads_are_not_sparse)

/* With worker threads, a zero-copy request that calls nothing is answered on
 * the loop thread at once (a worker would answer through the completion
 * queue, after this run of the connection). */
static void zero_copy_needs_no_worker(void) {
        nbdsdk_server *s = mem_server(true);
        CHECK(nbdsdk_server_set_threads(s, 2) == 0, "two workers");
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        uint8_t data[4096];
        fill(data, sizeof data, 8);
        tc_send_write(c, 0, 1, 0, sizeof data, data, sizeof data);
        CHECK(tc_pending(c) == 16, "the WRITE's reply is there after one run (%zu bytes)", tc_pending(c));
        CHECK(tc_reply_status(c, 1) == 0 && memcmp(mem, data, sizeof data) == 0, "written");
        tc_request(c, 0, NBDSDK_CMD_READ, 2, 0, sizeof data, NULL, 0);
        CHECK(tc_pending(c) == 16 + sizeof data, "the READ's reply is there after one run (%zu bytes)", tc_pending(c));
        uint8_t back[4096];
        CHECK(tc_simple_reply(c, 2, back, sizeof back) == 0 && memcmp(back, data, sizeof back) == 0, "read back");
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void fua_writes_go_through_pwrite(void) {
        nbdsdk_server *s = mem_server(true);
        uint16_t flags;
        tclient *c = tc_open(s, TC_SIMPLE, false, &flags);
        CHECK(flags & NBDSDK_FLAG_SEND_FUA, "FUA is offered (emulated with flush)");
        uint8_t data[4096];
        fill(data, sizeof data, 3);
        CHECK(tc_write(c, NBDSDK_CMD_FLAG_FUA, 1, 0, data, sizeof data) == 0, "WRITE with FUA");
        CHECK(n_pwrite == 1 && n_flush == 1, "pwrite then flush (%u pwrite, %u flush)", n_pwrite, n_flush);
        CHECK(memcmp(mem, data, sizeof data) == 0, "the data is in memory");
        tc_free(c);
        nbdsdk_server_unref(s);
}

/* Without pread and pwrite, the library copies to and from the memory itself. */
static void map_alone_serves_fua_writes(void) {
        nbdsdk_server *s = mem_server(false);
        tclient *c = tc_open(s, TC_STRUCTURED, false, NULL);
        uint8_t data[4096], back[4096];
        fill(data, sizeof data, 4);
        CHECK(tc_write(c, NBDSDK_CMD_FLAG_FUA, 1, 8192, data, sizeof data) == 0, "WRITE with FUA");
        CHECK(memcmp(mem + 8192, data, sizeof data) == 0 && n_flush == 1, "copied into memory, then flushed");
        CHECK(tc_read(c, 0, 2, 8192, back, sizeof back) == 0 && memcmp(back, data, sizeof back) == 0, "read back");
        tc_free(c);
        nbdsdk_server_unref(s);
}

static int count_stage(nbdsdk_request *req, void *ud) { (void) req; (void) ud; n_stage++; return NBDSDK_CONTINUE; }

/* A stage may refuse or wait for a request: the payload then must not land
 * before it ran, so there is no zero copy; the library copies. */
static void stages_turn_zero_copy_off(void) {
        nbdsdk_server *s = mem_server(false);
        const struct nbdsdk_stage st = { .name = "count", .point = NBDSDK_STAGE_BEFORE_DATA, .run = count_stage };
        CHECK(nbdsdk_server_add_stage(s, &st, sizeof st, NULL, NULL) == 0, "register a stage");
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        uint8_t data[4096], back[4096];
        fill(data, sizeof data, 5);
        CHECK(tc_write(c, 0, 1, 0, data, sizeof data) == 0, "WRITE");
        CHECK(memcmp(mem, data, sizeof data) == 0, "copied into memory");
        mem[0] ^= 1;
        CHECK(tc_read(c, 0, 2, 0, back, sizeof back) == 0, "READ");
        data[0] ^= 1;
        CHECK(memcmp(back, data, sizeof back) == 0, "copied from memory");
        CHECK(n_stage == 2, "the stage saw both requests (%u)", n_stage);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void map_null_falls_back_to_pread(void) {
        nbdsdk_server *s = mem_server(true);
        map_gives_null = true;
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        uint8_t data[4096], back[4096];
        fill(data, sizeof data, 6);
        CHECK(tc_write(c, 0, 1, 0, data, sizeof data) == 0, "WRITE");
        CHECK(tc_read(c, 0, 2, 0, back, sizeof back) == 0 && memcmp(back, data, sizeof back) == 0, "READ");
        CHECK(n_pwrite == 1 && n_pread == 1, "pwrite and pread did it (%u, %u)", n_pwrite, n_pread);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void map_null_without_pread_refuses_the_export(void) {
        nbdsdk_server *s = mem_server(false);
        map_gives_null = true;
        tclient *c = tc_connect_fixed(s);
        tc_replies r;
        uint8_t go[6] = { 0 }; /* empty name, no info requests */
        tc_send_option(c, NBDSDK_OPT_GO, go, sizeof go);
        tc_option_replies(c, NBDSDK_OPT_GO, &r);
        CHECK(r.n == 1 && (r.type[0] & (1u << 31)), "GO fails with an error reply (type 0x%x)", r.type[0]);
        tc_replies_free(&r);
        tc_check_in_sync(c);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void neither_pread_nor_map_is_refused(void) {
        const struct nbdsdk_ops ops = { .name = "nothing", .get_size = mem_size };
        nbdsdk_server *s = NULL;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &s) == -EINVAL && !s, "a server needs pread or map");
}

TCASE_MAIN(T(zero_copy_reads_and_writes), T(zero_copy_replies_do_not_stop_reading), T(zero_copy_reads_are_not_sparse),
           T(zero_copy_sparse_reads_follow_block_status), T(zero_copy_needs_no_worker), T(fua_writes_go_through_pwrite),
           T(map_alone_serves_fua_writes), T(stages_turn_zero_copy_off), T(map_null_falls_back_to_pread),
           T(map_null_without_pread_refuses_the_export), T(neither_pread_nor_map_is_refused))
