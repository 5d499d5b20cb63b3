/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Several exports on one server (nbdsdk_export(3)): adding and finding
 * them, LIST showing each, GO reaching each export's own userdata, the
 * default export for the empty name, per-export read-only, and settings
 * routed to the right export (spec "NBD_OPT_LIST", "NBD_OPT_GO"). */
#include <stdlib.h>
#include "tcase.h"
#include "tclient.h"
#include "testdisk.h"
#include "wire-internal.h"

/* The default export "one" on a 1 MiB disk, and "two" on a 2 MiB disk
 * whose first bytes are 0xaa. */
static testdisk *one, *two;
static nbdsdk_server *server;
static nbdsdk_export *exp_two;

static void setup_two_exports(void) {
        one = td_new(1 << 20);
        two = td_new(2 << 20);
        memset(two->data, 0xaa, 512);
        server = td_server(one);
        CHECK(nbdsdk_server_set_export_name(server, "one") == 0, "naming the default export");
        CHECK(nbdsdk_server_add_export(server, "two", two, &exp_two) == 0, "adding export two");
        CHECK(nbdsdk_export_set_description(exp_two, "the second disk") == 0, "describing two");
}

static void teardown(void) {
        server = nbdsdk_server_unref(server);
        td_free(one);
        td_free(two);
        one = two = NULL;
}

/* Connect, GO to NAME, return the size and flags the server reported. */
static tclient *go(const char *name, uint64_t *retsize, uint16_t *retflags) {
        tclient *tc = tc_connect_fixed(server);
        CHECK(nbdsdk_conn_get_export(tc->conn) == NULL, "no export before GO");
        tc_go(tc, name, retsize, retflags);
        return tc;
}

static void add_and_find_exports(void) {
        setup_two_exports();
        nbdsdk_export *def = nbdsdk_server_get_export(server, NULL);
        CHECK(def && strcmp(nbdsdk_export_get_name(def), "one") == 0, "NULL finds the default export");
        CHECK(nbdsdk_server_get_export(server, "") == def, "\"\" finds the default export");
        CHECK(nbdsdk_server_get_export(server, "one") == def, "the default export by its name");
        CHECK(nbdsdk_server_get_export(server, "two") == exp_two, "two by its name");
        CHECK(nbdsdk_server_get_export(server, "three") == NULL, "no export three");
        CHECK(nbdsdk_export_get_userdata(def) == one && nbdsdk_export_get_userdata(exp_two) == two,
              "each export keeps its userdata");
        CHECK(nbdsdk_export_get_server(exp_two) == server, "an export knows its server");
        CHECK(nbdsdk_server_add_export(server, "three", NULL, NULL) == 0, "retexport may be NULL");
        CHECK(nbdsdk_server_get_export(server, "three") != NULL, "three was added");
        teardown();
}

static void bad_arguments_and_taken_names(void) {
        setup_two_exports();
        nbdsdk_export *e = NULL;
        CHECK(nbdsdk_server_add_export(NULL, "x", NULL, &e) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_add_export(server, NULL, NULL, &e) == -EINVAL, "NULL name");
        char *long_name = malloc(NBDSDK_MAX_STRING + 2);
        memset(long_name, 'n', NBDSDK_MAX_STRING + 1);
        long_name[NBDSDK_MAX_STRING + 1] = '\0';
        CHECK(nbdsdk_server_add_export(server, long_name, NULL, &e) == -EINVAL, "a name over 4096 bytes");
        long_name[NBDSDK_MAX_STRING] = '\0';
        CHECK(nbdsdk_server_add_export(server, long_name, NULL, NULL) == 0, "a name of 4096 bytes");
        free(long_name);
        CHECK(nbdsdk_server_add_export(server, "two", NULL, &e) == -EEXIST, "two is taken");
        CHECK(nbdsdk_server_add_export(server, "one", NULL, &e) == -EEXIST, "the default export's name is taken");
        CHECK(nbdsdk_server_add_export(server, "", NULL, &e) == -EEXIST, "the empty name is the default export's");
        CHECK(e == NULL, "*retexport is untouched on failure");
        CHECK(nbdsdk_server_set_export_name(server, "two") == -EEXIST, "the default export cannot take two's name");
        CHECK(nbdsdk_server_set_default_export(server, "three") == -ENOENT, "no export three to make default");
        CHECK(nbdsdk_server_set_default_export(NULL, "two") == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_get_export(NULL, "two") == NULL, "NULL server has no exports");
        CHECK(nbdsdk_export_set_description(NULL, "x") == -EINVAL, "NULL export");
        CHECK(nbdsdk_export_set_read_only(NULL, true) == -EINVAL, "NULL export");
        CHECK(nbdsdk_export_config(NULL, "k", "v") == -EINVAL, "NULL export");
        CHECK(nbdsdk_export_config(exp_two, NULL, "v") == -EINVAL, "NULL key");
        CHECK(strcmp(nbdsdk_export_get_name(NULL), "") == 0 && !nbdsdk_export_get_userdata(NULL) &&
              !nbdsdk_export_get_server(NULL) && !nbdsdk_conn_get_export(NULL), "getters take NULL");
        teardown();
}

static void settings_are_frozen_once_the_server_runs(void) {
        setup_two_exports();
        tclient *tc = tc_connect_fixed(server); /* serving a connection starts the server */
        CHECK(nbdsdk_server_add_export(server, "late", NULL, NULL) == -EBUSY, "add_export while running");
        CHECK(nbdsdk_server_set_default_export(server, "two") == -EBUSY, "set_default_export while running");
        CHECK(nbdsdk_export_set_description(exp_two, "x") == -EBUSY, "set_description while running");
        CHECK(nbdsdk_export_set_read_only(exp_two, true) == -EBUSY, "set_read_only while running");
        CHECK(nbdsdk_export_config(exp_two, "k", "v") == -EBUSY, "export_config while running");
        tc_free(tc);
        teardown();
}

static void list_shows_every_export_with_its_description(void) {
        setup_two_exports();
        tclient *tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_LIST, &r);
        CHECK(r.n == 3 && r.type[0] == NBDSDK_REP_SERVER && r.type[1] == NBDSDK_REP_SERVER &&
              r.type[2] == NBDSDK_REP_ACK, "spec: one NBD_REP_SERVER per export, then ACK");
        CHECK(r.len[0] == 4 + 3 && wire_get32(r.data[0]) == 3 && memcmp(r.data[0] + 4, "one", 3) == 0,
              "first \"one\", without a description");
        CHECK(r.len[1] == 4 + 3 + 15 && wire_get32(r.data[1]) == 3 && memcmp(r.data[1] + 4, "two", 3) == 0 &&
              memcmp(r.data[1] + 7, "the second disk", 15) == 0, "then \"two\" and its description");
        tc_replies_free(&r);
        tc_free(tc);
        teardown();
}

static void go_reaches_each_exports_userdata(void) {
        setup_two_exports();
        uint64_t size;
        tclient *tc = go("two", &size, NULL);
        CHECK(size == 2 << 20, "GO two reports two's size, got %llu", (unsigned long long) size);
        CHECK(nbdsdk_conn_get_export(tc->conn) == exp_two, "the connection selected two");
        CHECK(strcmp(nbdsdk_conn_get_export_name(tc->conn), "two") == 0, "its export name is two");
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "reading two");
        CHECK(buf[0] == 0xaa && buf[511] == 0xaa, "the read reached two's data");
        CHECK(one->n_log == 0 && strcmp(two->log, "r") == 0, "only two's callbacks ran");
        tc_free(tc);
        tc = go("one", &size, NULL);
        CHECK(size == 1 << 20, "GO one reports one's size");
        CHECK(nbdsdk_conn_get_export(tc->conn) == nbdsdk_server_get_export(server, "one"), "selected one");
        tc_free(tc);
        teardown();
}

static void the_empty_name_gets_the_default_export(void) {
        setup_two_exports();
        uint64_t size;
        tclient *tc = go("", &size, NULL);
        CHECK(size == 1 << 20, "\"\" is the first export until another is made default");
        tc_free(tc);
        teardown();

        setup_two_exports();
        CHECK(nbdsdk_server_set_default_export(server, "two") == 0, "making two the default");
        CHECK(nbdsdk_server_get_export(server, NULL) == exp_two, "two is the default export");
        tc = go("", &size, NULL);
        CHECK(size == 2 << 20, "\"\" now reaches two");
        CHECK(nbdsdk_conn_get_export(tc->conn) == exp_two, "the connection selected two");
        tc_free(tc);
        teardown();
}

static void read_only_is_per_export(void) {
        setup_two_exports();
        CHECK(nbdsdk_export_set_read_only(exp_two, true) == 0, "two read-only");
        uint16_t flags;
        tclient *tc = go("two", NULL, &flags);
        CHECK(flags & NBDSDK_FLAG_READ_ONLY, "two is advertised read-only");
        uint8_t buf[512] = { 0 };
        CHECK(tc_write(tc, 0, 1, 0, buf, sizeof buf) == NBDSDK_EPERM, "a write to two fails with EPERM");
        CHECK(two->data[0] == (char) 0xaa, "two's data is unchanged");
        tc_free(tc);
        tc = go("one", NULL, &flags);
        CHECK(!(flags & NBDSDK_FLAG_READ_ONLY), "one stays writable");
        CHECK(tc_write(tc, 0, 1, 0, buf, sizeof buf) == 0, "a write to one succeeds");
        tc_free(tc);
        teardown();

        setup_two_exports();
        CHECK(nbdsdk_server_set_read_only(server, true) == 0, "the whole server read-only");
        tc = go("one", NULL, &flags);
        CHECK(flags & NBDSDK_FLAG_READ_ONLY, "the server's read-only covers every export");
        tc_free(tc);
        teardown();
}

/* What the backend's config and a registered key's handler saw last. */
static void *config_userdata;
static nbdsdk_export *handler_export;
static char handler_value[16];

static int record_config(const char *key, const char *value, void *ud) {
        (void) value;
        if (strcmp(key, "size") != 0)
                return -ENOENT;
        config_userdata = ud;
        return 0;
}

static int record_key(nbdsdk_export *exp, const char *key, const char *value, void *ud) {
        (void) key;
        CHECK(ud == &handler_export, "a registered key's handler gets its own userdata");
        if (strcmp(value, "bad") == 0)
                return -EINVAL;
        handler_export = exp;
        snprintf(handler_value, sizeof handler_value, "%s", value);
        return 0;
}

static void settings_reach_the_right_export(void) {
        one = td_new(1 << 20);
        two = td_new(2 << 20);
        struct nbdsdk_ops ops = *td_ops(one);
        ops.config = record_config;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, one, &server) == 0, "server");
        CHECK(nbdsdk_server_add_export(server, "two", two, &exp_two) == 0, "adding two");
        CHECK(nbdsdk_server_add_config_key(server, "layer", NULL, record_key, &handler_export, NULL) == 0,
              "registering a key");

        CHECK(nbdsdk_export_config(exp_two, "size", "1M") == 0 && config_userdata == two,
              "ops->config gets the export's userdata");
        CHECK(nbdsdk_server_config(server, "size", "1M") == 0 && config_userdata == one,
              "nbdsdk_server_config is the default export's");
        CHECK(nbdsdk_export_config(exp_two, "layer", "ram") == 0 && handler_export == exp_two &&
              strcmp(handler_value, "ram") == 0, "a registered key's handler gets the export");
        CHECK(nbdsdk_server_config(server, "layer", "file") == 0 &&
              handler_export == nbdsdk_server_get_export(server, NULL), "... the default export from the server");
        CHECK(nbdsdk_export_config(exp_two, "layer", "bad") == -EINVAL, "the handler's error is returned");
        CHECK(nbdsdk_export_config(exp_two, "nosuch", "1") == -ENOENT, "a key nobody knows");

        CHECK(nbdsdk_server_set_default_export(server, "two") == 0, "two becomes the default");
        CHECK(nbdsdk_server_config(server, "size", "1M") == 0 && config_userdata == two,
              "nbdsdk_server_config follows the default export");
        teardown();
}

/* free_export: once per export with userdata of its own, at the server's end. */
static void *freed[4];
static unsigned n_freed;

static void count_free(nbdsdk_export *exp, void *userdata) {
        CHECK(nbdsdk_export_get_userdata(exp) == userdata, "the export's own userdata");
        CHECK(n_freed < 4, "not too many calls");
        freed[n_freed++] = userdata;
}

static void free_export_frees_each_exports_userdata(void) {
        one = td_new(1 << 20);
        two = td_new(2 << 20);
        struct nbdsdk_ops ops = *td_ops(one);
        ops.free_export = count_free;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, one, &server) == 0, "server");
        CHECK(nbdsdk_server_add_export(server, "two", two, NULL) == 0, "export two");
        CHECK(nbdsdk_server_add_export(server, "also-one", one, NULL) == 0, "an export sharing the server's userdata");
        n_freed = 0;
        server = nbdsdk_server_unref(server);
        CHECK(n_freed == 1 && freed[0] == two, "only two's userdata is freed: %u calls", n_freed);
        td_free(one);
        td_free(two);
        one = two = NULL;
}

TCASE_MAIN(T(add_and_find_exports), T(free_export_frees_each_exports_userdata), T(bad_arguments_and_taken_names), T(settings_are_frozen_once_the_server_runs),
           T(list_shows_every_export_with_its_description), T(go_reaches_each_exports_userdata),
           T(the_empty_name_gets_the_default_export), T(read_only_is_per_export),
           T(settings_reach_the_right_export))
