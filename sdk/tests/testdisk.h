/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A RAM backend for unit tests: capabilities chosen per test, every callback
 * logged, and a check that no callback ever sees an invalid request. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

#define TD_LOG_MAX 64

typedef struct {
        char *data;
        uint64_t size;
        uint8_t *written;        /* per 4 KiB block: written since start (block status) */
        /* Capabilities: which callbacks exist, and can_* answers (-1 = no callback). */
        bool has_flush, has_trim, has_zero, has_cache, has_block_status;
        int can_fua, can_zero, can_cache, can_multi_conn, can_write, can_fast_zero;
        uint32_t min_block, pref_block, max_block; /* 0 = no get_block_size */
        int zero_result;         /* forced result of zero(), 0 = do it */
        int pread_result;        /* forced result of pread(), 0 = do it */
        bool defer;              /* data callbacks return NBDSDK_DEFER ... */
        nbdsdk_request *deferred[64]; /* ... and park here */
        unsigned n_deferred;
        /* The log: one letter per callback (r w f t z c b), flags alongside. */
        char log[TD_LOG_MAX + 1];
        uint32_t log_flags[TD_LOG_MAX];
        unsigned n_log;
        const char *error_message; /* attached to the forced pread/zero failures */
        bool bs_overreport;      /* block_status also reports 1 MiB past the range */
        pthread_mutex_t lock;    /* the log and deferred[], for worker threads */
} testdisk;

/* A disk of SIZE bytes, everything present, FUA emulated. */
testdisk *td_new(uint64_t size);
void td_free(testdisk *td);
/* The ops for TD's current settings (fills a static struct). */
const struct nbdsdk_ops *td_ops(testdisk *td);
/* A server on TD (not listening). */
nbdsdk_server *td_server(testdisk *td);
void td_clear_log(testdisk *td);
