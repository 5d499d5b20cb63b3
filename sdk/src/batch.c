/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a connection does once it has answered all it read: batching and
 * polling.
 *
 * A client that keeps many requests in flight sends them one or two at a
 * time as replies come back, and a server that reads as soon as anything
 * arrives pays a wake-up and two system calls for each. Holding (waiting a
 * few microseconds) after a run lets the next wake-up find a batch, and the
 * replies then leave in a batch too. That helps a client that is busy with
 * the previous replies meanwhile, and only delays one that has sent all it
 * can and waits.
 *
 * A client with one request at a time waits for each reply, and each of its
 * requests then finds the server asleep: a wake-up on each side per request,
 * which on a virtual machine costs more than the request itself. Polling
 * (reading again and again for a few tens of microseconds) keeps the server
 * awake for the next request; it costs CPU, so it must buy a clear gain.
 *
 * So the connection measures: epochs reading at once and epochs holding
 * (a pipelining client) or polling (any other), alternating, and it keeps
 * whichever served its client better, until the next trial. The length of
 * a hold is measured the same way: where holding wins, a second trial holds
 * alternately for the full and the short wait; where it loses, a second
 * trial tries the short wait against reading at once. */
#include <stdio.h>
#include "batch-internal.h"

void batch_init(batch_state *b, uint64_t now, bool may_hold, bool may_poll) {
        /* The first epochs are not measured: a new client is still starting. */
        *b = (batch_state) { .trial = BATCH_SETTLED, .settle_left = BATCH_WARM_UP, .epoch_start = now,
                             .settle_len = BATCH_SETTLE_MIN, .may_hold = may_hold, .may_poll = may_poll };
}

static void settle(batch_state *b, batch_mode mode) {
        b->mode = mode;
        b->trial = BATCH_SETTLED;
        b->settle_left = b->settle_len;
}

/* Holding wins if it serves 10 % more requests per second: a tie goes to the
 * lower latency, and the rate of one 50 ms epoch can differ from the next by
 * several per cent at the same setting (two connections sharing the loop
 * thread, the other CPU's load). It also wins if it costs a fifth less CPU
 * per request and serves at least 90 % as many: a client that sets the pace
 * itself (fio writing 4 KiB at depth 16 uses its whole core) gains no rate,
 * but the server's savings are the other programs' CPU. A trial cannot tell
 * a smaller loss of rate from noise: on a virtual machine, two epochs a side
 * at one same setting came out more than 5 % apart in nearly half of the
 * trials and more than 12 % apart in one in ten, so "at least as many" turned
 * such savings down about every other trial. The loop thread's CPU also
 * counts other connections' work, which only makes a gain look smaller.
 * Polling spends CPU for latency: it wins only if it serves 15 % more
 * requests per second. */
static bool alternative_won(const batch_verdict *v) {
        uint64_t rate_on = v->requests[1] * v->usec[0], rate_off = v->requests[0] * v->usec[1];
        if (v->tried == BATCH_POLL)
                return rate_on * 100 >= rate_off * 115;
        return rate_on * 10 > rate_off * 11 ||
               (rate_on * 10 >= rate_off * 9 && v->cpu[1] * v->requests[0] * 5 < v->cpu[0] * v->requests[1] * 4);
}

/* The short wait wins if it serves 10 % more requests per second for at most
 * a quarter more CPU per request: smaller batches cost more per request, and
 * where that is all they change (a backend as fast as its client) the full
 * wait's savings are kept even if one epoch happens to be faster. */
static bool short_wait_won(const batch_verdict *v) {
        return v->requests[1] * v->usec[0] * 10 > v->requests[0] * v->usec[1] * 11 &&
               v->cpu[1] * v->requests[0] * 4 <= v->cpu[0] * v->requests[1] * 5;
}

/* The trial under way ends with WON (side [1] better); returns WON. */
static bool end_trial(batch_state *b, bool won) {
        b->now.won = won;
        b->last = b->now;
        b->n_verdicts++;
        return won;
}

/* The alternative a trial whose first epoch is over tries, if any. */
static batch_mode alternative(const batch_state *b) {
        if (b->epoch_requests < BATCH_MIN_REQUESTS)
                return BATCH_READ; /* too idle to matter */
        if (b->pipelined)
                return b->may_hold ? BATCH_HOLD : BATCH_READ;
        return b->may_poll ? BATCH_POLL : BATCH_READ;
}

static void start_trial(batch_state *b, batch_trial kind, batch_mode mode, bool short_wait) {
        b->trial = 0;
        b->now.kind = kind;
        b->mode = mode;
        b->short_wait = short_wait;
        for (int i = 0; i < 2; i++)
                b->now.requests[i] = b->now.usec[i] = b->now.cpu[i] = 0;
}

/* The end of a trial of reading at once against holding or polling. */
static void end_mode_trial(batch_state *b) {
        bool won = end_trial(b, alternative_won(&b->now));
        if (b->now.tried == BATCH_HOLD && b->now.kind == BATCH_TRIAL_ALTERNATIVE) {
                if (won) /* the full wait against the short one, holding throughout */
                        start_trial(b, BATCH_TRIAL_WAITS, BATCH_HOLD, false);
                else /* the short wait against reading at once */
                        start_trial(b, BATCH_TRIAL_SHORT_HOLD, BATCH_READ, true);
                return;
        }
        if (won)
                b->settle_len = BATCH_SETTLE_MIN;
        else if (b->settle_len < BATCH_SETTLE_MAX)
                b->settle_len *= 2;
        settle(b, won ? b->now.tried : BATCH_READ);
}

static void end_epoch(batch_state *b, uint64_t usec, uint64_t cpu) {
        if (b->trial == BATCH_SETTLED) {
                if (--b->settle_left == 0)
                        start_trial(b, BATCH_TRIAL_ALTERNATIVE, BATCH_READ, false);
                return;
        }
        if (b->trial == 0 && b->now.kind == BATCH_TRIAL_ALTERNATIVE) {
                b->now.tried = alternative(b);
                if (b->now.tried == BATCH_READ) {
                        settle(b, BATCH_READ);
                        return;
                }
        }
        bool waits = b->now.kind == BATCH_TRIAL_WAITS;
        bool tried = waits ? b->short_wait : b->mode != BATCH_READ;
        b->now.requests[tried] += b->epoch_requests;
        b->now.usec[tried] += usec;
        b->now.cpu[tried] += cpu;
        if (++b->trial < BATCH_TRIAL_EPOCHS) {
                if (waits)
                        b->short_wait = !tried;
                else
                        b->mode = tried ? BATCH_READ : b->now.tried;
                return;
        }
        if (!waits) {
                end_mode_trial(b);
                return;
        }
        b->short_wait = end_trial(b, short_wait_won(&b->now));
        b->settle_len = BATCH_SETTLE_MIN;
        settle(b, BATCH_HOLD);
}

batch_mode batch_after_run(batch_state *b, uint64_t now, uint32_t parsed, batch_cpu_clock cpu_clock) {
        b->epoch_requests += parsed;
        b->pipelined |= parsed >= 2;
        uint64_t usec = now - b->epoch_start;
        if (usec >= BATCH_EPOCH_USEC) {
                uint64_t cpu = cpu_clock();
                end_epoch(b, usec, cpu - b->epoch_cpu);
                b->epoch_start = now;
                b->epoch_cpu = cpu;
                b->epoch_requests = 0;
                b->pipelined = false;
        }
        return parsed > 0 ? b->mode : BATCH_READ;
}

static uint32_t short_wait_usec(uint32_t wait_usec) {
        uint32_t usec = wait_usec / BATCH_SHORT_WAIT_DIV;
        return usec > 0 ? usec : 1;
}

uint32_t batch_hold_usec(const batch_state *b, uint32_t wait_usec) {
        return b->short_wait ? short_wait_usec(wait_usec) : wait_usec;
}

/* One side of V, as the log names it. */
static void describe_side(const batch_verdict *v, int side, uint32_t wait_usec, uint32_t poll_usec, char *buf,
                          size_t size) {
        if (side == 0 && v->kind != BATCH_TRIAL_WAITS)
                snprintf(buf, size, "reading at once");
        else if (side == 1 && v->tried == BATCH_POLL)
                snprintf(buf, size, "polling %u us", poll_usec);
        else {
                bool full = side == 0 || v->kind == BATCH_TRIAL_ALTERNATIVE;
                snprintf(buf, size, "holding %u us", full ? wait_usec : short_wait_usec(wait_usec));
        }
}

void batch_verdict_describe(const batch_verdict *v, uint32_t wait_usec, uint32_t poll_usec, char *buf,
                            size_t size) {
        char name[2][32];
        double rate[2], cpu[2];
        for (int i = 0; i < 2; i++) {
                describe_side(v, i, wait_usec, poll_usec, name[i], sizeof name[i]);
                rate[i] = v->usec[i] ? v->requests[i] * 1000.0 / v->usec[i] : 0;
                cpu[i] = v->requests[i] ? (double) v->cpu[i] / v->requests[i] : 0;
        }
        snprintf(buf, size, "%s against %s: %.1f k against %.1f k requests/s, %.2f against %.2f us of CPU per "
                 "request; better: %s", name[0], name[1], rate[0], rate[1], cpu[0], cpu[1], name[v->won]);
}
