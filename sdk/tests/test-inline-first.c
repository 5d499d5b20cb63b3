/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inline-first servers (nbdsdk_server_set_inline_first): requests run on the
 * loop thread (here: the test's thread, which runs the connection) until a
 * callback returns NBDSDK_WOULD_BLOCK; that step then runs again, once, on a
 * worker, and the steps before it are not repeated. */
#include <errno.h>
#include <pthread.h>
#include "fixture.h"
#include "tcase.h"

#define MEM_SIZE (1u << 20)
#define SLOW_FROM (MEM_SIZE / 2) /* reads and writes here "would block" */

static char mem[MEM_SIZE];
static pthread_t loop_thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Calls per callback: on the loop thread, moved from it, on workers. */
static unsigned n_loop, n_moved, n_worker;
static char trace[64];           /* one letter per call: r w f, upper case on workers */
static bool flush_blocks;        /* flush "would block" on the loop thread */
static bool always_would_block;  /* reads return NBDSDK_WOULD_BLOCK wherever they run */

static void note(char c) {
        pthread_mutex_lock(&lock);
        bool on_loop = pthread_equal(pthread_self(), loop_thread);
        if (on_loop)
                n_loop++;
        else
                n_worker++;
        size_t n = strlen(trace);
        if (n + 1 < sizeof trace) {
                trace[n] = on_loop ? c : (char) (c - 'a' + 'A');
                trace[n + 1] = 0;
        }
        pthread_mutex_unlock(&lock);
}

/* A call at OFFSET that cannot finish at once: may it wait here? */
static int would_block(nbdsdk_request *req, bool slow) {
        if (always_would_block || (slow && !nbdsdk_request_may_block(req))) {
                pthread_mutex_lock(&lock);
                n_moved++;
                pthread_mutex_unlock(&lock);
                return NBDSDK_WOULD_BLOCK;
        }
        return 0;
}

static int64_t mem_size(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return MEM_SIZE; }

static int mem_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) flags; (void) ud;
        note('r');
        int r = would_block(req, off >= SLOW_FROM);
        if (r == 0)
                memcpy(buf, mem + off, count);
        return r;
}

static int mem_pwrite(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) flags; (void) ud;
        note('w');
        int r = would_block(req, off >= SLOW_FROM);
        if (r == 0)
                memcpy(mem + off, buf, count);
        return r;
}

static int mem_flush(nbdsdk_request *req, uint32_t flags, void *ud) {
        (void) flags; (void) ud;
        note('f');
        return flush_blocks && !nbdsdk_request_may_block(req) ? would_block(req, true) : 0;
}

/* Block status always waits for the disk. */
static int mem_block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, nbdsdk_extents *x,
                            void *ud) {
        (void) off; (void) flags; (void) ud;
        note('b');
        int r = would_block(req, true);
        return r != 0 ? r : nbdsdk_extents_add(x, count, 0);
}

static const struct nbdsdk_ops ops = { .name = "slowdisk", .get_size = mem_size, .pread = mem_pread,
                                       .pwrite = mem_pwrite, .flush = mem_flush, .block_status = mem_block_status };

static nbdsdk_server *slow_server(unsigned threads, bool inline_first) {
        fill((uint8_t *) mem, sizeof mem, 9);
        n_loop = n_moved = n_worker = 0;
        trace[0] = 0;
        flush_blocks = always_would_block = false;
        loop_thread = pthread_self();
        nbdsdk_server *s;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &s) == 0, "server");
        CHECK(nbdsdk_server_set_threads(s, threads) == 0, "%u workers", threads);
        CHECK(nbdsdk_server_set_inline_first(s, inline_first) == 0, "inline first: %d", inline_first);
        return s;
}

static void read_at(tclient *c, uint64_t cookie, uint64_t offset) {
        uint8_t back[4096];
        CHECK(tc_read(c, 0, cookie, offset, back, sizeof back) == 0, "READ at %llu", (unsigned long long) offset);
        CHECK(memcmp(back, mem + offset, sizeof back) == 0, "READ at %llu: the right data", (unsigned long long) offset);
}

static void fast_calls_stay_on_the_loop_thread(void) {
        nbdsdk_server *s = slow_server(2, true);
        tclient *c = tc_open(s, TC_STRUCTURED, false, NULL);
        for (unsigned i = 0; i < 8; i++)
                read_at(c, i + 1, (uint64_t) i * 4096);
        CHECK(n_loop == 8 && n_worker == 0 && n_moved == 0, "8 reads on the loop thread (%u loop, %u worker)",
              n_loop, n_worker);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void a_call_that_would_block_runs_again_on_a_worker(void) {
        nbdsdk_server *s = slow_server(2, true);
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        read_at(c, 1, SLOW_FROM + 8192);
        CHECK(strcmp(trace, "rR") == 0, "tried on the loop thread, then once on a worker (trace %s)", trace);
        uint8_t data[4096];
        fill(data, sizeof data, 2);
        CHECK(tc_write(c, 0, 2, SLOW_FROM, data, sizeof data) == 0, "slow WRITE");
        CHECK(memcmp(mem + SLOW_FROM, data, sizeof data) == 0, "the write landed");
        CHECK(strcmp(trace, "rRwW") == 0, "the write moved too (trace %s)", trace);
        read_at(c, 3, 0);
        CHECK(strcmp(trace, "rRwWr") == 0, "the next fast request is back on the loop thread (trace %s)", trace);
        tc_free(c);
        nbdsdk_server_unref(s);
}

/* Emulated FUA is two steps, pwrite then flush: only the flush moves. */
static void earlier_steps_are_not_repeated(void) {
        nbdsdk_server *s = slow_server(2, true);
        flush_blocks = true;
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        uint8_t data[4096];
        fill(data, sizeof data, 3);
        CHECK(tc_write(c, NBDSDK_CMD_FLAG_FUA, 1, 0, data, sizeof data) == 0, "WRITE with FUA");
        CHECK(strcmp(trace, "wfF") == 0, "pwrite once on the loop, flush tried there then on a worker (trace %s)",
              trace);
        CHECK(memcmp(mem, data, sizeof data) == 0, "the write landed");
        tc_free(c);
        nbdsdk_server_unref(s);
}

/* The step that lists the contexts starts again on the worker, with what the
 * first try set up reused (the sanitizer build checks nothing leaks). */
/* 64 KiB of block status on C's selected context: one extent of STATUS,
 * asked first on the loop thread and then once on a worker (WANT_TRACE).
 * Frees C and S. */
static void block_status_once_moved(nbdsdk_server *s, tclient *c, uint32_t status, const char *want_trace) {
        tc_request(c, 0, NBDSDK_CMD_BLOCK_STATUS, 1, 4096, 65536, NULL, 0);
        tc_extents x;
        tc_block_status_reply(c, 1, &x);
        CHECK(x.n == 1 && x.length[0] == 65536 && x.status[0] == status, "one extent of status %u (%u extents)",
              status, x.n);
        CHECK(strcmp(trace, want_trace) == 0, "tried on the loop thread, then once on a worker (trace %s)", trace);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void block_status_moves_whole(void) {
        nbdsdk_server *s = slow_server(2, true);
        block_status_once_moved(s, tc_open(s, TC_STRUCTURED, true, NULL), 0, "bB");
}

/* A metadata namespace whose block status always waits for the disk. */
static int slow_ns_list(nbdsdk_conn *conn, const char *export_name, const char *query, nbdsdk_meta_list *list,
                        void *ud) {
        (void) conn; (void) export_name; (void) query; (void) ud;
        return nbdsdk_meta_list_add(list, "x-slow:dirty");
}

static int slow_ns_select(nbdsdk_conn *conn, const char *export_name, const char *context, void *ud) {
        (void) conn; (void) export_name; (void) ud;
        return strcmp(context, "x-slow:dirty") == 0;
}

static int slow_ns_block_status(nbdsdk_request *req, const char *context, uint64_t count, uint64_t off,
                                uint32_t flags, nbdsdk_extents *x, void *ud) {
        (void) context; (void) off; (void) flags; (void) ud;
        note('m');
        int r = would_block(req, true);
        return r != 0 ? r : nbdsdk_extents_add(x, count, 7);
}

static void namespace_block_status_moves_too(void) {
        static const struct nbdsdk_meta_namespace slow_ns = { .name = "x-slow", .list = slow_ns_list,
                                                              .select = slow_ns_select,
                                                              .block_status = slow_ns_block_status };
        nbdsdk_server *s = slow_server(2, true);
        CHECK(nbdsdk_server_add_meta_namespace(s, &slow_ns, sizeof slow_ns, NULL, NULL) == 0, "register");
        tclient *c = tc_connect_fixed(s);
        tc_structured(c);
        tc_set_meta_context(c, "", "x-slow:dirty");
        tc_go(c, "", NULL, NULL);
        block_status_once_moved(s, c, 7, "mM");
}

static void without_inline_first_workers_run_everything(void) {
        nbdsdk_server *s = slow_server(2, false);
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        read_at(c, 1, 0);
        read_at(c, 2, SLOW_FROM);
        CHECK(strcmp(trace, "RR") == 0 && n_moved == 0, "both on workers, where they may block (trace %s)", trace);
        tc_free(c);
        nbdsdk_server_unref(s);
}

/* Without workers there is nowhere to move to: callbacks may block. */
static void without_workers_callbacks_may_block(void) {
        nbdsdk_server *s = slow_server(0, true);
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        read_at(c, 1, SLOW_FROM);
        CHECK(strcmp(trace, "r") == 0 && n_moved == 0, "run once on the loop thread (trace %s)", trace);
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void would_block_where_it_may_block_fails_the_request(void) {
        nbdsdk_server *s = slow_server(2, true);
        always_would_block = true;
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        uint8_t back[4096];
        CHECK(tc_read(c, 0, 1, 0, back, sizeof back) == NBDSDK_EIO, "EIO when even the worker would block");
        CHECK(strcmp(trace, "rR") == 0, "no endless moving (trace %s)", trace);
        always_would_block = false;
        read_at(c, 2, 8192); /* and the connection goes on */
        tc_free(c);
        nbdsdk_server_unref(s);
}

static void settings_are_checked(void) {
        CHECK(nbdsdk_server_set_inline_first(NULL, true) == -EINVAL, "NULL server");
        CHECK(!nbdsdk_request_may_block(NULL), "NULL request");
        nbdsdk_server *s = slow_server(2, true);
        tclient *c = tc_open(s, TC_SIMPLE, false, NULL);
        CHECK(nbdsdk_server_set_inline_first(s, false) == -EBUSY, "not once the server runs");
        tc_free(c);
        nbdsdk_server_unref(s);
}

TCASE_MAIN(T(fast_calls_stay_on_the_loop_thread), T(a_call_that_would_block_runs_again_on_a_worker),
           T(earlier_steps_are_not_repeated), T(block_status_moves_whole),
           T(namespace_block_status_moves_too), T(without_inline_first_workers_run_everything),
           T(without_workers_callbacks_may_block), T(would_block_where_it_may_block_fails_the_request),
           T(settings_are_checked))
