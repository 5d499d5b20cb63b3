/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Data-path layers (nbdsdk_layer(3)): what a layer sees and changes, the
 * stacking order, pass-through of what a layer leaves out, capabilities per
 * level, leaving the chain, the checks of nbdsdk_next_*(), a deferring
 * backend under a layer, and registration rules. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* What the test layers saw, in order: one letter per call. */
static char seen[64];
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void saw(char c) {
        pthread_mutex_lock(&seen_lock);
        size_t n = strlen(seen);
        if (n + 1 < sizeof seen)
                seen[n] = c, seen[n + 1] = '\0';
        pthread_mutex_unlock(&seen_lock);
}

/* A layer that stores bytes XORed with its key byte (DATA). */
static int xor_pread(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, void *data) {
        int r = nbdsdk_next_pread(next, req, buf, count, offset, flags);
        for (uint64_t i = 0; r == 0 && i < count; i++)
                ((uint8_t *) buf)[i] ^= *(uint8_t *) data;
        return r;
}

static int xor_pwrite(nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags, void *data) {
        uint8_t *copy = malloc(count);
        if (!copy)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++)
                copy[i] = ((const uint8_t *) buf)[i] ^ *(uint8_t *) data;
        int r = nbdsdk_next_pwrite(next, req, copy, count, offset, flags);
        free(copy);
        return r;
}

static const struct nbdsdk_layer xor_layer = { .name = "xor", .pread = xor_pread, .pwrite = xor_pwrite };

static void add_layer(const struct nbdsdk_layer *l, void *data) {
        CHECK(nbdsdk_export_add_layer(nbdsdk_server_get_export(server, NULL), l, sizeof *l, data, NULL) == 0,
              "add layer %s", l->name);
}

/* TD and a server on it, the layers added by ADD, then a client in mode M. */
static void open_layered(tc_mode m, bool meta, void (*add)(void)) {
        seen[0] = '\0';
        td = td_new(DISK_SIZE);
        server = td_server(td);
        add();
        open_disk(m, meta);
}

static uint8_t key_a = 0x5a;

static void add_xor(void) { add_layer(&xor_layer, &key_a); }

static void layer_changes_data_both_ways_in(tc_mode m) {
        open_layered(m, false, add_xor);
        uint8_t data[8192], back[8192];
        fill(data, sizeof data, 1);
        CHECK(tc_write(tc, 0, 1, 4096, data, sizeof data) == 0, "%s: write", mode);
        for (size_t i = 0; i < sizeof data; i++)
                CHECK((uint8_t) td->data[4096 + i] == (data[i] ^ key_a), "%s: the backend holds the layer's bytes", mode);
        CHECK(tc_read(tc, 0, 2, 4096, back, sizeof back) == 0 && memcmp(back, data, sizeof data) == 0,
              "%s: reads come back through the layer", mode);
        close_disk();
}
ALL_MODES(layer_changes_data_both_ways)

/* Two layers that note their passage: nearest the client first. */
static int note_a(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags, void *data) {
        (void) data;
        saw('A');
        return nbdsdk_next_pread(next, req, buf, count, offset, flags);
}

static int note_b(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                  uint32_t flags, void *data) {
        (void) data;
        saw('B');
        return nbdsdk_next_pread(next, req, buf, count, offset, flags);
}

static void add_by_priority(void) {
        /* Added B first, but A's lower priority puts it nearer the client. */
        add_layer(&(struct nbdsdk_layer) { .name = "b", .priority = 20, .pread = note_b }, NULL);
        add_layer(&(struct nbdsdk_layer) { .name = "a", .priority = 10, .pread = note_a }, NULL);
        add_layer(&(struct nbdsdk_layer) { .name = "a2", .priority = 10, .pread = note_a }, NULL);
}

static void layers_stack_by_priority(void) {
        open_layered(TC_SIMPLE, false, add_by_priority);
        uint8_t back[512];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0, "read");
        CHECK(strcmp(seen, "AAB") == 0, "low priority first, ties in the order added: \"%s\"", seen);
        CHECK(strcmp(td->log, "r") == 0, "then the backend: \"%s\"", td->log);
        close_disk();
}

/* A layer with pread only: everything else reaches the backend as it was. */
static void add_reader(void) { add_layer(&(struct nbdsdk_layer) { .name = "reader", .pread = note_a }, NULL); }

/* A long structured read reaches the layers whole; its zeroes still go
 * back as holes. */
static void layers_see_long_reads_whole(void) {
        open_layered(TC_STRUCTURED, true, add_reader);
        uint8_t back[131072];
        tc_request(tc, 0, NBDSDK_CMD_READ, 1, 0, sizeof back, NULL, 0);
        unsigned holes = 0;
        CHECK(tc_structured_read(tc, 1, 0, back, sizeof back, NULL, &holes) == 0 && holes == 1,
              "a 128 KiB read of zeroes, sent as a hole");
        CHECK(strcmp(seen, "A") == 0, "the layer saw the READ: \"%s\"", seen);
        CHECK(strcmp(td->log, "r") == 0, "the backend read, no block status first: \"%s\"", td->log);
        close_disk();
}

static void missing_callbacks_pass_through(void) {
        open_layered(TC_STRUCTURED, true, add_reader);
        uint8_t data[4096];
        fill(data, sizeof data, 2);
        CHECK(tc_write(tc, NBDSDK_CMD_FLAG_FUA, 1, 0, data, sizeof data) == 0, "write with FUA");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 2, 8192, 4096) == 0, "trim");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 3, 16384, 4096) == 0, "zero");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_FLUSH, 4, 0, 0) == 0, "flush");
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 5, 0, 65536, NULL, 0);
        tc_extents x;
        tc_block_status_reply(tc, 5, &x);
        CHECK(x.n > 0, "block status answered");
        /* FUA is emulated by the backend's level: write, then flush. */
        CHECK(strcmp(td->log, "wftzfb") == 0, "the backend saw every command: \"%s\"", td->log);
        CHECK(seen[0] == '\0', "the layer saw no read: \"%s\"", seen);
        CHECK(memcmp(td->data, data, sizeof data) == 0, "the write landed");
        close_disk();
}

/* Capabilities: a layer's answers become the client's flags. */
static int no_trim_no_write(nbdsdk_next *next, int which, int below, void *data) {
        (void) data;
        CHECK(nbdsdk_next_get_capability(next, which) == below, "BELOW is the level below's value");
        return which == NBDSDK_CAN_TRIM || which == NBDSDK_CAN_WRITE ? 0 : below;
}

static void add_capability_layer(void) {
        add_layer(&(struct nbdsdk_layer) { .name = "caps", .capability = no_trim_no_write }, NULL);
}

static void layer_capabilities_reach_the_client(void) {
        open_layered(TC_SIMPLE, false, add_capability_layer);
        CHECK(eflags & NBDSDK_FLAG_READ_ONLY, "read-only from the layer");
        CHECK(!(eflags & (NBDSDK_FLAG_SEND_TRIM | NBDSDK_FLAG_SEND_WRITE_ZEROES)), "no trim or zeroes");
        CHECK(eflags & NBDSDK_FLAG_SEND_FLUSH, "flush still offered");
        uint8_t data[512] = { 0 };
        CHECK(tc_write(tc, 0, 1, 0, data, sizeof data) == NBDSDK_EPERM, "writes refused by the core");
        CHECK(td->n_log == 0, "the backend saw nothing");
        close_disk();
}

/* The level below emulates what its backend lacks: zeroes by writing. */
static int zeroing_write(nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count,
                         uint64_t offset, uint32_t flags, void *data) {
        (void) buf;
        (void) data;
        CHECK(nbdsdk_next_get_capability(next, NBDSDK_CAN_ZERO) == NBDSDK_CAP_EMULATE, "zeroes emulated below");
        return nbdsdk_next_zero(next, req, count, offset, flags);
}

static void add_zeroing_layer(void) {
        add_layer(&(struct nbdsdk_layer) { .name = "zeroing", .pwrite = zeroing_write }, NULL);
}

static void next_calls_get_emulation_below(void) {
        seen[0] = '\0';
        td = td_new(DISK_SIZE);
        td->has_zero = false;
        memset(td->data, 0xff, 8192);
        server = td_server(td);
        add_zeroing_layer();
        open_disk(TC_SIMPLE, false);
        uint8_t data[4096];
        fill(data, sizeof data, 3);
        CHECK(tc_write(tc, 0, 1, 0, data, sizeof data) == 0, "write (turned into zeroes)");
        CHECK(strcmp(td->log, "w") == 0, "the backend got a write of zeroes: \"%s\"", td->log);
        for (size_t i = 0; i < 4096; i++)
                CHECK(td->data[i] == 0, "zeroed at %zu", i);
        close_disk();
}

/* A layer that leaves some connections' chains. */
static int skip_open(nbdsdk_conn *conn, nbdsdk_next *next, void *data) {
        (void) data;
        CHECK(nbdsdk_next_get_conn(next) == conn, "NEXT belongs to the connection");
        CHECK(nbdsdk_next_get_size(next) == DISK_SIZE, "the size below");
        saw('o');
        return NBDSDK_LAYER_SKIP;
}

static void skip_close(nbdsdk_conn *conn, void *data) {
        (void) conn;
        (void) data;
        saw('c');
}

static void add_skipping(void) {
        add_layer(&(struct nbdsdk_layer) { .name = "skip", .open = skip_open, .close = skip_close,
                                           .pread = note_a }, NULL);
}

static void skipped_layer_leaves_the_chain(void) {
        open_layered(TC_SIMPLE, false, add_skipping);
        uint8_t back[512];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0, "read");
        CHECK(strcmp(seen, "o") == 0, "opened, then never called: \"%s\"", seen);
        close_disk();
        CHECK(strcmp(seen, "o") == 0, "and not closed either: \"%s\"", seen);
}

static int refuse_open(nbdsdk_conn *conn, nbdsdk_next *next, void *data) {
        (void) conn;
        (void) next;
        (void) data;
        return -EPERM;
}

static void layer_refusing_fails_the_selection(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        add_layer(&(struct nbdsdk_layer) { .name = "refuse", .open = refuse_open }, NULL);
        tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_GO, "\0\0\0\0\0\0", 6);
        uint8_t *d;
        uint32_t len;
        CHECK(tc_option_reply(tc, NBDSDK_OPT_GO, &d, &len) == NBDSDK_REP_ERR_UNKNOWN, "GO refused");
        CHECK(strstr((char *) d, "a layer refused") != NULL, "with a reason: %s", (char *) d);
        free(d);
        close_disk();
}

/* The checks of nbdsdk_next_*(): results noted by the layer, asserted after. */
static int next_results[8];

static int probing_pread(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                         uint32_t flags, void *data) {
        (void) data;
        next_results[0] = nbdsdk_next_pread(next, req, buf, count, DISK_SIZE - 1, flags);
        next_results[1] = nbdsdk_next_pread(next, req, buf, count, offset, NBDSDK_FUA);
        next_results[2] = nbdsdk_next_trim(next, req, 512, 0, 0);
        next_results[3] = nbdsdk_next_pread(NULL, req, buf, count, offset, flags);
        next_results[4] = nbdsdk_next_get_capability(next, 99);
        nbdsdk_extents *x;
        CHECK(nbdsdk_extents_new(0, 65536, &x) == 0, "a list of extents");
        next_results[5] = nbdsdk_next_block_status(next, req, 65536, 0, 0, x);
        uint64_t off, len;
        uint32_t type;
        CHECK(nbdsdk_extents_count(x) > 0 && nbdsdk_extents_get(x, 0, &off, &len, &type) == 0 && off == 0,
              "extents from below, starting at the offset");
        CHECK(nbdsdk_extents_get(x, nbdsdk_extents_count(x), &off, &len, &type) == -EINVAL, "past the last extent");
        next_results[6] = nbdsdk_next_block_status(next, req, 4096, 0, 0, x); /* not its range */
        nbdsdk_extents_free(x);
        return nbdsdk_next_pread(next, req, buf, count, offset, flags);
}

static void next_calls_are_checked(void) {
        seen[0] = '\0';
        td = td_new(DISK_SIZE);
        td->has_trim = false;
        server = td_server(td);
        add_layer(&(struct nbdsdk_layer) { .name = "probe", .pread = probing_pread }, NULL);
        open_disk(TC_SIMPLE, false);
        uint8_t back[512];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0, "read");
        CHECK(next_results[0] == -EINVAL, "past the end: %d", next_results[0]);
        CHECK(next_results[1] == -EINVAL, "FUA on a read: %d", next_results[1]);
        CHECK(next_results[2] == -EOPNOTSUPP, "trim the level below lacks: %d", next_results[2]);
        CHECK(next_results[3] == -EINVAL, "NULL next: %d", next_results[3]);
        CHECK(next_results[4] == -EINVAL, "unknown capability: %d", next_results[4]);
        CHECK(next_results[5] == 0, "block status below: %d", next_results[5]);
        CHECK(next_results[6] == -EINVAL, "a list for another range: %d", next_results[6]);
        close_disk();
}

/* A deferring backend under a layer: the layer waits on a worker thread
 * while another thread completes the backend's request. */
static void *complete_later(void *arg) {
        (void) arg;
        for (int i = 0; i < 5000; i++) {
                pthread_mutex_lock(&td->lock);
                nbdsdk_request *req = td->n_deferred ? td->deferred[0] : NULL;
                pthread_mutex_unlock(&td->lock);
                if (req) {
                        CHECK(nbdsdk_request_complete(req, 0) == 0, "complete from another thread");
                        return NULL;
                }
                nanosleep(&(struct timespec) { 0, 1000 * 1000 }, NULL);
        }
        CHECK(false, "the backend never got the request");
        return NULL;
}

static void deferring_backend_under_a_layer(void) {
        seen[0] = '\0';
        td = td_new(DISK_SIZE);
        td->defer = true;
        fill((uint8_t *) td->data, 4096, 4);
        server = td_server(td);
        add_xor();
        open_disk(TC_SIMPLE, false);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, complete_later, NULL) == 0, "thread");
        uint8_t back[4096];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0, "read answered");
        pthread_join(t, NULL);
        for (size_t i = 0; i < sizeof back; i++)
                CHECK(back[i] == ((uint8_t) td->data[i] ^ key_a), "the layer finished after the backend at %zu", i);
        close_disk();
}

/* Registration: order of unload, slots, late additions. */
static void count_unload(void *data) { (*(int *) data)++; }

static void registration_rules(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        nbdsdk_export *exp = nbdsdk_server_get_export(server, NULL);
        int unloads = 0;
        struct nbdsdk_layer l = { .name = "x", .pread = note_b, .unload = count_unload };
        CHECK(nbdsdk_export_add_layer(NULL, &l, sizeof l, &unloads, NULL) == -EINVAL, "NULL export");
        CHECK(nbdsdk_export_add_layer(exp, NULL, sizeof l, &unloads, NULL) == -EINVAL, "NULL layer");
        CHECK(nbdsdk_export_add_layer(exp, &(struct nbdsdk_layer) { .pread = note_b }, sizeof l, NULL, NULL) == -EINVAL,
              "no name");
        CHECK(nbdsdk_export_add_layer(exp, &l, 4, NULL, NULL) == -EINVAL, "too small a size");
        nbdsdk_slot *slot;
        CHECK(nbdsdk_export_add_layer(exp, &l, sizeof l, &unloads, &slot) == 0, "add with a slot");
        CHECK(nbdsdk_slot_drop(slot) == 0 && unloads == 1, "dropping unloads it");
        CHECK(nbdsdk_export_add_layer(exp, &l, sizeof l, &unloads, NULL) == 0, "add again");
        seen[0] = '\0';
        open_disk(TC_SIMPLE, false);
        CHECK(nbdsdk_export_add_layer(exp, &l, sizeof l, &unloads, NULL) == -EBUSY, "not once the server runs");
        uint8_t back[512];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0 && strcmp(seen, "B") == 0, "the layer serves: \"%s\"", seen);
        close_disk();
        CHECK(unloads == 2, "unloaded with the server: %d", unloads);
}

/* A dropped layer is gone from the chain. */
static void dropped_layer_is_not_called(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        nbdsdk_slot *slot;
        struct nbdsdk_layer l = { .name = "x", .pread = note_b };
        CHECK(nbdsdk_export_add_layer(nbdsdk_server_get_export(server, NULL), &l, sizeof l, NULL, &slot) == 0, "add");
        CHECK(nbdsdk_slot_drop(slot) == 0, "drop");
        seen[0] = '\0';
        open_disk(TC_SIMPLE, false);
        uint8_t back[512];
        CHECK(tc_read(tc, 0, 1, 0, back, sizeof back) == 0 && seen[0] == '\0', "not called: \"%s\"", seen);
        close_disk();
}

TCASE_MAIN(T(layer_changes_data_both_ways), T(layers_stack_by_priority), T(layers_see_long_reads_whole),
           T(missing_callbacks_pass_through),
           T(layer_capabilities_reach_the_client), T(next_calls_get_emulation_below),
           T(skipped_layer_leaves_the_chain), T(layer_refusing_fails_the_selection), T(next_calls_are_checked),
           T(deferring_backend_under_a_layer), T(registration_rules), T(dropped_layer_is_not_called))
