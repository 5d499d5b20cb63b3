/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The newstyle handshake: greeting, client flags, option framing and the
 * rules that keep the stream in sync (spec "Handshake phase"). */
#include <stdlib.h>
#include <time.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

static void greeting_is_fixed_newstyle(void) {
        disk_setup();
        tclient *tc = tc_connect(server);
        tc_read_greeting(tc); /* checks magics and FIXED_NEWSTYLE|NO_ZEROES */
        CHECK(tc_pending(tc) == 0, "nothing follows the greeting");
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "CLIENT_FLAGS") == 0, "waits for client flags");
        tc_free(tc);
        disk_teardown();
}

static void unknown_client_flags_drop_the_connection(void) {
        disk_setup();
        tclient *tc = tc_connect(server);
        tc_read_greeting(tc);
        tc_send_flags(tc, NBDSDK_FLAG_C_FIXED_NEWSTYLE | (1u << 5));
        CHECK(tc_closed(tc), "spec: the server MUST drop the connection on unknown client flags");
        tc_free(tc);
        disk_teardown();
}

static void unknown_option_gets_unsup_and_stream_stays_in_sync(void) {
        open_handshake();
        uint8_t junk[100];
        memset(junk, 0xaa, sizeof junk);
        tc_option_expect(tc, 1000, junk, sizeof junk, NBDSDK_REP_ERR_UNSUP);
        tc_option_expect(tc, 0x7fffffff, NULL, 0, NBDSDK_REP_ERR_UNSUP);
        tc_option_expect(tc, NBDSDK_OPT_PEEK_EXPORT, NULL, 0, NBDSDK_REP_ERR_UNSUP);
        /* The next option still parses. */
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ACK);
        close_disk();
}

static void bad_option_magic_drops_the_connection(void) {
        open_handshake();
        uint8_t h[16] = { 0 };
        wire_put64(h, 0x1122334455667788ull);
        tc_send(tc, h, sizeof h);
        CHECK(tc_closed(tc), "an option header without IHAVEOPT cannot be resynchronised");
        close_disk();
}

static void oversized_option_gets_too_big_and_is_skipped(void) {
        open_handshake();
        size_t n = 70000; /* over the default 65536 limit */
        uint8_t *big = calloc(1, n);
        tc_option_expect(tc, NBDSDK_OPT_LIST, big, (uint32_t) n, NBDSDK_REP_ERR_TOO_BIG);
        free(big);
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ACK);
        close_disk();
}

static void too_many_options_drop_the_connection(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_option_limits(server, 3, 4096) == 0, "setting option limits");
        tc = tc_connect_fixed(server);
        for (int i = 0; i < 3; i++)
                tc_option_expect(tc, 1000, NULL, 0, NBDSDK_REP_ERR_UNSUP);
        tc_send_option(tc, 1000, NULL, 0);
        CHECK(tc_closed(tc), "the fourth option is over the limit of three");
        close_disk();
}

static void client_vanishing_mid_option_closes_cleanly(void) {
        open_handshake();
        uint8_t h[16];
        wire_put64(h, NBDSDK_MAGIC_OPTS);
        wire_put32(h + 8, NBDSDK_OPT_LIST);
        wire_put32(h + 12, 10);
        tc_send(tc, h, sizeof h);
        tc_send(tc, "abc", 3);
        CHECK(!tc_closed(tc), "still waiting for the rest of the option");
        tc_hangup(tc);
        CHECK(tc_closed(tc), "closed once the client is gone");
        close_disk();
}

static void abort_gets_ack_then_close(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_ABORT, NULL, 0, NBDSDK_REP_ACK);
        CHECK(tc_closed(tc), "after ABORT's ACK the server closes");
        close_disk();
}

static void export_name_enters_transmission_without_zeroes(void) {
        open_handshake();
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "", 0);
        uint8_t r[10];
        tc_recv(tc, r, sizeof r);
        CHECK(wire_get64(r) == DISK_SIZE, "export size");
        CHECK(wire_get16(r + 8) & NBDSDK_FLAG_HAS_FLAGS, "HAS_FLAGS is always set");
        CHECK(tc_pending(tc) == 0, "NO_ZEROES negotiated: no 124 zero bytes");
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "REQ_HEADER") == 0, "in transmission");
        close_disk();
}

static void export_name_sends_zeroes_without_no_zeroes(void) {
        disk_setup();
        tclient *tc = tc_connect(server);
        tc_read_greeting(tc);
        tc_send_flags(tc, NBDSDK_FLAG_C_FIXED_NEWSTYLE);
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "", 0);
        uint8_t r[134];
        tc_recv(tc, r, sizeof r);
        for (int i = 10; i < 134; i++)
                CHECK(r[i] == 0, "124 zero bytes follow the export flags");
        tc_free(tc);
        disk_teardown();
}

static void export_name_unknown_drops_the_connection(void) {
        open_handshake();
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "nope", 4);
        CHECK(tc_closed(tc), "EXPORT_NAME has no error reply: unknown export means disconnect");
        close_disk();
}

static void non_fixed_client_may_only_send_export_name(void) {
        disk_setup();
        tclient *tc = tc_connect(server);
        tc_read_greeting(tc);
        tc_send_flags(tc, 0);
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        CHECK(tc_closed(tc), "a non-fixed-newstyle client cannot be answered");
        tc_free(tc);
        disk_teardown();
}

static void connections_are_numbered(void) {
        disk_setup();
        tclient *a = tc_connect(server), *b = tc_connect(server);
        CHECK(nbdsdk_conn_get_id(a->conn) == 1 && nbdsdk_conn_get_id(b->conn) == 2,
              "the server's first connections are 1 and 2, got %llu and %llu",
              (unsigned long long) nbdsdk_conn_get_id(a->conn), (unsigned long long) nbdsdk_conn_get_id(b->conn));
        tc_free(a);
        tclient *c = tc_connect(server);
        CHECK(nbdsdk_conn_get_id(c->conn) == 3, "numbers are not reused");
        CHECK(nbdsdk_conn_get_id(NULL) == 0, "NULL has 0");
        tc_free(b);
        tc_free(c);
        disk_teardown();
}

static void handshake_timeout_closes(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_timeouts(server, 1, 0) == 0, "timeouts");
        tclient *tc = tc_connect(server);
        uint64_t deadline = 0;
        CHECK(nbdsdk_conn_get_timeout(tc->conn, &deadline) == 0 && deadline != UINT64_MAX,
              "a handshake deadline is set");
        struct timespec ts = { 1, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        tc_run(tc);
        CHECK(tc_closed(tc), "the handshake deadline passed");
        tc_free(tc);
        disk_teardown();
}

TCASE_MAIN(T(greeting_is_fixed_newstyle), T(unknown_client_flags_drop_the_connection),
           T(unknown_option_gets_unsup_and_stream_stays_in_sync), T(bad_option_magic_drops_the_connection),
           T(oversized_option_gets_too_big_and_is_skipped), T(too_many_options_drop_the_connection),
           T(client_vanishing_mid_option_closes_cleanly), T(abort_gets_ack_then_close),
           T(export_name_enters_transmission_without_zeroes), T(export_name_sends_zeroes_without_no_zeroes),
           T(export_name_unknown_drops_the_connection), T(non_fixed_client_may_only_send_export_name),
           T(handshake_timeout_closes), T(connections_are_numbered))
