/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request batching: the decision (batch.c) against simulated clients whose
 * request rate depends on whether the server waits, and the wait itself on
 * a real sd-event loop: reading stops, and the hold timer resumes it. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include "batch-internal.h"
#include "conn-internal.h"
#include "sockclient.h"
#include "tcase.h"
#include "tclient.h"
#include "testdisk.h"

/* A simulated client: each run of the connection reads N requests and the
 * next run comes GAP microseconds later; both depend on whether the previous
 * run asked to wait. A run costs the server CPU_RUN microseconds of CPU (the
 * wake-up and system calls) plus CPU_REQUEST per request. */
typedef struct {
        uint32_t n_plain, n_waiting;
        uint64_t gap_plain, gap_waiting;
        uint64_t cpu_run, cpu_request;
} sim_client;

static uint64_t sim_cpu;
static uint64_t sim_cpu_clock(void) { return sim_cpu; }

typedef struct {
        unsigned runs, waits;
        unsigned switches_on; /* runs that waited right after one that did not */
} sim_result;

/* Simulate SECONDS of runs; count only those after the first SKIP seconds. */
static sim_result simulate(const sim_client *c, unsigned seconds, unsigned skip) {
        batch_state b;
        uint64_t now = 1000000;
        batch_init(&b, now);
        sim_result res = { 0 };
        bool waiting = false;
        uint64_t end = now + seconds * 1000000ull, counted_from = now + skip * 1000000ull;
        while (now < end) {
                bool was = waiting;
                uint32_t n = waiting ? c->n_waiting : c->n_plain;
                sim_cpu += c->cpu_run + n * c->cpu_request;
                waiting = batch_after_run(&b, now, n, sim_cpu_clock);
                if (now >= counted_from) {
                        res.runs++;
                        res.waits += waiting;
                        res.switches_on += waiting && !was;
                }
                now += waiting ? c->gap_waiting : c->gap_plain;
        }
        return res;
}

static void waiting_is_kept_while_it_serves_more(void) {
        /* 2 requests every 40 us (50 k/s), or 8 every 100 us (80 k/s). */
        sim_client c = { .n_plain = 2, .n_waiting = 8, .gap_plain = 40, .gap_waiting = 100 };
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        CHECK(r.switches_on >= 5, "and keeps measuring: %u trials in 19 s", r.switches_on);
}

static void waiting_is_dropped_when_it_serves_less(void) {
        /* A client that sent all it can: waiting only delays it (50 k/s to 20 k/s). */
        sim_client c = { .n_plain = 2, .n_waiting = 2, .gap_plain = 40, .gap_waiting = 100 };
        sim_result r = simulate(&c, 60, 30);
        CHECK(r.waits * 100 < r.runs, "the connection rarely waits (%u of %u runs)", r.waits, r.runs);
        /* Each trial has two epochs of waiting: at most 4 trials in 30 s. */
        CHECK(r.switches_on <= 8, "trials back off to one in 8 s (%u waiting epochs in 30 s)", r.switches_on);
        CHECK(r.switches_on >= 4, "but do not stop (%u waiting epochs in 30 s)", r.switches_on);
}

static void a_tie_goes_to_not_waiting(void) {
        /* 50 k/s, or 53 k/s waiting, at the same CPU per request: within the
         * noise of one epoch, and waiting adds latency. */
        sim_client c = { .n_plain = 2, .n_waiting = 4, .gap_plain = 40, .gap_waiting = 75, .cpu_request = 5 };
        sim_result r = simulate(&c, 30, 10);
        CHECK(r.waits * 100 < r.runs * 2, "no waiting without a clear gain (%u of %u runs)", r.waits, r.runs);
        /* Nor for a tenth less CPU per request (4.5 us to 4.25 us). */
        c.cpu_run = 1, c.cpu_request = 4;
        r = simulate(&c, 30, 10);
        CHECK(r.waits * 100 < r.runs * 2, "nor for a small CPU saving (%u of %u runs)", r.waits, r.runs);
}

static void waiting_is_kept_when_it_costs_clearly_less_cpu(void) {
        /* A client that sets the pace itself: 50 k/s either way (50.6 k/s
         * waiting), but a run costs 10 us of CPU: 7 us per request two at a
         * time, 4.5 us four at a time. */
        sim_client c = { .n_plain = 2, .n_waiting = 4, .gap_plain = 40, .gap_waiting = 79,
                         .cpu_run = 10, .cpu_request = 2 };
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        /* But not if the client is any slower for it (47.6 k/s). */
        c.gap_waiting = 84;
        r = simulate(&c, 30, 10);
        CHECK(r.waits * 100 < r.runs * 2, "a CPU saving does not excuse a slower client (%u of %u runs)",
              r.waits, r.runs);
}

static void one_request_at_a_time_is_never_held(void) {
        /* Queue depth 1: a trial is not even started. */
        sim_client c = { .n_plain = 1, .n_waiting = 1, .gap_plain = 40, .gap_waiting = 40 };
        sim_result r = simulate(&c, 20, 0);
        CHECK(r.waits == 0, "never waits (%u runs waited)", r.waits);
        /* Nor a connection too idle to matter, even with requests in pairs. */
        sim_client idle = { .n_plain = 2, .n_waiting = 16, .gap_plain = 2000, .gap_waiting = 2000 };
        r = simulate(&idle, 20, 0);
        CHECK(r.waits == 0, "an idle connection never waits (%u runs waited)", r.waits);
}

static void runs_without_requests_never_wait(void) {
        batch_state b;
        batch_init(&b, 0);
        b = (batch_state) { .trial = BATCH_SETTLED, .on = true, .settle_left = 100, .settle_len = 100 };
        CHECK(!batch_after_run(&b, 10, 0, sim_cpu_clock), "a run that read nothing (a reply went out) does not wait");
        CHECK(batch_after_run(&b, 20, 1, sim_cpu_clock), "a run that read a request does");
}

/* A real loop: a connection that batches stops reading after its run, and its
 * hold timer, not a new event, makes it read again. */
static nbdsdk_conn *opened_conn;
static void remember(nbdsdk_conn *conn, void *ud) {
        (void) ud;
        opened_conn = conn;
}

static void read_reply(int fd, uint64_t want_cookie, sd_event *e) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        for (int i = 0; i < 500 && poll(&p, 1, 0) == 0; i++)
                CHECK(sd_event_run(e, 10 * 1000) >= 0, "sd_event_run");
        CHECK(poll(&p, 1, 0) == 1, "reply %llu arrives within 5 s", (unsigned long long) want_cookie);
        uint64_t cookie;
        CHECK(sc_reply(fd, &cookie) == 0 && cookie == want_cookie, "reply %llu arrives",
              (unsigned long long) want_cookie);
        uint8_t data[512];
        sc_read(fd, data, sizeof data);
        CHECK(data[0] == 0x33 && data[511] == 0x33, "with the disk's bytes");
}

static void run_hold_test(uint32_t wait_usec) {
        testdisk *td = td_new(1 << 20);
        memset(td->data, 0x33, 1 << 20);
        nbdsdk_server *s = td_server(td);
        CHECK(nbdsdk_server_set_batch_wait(s, 1001) == -EINVAL, "more than 1 ms is refused");
        CHECK(nbdsdk_server_set_batch_wait(s, wait_usec) == 0, "batch wait %u", wait_usec);
        CHECK(nbdsdk_server_set_connection_callbacks(s, remember, NULL, NULL) == 0, "callbacks");
        sd_event *e;
        CHECK(sd_event_new(&e) == 0 && nbdsdk_server_attach_event(s, e, 0) == 0, "attach");
        CHECK(nbdsdk_server_set_batch_wait(s, 20) == -EBUSY, "frozen once running");
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        int client = sv[1];
        CHECK(nbdsdk_server_serve_fd(s, sv[0], NBDSDK_SERVE_NO_HANDSHAKE, NULL) == 0, "serve");
        CHECK(opened_conn, "the connection was opened");
        /* As if a trial had shown that waiting serves this client better. */
        opened_conn->batch = (batch_state) { .trial = BATCH_SETTLED, .on = true, .settle_left = 1000,
                                             .settle_len = 1000 };
        sc_request(client, NBDSDK_CMD_READ, 1, 0, 512);
        read_reply(client, 1, e);
        uint32_t events = nbdsdk_conn_get_events(opened_conn);
        uint64_t timeout = UINT64_MAX;
        CHECK(nbdsdk_conn_get_timeout(opened_conn, &timeout) == 0, "timeout");
        if (wait_usec) {
                CHECK(!(events & 1), "after answering, the connection does not read (events %#x)", events);
                CHECK(timeout != UINT64_MAX, "its timeout is when it reads again");
        } else {
                CHECK(events & 1, "batching off: the connection reads at once (events %#x)", events);
                CHECK(timeout == UINT64_MAX, "and has no timeout");
        }
        /* The second request is read when the wait ends, by the timer. */
        sc_request(client, NBDSDK_CMD_READ, 2, 4096, 512);
        read_reply(client, 2, e);
        sc_request(client, NBDSDK_CMD_DISC, 3, 0, 0);
        for (int i = 0; i < 100 && nbdsdk_server_get_n_connections(s) > 0; i++)
                CHECK(sd_event_run(e, 10 * 1000) >= 0, "sd_event_run");
        CHECK(nbdsdk_server_get_n_connections(s) == 0, "closed after DISC");
        close(client);
        nbdsdk_server_detach_event(s);
        nbdsdk_server_unref(s);
        sd_event_unref(e);
        td_free(td);
        opened_conn = NULL;
}

static void a_held_connection_reads_again_when_its_timer_fires(void) { run_hold_test(1000); }
static void batching_off_never_holds(void) { run_hold_test(0); }

TCASE_MAIN(T(waiting_is_kept_while_it_serves_more), T(waiting_is_dropped_when_it_serves_less),
           T(a_tie_goes_to_not_waiting), T(waiting_is_kept_when_it_costs_clearly_less_cpu),
           T(one_request_at_a_time_is_never_held),
           T(runs_without_requests_never_wait), T(a_held_connection_reads_again_when_its_timer_fires),
           T(batching_off_never_holds))
