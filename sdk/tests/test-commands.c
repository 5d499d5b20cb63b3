/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Every command, in each reply mode (simple, structured, extended headers):
 * what reaches the backend, with which flags, and what the client gets back
 * (spec "Request types", "Request flags"). */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"

/* Every structured read is sparse here, whatever its length. */
static void open_sparse(tc_mode m, bool meta) {
        disk_setup();
        CHECK(nbdsdk_server_set_sparse_reads(server, 1) == 0, "sparse reads for all lengths");
        open_disk(m, meta);
}

static bool all_zero(const char *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}


static void read_returns_the_backends_data_in(tc_mode m) {
        td = td_new(1 << 20);
        fill((uint8_t *) td->data, 1 << 20, 1);
        memset(td->written, 1, (1 << 20) / 4096);
        open_sparse(m, false);
        uint8_t buf[8192];
        CHECK(tc_read(tc, 0, 7, 4096, buf, sizeof buf) == 0, "%s: READ succeeds", mode);
        CHECK(memcmp(buf, td->data + 4096, sizeof buf) == 0, "%s: READ returns the disk's bytes", mode);
        /* Sparse reads look at the data, not at block status. */
        expect_log("r");
        CHECK(td->log_flags[td->n_log - 1] == 0, "%s: pread gets no flags", mode);
        CHECK(tc_pending(tc) == 0, "%s: nothing follows the reply", mode);
        close_disk();
}
ALL_MODES(read_returns_the_backends_data)

static void write_then_read_back_in(tc_mode m) {
        open_sparse(m, false);
        uint8_t data[4096], back[8192];
        fill(data, sizeof data, 2);
        CHECK(tc_write(tc, 0, 1, 12288, data, sizeof data) == 0, "%s: WRITE succeeds", mode);
        expect_log("w");
        CHECK(td->log_flags[0] == 0, "%s: no FUA asked, none given", mode);
        CHECK(memcmp(td->data + 12288, data, sizeof data) == 0, "%s: the data reached the backend", mode);
        CHECK(tc_read(tc, 0, 2, 8192, back, sizeof back) == 0, "%s: READ back succeeds", mode);
        CHECK(all_zero((char *) back, 4096) && memcmp(back + 4096, data, sizeof data) == 0,
              "%s: READ returns what was written, zeroes around it", mode);
        close_disk();
}
ALL_MODES(write_then_read_back)

static void flush_reaches_the_backend_in(tc_mode m) {
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_FLUSH, "%s: flush advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_FLUSH, 3, 0, 0) == 0, "%s: FLUSH succeeds", mode);
        expect_log("f");
        close_disk();
}
ALL_MODES(flush_reaches_the_backend)

static void trim_reaches_the_backend_in(tc_mode m) {
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_TRIM, "%s: trim advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 4, 65536, 8192) == 0, "%s: TRIM succeeds", mode);
        expect_log("t");
        CHECK(td->log_flags[0] == 0, "%s: no FUA", mode);
        close_disk();
}
ALL_MODES(trim_reaches_the_backend)

static void cache_native_calls_cache_in(tc_mode m) {
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_CACHE, "%s: cache advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_CACHE, 5, 0, 65536) == 0, "%s: CACHE succeeds", mode);
        expect_log("c");
        close_disk();
}
ALL_MODES(cache_native_calls_cache)

static void cache_emulated_reads_in(tc_mode m) {
        td = td_new(4 << 20);
        td->has_cache = false;
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_CACHE, "%s: emulated cache is advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_CACHE, 6, 0, 65536) == 0, "%s: CACHE succeeds", mode);
        expect_log("r");
        td_clear_log(td);
        /* 3 MiB: read in pieces, no reply data. */
        CHECK(tc_command(tc, 0, NBDSDK_CMD_CACHE, 7, 0, 3 << 20) == 0, "%s: a large CACHE succeeds", mode);
        CHECK(td->n_log >= 2 && strspn(td->log, "r") == td->n_log, "%s: emulated by reads, got \"%s\"", mode,
              td->log);
        CHECK(tc_pending(tc) == 0, "%s: CACHE sends no data", mode);
        close_disk();
}
ALL_MODES(cache_emulated_reads)

static void write_zeroes_native_in(tc_mode m) {
        td = td_new(1 << 20);
        memset(td->data, 0xee, 1 << 20);
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_WRITE_ZEROES, "%s: write zeroes advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 8, 4096, 8192) == 0, "%s: WRITE_ZEROES succeeds", mode);
        expect_log("z");
        CHECK(td->log_flags[0] == NBDSDK_MAY_TRIM, "%s: without NO_HOLE the backend may trim", mode);
        CHECK(all_zero(td->data + 4096, 8192) && td->data[4095] == (char) 0xee && td->data[12288] == (char) 0xee,
              "%s: exactly the range is zero", mode);
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_NO_HOLE, NBDSDK_CMD_WRITE_ZEROES, 9, 65536, 4096) == 0,
              "%s: WRITE_ZEROES with NO_HOLE succeeds", mode);
        expect_log("z");
        CHECK(td->log_flags[0] == 0, "%s: NO_HOLE: no NBDSDK_MAY_TRIM", mode);
        close_disk();
}
ALL_MODES(write_zeroes_native)

static void write_zeroes_emulated_by_writing_in(tc_mode m) {
        td = td_new(1 << 20);
        td->has_zero = false;
        memset(td->data, 0xee, 1 << 20);
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_WRITE_ZEROES, "%s: emulated write zeroes is advertised", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 10, 8192, 16384) == 0, "%s: WRITE_ZEROES succeeds", mode);
        expect_log("w");
        CHECK(all_zero(td->data + 8192, 16384) && td->data[8191] == (char) 0xee && td->data[24576] == (char) 0xee,
              "%s: pwrite wrote zeroes over exactly the range", mode);
        close_disk();
}
ALL_MODES(write_zeroes_emulated_by_writing)

static void fast_zero_emulated_fails_enotsup_in(tc_mode m) {
        td = td_new(1 << 20);
        td->has_zero = false;
        memset(td->data, 0xee, 1 << 20);
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_FAST_ZERO, "%s: fast zero advertised", mode);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_WRITE_ZEROES, 11, 0, 8192) == NBDSDK_ENOTSUP,
              "%s: writing zeroes is not fast: ENOTSUP", mode);
        expect_log("");
        CHECK(td->data[0] == (char) 0xee && td->data[8191] == (char) 0xee, "%s: data untouched", mode);
        close_disk();
}
ALL_MODES(fast_zero_emulated_fails_enotsup)

static void native_zero_enotsup_falls_back_to_writing_in(tc_mode m) {
        td = td_new(1 << 20);
        td->zero_result = -ENOTSUP;
        memset(td->data, 0xee, 1 << 20);
        open_sparse(m, false);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 12, 0, 8192) == 0,
              "%s: without FAST_ZERO an unsupported zero is done by writing", mode);
        expect_log("zw");
        CHECK(all_zero(td->data, 8192) && td->data[8192] == (char) 0xee, "%s: the range reads as zero", mode);
        memset(td->data, 0xee, 8192);
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_WRITE_ZEROES, 13, 0, 8192) == NBDSDK_ENOTSUP,
              "%s: with FAST_ZERO the backend's ENOTSUP is passed on", mode);
        expect_log("z");
        CHECK(td->log_flags[0] == (NBDSDK_FAST_ZERO | NBDSDK_MAY_TRIM), "%s: zero got FAST_ZERO", mode);
        CHECK(td->data[0] == (char) 0xee, "%s: no fallback write", mode);
        close_disk();
}
ALL_MODES(native_zero_enotsup_falls_back_to_writing)

static void block_status_follows_writes_in(tc_mode m) {
        open_sparse(m, true);
        uint8_t data[4096];
        fill(data, sizeof data, 3);
        CHECK(tc_write(tc, 0, 1, 8192, data, sizeof data) == 0, "%s: WRITE", mode);
        td_clear_log(td);
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 2, 0, 65536, NULL, 0);
        tc_extents x;
        tc_block_status_reply(tc, 2, &x);
        const uint32_t hz = NBDSDK_STATE_HOLE | NBDSDK_STATE_ZERO;
        CHECK(x.n == 3, "%s: hole, data, hole: got %u extents", mode, x.n);
        CHECK(x.length[0] == 8192 && x.status[0] == hz, "%s: 0..8192 is a hole reading as zero", mode);
        CHECK(x.length[1] == 4096 && x.status[1] == 0, "%s: the written block is allocated", mode);
        CHECK(x.length[2] == 65536 - 12288 && x.status[2] == hz, "%s: the rest is a hole", mode);
        expect_log("b");
        CHECK(td->log_flags[0] == 0, "%s: no REQ_ONE", mode);
        CHECK(tc_pending(tc) == 0, "%s: exactly one chunk for the one context", mode);
        close_disk();
}
STRUCTURED_MODES(block_status_follows_writes)

static void block_status_req_one_gives_one_short_extent_in(tc_mode m) {
        open_sparse(m, true);
        uint8_t data[4096];
        fill(data, sizeof data, 4);
        CHECK(tc_write(tc, 0, 1, 8192, data, sizeof data) == 0, "%s: WRITE", mode);
        td_clear_log(td);
        tc_extents x;
        tc_request(tc, NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_BLOCK_STATUS, 2, 0, 65536, NULL, 0);
        tc_block_status_reply(tc, 2, &x);
        CHECK(x.n == 1 && x.length[0] == 8192 && x.status[0] == (NBDSDK_STATE_HOLE | NBDSDK_STATE_ZERO),
              "%s: REQ_ONE: only the first extent", mode);
        expect_log("b");
        CHECK(td->log_flags[0] == NBDSDK_REQ_ONE, "%s: the callback is told REQ_ONE", mode);
        /* The first extent is longer than asked: it is cut to the request. */
        tc_request(tc, NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_BLOCK_STATUS, 3, 9000, 1000, NULL, 0);
        tc_block_status_reply(tc, 3, &x);
        CHECK(x.n == 1 && x.length[0] <= 1000 && x.status[0] == 0, "%s: one extent, no longer than asked", mode);
        close_disk();
}
STRUCTURED_MODES(block_status_req_one_gives_one_short_extent)

static void block_status_never_past_the_request_in(tc_mode m) {
        td = td_new(1 << 20);
        td->bs_overreport = true;
        open_sparse(m, true);
        tc_extents x;
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 1, 4096, 6000, NULL, 0);
        tc_block_status_reply(tc, 1, &x);
        uint64_t sum = 0;
        for (unsigned i = 0; i < x.n; i++)
                sum += x.length[i];
        CHECK(sum == 6000, "%s: extents end where the request ends (sum %llu)", mode, (unsigned long long) sum);
        close_disk();
}
STRUCTURED_MODES(block_status_never_past_the_request)

static void block_status_without_callback_is_one_allocated_extent_in(tc_mode m) {
        td = td_new(1 << 20);
        td->has_block_status = false;
        open_sparse(m, true);
        tc_extents x;
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 1, 0, 65536, NULL, 0);
        tc_block_status_reply(tc, 1, &x);
        CHECK(x.n == 1 && x.length[0] == 65536 && x.status[0] == 0,
              "%s: one extent over the request, status 0 (allocated, contents unknown)", mode);
        expect_log("");
        close_disk();
}
STRUCTURED_MODES(block_status_without_callback_is_one_allocated_extent)

static void disc_closes_without_reply_in(tc_mode m) {
        open_sparse(m, false);
        tc_request(tc, 0, NBDSDK_CMD_DISC, 1, 0, 0, NULL, 0);
        CHECK(tc_pending(tc) == 0, "%s: DISC has no reply", mode);
        CHECK(tc_closed(tc), "%s: the server closes after DISC", mode);
        expect_log("");
        close_disk();
}
ALL_MODES(disc_closes_without_reply)

static void disc_waits_for_requests_in_flight_in(tc_mode m) {
        td = td_new(1 << 20);
        td->defer = true;
        open_sparse(m, false);
        uint8_t data[4096];
        fill(data, sizeof data, 5);
        tc_send_write(tc, 0, 1, 0, sizeof data, data, sizeof data);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 2, 0, 0, NULL, 0);
        tc_request(tc, 0, NBDSDK_CMD_DISC, 3, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 2, "%s: both requests reached the backend", mode);
        CHECK(!tc_closed(tc), "%s: requests in flight keep the connection open after DISC", mode);
        CHECK(tc_pending(tc) == 0, "%s: nothing replied yet", mode);
        CHECK(nbdsdk_request_complete(td->deferred[1], 0) == 0, "complete the flush");
        CHECK(tc_reply_status(tc, 2) == 0, "%s: the FLUSH is answered", mode);
        CHECK(!tc_closed(tc), "%s: the WRITE is still in flight", mode);
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "complete the write");
        CHECK(tc_reply_status(tc, 1) == 0, "%s: the WRITE is answered", mode);
        CHECK(tc_pending(tc) == 0, "%s: DISC itself has no reply", mode);
        CHECK(tc_closed(tc), "%s: closed once nothing is in flight", mode);
        close_disk();
}
ALL_MODES(disc_waits_for_requests_in_flight)

static void fua_emulated_by_flushing_in(tc_mode m) {
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_FUA, "%s: FUA advertised", mode);
        uint8_t data[4096];
        fill(data, sizeof data, 6);
        CHECK(tc_write(tc, NBDSDK_CMD_FLAG_FUA, 1, 0, data, sizeof data) == 0, "%s: WRITE+FUA", mode);
        expect_log("wf");
        CHECK(td->log_flags[0] == 0, "%s: emulated: pwrite is not asked for FUA", mode);
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_TRIM, 2, 0, 4096) == 0, "%s: TRIM+FUA", mode);
        expect_log("tf");
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_WRITE_ZEROES, 3, 0, 4096) == 0, "%s: ZERO+FUA", mode);
        expect_log("zf");
        CHECK(td->log_flags[0] == NBDSDK_MAY_TRIM, "%s: zero is not asked for FUA", mode);
        close_disk();
}
ALL_MODES(fua_emulated_by_flushing)

static void fua_native_goes_to_the_callback_in(tc_mode m) {
        td = td_new(1 << 20);
        td->can_fua = NBDSDK_CAP_NATIVE;
        open_sparse(m, false);
        CHECK(eflags & NBDSDK_FLAG_SEND_FUA, "%s: FUA advertised", mode);
        uint8_t data[4096];
        fill(data, sizeof data, 7);
        CHECK(tc_write(tc, NBDSDK_CMD_FLAG_FUA, 1, 0, data, sizeof data) == 0, "%s: WRITE+FUA", mode);
        expect_log("w");
        CHECK(td->log_flags[0] == NBDSDK_FUA, "%s: pwrite gets NBDSDK_FUA", mode);
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_TRIM, 2, 0, 4096) == 0, "%s: TRIM+FUA", mode);
        expect_log("t");
        CHECK(td->log_flags[0] == NBDSDK_FUA, "%s: trim gets NBDSDK_FUA", mode);
        td_clear_log(td);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_WRITE_ZEROES, 3, 0, 4096) == 0, "%s: ZERO+FUA", mode);
        expect_log("z");
        CHECK(td->log_flags[0] == (NBDSDK_FUA | NBDSDK_MAY_TRIM), "%s: zero gets NBDSDK_FUA", mode);
        close_disk();
}
ALL_MODES(fua_native_goes_to_the_callback)

static void fua_on_other_commands_is_accepted_in(tc_mode m) {
        open_sparse(m, false);
        uint8_t buf[4096];
        /* Spec: FUA is valid on any command once SEND_FUA is advertised. */
        CHECK(tc_read(tc, NBDSDK_CMD_FLAG_FUA, 1, 0, buf, sizeof buf) == 0, "%s: READ+FUA", mode);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_FLUSH, 2, 0, 0) == 0, "%s: FLUSH+FUA", mode);
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_CACHE, 3, 0, 4096) == 0, "%s: CACHE+FUA", mode);
        expect_log("rfc");
        for (unsigned i = 0; i < td->n_log; i++)
                CHECK(td->log_flags[i] == 0, "%s: FUA means nothing to %c", mode, td->log[i]);
        close_disk();
}
ALL_MODES(fua_on_other_commands_is_accepted)

TCASE_MAIN(T(read_returns_the_backends_data), T(write_then_read_back), T(flush_reaches_the_backend),
           T(trim_reaches_the_backend), T(cache_native_calls_cache), T(cache_emulated_reads),
           T(write_zeroes_native), T(write_zeroes_emulated_by_writing), T(fast_zero_emulated_fails_enotsup),
           T(native_zero_enotsup_falls_back_to_writing), T(block_status_follows_writes),
           T(block_status_req_one_gives_one_short_extent), T(block_status_never_past_the_request),
           T(block_status_without_callback_is_one_allocated_extent), T(disc_closes_without_reply),
           T(disc_waits_for_requests_in_flight), T(fua_emulated_by_flushing), T(fua_native_goes_to_the_callback),
           T(fua_on_other_commands_is_accepted))
