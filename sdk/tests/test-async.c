/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Requests in flight: deferred completion (any order, any thread), errno
 * mapping, worker threads, back-pressure and shutdown (spec "Transmission
 * phase": replies may come out of order). */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "tcase.h"
#include "fixture.h"
#include "conn-internal.h"
#include "wire-internal.h"

/* Run the server until WANT bytes of replies wait. */
static void wait_for_bytes(size_t want) {
        tc_wait_for(tc, want);
        CHECK(mem_peer_pending(tc->peer) >= want, "%zu reply bytes arrived, %zu expected", mem_peer_pending(tc->peer),
              want);
}

/* A disk whose data callbacks all defer, connected in mode M. */
static void open_deferring_disk(tc_mode m) {
        td = td_new(DISK_SIZE);
        td->defer = true;
        open_disk(m, false);
}

static void replies_follow_completion_order_in(tc_mode m) {
        open_deferring_disk(m);
        uint8_t data[4096];
        fill(data, sizeof data, 1);
        tc_send_write(tc, 0, 11, 0, sizeof data, data, sizeof data);
        tc_request(tc, 0, NBDSDK_CMD_TRIM, 12, 65536, 4096, NULL, 0);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 13, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 3 && strcmp(td->log, "wtf") == 0, "%s: three requests in flight", mode);
        CHECK(tc_pending(tc) == 0, "%s: no reply before completion", mode);
        /* The last first; then the other two in reverse. */
        CHECK(nbdsdk_request_complete(td->deferred[2], 0) == 0, "complete the FLUSH");
        CHECK(tc_reply_status(tc, 13) == 0, "%s: the FLUSH's reply comes first", mode);
        CHECK(tc_pending(tc) == 0, "%s: only the completed request is answered", mode);
        CHECK(nbdsdk_request_complete(td->deferred[1], 0) == 0, "complete the TRIM");
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "complete the WRITE");
        CHECK(tc_reply_status(tc, 12) == 0, "%s: then the TRIM's", mode);
        CHECK(tc_reply_status(tc, 11) == 0, "%s: then the WRITE's", mode);
        CHECK(tc_pending(tc) == 0, "%s: three requests, three replies", mode);
        close_disk();
}

/* Requests that complete together (the loop finds them queued at once) are
 * answered together: one write carries every reply. */
static void replies_completed_together_leave_in_one_write_in(tc_mode m) {
        open_deferring_disk(m);
        for (uint64_t cookie = 21; cookie <= 24; cookie++)
                tc_request(tc, 0, NBDSDK_CMD_FLUSH, cookie, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 4, "%s: four requests in flight", mode);
        size_t writes = mem_peer_writes(tc->peer);
        for (int i = 0; i < 4; i++)
                CHECK(nbdsdk_request_complete(td->deferred[i], 0) == 0, "complete request %d", i);
        CHECK(mem_peer_writes(tc->peer) == writes, "%s: no reply before the loop runs", mode);
        tc_run(tc);
        for (uint64_t cookie = 21; cookie <= 24; cookie++)
                CHECK(tc_reply_status(tc, cookie) == 0, "%s: request %llu answered", mode, (unsigned long long) cookie);
        CHECK(mem_peer_writes(tc->peer) == writes + 1, "%s: %zu writes for four replies, not one", mode,
              mem_peer_writes(tc->peer) - writes);
        close_disk();
}

static void *complete_on_a_thread(void *req) {
        return (void *) (intptr_t) nbdsdk_request_complete(req, 0);
}

static void completion_from_another_thread_in(tc_mode m) {
        open_deferring_disk(m);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 5, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 1, "%s: the FLUSH is in flight", mode);
        pthread_t t;
        void *ret;
        CHECK(pthread_create(&t, NULL, complete_on_a_thread, td->deferred[0]) == 0, "thread");
        CHECK(pthread_join(t, &ret) == 0 && (intptr_t) ret == 0, "%s: completed from another thread", mode);
        CHECK(mem_peer_pending(tc->peer) == 0, "%s: the loop thread sends the reply, not the completing one", mode);
        tc_run(tc);
        CHECK(tc_reply_status(tc, 5) == 0, "%s: the reply arrives once the server runs", mode);
        close_disk();
}

static void completing_twice_is_refused(void) {
        open_deferring_disk(TC_SIMPLE);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 1, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 1, "in flight");
        CHECK(nbdsdk_request_complete(td->deferred[0], 1) == -EINVAL, "a positive error is refused");
        CHECK(nbdsdk_request_complete(NULL, 0) == -EINVAL, "NULL is refused");
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "the first completion is taken");
        CHECK(nbdsdk_request_complete(td->deferred[0], -EIO) == -EALREADY, "the second gets -EALREADY");
        CHECK(tc_reply_status(tc, 1) == 0, "the first completion's result is the reply");
        CHECK(tc_pending(tc) == 0, "one reply only");
        close_disk();
}

static void completion_errors_are_mapped_in(tc_mode m) {
        static const struct {
                int err;
                uint32_t nbd;
        } map[] = {
                { -EIO, NBDSDK_EIO },           { -EROFS, NBDSDK_EPERM },     { -EPERM, NBDSDK_EPERM },
                { -EDQUOT, NBDSDK_ENOSPC },     { -EFBIG, NBDSDK_ENOSPC },    { -ENOSPC, NBDSDK_ENOSPC },
                { -ENOMEM, NBDSDK_ENOMEM },     { -ESHUTDOWN, NBDSDK_ESHUTDOWN },
                { -ENOENT, NBDSDK_EINVAL },     { -EBADF, NBDSDK_EINVAL },    /* unknown values */
                { -ENOTSUP, NBDSDK_EINVAL },    /* only FAST_ZERO may fail with ENOTSUP */
                { -EOVERFLOW, NBDSDK_EINVAL },  /* only DF reads may fail with EOVERFLOW */
        };
        open_deferring_disk(m);
        uint8_t data[4096] = { 1 };
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
                tc_send_write(tc, 0, 100 + i, 0, sizeof data, data, sizeof data);
                CHECK(td->n_deferred == i + 1, "%s: WRITE %zu in flight", mode, i);
                CHECK(nbdsdk_request_complete(td->deferred[i], map[i].err) == 0, "complete with %d", map[i].err);
                uint32_t got = tc_reply_status(tc, 100 + i);
                CHECK(got == map[i].nbd, "%s: errno %d gives NBD error %u, got %u", mode, -map[i].err, map[i].nbd, got);
        }
        /* FAST_ZERO is the one request ENOTSUP is passed on for. */
        unsigned n = td->n_deferred;
        tc_request(tc, NBDSDK_CMD_FLAG_FAST_ZERO, NBDSDK_CMD_WRITE_ZEROES, 200, 0, 4096, NULL, 0);
        CHECK(nbdsdk_request_complete(td->deferred[n], -ENOTSUP) == 0, "complete zero");
        CHECK(tc_reply_status(tc, 200) == NBDSDK_ENOTSUP, "%s: FAST_ZERO: ENOTSUP", mode);
        /* Without FAST_ZERO a deferred ENOTSUP falls back to writing, deferred again. */
        td_clear_log(td);
        tc_request(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 201, 0, 4096, NULL, 0);
        CHECK(nbdsdk_request_complete(td->deferred[n + 1], -ENOTSUP) == 0, "complete zero");
        tc_run(tc);
        CHECK(strcmp(td->log, "zw") == 0 && td->n_deferred == n + 3, "%s: the fallback write is in flight: \"%s\"",
              mode, td->log);
        CHECK(tc_pending(tc) == 0, "%s: no reply before the fallback finishes", mode);
        CHECK(nbdsdk_request_complete(td->deferred[n + 2], 0) == 0, "complete the write");
        CHECK(tc_reply_status(tc, 201) == 0, "%s: zeroed by writing", mode);
        close_disk();
}

#define N_PIPELINED 32

static void worker_threads_serve_pipelined_requests(void) {
        td = td_new(1 << 20);
        server = td_server(td);
        CHECK(nbdsdk_server_set_threads(server, 4) == 0, "four worker threads");
        open_disk(TC_SIMPLE, false);
        uint8_t data[4096];
        for (unsigned i = 0; i < N_PIPELINED; i++) {
                fill(data, sizeof data, i);
                tc_request(tc, 0, NBDSDK_CMD_WRITE, i + 1, (uint64_t) i * 8192, sizeof data, data, sizeof data);
        }
        wait_for_bytes(N_PIPELINED * 16);
        bool seen[N_PIPELINED + 1] = { false };
        for (unsigned i = 0; i < N_PIPELINED; i++) {
                uint8_t h[16];
                mem_peer_recv(tc->peer, h, sizeof h);
                uint64_t cookie = wire_get64(h + 8);
                CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY && wire_get32(h + 4) == 0, "WRITE reply ok");
                CHECK(cookie >= 1 && cookie <= N_PIPELINED && !seen[cookie], "each cookie once, got %llu",
                      (unsigned long long) cookie);
                seen[cookie] = true;
        }
        for (unsigned i = 0; i < N_PIPELINED; i++) {
                fill(data, sizeof data, i);
                CHECK(memcmp(td->data + (uint64_t) i * 8192, data, sizeof data) == 0, "write %u landed", i);
        }
        for (unsigned i = 0; i < N_PIPELINED; i++)
                tc_request(tc, 0, NBDSDK_CMD_READ, 1000 + i, (uint64_t) i * 8192, sizeof data, NULL, 0);
        wait_for_bytes(N_PIPELINED * (16 + sizeof data));
        memset(seen, 0, sizeof seen);
        for (unsigned i = 0; i < N_PIPELINED; i++) {
                uint8_t h[16], back[4096];
                mem_peer_recv(tc->peer, h, sizeof h);
                mem_peer_recv(tc->peer, back, sizeof back);
                uint64_t k = wire_get64(h + 8) - 1000;
                CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY && wire_get32(h + 4) == 0, "READ reply ok");
                CHECK(k < N_PIPELINED && !seen[k], "each READ cookie once");
                seen[k] = true;
                fill(data, sizeof data, (unsigned) k);
                CHECK(memcmp(back, data, sizeof data) == 0, "READ %llu returns its data", (unsigned long long) k);
        }
        CHECK(tc_pending(tc) == 0, "nothing more");
        close_disk();
}

#define N_BP 5

/* A deferring backend holds the requests: only the limit's worth is read. */
static void back_pressure_limits_requests_in_flight(void) {
        td = td_new(1 << 20);
        td->defer = true;
        fill((uint8_t *) td->data, 1 << 20, 9);
        server = td_server(td);
        CHECK(nbdsdk_server_set_max_in_flight(server, 2, 32u << 20) == 0, "two requests in flight");
        open_disk(TC_SIMPLE, false);
        for (unsigned i = 0; i < N_BP; i++)
                tc_request(tc, 0, NBDSDK_CMD_READ, i + 1, (uint64_t) i * 4096, 4096, NULL, 0);
        CHECK(td->n_deferred == 2, "only two requests reach the backend, not %u", td->n_deferred);
        for (unsigned i = 0; i < N_BP; i++) {
                CHECK(tc->conn->in_flight <= 2 && tc->conn->bytes_in_flight <= 2 * 4096,
                      "in flight: %u requests, %llu bytes", tc->conn->in_flight,
                      (unsigned long long) tc->conn->bytes_in_flight);
                CHECK(nbdsdk_request_complete(td->deferred[i], 0) == 0, "complete READ %u", i);
                uint8_t back[4096];
                CHECK(tc_simple_reply(tc, i + 1, back, sizeof back) == 0, "READ %u answered", i);
                CHECK(memcmp(back, td->data + i * 4096, sizeof back) == 0, "READ %u data", i);
                unsigned want = i + 3 < N_BP ? i + 3 : N_BP;
                CHECK(td->n_deferred == want, "a reply sent lets one more in: %u reached the backend, %u expected",
                      td->n_deferred, want);
        }
        CHECK(tc_pending(tc) == 0, "all answered");
        close_disk();
}

/* The byte limit: two 512 KiB READs fill 1 MiB in flight; the third waits. */
static void back_pressure_limits_bytes_in_flight(void) {
        td = td_new(4 << 20);
        td->defer = true;
        server = td_server(td);
        CHECK(nbdsdk_server_set_max_payload(server, 1 << 20) == 0, "max payload 1 MiB");
        CHECK(nbdsdk_server_set_max_in_flight(server, 100, 1 << 20) == 0, "1 MiB in flight");
        open_disk(TC_SIMPLE, false);
        for (unsigned i = 0; i < 3; i++)
                tc_request(tc, 0, NBDSDK_CMD_READ, i + 1, (uint64_t) i << 19, 1 << 19, NULL, 0);
        CHECK(td->n_deferred == 2, "the third READ waits for room: %u reached the backend", td->n_deferred);
        uint8_t *back = malloc(1 << 19);
        for (unsigned i = 0; i < 3; i++) {
                CHECK(nbdsdk_request_complete(td->deferred[i], 0) == 0, "complete READ %u", i);
                CHECK(tc_simple_reply(tc, i + 1, back, 1 << 19) == 0, "READ %u answered", i);
                CHECK(td->n_deferred == 3, "after a reply the third READ is read");
        }
        free(back);
        close_disk();
}

/* A client that does not read its replies: the server stops reading requests. */
static void back_pressure_when_replies_cannot_be_sent(void) {
        enum { N = 6, REPLY = 16 + 4096 };
        td = td_new(1 << 20);
        fill((uint8_t *) td->data, 1 << 20, 10);
        server = td_server(td);
        CHECK(nbdsdk_server_set_max_in_flight(server, 2, 32u << 20) == 0, "two requests in flight");
        open_disk(TC_SIMPLE, false);
        mem_peer_set_write_budget(tc->peer, 100);
        for (unsigned i = 0; i < N; i++)
                tc_request(tc, 0, NBDSDK_CMD_READ, i + 1, (uint64_t) i * 4096, 4096, NULL, 0);
        CHECK(td->n_log == 2, "two READs done, then the server stops reading: %u", td->n_log);
        CHECK(tc->conn->in_flight == 2, "two requests wait for their replies to go out");
        uint8_t *got = malloc(N * REPLY);
        size_t have = 0;
        for (int round = 0; round < 1000 && have < N * REPLY; round++) {
                have += mem_peer_recv(tc->peer, got + have, N * REPLY - have);
                tc_run(tc);
                CHECK(tc->conn->in_flight <= 2, "never more than two in flight");
                size_t sent = (have + mem_peer_pending(tc->peer)) / REPLY;
                CHECK(td->n_log <= sent + 2, "reading stays two requests ahead of the replies sent: %u done, %zu sent",
                      td->n_log, sent);
        }
        CHECK(have == N * REPLY, "every reply arrived (%zu bytes)", have);
        for (unsigned i = 0; i < N; i++) {
                const uint8_t *h = got + i * REPLY;
                CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY && wire_get32(h + 4) == 0 && wire_get64(h + 8) == i + 1,
                      "reply %u in order", i);
                CHECK(memcmp(h + 16, td->data + i * 4096, 4096) == 0, "reply %u data", i);
        }
        free(got);
        close_disk();
}

/* A client that does not read its replies, with the default limits (far
 * above what it sends): once 4 MiB of replies waits to go out, no further
 * request is read, and reading resumes as the replies leave. */
static void back_pressure_when_4_mib_of_replies_wait(void) {
        enum { N = 6, LEN = 1536 << 10, REPLY = 16 + LEN };
        td = td_new(N * LEN);
        fill((uint8_t *) td->data, N * LEN, 11);
        open_disk(TC_SIMPLE, false);
        mem_peer_set_write_budget(tc->peer, 100);
        for (unsigned i = 0; i < N; i++)
                tc_request(tc, 0, NBDSDK_CMD_READ, i + 1, (uint64_t) i * LEN, LEN, NULL, 0);
        CHECK(td->n_log == 3, "three 1.5 MiB READs queue over 4 MiB of replies, then reading stops: %u done",
              td->n_log);
        uint8_t *got = malloc((size_t) N * REPLY);
        size_t have = 0;
        for (int round = 0; round < 100000 && have < (size_t) N * REPLY; round++) {
                have += mem_peer_recv(tc->peer, got + have, (size_t) N * REPLY - have);
                tc_run(tc);
                CHECK(tc->conn->out.bytes < (4u << 20) + REPLY, "at most a reply beyond 4 MiB waits (%zu bytes)",
                      tc->conn->out.bytes);
        }
        CHECK(have == (size_t) N * REPLY, "every reply arrived (%zu bytes)", have);
        for (unsigned i = 0; i < N; i++) {
                const uint8_t *h = got + (size_t) i * REPLY;
                CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY && wire_get32(h + 4) == 0 && wire_get64(h + 8) == i + 1,
                      "reply %u in order", i);
                CHECK(memcmp(h + 16, td->data + (size_t) i * LEN, LEN) == 0, "reply %u data", i);
        }
        free(got);
        close_disk();
}

static void shutdown_refuses_new_requests_in(tc_mode m) {
        open_deferring_disk(m);
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 1, 0, 0, NULL, 0);
        CHECK(td->n_deferred == 1, "%s: a FLUSH in flight", mode);
        CHECK(nbdsdk_server_shutdown(server, false) == 0, "shutdown");
        CHECK(!tc_closed(tc), "%s: the request in flight keeps the connection", mode);
        uint8_t data[4096] = { 1 };
        tc_send_write(tc, 0, 2, 0, sizeof data, data, sizeof data);
        CHECK(tc_reply_status(tc, 2) == NBDSDK_ESHUTDOWN, "%s: a new WRITE gets ESHUTDOWN", mode);
        CHECK(tc_command(tc, 0, NBDSDK_CMD_READ, 3, 0, 4096) == NBDSDK_ESHUTDOWN, "%s: a new READ gets ESHUTDOWN",
              mode);
        CHECK(strcmp(td->log, "f") == 0, "%s: no callback for refused requests: \"%s\"", mode, td->log);
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "complete the FLUSH");
        CHECK(tc_reply_status(tc, 1) == 0, "%s: the request in flight finishes normally", mode);
        CHECK(tc_closed(tc), "%s: then the connection closes", mode);
        close_disk();
}

static void shutdown_closes_idle_connections(void) {
        open_disk(TC_SIMPLE, false);
        CHECK(nbdsdk_server_shutdown(server, false) == 0, "shutdown");
        CHECK(tc_closed(tc), "an idle connection closes at once");
        CHECK(nbdsdk_server_get_n_connections(server) == 0, "no connection left");
        close_disk();
}

ALL_MODES(replies_follow_completion_order)
ALL_MODES(replies_completed_together_leave_in_one_write)
ALL_MODES(completion_from_another_thread)
ALL_MODES(completion_errors_are_mapped)
ALL_MODES(shutdown_refuses_new_requests)

TCASE_MAIN(T(replies_follow_completion_order), T(replies_completed_together_leave_in_one_write),
           T(completion_from_another_thread), T(completing_twice_is_refused),
           T(completion_errors_are_mapped), T(worker_threads_serve_pipelined_requests),
           T(back_pressure_limits_requests_in_flight), T(back_pressure_limits_bytes_in_flight),
           T(back_pressure_when_replies_cannot_be_sent), T(back_pressure_when_4_mib_of_replies_wait),
           T(shutdown_refuses_new_requests), T(shutdown_closes_idle_connections))
