/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Request batching (batch.c): whether a connection should wait a little
 * before it reads again, so that its next wake-up finds several requests. */
typedef struct {
        unsigned trial;                 /* epoch of the trial, or BATCH_SETTLED */
        bool on;                        /* wait after runs that read requests */
        uint64_t epoch_start;           /* CLOCK_MONOTONIC usec */
        uint64_t epoch_cpu;             /* the loop thread's CPU usec at epoch_start */
        uint64_t epoch_requests;
        bool pipelined;                 /* one run of this epoch read 2 or more */
        uint64_t requests[2], usec[2], cpu[2]; /* trial totals, [0] without waiting, [1] with */
        unsigned settle_left, settle_len; /* epochs until the next trial */
} batch_state;

/* A trial is 4 epochs of 50 ms, alternately without and with waiting (the
 * machine's noise averages out over two of each). Its decision is kept 40
 * epochs (2 s), and up to 160 (8 s) while waiting keeps losing. */
#define BATCH_EPOCH_USEC 50000u
#define BATCH_TRIAL_EPOCHS 4u
#define BATCH_SETTLED UINT32_MAX
#define BATCH_SETTLE_MIN 40u
#define BATCH_SETTLE_MAX 160u
#define BATCH_WARM_UP 2u
/* A first trial epoch with fewer requests is too idle for batching to matter. */
#define BATCH_MIN_REQUESTS 64u

/* The CPU time, in usec, of the thread that runs the connection; read once
 * per epoch. */
typedef uint64_t (*batch_cpu_clock)(void);

void batch_init(batch_state *b, uint64_t now);
/* Account for a run of the connection that read PARSED requests at NOW;
 * true if the connection should now wait before it reads again. */
bool batch_after_run(batch_state *b, uint64_t now, uint32_t parsed, batch_cpu_clock cpu_clock);
