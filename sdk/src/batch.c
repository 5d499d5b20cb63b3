/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request batching. A client that keeps many requests in flight sends them
 * one or two at a time as replies come back, and a server that reads as soon
 * as anything arrives pays a wake-up and two system calls for each. Waiting
 * a few microseconds after a run lets the next wake-up find a batch, and the
 * replies then leave in a batch too. Whether that serves the client better
 * depends on the client: it helps one that is busy with the previous replies
 * meanwhile, and only delays one that has sent all it can and waits. So the
 * connection measures: epochs without and with waiting, alternating, and it
 * keeps whichever served its client better, until the next trial. */
#include "batch-internal.h"

void batch_init(batch_state *b, uint64_t now) {
        /* The first epochs are not measured: a new client is still starting. */
        *b = (batch_state) { .trial = BATCH_SETTLED, .settle_left = BATCH_WARM_UP, .epoch_start = now,
                             .settle_len = BATCH_SETTLE_MIN };
}

static void settle(batch_state *b, bool on) {
        b->on = on;
        b->trial = BATCH_SETTLED;
        b->settle_left = b->settle_len;
}

/* Waiting wins if it serves 10 % more requests per second: a tie goes to the
 * lower latency, and the rate of one 50 ms epoch can differ from the next by
 * several per cent at the same setting (two connections sharing the loop
 * thread, the other CPU's load). It also wins if it serves at least as many
 * for a fifth less CPU per request: a client that sets the pace itself (fio
 * writing 4 KiB at depth 16 uses its whole core) gains no rate, but the
 * server's savings are the other programs' CPU. The loop thread's CPU also
 * counts other connections' work, which only makes a gain look smaller. */
static bool waiting_won(const batch_state *b) {
        uint64_t rate_on = b->requests[1] * b->usec[0], rate_off = b->requests[0] * b->usec[1];
        return rate_on * 10 > rate_off * 11 ||
               (rate_on >= rate_off && b->cpu[1] * b->requests[0] * 5 < b->cpu[0] * b->requests[1] * 4);
}

static void end_epoch(batch_state *b, uint64_t usec, uint64_t cpu) {
        if (b->trial == BATCH_SETTLED) {
                if (--b->settle_left == 0)
                        *b = (batch_state) { .settle_len = b->settle_len };
                return;
        }
        if (b->trial == 0 && (!b->pipelined || b->epoch_requests < BATCH_MIN_REQUESTS)) {
                settle(b, false); /* nothing to batch */
                return;
        }
        b->requests[b->on] += b->epoch_requests;
        b->usec[b->on] += usec;
        b->cpu[b->on] += cpu;
        if (++b->trial < BATCH_TRIAL_EPOCHS) {
                b->on = !b->on;
                return;
        }
        bool won = waiting_won(b);
        if (won)
                b->settle_len = BATCH_SETTLE_MIN;
        else if (b->settle_len < BATCH_SETTLE_MAX)
                b->settle_len *= 2;
        settle(b, won);
}

bool batch_after_run(batch_state *b, uint64_t now, uint32_t parsed, batch_cpu_clock cpu_clock) {
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
        return b->on && parsed > 0;
}
