/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Extending the protocol: a private option that, once negotiated, makes
 * private commands legal on that connection; replacing a built-in option;
 * and the registration rules (nbdsdk_option(3), nbdsdk_command(3)). */
#include <errno.h>
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

#define OPT_X_SYNC 0x4e530001u   /* a private option */
#define CMD_X_PUSH 0x40          /* payload in, writes, per connection, in range */
#define CMD_X_STATS 0x41         /* data out, per connection */

static char pushed[64];
static size_t pushed_len;
static unsigned handler_calls;

static int x_sync(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        CHECK(option == OPT_X_SYNC && ud == &handler_calls, "handler gets its option and userdata");
        handler_calls++;
        if (len != 5 || memcmp(data, "hello", 5) != 0)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_INVALID, "X_SYNC wants \"hello\", got %zu bytes", len);
        CHECK(nbdsdk_conn_enable_command(conn, CMD_X_PUSH) == 0, "enable push");
        CHECK(nbdsdk_conn_enable_command(conn, CMD_X_STATS) == 0, "enable stats");
        CHECK(nbdsdk_conn_enable_command(conn, 0x99) == -ENOENT, "unregistered command");
        uint8_t info[4];
        wire_put32(info, 2);
        CHECK(nbdsdk_conn_option_reply(conn, 0x42, info, sizeof info) == 0, "a non-final reply");
        CHECK(nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0) == 0, "final ACK");
        CHECK(nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0) == -EINVAL, "nothing after the final reply");
        return 0;
}

static int x_silent(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) conn; (void) option; (void) data; (void) len; (void) ud;
        return 0; /* forgets to answer */
}

static int x_list(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len; (void) ud;
        return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY, "listing is not allowed here");
}

static int x_push(nbdsdk_request *req, void *ud) {
        (void) ud;
        size_t len;
        const void *p = nbdsdk_request_get_payload(req, &len);
        CHECK(len == nbdsdk_request_get_length(req) && len <= sizeof pushed, "the payload has the request's length");
        memcpy(pushed, p, len);
        pushed_len = len;
        return 0;
}

static int x_stats(nbdsdk_request *req, void *ud) {
        (void) ud;
        char text[32];
        int n = snprintf(text, sizeof text, "calls=%u", handler_calls);
        return nbdsdk_request_set_reply_data(req, text, (size_t) n);
}

static void setup(bool read_only) {
        disk_setup();
        handler_calls = 0;
        pushed_len = 0;
        CHECK(nbdsdk_server_set_read_only(server, read_only) == 0, "read-only");
        CHECK(nbdsdk_server_add_option(server, OPT_X_SYNC, "X_SYNC", x_sync, &handler_calls, 0, NULL) == 0, "option");
        const struct nbdsdk_command push = { "X_PUSH", CMD_X_PUSH,
                NBDSDK_COMMAND_PAYLOAD | NBDSDK_COMMAND_WRITES | NBDSDK_COMMAND_PER_CONNECTION | NBDSDK_COMMAND_RANGE,
                64, x_push };
        const struct nbdsdk_command stats = { "X_STATS", CMD_X_STATS,
                NBDSDK_COMMAND_DATA_OUT | NBDSDK_COMMAND_PER_CONNECTION, 0, x_stats };
        CHECK(nbdsdk_server_add_command(server, &push, sizeof push, NULL, NULL) == 0, "push");
        CHECK(nbdsdk_server_add_command(server, &stats, sizeof stats, NULL, NULL) == 0, "stats");
}

static void send_push(tclient *tc, uint64_t cookie, uint64_t offset, const char *text) {
        size_t n = strlen(text);
        tc_request(tc, tc->extended ? NBDSDK_CMD_FLAG_PAYLOAD_LEN : 0, CMD_X_PUSH, cookie, offset, n, text, n);
}

static void private_commands_need_the_private_option(void) {
        setup(false);
        tclient *tc = tc_connect_fixed(server);
        tc_go(tc, "", NULL, NULL);
        send_push(tc, 1, 0, "abcdefgh");
        CHECK(tc_simple_reply(tc, 1, NULL, 0) == NBDSDK_EINVAL, "not negotiated: EINVAL");
        CHECK(pushed_len == 0, "the handler did not run");
        tc_request(tc, 0, CMD_X_STATS, 2, 0, 0, NULL, 0);
        CHECK(tc_simple_reply(tc, 2, NULL, 0) == NBDSDK_EINVAL, "not negotiated: EINVAL");
        /* The refused push's payload was skipped: the stream is in sync. */
        uint8_t buf[512];
        tc_request(tc, 0, NBDSDK_CMD_READ, 3, 0, sizeof buf, NULL, 0);
        CHECK(tc_simple_reply(tc, 3, buf, sizeof buf) == 0, "a read after the refused commands works");
        tc_request(tc, 0, 0x55, 4, 0, 0, NULL, 0);
        CHECK(tc_simple_reply(tc, 4, NULL, 0) == NBDSDK_EINVAL, "an unregistered command is unknown");
        tc_free(tc);
        disk_teardown();
}

static void negotiated_private_commands_work(void) {
        setup(false);
        for (int structured = 0; structured < 2; structured++) {
                tclient *tc = tc_connect_fixed(server);
                if (structured)
                        tc_structured(tc);
                tc_send_option(tc, OPT_X_SYNC, "hello", 5);
                uint8_t *d;
                uint32_t len;
                CHECK(tc_option_reply(tc, OPT_X_SYNC, &d, &len) == 0x42 && len == 4 && wire_get32(d) == 2,
                      "the handler's own reply type and data");
                free(d);
                CHECK(tc_option_reply(tc, OPT_X_SYNC, NULL, NULL) == NBDSDK_REP_ACK, "then its ACK");
                tc_go(tc, "", NULL, NULL);
                send_push(tc, 10, 4096, "abcdefgh");
                CHECK(tc_reply_status(tc, 10) == 0, "push succeeds");
                CHECK(pushed_len == 8 && memcmp(pushed, "abcdefgh", 8) == 0, "the handler got the payload");
                send_push(tc, 11, (1 << 20) - 4, "abcdefgh");
                CHECK(tc_reply_status(tc, 11) == NBDSDK_ENOSPC, "a range command past the end: ENOSPC");
                char big[100];
                memset(big, 'x', sizeof big - 1);
                big[sizeof big - 1] = 0;
                send_push(tc, 12, 0, big);
                CHECK(tc_reply_status(tc, 12) == NBDSDK_EINVAL, "over max_length: EINVAL");
                tc_request(tc, 0, CMD_X_STATS, 13, 0, 0, NULL, 0);
                char text[32] = "";
                if (structured) {
                        uint16_t flags;
                        uint8_t *p;
                        uint64_t plen;
                        CHECK(tc_chunk(tc, 13, &flags, &p, &plen) == NBDSDK_REPLY_TYPE_OFFSET_DATA &&
                              (flags & NBDSDK_REPLY_FLAG_DONE), "reply data as one final data chunk");
                        memcpy(text, p + 8, plen - 8);
                        free(p);
                } else
                        CHECK(tc_simple_reply(tc, 13, text, 7) == 0, "reply data after a simple reply");
                CHECK(strncmp(text, "calls=", 6) == 0, "the reply data: \"%s\"", text);
                tc_free(tc);
        }
        disk_teardown();
}

static void private_commands_under_extended_headers(void) {
        setup(false);
        tclient *tc = tc_connect_fixed(server);
        tc_extended(tc);
        tc_option_expect(tc, OPT_X_SYNC, "hello", 5, 0x42);
        CHECK(tc_option_reply(tc, OPT_X_SYNC, NULL, NULL) == NBDSDK_REP_ACK, "ACK");
        tc_go(tc, "", NULL, NULL);
        send_push(tc, 1, 0, "xyz");
        CHECK(tc_reply_status(tc, 1) == 0 && pushed_len == 3, "push with PAYLOAD_LEN");
        tc_request(tc, 0, CMD_X_PUSH, 2, 0, 3, NULL, 0);
        CHECK(tc_reply_status(tc, 2) == NBDSDK_EINVAL, "a payload command without PAYLOAD_LEN: EINVAL");
        tc_free(tc);
        disk_teardown();
}

static void writing_command_on_read_only_export(void) {
        setup(true);
        tclient *tc = tc_connect_fixed(server);
        tc_option_expect(tc, OPT_X_SYNC, "hello", 5, 0x42);
        CHECK(tc_option_reply(tc, OPT_X_SYNC, NULL, NULL) == NBDSDK_REP_ACK, "ACK");
        tc_go(tc, "", NULL, NULL);
        send_push(tc, 1, 0, "abc");
        CHECK(tc_simple_reply(tc, 1, NULL, 0) == NBDSDK_EPERM, "a writing command on a read-only export: EPERM");
        CHECK(pushed_len == 0, "the handler did not run");
        tc_free(tc);
        disk_teardown();
}

static void malformed_private_option_and_silent_handler(void) {
        setup(false);
        CHECK(nbdsdk_server_add_option(server, 0x4e530002, "X_SILENT", x_silent, NULL, 0, NULL) == 0, "silent");
        tclient *tc = tc_connect_fixed(server);
        tc_option_expect(tc, OPT_X_SYNC, "bye", 3, NBDSDK_REP_ERR_INVALID);
        tc_option_expect(tc, 0x4e530002, NULL, 0, NBDSDK_REP_ERR_INVALID);
        tc_check_in_sync(tc);
        tc_go(tc, "", NULL, NULL);
        send_push(tc, 1, 0, "abc");
        CHECK(tc_simple_reply(tc, 1, NULL, 0) == NBDSDK_EINVAL, "a failed negotiation enables nothing");
        tc_free(tc);
        disk_teardown();
}

static void replacing_a_builtin_option(void) {
        setup(false);
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, NULL, 0, NULL) == -EEXIST,
              "taken without REPLACE");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, NULL, NBDSDK_OPTION_REPLACE, NULL) == 0,
              "replaced");
        tclient *tc = tc_connect_fixed(server);
        tc_option_expect(tc, NBDSDK_OPT_LIST, NULL, 0, NBDSDK_REP_ERR_POLICY);
        tc_free(tc);
        disk_teardown();
}

/* A stricter GO/INFO on top of the built-in one: "secret" is refused,
 * "alias" is served as the default export (the request is rewritten), and
 * everything else goes to the built-in handler unchanged. */
static int x_go(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) ud;
        const uint8_t *d = data;
        uint32_t n = len >= 4 ? wire_get32(d) : 0;
        if (len >= 4 + 6 && n == 6 && memcmp(d + 4, "secret", 6) == 0)
                return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY, "not this one");
        if (len >= 4 + 5 && n == 5 && memcmp(d + 4, "alias", 5) == 0) {
                uint8_t rewritten[64];
                CHECK(len - 5 <= sizeof rewritten, "small request");
                wire_put32(rewritten, 0);
                memcpy(rewritten + 4, d + 9, len - 9);
                return nbdsdk_conn_option_next(conn, rewritten, len - 5);
        }
        return nbdsdk_conn_option_next(conn, data, len);
}

/* On top of x_list (an extension's replacement of LIST): misuse is refused,
 * then x_list answers. */
static int x_list_wrapper(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) ud;
        CHECK(nbdsdk_conn_option_next(NULL, data, len) == -EINVAL, "no connection");
        CHECK(nbdsdk_conn_option_next(conn, NULL, 4) == -EINVAL, "no data with a length");
        return nbdsdk_conn_option_next(conn, data, len);
}

/* Replies, then tries to pass the option on. */
static int x_reply_then_next(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) ud;
        CHECK(nbdsdk_conn_option_reply(conn, 0x42, "x", 1) == 0, "a reply of its own");
        CHECK(nbdsdk_conn_option_next(conn, data, len) == -EINVAL, "no passing on after a reply of its own");
        return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_INVALID, "done");
}

/* A private option replaced nothing. */
static int x_alone(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) ud;
        CHECK(nbdsdk_conn_option_next(conn, data, len) == -EINVAL, "nothing was replaced");
        return nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0);
}

static void replacing_handler_calls_the_replaced_one(void) {
        setup(false);
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_GO, "GO", x_go, NULL, NBDSDK_OPTION_REPLACE, NULL) == 0, "GO");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_INFO, "INFO", x_go, NULL, NBDSDK_OPTION_REPLACE, NULL) == 0,
              "INFO");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, NULL, NBDSDK_OPTION_REPLACE, NULL) == 0 &&
              nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list_wrapper, NULL, NBDSDK_OPTION_REPLACE,
                                       NULL) == 0, "two LIST replacements");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_STRUCTURED_REPLY, "SR", x_reply_then_next, NULL,
                                       NBDSDK_OPTION_REPLACE, NULL) == 0, "structured replies");
        CHECK(nbdsdk_server_add_option(server, 0x4e530003, "X_ALONE", x_alone, NULL, 0, NULL) == 0, "private");
        tclient *tc = tc_connect_fixed(server);
        CHECK(nbdsdk_conn_option_next(tc->conn, NULL, 0) == -EINVAL, "not inside a handler");
        uint8_t req[32];
        /* INFO "secret": refused by the extension. */
        wire_put32(req, 6);
        memcpy(req + 4, "secret", 6);
        wire_put16(req + 10, 0);
        tc_option_expect(tc, NBDSDK_OPT_INFO, req, 12, NBDSDK_REP_ERR_POLICY);
        /* INFO "nope": the built-in handler does not know it. */
        memcpy(req + 4, "nope\0\0", 6);
        wire_put32(req, 4);
        wire_put16(req + 8, 0);
        tc_option_expect(tc, NBDSDK_OPT_INFO, req, 10, NBDSDK_REP_ERR_UNKNOWN);
        /* The stack of extensions: the wrapper passes LIST on to x_list. */
        tc_option_expect(tc, NBDSDK_OPT_LIST, NULL, 0, NBDSDK_REP_ERR_POLICY);
        tc_replies r;
        tc_send_option(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0);
        tc_option_replies(tc, NBDSDK_OPT_STRUCTURED_REPLY, &r);
        CHECK(r.n == 2 && r.type[0] == 0x42 && r.type[1] == NBDSDK_REP_ERR_INVALID,
              "the handler's own replies only, after refusing to pass the option on");
        tc_replies_free(&r);
        tc_option_expect(tc, 0x4e530003, NULL, 0, NBDSDK_REP_ACK);
        /* GO "alias": rewritten to the default export, served by the built-in GO. */
        wire_put32(req, 5);
        memcpy(req + 4, "alias", 5);
        wire_put16(req + 9, 0);
        tc_send_option(tc, NBDSDK_OPT_GO, req, 11);
        tc_option_replies(tc, NBDSDK_OPT_GO, &r);
        CHECK(r.n >= 2 && r.type[r.n - 1] == NBDSDK_REP_ACK && r.type[0] == NBDSDK_REP_INFO, "GO answered by the built-in");
        CHECK(r.len[0] == 12 && wire_get16(r.data[0]) == NBDSDK_INFO_EXPORT && wire_get64(r.data[0] + 2) == td->size,
              "the default export's size");
        tc_replies_free(&r);
        /* Transmission on the default export. */
        uint8_t buf[512];
        tc_request(tc, 0, NBDSDK_CMD_READ, 9, 0, sizeof buf, NULL, 0);
        CHECK(tc_simple_reply(tc, 9, buf, sizeof buf) == 0, "a read after GO");
        tc_free(tc);
        disk_teardown();
}

static void registration_rules(void) {
        setup(false);
        struct nbdsdk_command c = { "X", NBDSDK_CMD_FLUSH, 0, 0, x_push };
        CHECK(nbdsdk_server_add_command(server, &c, sizeof c, NULL, NULL) == -EEXIST, "a standard number is taken");
        c.type = CMD_X_PUSH;
        CHECK(nbdsdk_server_add_command(server, &c, sizeof c, NULL, NULL) == -EEXIST, "registered twice");
        c.type = 0x60;
        c.flags = 1u << 20;
        CHECK(nbdsdk_server_add_command(server, &c, sizeof c, NULL, NULL) == -EINVAL, "unknown flags");
        c.flags = 0;
        c.handle = NULL;
        CHECK(nbdsdk_server_add_command(server, &c, sizeof c, NULL, NULL) == -EINVAL, "no handler");
        CHECK(nbdsdk_server_add_command(server, &c, 4, NULL, NULL) == -EINVAL, "too small a struct");
        CHECK(nbdsdk_server_add_option(server, 7000, "X", NULL, NULL, 0, NULL) == -EINVAL, "no handler");
        CHECK(nbdsdk_server_add_option(server, 7000, "X", x_list, NULL, 1u << 9, NULL) == -EINVAL, "unknown flags");
        CHECK(nbdsdk_conn_option_reply(NULL, NBDSDK_REP_ACK, NULL, 0) == -EINVAL, "no connection");
        tclient *tc = tc_connect_fixed(server); /* the server runs now */
        CHECK(nbdsdk_conn_option_reply(tc->conn, NBDSDK_REP_ACK, NULL, 0) == -EINVAL, "not inside a handler");
        c.type = 0x61;
        c.handle = x_push;
        CHECK(nbdsdk_server_add_command(server, &c, sizeof c, NULL, NULL) == -EBUSY, "after start");
        CHECK(nbdsdk_server_add_option(server, 7000, "X", x_list, NULL, 0, NULL) == -EBUSY, "after start");
        tc_free(tc);
        disk_teardown();
}

/* A metadata namespace with two contexts: x-test:dirty (status 4 on the first
 * 8 KiB, 0 after) and x-test:epoch (one extent of status 7). */
static int ns_list(nbdsdk_conn *conn, const char *export_name, const char *query, nbdsdk_meta_list *list,
                   void *ud) {
        (void) conn; (void) ud;
        CHECK(strcmp(export_name, "") == 0, "list gets the export name");
        CHECK(nbdsdk_meta_list_add(list, "base:allocation") == -EINVAL, "only this namespace's names");
        int r = 0;
        if (!query[0] || strcmp(query, "dirty") == 0)
                r = nbdsdk_meta_list_add(list, "x-test:dirty");
        if (r == 0 && (!query[0] || strcmp(query, "epoch") == 0))
                r = nbdsdk_meta_list_add(list, "x-test:epoch");
        return r;
}

static int ns_select(nbdsdk_conn *conn, const char *export_name, const char *context, void *ud) {
        (void) conn; (void) export_name; (void) ud;
        return strcmp(context, "x-test:dirty") == 0 || strcmp(context, "x-test:epoch") == 0;
}

static int ns_status(nbdsdk_request *req, const char *context, uint64_t count, uint64_t offset, uint32_t flags,
                     nbdsdk_extents *ext, void *ud) {
        (void) req; (void) flags; (void) ud;
        if (strcmp(context, "x-test:epoch") == 0)
                return nbdsdk_extents_add(ext, count, 7);
        int r = offset < 8192 ? nbdsdk_extents_add(ext, 8192 - offset, 4) : 0;
        return r < 0 ? r : nbdsdk_extents_add(ext, count, 0);
}

static const struct nbdsdk_meta_namespace x_test = {
        .name = "x-test", .list = ns_list, .select = ns_select, .block_status = ns_status,
};

/* Send a LIST or SET with QUERIES; collect the context names (and ids). */
static unsigned meta_option(tclient *tc, uint32_t option, const char *const *queries, unsigned nq,
                            char names[][32], uint32_t *ids) {
        uint8_t buf[512];
        size_t pos = 8;
        wire_put32(buf, 0);
        wire_put32(buf + 4, nq);
        for (unsigned i = 0; i < nq; i++) {
                size_t l = strlen(queries[i]);
                wire_put32(buf + pos, (uint32_t) l);
                memcpy(buf + pos + 4, queries[i], l);
                pos += 4 + l;
        }
        tc_send_option(tc, option, buf, (uint32_t) pos);
        unsigned n = 0;
        for (;;) {
                uint8_t *d;
                uint32_t len;
                uint32_t type = tc_option_reply(tc, option, &d, &len);
                if (type == NBDSDK_REP_ACK) {
                        free(d);
                        return n;
                }
                CHECK(type == NBDSDK_REP_META_CONTEXT && len > 4 && len - 4 < 32, "a META_CONTEXT reply (0x%x)", type);
                ids[n] = wire_get32(d);
                memcpy(names[n], d + 4, len - 4);
                names[n][len - 4] = 0;
                n++;
                free(d);
        }
}

static void registered_metadata_namespace(void) {
        setup(false);
        CHECK(nbdsdk_server_add_meta_namespace(server, &x_test, sizeof x_test, NULL, NULL) == 0, "register");
        CHECK(nbdsdk_server_add_meta_namespace(server, &x_test, sizeof x_test, NULL, NULL) == -EEXIST, "twice");
        struct nbdsdk_meta_namespace bad = x_test;
        bad.name = "base";
        CHECK(nbdsdk_server_add_meta_namespace(server, &bad, sizeof bad, NULL, NULL) == -EEXIST, "base is taken");
        bad.name = "x:y";
        CHECK(nbdsdk_server_add_meta_namespace(server, &bad, sizeof bad, NULL, NULL) == -EINVAL, "a colon in the name");
        tclient *tc = tc_connect_fixed(server);
        tc_structured(tc);
        char names[8][32];
        uint32_t ids[8];
        unsigned n = meta_option(tc, NBDSDK_OPT_LIST_META_CONTEXT, NULL, 0, names, ids);
        CHECK(n == 3 && strcmp(names[0], "base:allocation") == 0 && strcmp(names[1], "x-test:dirty") == 0 &&
              strcmp(names[2], "x-test:epoch") == 0, "LIST with no query lists every namespace (%u)", n);
        const char *q1[] = { "x-test:dirty" };
        n = meta_option(tc, NBDSDK_OPT_LIST_META_CONTEXT, q1, 1, names, ids);
        CHECK(n == 1 && strcmp(names[0], "x-test:dirty") == 0 && ids[0] == 0, "LIST one context, id 0");
        const char *q2[] = { "x-test:dirty", "x-other:thing", "base:allocation", "x-test:nope" };
        n = meta_option(tc, NBDSDK_OPT_SET_META_CONTEXT, q2, 4, names, ids);
        CHECK(n == 2 && strcmp(names[0], "x-test:dirty") == 0 && strcmp(names[1], "base:allocation") == 0 &&
              ids[0] != ids[1] && ids[0] && ids[1], "SET selects the known contexts with distinct ids");
        tc_go(tc, "", NULL, NULL);
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 9, 4096, 65536, NULL, 0);
        bool seen_dirty = false, seen_base = false;
        for (int chunk = 0; chunk < 2; chunk++) {
                uint16_t flags;
                uint8_t *p;
                uint64_t len;
                CHECK(tc_chunk(tc, 9, &flags, &p, &len) == NBDSDK_REPLY_TYPE_BLOCK_STATUS, "a block status chunk");
                CHECK(!(flags & NBDSDK_REPLY_FLAG_DONE) == (chunk == 0), "only the last chunk is final");
                uint32_t id = wire_get32(p);
                if (id == ids[0]) {
                        CHECK(len == 4 + 16 && wire_get32(p + 4) == 4096 && wire_get32(p + 8) == 4 &&
                              wire_get32(p + 16) == 0, "x-test:dirty's own statuses");
                        seen_dirty = true;
                } else {
                        CHECK(id == ids[1], "the other chunk is base:allocation's");
                        seen_base = true;
                }
                free(p);
        }
        CHECK(seen_dirty && seen_base, "one chunk per selected context");
        tc_free(tc);
        disk_teardown();
}

TCASE_MAIN(T(private_commands_need_the_private_option), T(negotiated_private_commands_work),
           T(private_commands_under_extended_headers), T(writing_command_on_read_only_export),
           T(malformed_private_option_and_silent_handler), T(replacing_a_builtin_option),
           T(replacing_handler_calls_the_replaced_one), T(registration_rules),
           T(registered_metadata_namespace))
