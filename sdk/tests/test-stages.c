/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request stages (nbdsdk_stage(3)): verdicts, waiting and resuming from
 * another thread, per-connection compilation, per-request conditions,
 * order, the four points, and the registration rules. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include "fixture.h"
#include "tcase.h"
#include "wire-internal.h"

/* What the stages saw, in order: one letter per run. */
static char trace[64];
static int verdict;              /* what the "gate" stage returns */
static nbdsdk_request *parked;   /* the request a deferring stage holds */
static int seen_result;

static void note(char c) {
        size_t n = strlen(trace);
        if (n + 1 < sizeof trace) {
                trace[n] = c;
                trace[n + 1] = 0;
        }
}

static int gate(nbdsdk_request *req, void *ud) {
        (void) ud;
        note('g');
        if (verdict == NBDSDK_DEFER)
                parked = req;
        return verdict;
}

static int first(nbdsdk_request *req, void *ud) { (void) req; (void) ud; note('1'); return NBDSDK_CONTINUE; }
static int second(nbdsdk_request *req, void *ud) { (void) req; (void) ud; note('2'); return NBDSDK_CONTINUE; }

static int after(nbdsdk_request *req, void *ud) {
        (void) ud;
        note('a');
        seen_result = nbdsdk_request_get_result(req);
        return verdict == -EROFS ? -EROFS : NBDSDK_CONTINUE;
}

static int replied(nbdsdk_request *req, void *ud) { (void) req; (void) ud; note('r'); return NBDSDK_CONTINUE; }

static int refuse_trim(nbdsdk_request *req, void *ud) {
        (void) ud;
        note('x');
        return nbdsdk_request_get_command(req) == NBDSDK_CMD_WRITE ? -EPERM : NBDSDK_CONTINUE;
}

static int only_flagged(nbdsdk_conn *conn, void *ud) { (void) ud; return nbdsdk_conn_get_flags(conn) & 1; }

static void add(const char *name, int point, int priority, uint64_t commands, uint32_t flags,
                int (*enabled)(nbdsdk_conn *, void *), int (*run)(nbdsdk_request *, void *)) {
        const struct nbdsdk_stage st = { name, point, priority, commands, flags, enabled, run };
        CHECK(nbdsdk_server_add_stage(server, &st, sizeof st, NULL, NULL) == 0, "register %s", name);
}

static void start(void) {
        trace[0] = 0;
        verdict = NBDSDK_CONTINUE;
        parked = NULL;
        seen_result = 1;
        disk_setup();
}

static uint32_t read_block(uint64_t cookie) {
        uint8_t buf[512];
        return tc_read(tc, 0, cookie, 0, buf, sizeof buf);
}

static void verdicts_before_the_data_path(void) {
        start();
        add("gate", NBDSDK_STAGE_BEFORE_DATA, 0, 0, 0, NULL, gate);
        add("after", NBDSDK_STAGE_AFTER_DATA, 0, 0, 0, NULL, after);
        open_disk(TC_SIMPLE, false);
        CHECK(read_block(1) == 0, "CONTINUE: served");
        CHECK(strcmp(td->log, "r") == 0 && strcmp(trace, "ga") == 0 && seen_result == 0,
              "CONTINUE runs the data path, then the after stage (%s, %s)", td->log, trace);
        td_clear_log(td);
        trace[0] = 0;
        verdict = NBDSDK_HANDLED;
        CHECK(read_block(2) == 0, "HANDLED: success");
        CHECK(td->log[0] == 0 && strcmp(trace, "ga") == 0, "HANDLED skips the data path, not the after stages");
        trace[0] = 0;
        verdict = -EIO;
        CHECK(read_block(3) == NBDSDK_EIO, "-EIO fails the request");
        CHECK(td->log[0] == 0 && seen_result == -EIO, "the after stage sees the failure");
        close_disk();
}

static void after_data_stage_replaces_the_result(void) {
        start();
        add("after", NBDSDK_STAGE_AFTER_DATA, 0, 0, 0, NULL, after);
        open_disk(TC_STRUCTURED, false);
        verdict = -EROFS;
        CHECK(read_block(1) == NBDSDK_EPERM, "an after stage's -EROFS becomes EPERM on the wire");
        CHECK(strcmp(td->log, "r") == 0, "the data path ran first");
        close_disk();
}

static void *resume_later(void *arg) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        CHECK(nbdsdk_request_resume(arg) == 0, "resume from another thread");
        CHECK(nbdsdk_request_resume(arg) == -EALREADY, "only once");
        return NULL;
}

static void deferred_stage_resumed_or_completed(void) {
        start();
        add("gate", NBDSDK_STAGE_BEFORE_DATA, 0, NBDSDK_COMMAND_BIT(NBDSDK_CMD_READ), 0, NULL, gate);
        open_disk(TC_SIMPLE, false);
        verdict = NBDSDK_DEFER;
        tc_request(tc, 0, NBDSDK_CMD_READ, 7, 0, 512, NULL, 0);
        CHECK(parked && tc_pending(tc) == 0 && td->log[0] == 0, "the request waits in the stage");
        pthread_t t;
        CHECK(pthread_create(&t, NULL, resume_later, parked) == 0, "thread");
        pthread_join(t, NULL);
        uint8_t buf[512];
        CHECK(tc_simple_reply(tc, 7, buf, sizeof buf) == 0, "resumed: the data path ran and replied");
        CHECK(strcmp(td->log, "r") == 0, "one pread after the resume");
        td_clear_log(td);
        parked = NULL;
        tc_request(tc, 0, NBDSDK_CMD_READ, 8, 0, 512, NULL, 0);
        CHECK(parked && nbdsdk_request_complete(parked, -ENOSPC) == 0, "complete the waiting stage");
        CHECK(tc_simple_reply(tc, 8, NULL, 0) == NBDSDK_ENOSPC, "completed: that result, no data path");
        CHECK(td->log[0] == 0, "no backend call");
        close_disk();
}

static void per_connection_and_per_request_conditions(void) {
        start();
        add("flagged", NBDSDK_STAGE_BEFORE_DATA, 0, 0, 0, only_flagged, first);
        add("fua", NBDSDK_STAGE_BEFORE_DATA, 1, NBDSDK_COMMAND_BIT(NBDSDK_CMD_WRITE), NBDSDK_FUA, NULL, second);
        open_disk(TC_SIMPLE, false);
        CHECK(strcmp(nbdsdk_conn_get_stage_chain(tc->conn), "before_data: fua") == 0,
              "the flagged stage is compiled out: \"%s\"", nbdsdk_conn_get_stage_chain(tc->conn));
        uint8_t block[512] = { 0 };
        CHECK(tc_write(tc, 0, 1, 0, block, sizeof block) == 0 && trace[0] == 0, "no FUA: the stage is skipped");
        CHECK(tc_write(tc, NBDSDK_CMD_FLAG_FUA, 2, 0, block, sizeof block) == 0 && strcmp(trace, "2") == 0,
              "FUA: the stage runs");
        CHECK(read_block(3) == 0 && strcmp(trace, "2") == 0, "not for reads");
        tc_free(tc);
        tc = NULL;
        /* A connection whose flag is set before transmission gets the stage. */
        tc = tc_connect_fixed(server);
        CHECK(nbdsdk_conn_set_flags(tc->conn, 1, 1) == 0 && nbdsdk_conn_get_flags(tc->conn) == 1, "flags");
        tc_go(tc, "", NULL, NULL);
        CHECK(strcmp(nbdsdk_conn_get_stage_chain(tc->conn), "before_data: flagged, fua") == 0,
              "compiled in: \"%s\"", nbdsdk_conn_get_stage_chain(tc->conn));
        trace[0] = 0;
        uint8_t buf[512];
        tc_request(tc, 0, NBDSDK_CMD_READ, 4, 0, 512, NULL, 0);
        CHECK(tc_simple_reply(tc, 4, buf, sizeof buf) == 0 && strcmp(trace, "1") == 0,
              "the flagged stage runs on this connection");
        close_disk();
}

static void order_points_and_received(void) {
        start();
        add("second", NBDSDK_STAGE_BEFORE_DATA, 5, 0, 0, NULL, second);
        add("first", NBDSDK_STAGE_BEFORE_DATA, -5, 0, 0, NULL, first);
        add("replied", NBDSDK_STAGE_AFTER_REPLY, 0, 0, 0, NULL, replied);
        add("refuse", NBDSDK_STAGE_RECEIVED, 0, NBDSDK_COMMAND_BIT(NBDSDK_CMD_WRITE), 0, NULL, refuse_trim);
        open_disk(TC_SIMPLE, false);
        CHECK(strcmp(nbdsdk_conn_get_stage_chain(tc->conn),
                     "received: refuse; before_data: first, second; after_reply: replied") == 0,
              "chain: \"%s\"", nbdsdk_conn_get_stage_chain(tc->conn));
        CHECK(read_block(1) == 0, "read");
        CHECK(strcmp(trace, "12r") == 0, "priority order, then after the reply: \"%s\"", trace);
        trace[0] = 0;
        uint8_t block[512] = { 0 };
        CHECK(tc_write(tc, 0, 2, 0, block, sizeof block) == NBDSDK_EPERM, "refused when received");
        CHECK(strcmp(trace, "xr") == 0 && td->log[0] != 'w', "nothing else ran: \"%s\"", trace);
        CHECK(read_block(3) == 0, "the refused write's payload was skipped: in sync");
        close_disk();
}

static void registration_rules(void) {
        start();
        struct nbdsdk_stage st = { "x", 9, 0, 0, 0, NULL, first };
        CHECK(nbdsdk_server_add_stage(server, &st, sizeof st, NULL, NULL) == -EINVAL, "unknown point");
        st.point = NBDSDK_STAGE_AFTER_DATA;
        st.run = NULL;
        CHECK(nbdsdk_server_add_stage(server, &st, sizeof st, NULL, NULL) == -EINVAL, "no run");
        st.run = first;
        CHECK(nbdsdk_server_add_stage(server, &st, 8, NULL, NULL) == -EINVAL, "struct too small");
        CHECK(nbdsdk_server_add_stage(NULL, &st, sizeof st, NULL, NULL) == -EINVAL, "NULL server");
        open_disk(TC_SIMPLE, false);
        CHECK(nbdsdk_server_add_stage(server, &st, sizeof st, NULL, NULL) == -EBUSY, "after start");
        CHECK(strcmp(nbdsdk_conn_get_stage_chain(tc->conn), "") == 0, "no stages, empty chain");
        CHECK(nbdsdk_request_resume(NULL) == -EINVAL && nbdsdk_conn_set_flags(NULL, 1, 1) == -EINVAL, "NULL");
        close_disk();
}

TCASE_MAIN(T(verdicts_before_the_data_path), T(after_data_stage_replaces_the_result),
           T(deferred_stage_resumed_or_completed), T(per_connection_and_per_request_conditions),
           T(order_points_and_received), T(registration_rules))
