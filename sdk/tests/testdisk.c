/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tclient.h"
#include "testdisk.h"

static void td_log(testdisk *td, char c, uint32_t flags) {
        pthread_mutex_lock(&td->lock);
        if (td->n_log < TD_LOG_MAX) {
                td->log_flags[td->n_log] = flags;
                td->log[td->n_log++] = c;
                td->log[td->n_log] = 0;
        }
        pthread_mutex_unlock(&td->lock);
}

static int td_forced(nbdsdk_request *req, testdisk *td, int result) {
        if (td->error_message)
                CHECK(nbdsdk_request_set_error_message(req, "%s", td->error_message) == 0, "setting a message");
        return result;
}

/* A callback on a range was called: log it, and check the library's promise
 * that callbacks see only valid, in-range requests. */
static testdisk *td_called(void *ud, char c, uint64_t count, uint64_t off, uint32_t flags) {
        testdisk *td = ud;
        CHECK(count > 0 && off <= td->size && count <= td->size - off,
              "callback got an out-of-range request %llu+%llu", (unsigned long long) off,
              (unsigned long long) count);
        td_log(td, c, flags);
        return td;
}

static int td_finish(testdisk *td, nbdsdk_request *req, int result) {
        if (!td->defer)
                return result;
        pthread_mutex_lock(&td->lock);
        CHECK(td->n_deferred < 64, "too many deferred requests");
        td->deferred[td->n_deferred++] = req;
        pthread_mutex_unlock(&td->lock);
        return NBDSDK_DEFER;
}

static void mark(testdisk *td, uint64_t off, uint64_t count, uint8_t v) {
        for (uint64_t b = off / 4096; b <= (off + count - 1) / 4096; b++)
                td->written[b] = v;
}

static int64_t td_get_size(nbdsdk_conn *c, void *ud) { (void) c; return (int64_t) ((testdisk *) ud)->size; }

static int td_get_block_size(nbdsdk_conn *c, uint32_t *mn, uint32_t *pr, uint32_t *mx, void *ud) {
        (void) c;
        testdisk *td = ud;
        *mn = td->min_block;
        *pr = td->pref_block;
        *mx = td->max_block;
        return 0;
}

#define CAN(name, field) \
        static int td_##name(nbdsdk_conn *c, void *ud) { (void) c; return ((testdisk *) ud)->field; }
CAN(can_fua, can_fua)
CAN(can_zero, can_zero)
CAN(can_cache, can_cache)
CAN(can_multi_conn, can_multi_conn)
CAN(can_write, can_write)
CAN(can_fast_zero, can_fast_zero)
#undef CAN

static int td_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        testdisk *td = td_called(ud, 'r', count, off, flags);
        if (td->pread_result)
                return td_forced(req, td, td->pread_result);
        memcpy(buf, td->data + off, count);
        return td_finish(td, req, 0);
}

static int td_pwrite(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        testdisk *td = td_called(ud, 'w', count, off, flags);
        memcpy(td->data + off, buf, count);
        mark(td, off, count, 1);
        return td_finish(td, req, 0);
}

static int td_flush(nbdsdk_request *req, uint32_t flags, void *ud) {
        testdisk *td = ud;
        td_log(td, 'f', flags);
        return td_finish(td, req, 0);
}

static int td_trim(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        return td_finish(td_called(ud, 't', count, off, flags), req, 0);
}

static int td_zero(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        testdisk *td = td_called(ud, 'z', count, off, flags);
        if (td->zero_result)
                return td_forced(req, td, td->zero_result);
        memset(td->data + off, 0, count);
        mark(td, off, count, 0);
        return td_finish(td, req, 0);
}

static int td_cache(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        return td_finish(td_called(ud, 'c', count, off, flags), req, 0);
}

/* Blocks never written are holes reading as zero. */
static int td_block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags,
                           nbdsdk_extents *ext, void *ud) {
        testdisk *td = td_called(ud, 'b', count, off, flags);
        for (uint64_t pos = off; pos < off + count;) {
                uint64_t b = pos / 4096, end = (b + 1) * 4096;
                if (end > off + count)
                        end = off + count;
                int r = nbdsdk_extents_add(ext, end - pos,
                                           td->written[b] ? 0 : NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO);
                if (r < 0)
                        return r;
                pos = end;
        }
        if (td->bs_overreport)
                CHECK(nbdsdk_extents_add(ext, 1 << 20, 0) == 0, "extents past the range are ignored");
        return td_finish(td, req, 0);
}

testdisk *td_new(uint64_t size) {
        testdisk *td = calloc(1, sizeof *td);
        CHECK(td, "out of memory");
        td->size = size;
        td->data = calloc(1, size);
        td->written = calloc(1, size / 4096 + 1);
        CHECK(td->data && td->written, "out of memory");
        td->has_flush = td->has_trim = td->has_zero = td->has_cache = td->has_block_status = true;
        td->can_fua = td->can_zero = td->can_cache = td->can_multi_conn = td->can_write = td->can_fast_zero = -1;
        pthread_mutex_init(&td->lock, NULL);
        return td;
}

void td_free(testdisk *td) {
        free(td->data);
        free(td->written);
        pthread_mutex_destroy(&td->lock);
        free(td);
}

const struct nbdsdk_ops *td_ops(testdisk *td) {
        static struct nbdsdk_ops ops;
        ops = (struct nbdsdk_ops) {
                .name = "testdisk",
                .get_size = td_get_size,
                .get_block_size = td->min_block ? td_get_block_size : NULL,
                .can_fua = td->can_fua >= 0 ? td_can_fua : NULL,
                .can_zero = td->can_zero >= 0 ? td_can_zero : NULL,
                .can_cache = td->can_cache >= 0 ? td_can_cache : NULL,
                .can_multi_conn = td->can_multi_conn >= 0 ? td_can_multi_conn : NULL,
                .can_write = td->can_write >= 0 ? td_can_write : NULL,
                .can_fast_zero = td->can_fast_zero >= 0 ? td_can_fast_zero : NULL,
                .pread = td_pread,
                .pwrite = td_pwrite,
                .flush = td->has_flush ? td_flush : NULL,
                .trim = td->has_trim ? td_trim : NULL,
                .zero = td->has_zero ? td_zero : NULL,
                .cache = td->has_cache ? td_cache : NULL,
                .block_status = td->has_block_status ? td_block_status : NULL,
        };
        return &ops;
}

nbdsdk_server *td_server(testdisk *td) {
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(td_ops(td), sizeof(struct nbdsdk_ops), td, &s) == 0, "server");
        return s;
}

void td_clear_log(testdisk *td) {
        td->n_log = 0;
        td->log[0] = 0;
}
