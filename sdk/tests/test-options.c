/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The options that are not about one export's details: NBD_OPT_LIST, ABORT,
 * STARTTLS, STRUCTURED_REPLY, EXTENDED_HEADERS, and options while the server
 * shuts down (spec "Option types", "TLS support", extension-ext-header). */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

static const uint8_t junk[] = { 0xde, 0xad, 0xbe, 0xef, 0, 1, 2 };

static void list_sends_name_and_description_then_ack(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        CHECK(nbdsdk_server_set_description(server, "a RAM disk") == 0, "description");
        tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_LIST, &r);
        CHECK(r.n == 2 && r.type[0] == NBDSDK_REP_SERVER && r.type[1] == NBDSDK_REP_ACK, "one SERVER, then ACK");
        CHECK(r.len[0] == 4 + 4 + 10 && wire_get32(r.data[0]) == 4, "name length 4, then name and description");
        CHECK(memcmp(r.data[0] + 4, "disk", 4) == 0 && memcmp(r.data[0] + 8, "a RAM disk", 10) == 0,
              "SERVER carries \"disk\" and its description");
        CHECK(r.len[1] == 0, "ACK has no data");
        tc_replies_free(&r);
        close_disk();
}

static void list_without_description_sends_the_name_only(void) {
        open_handshake();
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_LIST, &r);
        CHECK(r.n == 2 && r.type[0] == NBDSDK_REP_SERVER && r.len[0] == 4 && wire_get32(r.data[0]) == 0,
              "the default export \"\" with no description: 4 bytes of name length 0");
        tc_replies_free(&r);
        close_disk();
}

static void list_with_data_is_invalid(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_LIST, junk, sizeof junk, NBDSDK_REP_ERR_INVALID);
        tc_check_in_sync(tc);
        close_disk();
}

static void abort_is_acked_with_or_without_data(void) {
        disk_setup();
        for (int with_data = 0; with_data < 2; with_data++) {
                tclient *tc = tc_connect_fixed(server);
                tc_send_option(tc, NBDSDK_OPT_ABORT, junk, with_data ? sizeof junk : 0);
                tc_replies r;
                tc_option_replies(tc, NBDSDK_OPT_ABORT, &r);
                CHECK(r.n == 1 && r.type[0] == NBDSDK_REP_ACK && r.len[0] == 0,
                      "spec: ABORT MUST be answered with ACK (data %s)", with_data ? "ignored" : "none");
                tc_replies_free(&r);
                CHECK(tc_closed(tc), "the server closes after ABORT's ACK");
                tc_free(tc);
        }
        disk_teardown();
}

static void starttls_without_tls_is_refused_by_policy(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ERR_POLICY);
        tc_check_in_sync(tc);
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, junk, sizeof junk, NBDSDK_REP_ERR_INVALID);
        tc_check_in_sync(tc);
        /* Spec: a NOTLS server never sends ERR_TLS_REQD; everything still works. */
        uint64_t size = 0;
        tc_go(tc, "", &size, NULL);
        CHECK(size == DISK_SIZE, "GO works without TLS");
        close_disk();
}

static void structured_reply_is_acked(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, junk, sizeof junk, NBDSDK_REP_ERR_INVALID);
        tc_check_in_sync(tc);
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ACK);
        CHECK(tc_pending(tc) == 0, "nothing after the ACK");
        /* Reads now come back as structured chunks. */
        memcpy(td->data, "data", 4);
        td->written[0] = 1; /* not a hole, or the read would be sparse */
        tc_go(tc, "", NULL, NULL);
        tc_request(tc, 0, NBDSDK_CMD_READ, 5, 0, 4, NULL, 0);
        char buf[4];
        CHECK(tc_structured_read(tc, 5, 0, buf, 4, NULL, NULL) == 0 && memcmp(buf, "data", 4) == 0,
              "a structured read");
        close_disk();
}

static void structured_reply_after_extended_headers_is_refused(void) {
        open_handshake();
        tc_extended(tc);
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ERR_EXT_HEADER_REQD);
        tc_check_in_sync(tc);
        close_disk();
}

static void extended_headers_with_data_is_invalid_and_changes_nothing(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_EXTENDED_HEADERS, junk, sizeof junk, NBDSDK_REP_ERR_INVALID);
        tc_check_in_sync(tc);
        /* Not negotiated: EXPORT_NAME is still allowed and replies stay simple. */
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "", 0);
        uint8_t r[10];
        tc_recv(tc, r, sizeof r);
        CHECK(wire_get64(r) == DISK_SIZE, "EXPORT_NAME still works");
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 4, 0, 0, NULL, 0);
        CHECK(tc_simple_reply(tc, 4, NULL, 0) == 0, "a simple reply");
        close_disk();
}

static void export_name_after_extended_headers_drops_the_connection(void) {
        open_handshake();
        tc_extended(tc);
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "", 0);
        CHECK(tc_pending(tc) == 0, "no EXPORT_NAME reply");
        CHECK(tc_closed(tc), "EXPORT_NAME is forbidden after extended headers: the connection is closed");
        close_disk();
}

static void go_after_extended_headers_uses_32_byte_headers(void) {
        open_handshake();
        tc_extended(tc);
        tc_go(tc, "", NULL, NULL);
        /* A 32-byte request; a payload-less success is NONE+DONE in a 32-byte header. */
        tc_request(tc, 0, NBDSDK_CMD_FLUSH, 11, 0, 0, NULL, 0);
        uint16_t flags;
        uint64_t len;
        CHECK(tc_chunk(tc, 11, &flags, NULL, &len) == NBDSDK_REPLY_TYPE_NONE, "FLUSH answered with NONE");
        CHECK(flags == NBDSDK_REPLY_FLAG_DONE && len == 0, "a single, empty, final chunk");
        memcpy(td->data + 512, "ext", 3);
        td->written[0] = 1;
        tc_request(tc, 0, NBDSDK_CMD_READ, 12, 512, 3, NULL, 0);
        char buf[3];
        CHECK(tc_structured_read(tc, 12, 512, buf, 3, NULL, NULL) == 0 && memcmp(buf, "ext", 3) == 0,
              "a read answered with extended-header chunks");
        CHECK(tc_pending(tc) == 0, "nothing else");
        close_disk();
}

static void options_during_shutdown_get_err_shutdown(void) {
        open_handshake();
        CHECK(nbdsdk_server_shutdown(server, false) == 0, "shutdown");
        static const uint8_t go[6] = { 0 };
        tc_option_expect(tc, NBDSDK_OPT_LIST, NULL, 0, NBDSDK_REP_ERR_SHUTDOWN);
        tc_option_expect(tc, NBDSDK_OPT_INFO, go, sizeof go, NBDSDK_REP_ERR_SHUTDOWN);
        tc_option_expect(tc, NBDSDK_OPT_GO, go, sizeof go, NBDSDK_REP_ERR_SHUTDOWN);
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ERR_SHUTDOWN);
        tc_option_expect(tc, 1000, junk, sizeof junk, NBDSDK_REP_ERR_SHUTDOWN);
        CHECK(tc_pending(tc) == 0, "one reply each");
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "OPT_HEADER") == 0, "still in the handshake");
        /* Spec: the client then soft-disconnects, and ABORT is still ACKed. */
        tc_option_expect(tc, NBDSDK_OPT_ABORT, NULL, 0, NBDSDK_REP_ACK);
        CHECK(tc_closed(tc), "closed after ABORT");
        close_disk();
}

static void export_name_during_shutdown_drops_the_connection(void) {
        open_handshake();
        CHECK(nbdsdk_server_shutdown(server, false) == 0, "shutdown");
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, "", 0);
        CHECK(tc_pending(tc) == 0 && tc_closed(tc), "EXPORT_NAME has no error reply: the connection is closed");
        close_disk();
}

TCASE_MAIN(T(list_sends_name_and_description_then_ack), T(list_without_description_sends_the_name_only),
           T(list_with_data_is_invalid), T(abort_is_acked_with_or_without_data),
           T(starttls_without_tls_is_refused_by_policy), T(structured_reply_is_acked),
           T(structured_reply_after_extended_headers_is_refused),
           T(extended_headers_with_data_is_invalid_and_changes_nothing),
           T(export_name_after_extended_headers_drops_the_connection),
           T(go_after_extended_headers_uses_32_byte_headers), T(options_during_shutdown_get_err_shutdown),
           T(export_name_during_shutdown_drops_the_connection))
