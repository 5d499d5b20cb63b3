/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Batching and polling: the decision (batch.c) against simulated clients
 * whose request rate depends on whether the server holds or polls, and both
 * on a real sd-event loop: a hold stops reading until its timer resumes it;
 * a poll reads a request that arrives after the reply, in the same run. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include "batch-internal.h"
#include "conn-internal.h"
#include "log-internal.h"
#include "sockclient.h"
#include "tcase.h"
#include "tclient.h"
#include "testdisk.h"

/* A simulated client: each run of the connection reads N requests and the
 * next run comes GAP microseconds later; both depend on what the previous
 * run asked for (indexed by batch_mode; a mode left out behaves as
 * BATCH_READ; a hold with the short wait behaves as N_SHORT and GAP_SHORT,
 * or if those are left out as a hold). A run costs the server CPU_RUN
 * microseconds of CPU (the wake-up and system calls) plus CPU_REQUEST per
 * request. */
typedef struct {
        uint32_t n[3], n_short;
        uint64_t gap[3], gap_short;
        uint64_t cpu_run, cpu_request;
} sim_client;

static uint64_t sim_cpu;
static uint64_t sim_cpu_clock(void) { return sim_cpu; }

typedef struct {
        unsigned runs, waits, short_waits, polls;
        unsigned switches_on; /* runs that held or polled right after one that did not */
        unsigned verdicts;    /* trials ended, all of them */
        batch_verdict last;
} sim_result;

/* What the client does after a run that asked for MODE (and SHORT_WAIT):
 * how many requests the next run reads and how many usec later it comes. */
static void sim_next(const sim_client *c, batch_mode mode, bool short_wait, uint32_t *n, uint64_t *gap) {
        if (mode == BATCH_HOLD && short_wait && c->gap_short)
                *n = c->n_short, *gap = c->gap_short;
        else if (c->gap[mode])
                *n = c->n[mode], *gap = c->gap[mode];
        else
                *n = c->n[BATCH_READ], *gap = c->gap[BATCH_READ];
}

/* Simulate SECONDS of runs; count only those after the first SKIP seconds. */
static sim_result simulate_with(const sim_client *c, unsigned seconds, unsigned skip, bool may_hold, bool may_poll) {
        batch_state b;
        uint64_t now = 1000000;
        batch_init(&b, now, may_hold, may_poll);
        sim_result res = { 0 };
        batch_mode mode = BATCH_READ;
        uint32_t n;
        uint64_t gap;
        sim_next(c, mode, false, &n, &gap);
        uint64_t end = now + seconds * 1000000ull, counted_from = now + skip * 1000000ull;
        while (now < end) {
                batch_mode was = mode;
                sim_cpu += c->cpu_run + n * c->cpu_request;
                mode = batch_after_run(&b, now, n, sim_cpu_clock);
                bool short_wait = mode == BATCH_HOLD && b.short_wait;
                sim_next(c, mode, short_wait, &n, &gap);
                if (now >= counted_from) {
                        res.runs++;
                        res.waits += mode == BATCH_HOLD;
                        res.short_waits += short_wait;
                        res.polls += mode == BATCH_POLL;
                        res.switches_on += mode != BATCH_READ && was == BATCH_READ;
                }
                now += gap;
        }
        res.verdicts = b.n_verdicts;
        res.last = b.last;
        return res;
}

static sim_result simulate(const sim_client *c, unsigned seconds, unsigned skip) {
        return simulate_with(c, seconds, skip, true, true);
}

static void waiting_is_kept_while_it_serves_more(void) {
        /* 2 requests every 40 us (50 k/s), or 8 every 100 us (80 k/s). */
        sim_client c = { .n = { [BATCH_READ] = 2, [BATCH_HOLD] = 8 }, .gap = { [BATCH_READ] = 40, [BATCH_HOLD] = 100 } };
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        CHECK(r.switches_on >= 5, "and keeps measuring: %u trials in 19 s", r.switches_on);
        CHECK(r.polls == 0, "a pipelining client is never polled for (%u runs)", r.polls);
        r = simulate_with(&c, 20, 1, false, true);
        CHECK(r.waits == 0 && r.polls == 0, "with holding off it neither waits nor polls (%u, %u runs)", r.waits,
              r.polls);
}

static void waiting_is_dropped_when_it_serves_less(void) {
        /* A client that sent all it can: waiting only delays it (50 k/s to 20 k/s). */
        sim_client c = { .n = { 2, 2 }, .gap = { [BATCH_READ] = 40, [BATCH_HOLD] = 100 } };
        sim_result r = simulate(&c, 60, 30);
        CHECK(r.waits * 100 < r.runs, "the connection rarely waits (%u of %u runs)", r.waits, r.runs);
        /* Each trial of the full wait is followed by one of the short wait,
         * two epochs of waiting each: at most 4 pairs of trials in 30 s. */
        CHECK(r.switches_on <= 16, "trials back off to one pair in 8 s (%u waiting epochs in 30 s)",
              r.switches_on);
        CHECK(r.switches_on >= 8, "but do not stop (%u waiting epochs in 30 s)", r.switches_on);
}

static void a_tie_goes_to_not_waiting(void) {
        /* 50 k/s, or 53 k/s waiting, at the same CPU per request: within the
         * noise of one epoch, and waiting adds latency. */
        sim_client c = { .n = { [BATCH_READ] = 2, [BATCH_HOLD] = 4 }, .gap = { [BATCH_READ] = 40, [BATCH_HOLD] = 75 },
                         .cpu_request = 5 };
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
        sim_client c = { .n = { [BATCH_READ] = 2, [BATCH_HOLD] = 4 }, .gap = { [BATCH_READ] = 40, [BATCH_HOLD] = 79 },
                         .cpu_run = 10, .cpu_request = 2 };
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        /* Also if the client seems 6 % slower for it (47.1 k/s): a trial's
         * noise on a virtual machine. */
        c.gap[BATCH_HOLD] = 85;
        r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "a loss within the noise does not count (%u of %u runs wait)", r.waits,
              r.runs);
        /* But not if it is clearly slower (43.5 k/s, 13 % less). */
        c.gap[BATCH_HOLD] = 92;
        r = simulate(&c, 30, 10);
        CHECK(r.waits * 100 < r.runs * 2, "a CPU saving does not excuse a slower client (%u of %u runs)",
              r.waits, r.runs);
}

/* A pipelining client: 2 requests every 40 us read at once (50 k/s), 8 every
 * GAP_HOLD us holding for the full wait, N_SHORT every GAP_SHORT us for the
 * short one. */
static sim_client pipelining(uint64_t gap_hold, uint32_t n_short, uint64_t gap_short) {
        return (sim_client) { .n = { [BATCH_READ] = 2, [BATCH_HOLD] = 8 },
                              .gap = { [BATCH_READ] = 40, [BATCH_HOLD] = gap_hold },
                              .n_short = n_short, .gap_short = gap_short };
}

static void a_short_wait_is_kept_while_it_serves_clearly_more(void) {
        /* 80 k/s holding for the full wait, 94 k/s for the short one: a
         * backend slow enough that the client idles through a long wait. */
        sim_client c = pipelining(100, 8, 85);
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        CHECK(r.short_waits * 100 > r.waits * 70, "mostly the short wait (%u of %u holds)", r.short_waits, r.waits);
        CHECK(batch_hold_usec(&(batch_state) { .short_wait = true }, 60) == 60 / BATCH_SHORT_WAIT_DIV &&
              batch_hold_usec(&(batch_state) { .short_wait = false }, 60) == 60 &&
              batch_hold_usec(&(batch_state) { .short_wait = true }, 2) == 1,
              "which is a quarter of the wait, at least 1 us");
}

static void a_short_wait_is_tried_when_the_full_one_loses(void) {
        /* 47 k/s holding for the full wait, 57 k/s for the short one. */
        sim_client c = pipelining(170, 8, 140);
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 60, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        CHECK(r.short_waits * 100 > r.waits * 85, "with the short wait (%u of %u holds)", r.short_waits, r.waits);
        /* Where the short wait is no faster either, neither is kept. */
        c.gap_short = 170;
        r = simulate(&c, 30, 10);
        CHECK(r.waits * 100 < r.runs * 2, "no waiting without a gain (%u of %u runs)", r.waits, r.runs);
}

static void the_full_wait_is_kept_when_a_short_one_serves_no_more(void) {
        /* 80 k/s holding either way, but for the short wait 4 every 50 us:
         * smaller batches, for more CPU per request. */
        sim_client c = pipelining(100, 4, 50);
        c.cpu_run = 10, c.cpu_request = 2;
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.waits * 100 > r.runs * 80, "the connection waits after most runs (%u of %u)", r.waits, r.runs);
        /* Only the wait trials (2 epochs of 50 ms in every 2.4 s) hold briefly. */
        CHECK(r.short_waits * 100 < r.waits * 10, "rarely with the short wait (%u of %u holds)", r.short_waits,
              r.waits);
        CHECK(r.short_waits > 0, "but it keeps measuring the short wait (%u holds)", r.short_waits);
        /* Nor for 14 % more requests per second (2 every 22 us) at twice the
         * CPU per request (7 us against 3.25). Its runs come 4.5 times as
         * often, so the trials' short epochs alone are a sixth of the runs. */
        c.n_short = 2, c.gap_short = 22;
        r = simulate(&c, 20, 1);
        CHECK(r.short_waits * 100 < r.waits * 30, "nor at twice the CPU per request (%u of %u holds)",
              r.short_waits, r.waits);
}

/* The figures a trial's log line gives: requests per second on either side. */
static void verdict_rates(const batch_verdict *v, double *a, double *b) {
        char text[256];
        batch_verdict_describe(v, 60, 50, text, sizeof text);
        const char *figures = strchr(text, ':');
        CHECK(figures && sscanf(figures, ": %lf k against %lf k requests/s", a, b) == 2, "rates in '%s'", text);
}

static void each_trial_leaves_its_figures_for_the_log(void) {
        /* 80 k/s holding for the full wait, 94 k/s for the short one: the
         * trial of holding, then the one of the waits. */
        sim_client c = pipelining(100, 8, 85);
        sim_result r = simulate(&c, 1, 0);
        CHECK(r.verdicts == 2, "two trials in the first second (%u)", r.verdicts);
        CHECK(r.last.kind == BATCH_TRIAL_WAITS && r.last.tried == BATCH_HOLD && r.last.won,
              "the last compared the waits, and the short one won");
        double full, short_wait;
        verdict_rates(&r.last, &full, &short_wait);
        CHECK(full > 79 && full < 81 && short_wait > 93 && short_wait < 95,
              "at the client's rates: %.1f k (80) and %.1f k (94.1) requests/s", full, short_wait);
        char text[256];
        batch_verdict_describe(&r.last, 60, 50, text, sizeof text);
        CHECK(strncmp(text, "holding 60 us against holding 15 us: ", 37) == 0 &&
              strstr(text, "; better: holding 15 us") != NULL, "described: '%s'", text);

        /* Each kind of trial, named with the server's settings. */
        batch_verdict v = { .kind = BATCH_TRIAL_ALTERNATIVE, .tried = BATCH_POLL, .won = true,
                            .requests = { 1000, 1500 }, .usec = { 50000, 50000 }, .cpu = { 20000, 45000 } };
        batch_verdict_describe(&v, 60, 50, text, sizeof text);
        CHECK(strcmp(text, "reading at once against polling 50 us: 20.0 k against 30.0 k requests/s, "
                           "20.00 against 30.00 us of CPU per request; better: polling 50 us") == 0,
              "a poll trial: '%s'", text);
        v.tried = BATCH_HOLD, v.won = false;
        batch_verdict_describe(&v, 100, 50, text, sizeof text);
        CHECK(strncmp(text, "reading at once against holding 100 us: ", 40) == 0 &&
              strstr(text, "; better: reading at once") != NULL, "a hold trial: '%s'", text);
        v.kind = BATCH_TRIAL_SHORT_HOLD;
        batch_verdict_describe(&v, 100, 50, text, sizeof text);
        CHECK(strncmp(text, "reading at once against holding 25 us: ", 39) == 0, "a short hold trial: '%s'", text);
        v = (batch_verdict) { .kind = BATCH_TRIAL_ALTERNATIVE, .tried = BATCH_HOLD };
        batch_verdict_describe(&v, 60, 50, text, sizeof text);
        CHECK(strstr(text, "0.0 k against 0.0 k requests/s, 0.00 against 0.00 us") != NULL,
              "an empty trial divides by nothing: '%s'", text);
}

static void one_request_at_a_time_is_never_held(void) {
        /* Queue depth 1, no gain from polling: neither is kept. */
        sim_client c = { .n = { 1, 1, 1 }, .gap = { 40, 40, 40 } };
        sim_result r = simulate(&c, 20, 0);
        CHECK(r.waits == 0, "never waits (%u runs waited)", r.waits);
        CHECK(r.polls * 100 < r.runs * 2, "and rarely polls (%u of %u runs)", r.polls, r.runs);
        /* Nor a connection too idle to matter, even with requests in pairs. */
        sim_client idle = { .n = { 2, 16, 2 }, .gap = { 2000, 2000, 2000 } };
        r = simulate(&idle, 20, 0);
        CHECK(r.waits == 0 && r.polls == 0, "an idle connection never waits or polls (%u, %u runs)", r.waits, r.polls);
}

static void polling_is_kept_while_it_serves_clearly_more(void) {
        /* Queue depth 1: a request every 40 us (25 k/s), or every 25 us
         * (40 k/s) when the server stays awake, at more CPU per request. */
        sim_client c = { .n = { 1, 1, 1 }, .gap = { [BATCH_READ] = 40, [BATCH_POLL] = 25 }, .cpu_request = 10 };
        sim_result r = simulate(&c, 20, 1);
        CHECK(r.polls * 100 > r.runs * 80, "the connection polls after most runs (%u of %u)", r.polls, r.runs);
        CHECK(r.waits == 0, "and never holds (%u runs)", r.waits);
        CHECK(r.switches_on >= 5, "and keeps measuring: %u trials in 19 s", r.switches_on);
        r = simulate_with(&c, 20, 1, true, false);
        CHECK(r.polls == 0 && r.waits == 0, "with polling off it never polls (%u runs) nor holds (%u)", r.polls,
              r.waits);
}

static void polling_is_dropped_without_a_clear_gain(void) {
        /* 25 k/s, or 27.8 k/s polling: 11 % is not worth a core. */
        sim_client c = { .n = { 1, 1, 1 }, .gap = { [BATCH_READ] = 40, [BATCH_POLL] = 36 } };
        sim_result r = simulate(&c, 60, 30);
        CHECK(r.polls * 100 < r.runs * 2, "the connection rarely polls (%u of %u runs)", r.polls, r.runs);
        CHECK(r.switches_on <= 8 && r.switches_on >= 4, "trials back off but go on (%u polling epochs in 30 s)",
              r.switches_on);
}

static void runs_without_requests_never_wait(void) {
        batch_state b;
        batch_init(&b, 0, true, true);
        for (batch_mode m = BATCH_HOLD; m <= BATCH_POLL; m++) {
                b = (batch_state) { .trial = BATCH_SETTLED, .mode = m, .settle_left = 100, .settle_len = 100 };
                CHECK(batch_after_run(&b, 10, 0, sim_cpu_clock) == BATCH_READ,
                      "a run that read nothing (a reply went out) neither waits nor polls");
                CHECK(batch_after_run(&b, 20, 1, sim_cpu_clock) == m, "a run that read a request does");
        }
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

/* A server on a real sd-event loop, its connections served from socketpairs. */
typedef struct {
        testdisk *td;
        nbdsdk_server *s;
        sd_event *e;
} loop;

/* Settings go between loop_new and loop_attach. */
static loop loop_new(void) {
        loop l = { .td = td_new(1 << 20) };
        memset(l.td->data, 0x33, 1 << 20);
        l.s = td_server(l.td);
        CHECK(nbdsdk_server_set_connection_callbacks(l.s, remember, NULL, NULL) == 0, "callbacks");
        return l;
}

static void loop_attach(loop *l) {
        CHECK(sd_event_new(&l->e) == 0 && nbdsdk_server_attach_event(l->s, l->e, 0) == 0, "attach");
}

/* A connection in transmission (it is opened_conn); returns the client's end. */
static int loop_connect(loop *l) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        CHECK(nbdsdk_server_serve_fd(l->s, sv[0], NBDSDK_SERVE_NO_HANDSHAKE, NULL) == 0, "serve");
        CHECK(opened_conn, "the connection was opened");
        return sv[1];
}

/* Disconnects the N_CLIENTS clients and frees everything. */
static void loop_end(loop *l, const int *clients, int n_clients) {
        for (int i = 0; i < n_clients; i++)
                sc_request(clients[i], NBDSDK_CMD_DISC, 0, 0, 0);
        for (int i = 0; i < 100 && nbdsdk_server_get_n_connections(l->s) > 0; i++)
                CHECK(sd_event_run(l->e, 10 * 1000) >= 0, "sd_event_run");
        CHECK(nbdsdk_server_get_n_connections(l->s) == 0, "closed after DISC");
        for (int i = 0; i < n_clients; i++)
                close(clients[i]);
        nbdsdk_server_detach_event(l->s);
        nbdsdk_server_unref(l->s);
        sd_event_unref(l->e);
        td_free(l->td);
        opened_conn = NULL;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

/* A connection held for WAIT_USEC, set with nbdsdk_server_set_batch_wait
 * if SET (otherwise the default). */
static void run_hold_test(bool set, uint32_t wait_usec, bool short_wait) {
        loop l = loop_new();
        if (set) {
                CHECK(nbdsdk_server_set_batch_wait(l.s, 1001) == -EINVAL, "more than 1 ms is refused");
                CHECK(nbdsdk_server_set_batch_wait(l.s, wait_usec) == 0, "batch wait %u", wait_usec);
        }
        loop_attach(&l);
        CHECK(nbdsdk_server_set_batch_wait(l.s, 20) == -EBUSY, "frozen once running");
        int client = loop_connect(&l);
        /* As if a trial had shown that waiting serves this client better. */
        opened_conn->batch = (batch_state) { .trial = BATCH_SETTLED, .mode = BATCH_HOLD, .settle_left = 1000,
                                             .settle_len = 1000, .short_wait = short_wait };
        uint32_t hold_usec = short_wait ? wait_usec / BATCH_SHORT_WAIT_DIV : wait_usec;
        uint64_t before = monotonic_usec();
        sc_request(client, NBDSDK_CMD_READ, 1, 0, 512);
        read_reply(client, 1, l.e);
        uint32_t events = nbdsdk_conn_get_events(opened_conn);
        uint64_t timeout = UINT64_MAX;
        CHECK(nbdsdk_conn_get_timeout(opened_conn, &timeout) == 0, "timeout");
        uint64_t after = monotonic_usec();
        if (wait_usec) {
                CHECK(!(events & 1), "after answering, the connection does not read (events %#x)", events);
                CHECK(timeout != UINT64_MAX, "its timeout is when it reads again");
                CHECK(timeout >= before + hold_usec && timeout <= after + hold_usec,
                      "it reads again %u µs after its run (%lld µs after the request)", hold_usec,
                      (long long) (timeout - before));
        } else {
                CHECK(events & 1, "batching off: the connection reads at once (events %#x)", events);
                CHECK(timeout == UINT64_MAX, "and has no timeout");
        }
        /* The second request is read when the wait ends, by the timer. */
        sc_request(client, NBDSDK_CMD_READ, 2, 4096, 512);
        read_reply(client, 2, l.e);
        loop_end(&l, &client, 1);
}

/* Request COOKIE, sent by a helper thread as soon as the reply before it has
 * arrived (it peeks at the reply header, leaving it to the test). */
typedef struct {
        int fd;
        uint64_t cookie;
} next_request;

static void *send_after_reply(void *arg) {
        next_request *next = arg;
        uint8_t header[16];
        if (recv(next->fd, header, sizeof header, MSG_PEEK | MSG_WAITALL) == (ssize_t) sizeof header)
                sc_request(next->fd, NBDSDK_CMD_READ, next->cookie, 8192, 512);
        return NULL;
}

/* ATTEMPTS times: a request, and a next one sent when its reply is in, with
 * one dispatch of the loop. Returns how many times that one dispatch also
 * answered the next request: it can only have by polling. EXTRA_CONN opens a
 * second, idle connection first. */
static unsigned answered_by_polling(uint32_t poll_usec, bool extra_conn, unsigned attempts) {
        loop l = loop_new();
        CHECK(nbdsdk_server_set_poll(l.s, 1001) == -EINVAL, "more than 1 ms is refused");
        CHECK(nbdsdk_server_set_poll(l.s, poll_usec) == 0, "poll %u", poll_usec);
        loop_attach(&l);
        CHECK(nbdsdk_server_set_poll(l.s, 20) == -EBUSY, "frozen once running");
        int clients[2], n_clients = 0;
        if (extra_conn)
                clients[n_clients++] = loop_connect(&l);
        int client = clients[n_clients++] = loop_connect(&l);
        /* As if a trial had shown that polling serves this client better. */
        opened_conn->batch = (batch_state) { .trial = BATCH_SETTLED, .mode = BATCH_POLL, .settle_left = 100000,
                                             .settle_len = 100000 };
        unsigned polled = 0;
        for (unsigned i = 0; i < attempts; i++) {
                uint64_t first = 2 * i + 1;
                next_request next = { client, first + 1 };
                pthread_t t;
                CHECK(pthread_create(&t, NULL, send_after_reply, &next) == 0, "thread");
                sc_request(client, NBDSDK_CMD_READ, first, 0, 512);
                CHECK(sd_event_run(l.e, 5 * 1000 * 1000) > 0, "one dispatch");
                CHECK(pthread_join(t, NULL) == 0, "join");
                struct pollfd p = { .fd = client, .events = POLLIN };
                CHECK(poll(&p, 1, 0) == 1, "that dispatch answered request %llu", (unsigned long long) first);
                read_reply(client, first, l.e);
                polled += poll(&p, 1, 0) == 1;
                read_reply(client, first + 1, l.e);
        }
        loop_end(&l, clients, n_clients);
        return polled;
}

static void a_polling_connection_reads_the_next_request_in_the_same_run(void) {
        /* The helper thread has 1 ms to see the reply and send; on a loaded
         * machine it may miss some attempts, not all 20. */
        unsigned n = answered_by_polling(1000, false, 20);
        CHECK(n >= 1, "a dispatch answered the request that came after its reply (%u of 20 times)", n);
}

static void polling_off_or_another_connection_never_polls(void) {
        unsigned n = answered_by_polling(0, false, 5);
        CHECK(n == 0, "polling off: the next request waits for the next dispatch (%u of 5 did not)", n);
        n = answered_by_polling(1000, true, 5);
        CHECK(n == 0, "with another connection open, no polling (%u of 5 polled)", n);
}

/* Whether the file F holds TEXT. */
static bool file_holds(FILE *f, const char *text) {
        CHECK(fseek(f, 0, SEEK_END) == 0, "seek");
        long size = ftell(f);
        char *buf = malloc(size + 1);
        rewind(f);
        CHECK(buf && size >= 0, "%ld bytes", size);
        buf[fread(buf, 1, size, f)] = 0;
        bool found = strstr(buf, text) != NULL;
        free(buf);
        return found;
}

/* A 512-byte write of COOKIE to the start of the disk. */
static void send_write(int fd, uint64_t cookie) {
        static const uint8_t data[512];
        sc_request(fd, NBDSDK_CMD_WRITE, cookie, 0, sizeof data);
        sc_write(fd, data, sizeof data);
}

/* At -v, a real connection's trials are logged, and its requests' steps are
 * not: a client with 8 writes in flight, answered on a real loop, until the
 * first trial (300 ms after the connection opened) is in the log. */
static void a_real_connection_logs_its_trials(void) {
        FILE *log = tmpfile();
        int saved = dup(STDERR_FILENO);
        CHECK(log && saved >= 0 && dup2(fileno(log), STDERR_FILENO) >= 0, "stderr into a file");
        log_set_verbose(true);
        loop l = loop_new();
        loop_attach(&l);
        int client = loop_connect(&l);
        uint64_t cookie = 0, start = monotonic_usec(), checked = start;
        for (int i = 0; i < 8; i++)
                send_write(client, ++cookie);
        const char *line = "batching trial: reading at once against holding 60 us: ";
        bool logged = false;
        while (!logged && monotonic_usec() < start + 5 * 1000 * 1000) {
                CHECK(sd_event_run(l.e, 1000) >= 0, "sd_event_run");
                struct pollfd p = { .fd = client, .events = POLLIN };
                while (poll(&p, 1, 0) == 1) {
                        uint64_t answered;
                        CHECK(sc_reply(client, &answered) == 0, "reply %llu", (unsigned long long) answered);
                        send_write(client, ++cookie);
                }
                if (monotonic_usec() > checked + 20000)
                        logged = file_holds(log, line), checked = monotonic_usec();
        }
        log_set_verbose(false);
        CHECK(dup2(saved, STDERR_FILENO) >= 0 && close(saved) == 0, "stderr back");
        CHECK(logged, "'%s…' logged within 5 s, after %llu requests", line, (unsigned long long) cookie);
        CHECK(file_holds(log, " k requests/s, ") && file_holds(log, " us of CPU per request; better: "),
              "with its figures and the better side");
        CHECK(!file_holds(log, "REQ_PAYLOAD"), "and no line per request");
        fclose(log);
        loop_end(&l, &client, 1);
}

static void a_held_connection_reads_again_when_its_timer_fires(void) { run_hold_test(true, 1000, false); }
static void the_default_wait_is_60_us(void) { run_hold_test(false, 60, false); }
static void the_short_wait_is_a_quarter(void) { run_hold_test(true, 1000, true); }

static void batching_off_never_holds(void) { run_hold_test(true, 0, false); }

TCASE_MAIN(T(waiting_is_kept_while_it_serves_more), T(waiting_is_dropped_when_it_serves_less),
           T(a_tie_goes_to_not_waiting), T(waiting_is_kept_when_it_costs_clearly_less_cpu),
           T(a_short_wait_is_kept_while_it_serves_clearly_more), T(the_full_wait_is_kept_when_a_short_one_serves_no_more),
           T(a_short_wait_is_tried_when_the_full_one_loses), T(each_trial_leaves_its_figures_for_the_log),
           T(one_request_at_a_time_is_never_held), T(polling_is_kept_while_it_serves_clearly_more),
           T(polling_is_dropped_without_a_clear_gain),
           T(runs_without_requests_never_wait), T(a_held_connection_reads_again_when_its_timer_fires),
           T(the_default_wait_is_60_us), T(the_short_wait_is_a_quarter),
           T(batching_off_never_holds), T(a_polling_connection_reads_the_next_request_in_the_same_run),
           T(polling_off_or_another_connection_never_polls), T(a_real_connection_logs_its_trials))
