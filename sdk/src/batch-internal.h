/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a connection does after a run that read requests and answered them
 * all (batch.c): read again on the next readiness event, hold (wait a little
 * before it reads again, so that its next wake-up finds several requests),
 * or poll (keep reading for a while, so that a client with one request at a
 * time finds the server awake). */
typedef enum { BATCH_READ, BATCH_HOLD, BATCH_POLL } batch_mode;

/* What a trial compares: reading at once with holding for the full wait or
 * polling; reading at once with holding for the short wait (after the full
 * wait lost); or the two waits (after the full wait won). */
typedef enum { BATCH_TRIAL_ALTERNATIVE, BATCH_TRIAL_SHORT_HOLD, BATCH_TRIAL_WAITS } batch_trial;

/* A trial that ended: what it compared, its totals ([0] reading at once, or
 * the full wait; [1] as tried, or the short wait) and which side won. */
typedef struct {
        batch_trial kind;
        batch_mode tried;               /* BATCH_HOLD or BATCH_POLL */
        bool won;                       /* side [1] */
        uint64_t requests[2], usec[2], cpu[2];
} batch_verdict;

typedef struct {
        unsigned trial;                 /* epoch of the trial, or BATCH_SETTLED */
        batch_mode mode;                /* after runs that read requests */
        bool may_hold, may_poll;
        uint64_t epoch_start;           /* CLOCK_MONOTONIC usec */
        uint64_t epoch_cpu;             /* the loop thread's CPU usec at epoch_start */
        uint64_t epoch_requests;
        bool pipelined;                 /* one run of this epoch read 2 or more */
        batch_verdict now;              /* the trial under way, its totals so far */
        batch_verdict last;             /* the last trial to end */
        unsigned n_verdicts;            /* trials ended */
        unsigned settle_left, settle_len; /* epochs until the next trial */
        bool short_wait;                /* holds wait BATCH_SHORT_WAIT_DIV times less */
} batch_state;

/* A trial is 4 epochs of 50 ms, alternately reading at once and holding or
 * polling (the machine's noise averages out over two of each). Its decision
 * is kept 40 epochs (2 s), and up to 160 (8 s) while the alternative keeps
 * losing. The alternative is holding for a client that pipelines (a run read
 * two or more requests in the trial's first epoch), polling for one that
 * does not. */
#define BATCH_EPOCH_USEC 50000u
#define BATCH_TRIAL_EPOCHS 4u
#define BATCH_SETTLED UINT32_MAX
#define BATCH_SETTLE_MIN 40u
#define BATCH_SETTLE_MAX 160u
#define BATCH_WARM_UP 2u
/* A first trial epoch with fewer requests is too idle for either to matter. */
#define BATCH_MIN_REQUESTS 64u
/* The short wait is a quarter of the full one. A trial of holding holds for
 * the full wait; if that wins, a second trial holds alternately for the full
 * and the short wait and keeps the short one only if it serves 10 % more
 * requests per second for at most a quarter more CPU per request; if it
 * loses, a second trial tries the short wait against reading at once. A long wait makes bigger batches for less CPU; a
 * backend that spends longer on each request (a write to a file) can leave
 * its client idle through it. */
#define BATCH_SHORT_WAIT_DIV 4u

/* The CPU time, in usec, of the thread that runs the connection; read once
 * per epoch. */
typedef uint64_t (*batch_cpu_clock)(void);

/* MAY_HOLD, MAY_POLL: whether the connection can do either (the server's
 * settings). */
void batch_init(batch_state *b, uint64_t now, bool may_hold, bool may_poll);
/* Account for a run of the connection that read PARSED requests at NOW;
 * returns what the connection should do now (BATCH_READ after a run that
 * read nothing). */
batch_mode batch_after_run(batch_state *b, uint64_t now, uint32_t parsed, batch_cpu_clock cpu_clock);
/* How long a hold lasts, in usec, for a connection whose server's wait is
 * WAIT_USEC. */
uint32_t batch_hold_usec(const batch_state *b, uint32_t wait_usec);
/* Writes what V compared, each side's requests per second and CPU per
 * request, and the better side into BUF (the server's WAIT_USEC and
 * POLL_USEC name the waits). */
void batch_verdict_describe(const batch_verdict *v, uint32_t wait_usec, uint32_t poll_usec, char *buf,
                            size_t size);
