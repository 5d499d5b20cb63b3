/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Argument checks of the public API: server creation and settings,
 * nbdsdk_parse_size() and nbdsdk_extents_add(), as their headers document them. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include "request-internal.h"
#include "tcase.h"
#include "fixture.h"

static int64_t get_size(nbdsdk_conn *c, void *ud) {
        (void) c;
        (void) ud;
        return 4096;
}

static int pread_cb(nbdsdk_request *r, void *b, uint64_t n, uint64_t o, uint32_t f, void *ud) {
        (void) r, (void) b, (void) n, (void) o, (void) f, (void) ud;
        return 0;
}

static void server_new_rejects_bad_arguments(void) {
        struct nbdsdk_ops ops = { .get_size = get_size, .pread = pread_cb };
        nbdsdk_server *s = NULL;
        CHECK(nbdsdk_server_new(NULL, sizeof ops, NULL, &s) == -EINVAL, "NULL ops");
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, NULL) == -EINVAL, "NULL result pointer");
        CHECK(nbdsdk_server_new(&ops, 0, NULL, &s) == -EINVAL, "ops size 0");
        CHECK(nbdsdk_server_new(&ops, offsetof(struct nbdsdk_ops, pread), NULL, &s) == -EINVAL,
              "an ops size that does not reach pread");
        ops.get_size = NULL;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &s) == -EINVAL, "no get_size");
        ops.get_size = get_size;
        ops.pread = NULL;
        CHECK(nbdsdk_server_new(&ops, sizeof ops, NULL, &s) == -EINVAL, "no pread");
        CHECK(s == NULL, "nothing is returned on failure");
        ops.pread = pread_cb;
        int marker;
        CHECK(nbdsdk_server_new(&ops, offsetof(struct nbdsdk_ops, pread) + sizeof(void *), &marker, &s) == 0,
              "an older, shorter struct that has get_size and pread is accepted");
        CHECK(nbdsdk_server_get_userdata(s) == &marker, "userdata kept");
        s = nbdsdk_server_unref(s);
        CHECK(nbdsdk_server_ref(NULL) == NULL && nbdsdk_server_unref(NULL) == NULL, "ref/unref take NULL");
}

static void settings_reject_null_and_bad_values(void) {
        disk_setup();
        char name[NBDSDK_MAX_STRING + 2];
        memset(name, 'a', sizeof name - 1);
        name[sizeof name - 1] = 0; /* 4097 bytes */

        CHECK(nbdsdk_server_set_export_name(NULL, "x") == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_export_name(server, NULL) == -EINVAL, "NULL name");
        CHECK(nbdsdk_server_set_export_name(server, name) == -EINVAL, "a 4097-byte name");
        CHECK(nbdsdk_server_set_export_name(server, name + 1) == 0, "a 4096-byte name");
        CHECK(nbdsdk_server_set_description(NULL, "x") == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_description(server, name) == -EINVAL, "a 4097-byte description");
        CHECK(nbdsdk_server_set_description(server, "d") == 0 && nbdsdk_server_set_description(server, NULL) == 0,
              "a description, and NULL to remove it");
        CHECK(nbdsdk_server_set_read_only(NULL, true) == -EINVAL, "NULL server");

        CHECK(nbdsdk_server_set_max_payload(NULL, 1u << 25) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_max_payload(server, (1u << 20) - 1) == -EINVAL, "below 1 MiB");
        CHECK(nbdsdk_server_set_max_payload(server, (1u << 31) + 1) == -EINVAL, "above 2 GiB");
        CHECK(nbdsdk_server_set_max_payload(server, 1u << 20) == 0 && nbdsdk_server_set_max_payload(server, 1u << 31) == 0,
              "1 MiB and 2 GiB are the limits");
        CHECK(nbdsdk_server_set_max_in_flight(NULL, 1, 1ull << 31) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_max_in_flight(server, 0, 1ull << 32) == -EINVAL, "zero requests");
        CHECK(nbdsdk_server_set_max_in_flight(server, 8, (1ull << 31) - 1) == -EINVAL, "bytes below the maximum payload");
        CHECK(nbdsdk_server_set_max_in_flight(server, 8, 1ull << 31) == 0, "bytes equal to the maximum payload");

        CHECK(nbdsdk_server_set_option_limits(NULL, 8, 4096) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_option_limits(server, 0, 4096) == -EINVAL, "zero options");
        CHECK(nbdsdk_server_set_option_limits(server, 8, 1023) == -EINVAL, "option payload below 1024");
        CHECK(nbdsdk_server_set_option_limits(server, 8, (16u << 20) + 1) == -EINVAL, "option payload above 16 MiB");
        CHECK(nbdsdk_server_set_option_limits(server, 1, 1024) == 0 && nbdsdk_server_set_option_limits(server, 8, 16u << 20) == 0,
              "1024 bytes and 16 MiB are the limits");

        CHECK(nbdsdk_server_set_timeouts(NULL, 1, 1) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_threads(NULL, 1) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_threads(server, 1025) == -EINVAL, "more than 1024 threads");
        CHECK(nbdsdk_server_set_threads(server, 1024) == 0 && nbdsdk_server_set_threads(server, 0) == 0, "0 .. 1024 threads");
        CHECK(nbdsdk_server_set_verbose(NULL, false) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_set_sparse_reads(NULL, true) == -EINVAL, "NULL server");
        CHECK(nbdsdk_server_shutdown(NULL, false) == -EINVAL, "NULL server");
        disk_teardown();
}

static void settings_are_busy_once_the_server_runs(void) {
        disk_setup();
        tclient *tc = tc_connect(server);
        CHECK(nbdsdk_server_set_export_name(server, "late") == -EBUSY, "export name while running");
        CHECK(nbdsdk_server_set_read_only(server, true) == -EBUSY, "read-only while running");
        CHECK(nbdsdk_server_set_max_payload(server, 1u << 20) == -EBUSY, "max payload while running");
        tc_free(tc);
        disk_teardown();
}

static void parse_size_accepts_sizes(void) {
        static const struct {
                const char *text;
                uint64_t bytes;
        } ok[] = {
                { "0", 0 }, { "4096", 4096 }, { "100B", 100 }, { "1k", 1024 }, { "1K", 1024 },
                { "512M", 512ull << 20 }, { "1G", 1ull << 30 }, { "1GiB", 1ull << 30 }, { "1gb", 1ull << 30 },
                { "2T", 2ull << 40 }, { "3P", 3ull << 50 }, { "7E", 7ull << 60 },
                { "9223372036854775807", INT64_MAX }, { "8589934591G", 8589934591ull << 30 },
        };
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                uint64_t v = 1;
                int r = nbdsdk_parse_size(ok[i].text, &v);
                CHECK(r == 0 && v == ok[i].bytes, "\"%s\": returned %d, %llu", ok[i].text, r, (unsigned long long) v);
        }
}

static void parse_size_rejects_garbage_and_overflow(void) {
        static const char *const garbage[] = { "", "abc", "-1", "+1", " 1", "1 ", "1X", "1GiBx", "1iB", "G", "1.5G",
                                               "0x10", "1KK" };
        uint64_t v = 42;
        for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
                CHECK(nbdsdk_parse_size(garbage[i], &v) == -EINVAL, "\"%s\" is not a size", garbage[i]);
        CHECK(v == 42, "the result is untouched on failure");
        CHECK(nbdsdk_parse_size(NULL, &v) == -EINVAL && nbdsdk_parse_size("1", NULL) == -EINVAL, "NULL arguments");
        static const char *const overflow[] = { "9223372036854775808", "18446744073709551616",
                                                "99999999999999999999999", "8E", "8589934592G", "16384P" };
        for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++)
                CHECK(nbdsdk_parse_size(overflow[i], &v) == -ERANGE, "\"%s\" is over INT64_MAX", overflow[i]);
        CHECK(v == 42, "the result is untouched on overflow");
}

static void extents_add_checks_its_arguments(void) {
        nbdsdk_extents e = { 0 };
        extents_init(&e, 0, 8192);
        CHECK(nbdsdk_extents_add(NULL, 4096, 0) == -EINVAL, "NULL extents");
        CHECK(nbdsdk_extents_add(&e, 0, 0) == -EINVAL, "zero length");
        CHECK(nbdsdk_extents_add(&e, 4096, 1u << 2) == -EINVAL, "unknown type bit 2");
        CHECK(nbdsdk_extents_add(&e, 4096, 1u << 31) == -EINVAL, "unknown type bit 31");
        CHECK(e.n == 0, "nothing recorded by the failed calls");
        CHECK(nbdsdk_extents_add(&e, 1024, NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO) == 0 &&
              nbdsdk_extents_add(&e, 1024, NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO) == 0 &&
              nbdsdk_extents_add(&e, 1024, 0) == 0 && nbdsdk_extents_add(&e, 1u << 20, NBDSDK_EXTENT_ZERO) == 0,
              "valid extents");
        CHECK(e.n == 3 && e.v[0].length == 2048 && e.v[1].length == 1024 && e.v[2].length == 8192 - 3072,
              "same-type neighbours merged, the last cut at the range's end");
        CHECK(nbdsdk_extents_add(&e, 4096, 0) == 0 && e.n == 3, "extents past the range are ignored");
        extents_fini(&e);
}

TCASE_MAIN(T(server_new_rejects_bad_arguments), T(settings_reject_null_and_bad_values),
           T(settings_are_busy_once_the_server_runs), T(parse_size_accepts_sizes),
           T(parse_size_rejects_garbage_and_overflow), T(extents_add_checks_its_arguments))
