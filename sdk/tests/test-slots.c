/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slots (nbdsdk_slot(3)): every kind of registration hands one out, and
 * dropping it makes the registration gone for clients; the number or name is
 * free again; nothing is dropped while the server runs; a dropped
 * replacement brings back what it replaced. */
#include <errno.h>
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

#define OPT_X 0x4e530001u
#define CMD_X 0x40

static int x_ack(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len; (void) ud;
        return nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0);
}

/* An answer to LIST that tells who gave it: an error carrying UD's text. */
static int x_list(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len;
        return nbdsdk_conn_option_error(conn, NBDSDK_REP_ERR_POLICY, "%s", (const char *) ud);
}

static int x_cmd(nbdsdk_request *req, void *ud) {
        (void) req; (void) ud;
        return 0;
}

static const struct nbdsdk_command cmd_x = { "X", CMD_X, 0, 0, x_cmd };

static unsigned key_calls;
static int x_key(nbdsdk_export *exp, const char *key, const char *value, void *ud) {
        (void) exp; (void) key; (void) value; (void) ud;
        key_calls++;
        return 0;
}

static unsigned stage_runs;
static int x_stage(nbdsdk_request *req, void *ud) {
        (void) req; (void) ud;
        stage_runs++;
        return NBDSDK_CONTINUE;
}

static const struct nbdsdk_stage stage_x = { "x", NBDSDK_STAGE_BEFORE_DATA, 0, 0, 0, NULL, x_stage };

static int ns_list(nbdsdk_conn *conn, const char *export_name, const char *query, nbdsdk_meta_list *list,
                   void *ud) {
        (void) conn; (void) export_name; (void) query; (void) ud;
        return nbdsdk_meta_list_add(list, "x-slot:one");
}

static int ns_select(nbdsdk_conn *conn, const char *export_name, const char *context, void *ud) {
        (void) conn; (void) export_name; (void) context; (void) ud;
        return 1;
}

static int ns_status(nbdsdk_request *req, const char *context, uint64_t count, uint64_t offset, uint32_t flags,
                     nbdsdk_extents *ext, void *ud) {
        (void) req; (void) context; (void) offset; (void) flags; (void) ud;
        return nbdsdk_extents_add(ext, count, 0);
}

static const struct nbdsdk_meta_namespace ns_x = {
        .name = "x-slot", .list = ns_list, .select = ns_select, .block_status = ns_status,
};

/* The reply type OPTION gets on a fresh connection; its message in MSG. */
static uint32_t ask(uint32_t option, char *msg, size_t msgsize) {
        tclient *tc = tc_connect_fixed(server);
        tc_send_option(tc, option, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, option, &r);
        uint32_t type = r.type[r.n - 1];
        if (msg)
                snprintf(msg, msgsize, "%s", (char *) r.data[r.n - 1]);
        CHECK(r.n == 1 || option == NBDSDK_OPT_LIST, "one reply to option %u", option);
        tc_replies_free(&r);
        tc_free(tc);
        return type;
}

static void dropped_option_is_unsupported(void) {
        disk_setup();
        nbdsdk_slot *slot = NULL, *again = NULL;
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_ack, NULL, 0, &slot) == 0 && slot, "a slot");
        nbdsdk_slot *untouched = NULL;
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_ack, NULL, 0, &untouched) == -EEXIST && !untouched,
              "still taken, and no slot for a failed registration");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_ack, NULL, 0, &again) == 0, "the number is free again");
        CHECK(nbdsdk_slot_drop(again) == 0, "dropped again");
        CHECK(ask(OPT_X, NULL, 0) == NBDSDK_REP_ERR_UNSUP, "a dropped option is unknown to clients");
        disk_teardown();

        disk_setup();
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_ack, NULL, 0, &slot) == 0, "registered");
        CHECK(ask(OPT_X, NULL, 0) == NBDSDK_REP_ACK, "the option answers");
        CHECK(nbdsdk_slot_drop(slot) == -EBUSY, "no drop while the server runs");
        CHECK(ask(OPT_X, NULL, 0) == NBDSDK_REP_ACK, "a refused drop leaves the option in place");
        disk_teardown(); /* the slot goes with the server */
}

static void dropped_replacement_restores_the_builtin(void) {
        disk_setup();
        nbdsdk_slot *slot;
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "A", 0, &slot) == -EEXIST,
              "taken without REPLACE");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "A", NBDSDK_OPTION_REPLACE,
                                       &slot) == 0, "replaced");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(ask(NBDSDK_OPT_LIST, NULL, 0) == NBDSDK_REP_ACK, "the built-in LIST answers again");
        disk_teardown();
}

static void replacements_stack(void) {
        disk_setup();
        nbdsdk_slot *a, *b;
        char msg[64];
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "A", NBDSDK_OPTION_REPLACE, &a) == 0,
              "A replaces the built-in");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "B", NBDSDK_OPTION_REPLACE, &b) == 0,
              "B replaces A");
        CHECK(nbdsdk_slot_drop(a) == 0, "A, underneath, dropped");
        CHECK(ask(NBDSDK_OPT_LIST, msg, sizeof msg) == NBDSDK_REP_ERR_POLICY && strcmp(msg, "B") == 0,
              "B still answers (\"%s\")", msg);
        disk_teardown();

        disk_setup();
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "A", NBDSDK_OPTION_REPLACE, &a) == 0,
              "A replaces the built-in");
        CHECK(nbdsdk_server_add_option(server, NBDSDK_OPT_LIST, "LIST", x_list, "B", NBDSDK_OPTION_REPLACE, &b) == 0,
              "B replaces A");
        CHECK(nbdsdk_slot_drop(b) == 0, "B dropped");
        CHECK(ask(NBDSDK_OPT_LIST, msg, sizeof msg) == NBDSDK_REP_ERR_POLICY && strcmp(msg, "A") == 0,
              "A answers again (\"%s\")", msg);
        disk_teardown();
}

/* CMD_X on a connection in transmission: the NBD error. */
static uint32_t send_cmd_x(void) {
        tclient *tc = tc_connect_fixed(server);
        tc_go(tc, "", NULL, NULL);
        tc_request(tc, 0, CMD_X, 1, 0, 0, NULL, 0);
        uint32_t error = tc_simple_reply(tc, 1, NULL, 0);
        tc_free(tc);
        return error;
}

static void dropped_command_is_invalid(void) {
        disk_setup();
        nbdsdk_slot *slot;
        CHECK(nbdsdk_server_add_command(server, &cmd_x, sizeof cmd_x, NULL, &slot) == 0, "registered");
        CHECK(nbdsdk_server_add_command(server, &cmd_x, sizeof cmd_x, NULL, NULL) == -EEXIST, "still taken");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(send_cmd_x() == NBDSDK_EINVAL, "a dropped command is unknown: EINVAL");
        disk_teardown();

        disk_setup();
        CHECK(nbdsdk_server_add_command(server, &cmd_x, sizeof cmd_x, NULL, &slot) == 0, "registered");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(nbdsdk_server_add_command(server, &cmd_x, sizeof cmd_x, NULL, &slot) == 0, "the number is free again");
        CHECK(send_cmd_x() == 0, "the command registered again works");
        CHECK(nbdsdk_slot_drop(slot) == -EBUSY, "no drop while the server runs");
        CHECK(send_cmd_x() == 0, "a refused drop leaves the command in place");
        disk_teardown();
}

static void dropped_config_key_is_unknown(void) {
        disk_setup();
        key_calls = 0;
        nbdsdk_slot *slot;
        CHECK(nbdsdk_server_add_config_key(server, "xkey", NULL, x_key, NULL, &slot) == 0, "registered");
        CHECK(nbdsdk_server_add_config_key(server, "xkey", NULL, x_key, NULL, NULL) == -EEXIST, "still taken");
        CHECK(nbdsdk_server_config(server, "xkey", "1") == 0 && key_calls == 1, "the key is handled");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(nbdsdk_server_config(server, "xkey", "1") == -ENOENT && key_calls == 1, "a dropped key is unknown");
        CHECK(nbdsdk_server_add_config_key(server, "xkey", "xkey=N  help", x_key, NULL, &slot) == 0,
              "the key is free again");
        CHECK(nbdsdk_server_config(server, "xkey", "1") == 0 && key_calls == 2, "and handled again");
        tclient *tc = tc_connect_fixed(server); /* the server runs now */
        CHECK(nbdsdk_slot_drop(slot) == -EBUSY, "no drop while the server runs");
        tc_free(tc);
        disk_teardown();
}

/* A read on a fresh connection; returns how often the stage ran for it. */
static unsigned stage_runs_for_a_read(void) {
        stage_runs = 0;
        tclient *tc = tc_connect_fixed(server);
        tc_go(tc, "", NULL, NULL);
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "the read succeeds");
        tc_free(tc);
        return stage_runs;
}

static void dropped_stage_no_longer_runs(void) {
        disk_setup();
        nbdsdk_slot *first, *second;
        CHECK(nbdsdk_server_add_stage(server, &stage_x, sizeof stage_x, NULL, &first) == 0, "first");
        CHECK(nbdsdk_server_add_stage(server, &stage_x, sizeof stage_x, NULL, &second) == 0, "second, alike");
        CHECK(nbdsdk_slot_drop(first) == 0, "first dropped");
        CHECK(nbdsdk_server_add_stage(server, &stage_x, sizeof stage_x, NULL, &first) == 0, "added again");
        CHECK(nbdsdk_slot_drop(second) == 0, "second dropped");
        CHECK(stage_runs_for_a_read() == 1, "only the stage still registered runs");
        CHECK(nbdsdk_slot_drop(first) == -EBUSY, "no drop while the server runs");
        CHECK(stage_runs_for_a_read() == 1, "a refused drop leaves the stage in place");
        disk_teardown();

        disk_setup();
        CHECK(nbdsdk_server_add_stage(server, &stage_x, sizeof stage_x, NULL, &first) == 0, "registered");
        CHECK(nbdsdk_slot_drop(first) == 0, "dropped");
        CHECK(stage_runs_for_a_read() == 0, "a dropped stage does not run");
        disk_teardown();
}

/* LIST_META_CONTEXT with no query: how many contexts are offered. */
static unsigned contexts_listed(void) {
        tclient *tc = tc_connect_fixed(server);
        tc_structured(tc);
        uint8_t q[8];
        wire_put32(q, 0);
        wire_put32(q + 4, 0);
        tc_send_option(tc, NBDSDK_OPT_LIST_META_CONTEXT, q, sizeof q);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_LIST_META_CONTEXT, &r);
        CHECK(r.type[r.n - 1] == NBDSDK_REP_ACK, "LIST_META_CONTEXT ends with ACK");
        unsigned n = r.n - 1;
        tc_replies_free(&r);
        tc_free(tc);
        return n;
}

static void dropped_namespace_is_not_listed(void) {
        disk_setup();
        nbdsdk_slot *slot;
        CHECK(nbdsdk_server_add_meta_namespace(server, &ns_x, sizeof ns_x, NULL, &slot) == 0, "registered");
        CHECK(nbdsdk_server_add_meta_namespace(server, &ns_x, sizeof ns_x, NULL, NULL) == -EEXIST, "still taken");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(contexts_listed() == 1, "only base:allocation is listed");
        disk_teardown();

        disk_setup();
        CHECK(nbdsdk_server_add_meta_namespace(server, &ns_x, sizeof ns_x, NULL, &slot) == 0, "registered");
        CHECK(nbdsdk_slot_drop(slot) == 0, "dropped");
        CHECK(nbdsdk_server_add_meta_namespace(server, &ns_x, sizeof ns_x, NULL, &slot) == 0, "the name is free again");
        CHECK(contexts_listed() == 2, "base:allocation and x-slot:one are listed");
        CHECK(nbdsdk_slot_drop(slot) == -EBUSY, "no drop while the server runs");
        disk_teardown();
}

static void drop_checks_its_argument(void) {
        CHECK(nbdsdk_slot_drop(NULL) == -EINVAL, "NULL slot");
}

TCASE_MAIN(T(dropped_option_is_unsupported), T(dropped_replacement_restores_the_builtin), T(replacements_stack),
           T(dropped_command_is_invalid), T(dropped_config_key_is_unknown), T(dropped_stage_no_longer_runs),
           T(dropped_namespace_is_not_listed), T(drop_checks_its_argument))
