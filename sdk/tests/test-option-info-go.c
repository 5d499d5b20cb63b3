/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD_OPT_INFO and NBD_OPT_GO: export lookup, the NBD_INFO_* replies, bad
 * payloads, and the transmission flags and block sizes they report (spec
 * "NBD_OPT_INFO", "NBD_OPT_GO", "Transmission flags", "Block size constraints"). */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* What the default testdisk offers (FUA emulated by flushing, no multi-conn). */
#define DEFAULT_FLAGS (NBDSDK_FLAG_HAS_FLAGS | NBDSDK_FLAG_SEND_FLUSH | NBDSDK_FLAG_SEND_FUA | \
                       NBDSDK_FLAG_SEND_TRIM | NBDSDK_FLAG_SEND_WRITE_ZEROES | \
                       NBDSDK_FLAG_SEND_FAST_ZERO | NBDSDK_FLAG_SEND_CACHE)

/* An INFO/GO payload: name length (4), name, request count (2), requests. */
static uint8_t *info_payload(const char *name, size_t namelen, const uint16_t *reqs, uint16_t nreq,
                             uint32_t *retlen) {
        size_t len = 6 + namelen + 2 * (size_t) nreq;
        uint8_t *p = malloc(len);
        CHECK(p, "out of memory");
        wire_put32(p, (uint32_t) namelen);
        memcpy(p + 4, name, namelen);
        wire_put16(p + 4 + namelen, nreq);
        for (uint16_t i = 0; i < nreq; i++)
                wire_put16(p + 6 + namelen + 2 * i, reqs[i]);
        *retlen = (uint32_t) len;
        return p;
}

static void send_info(tclient *tc, uint32_t option, const char *name, const uint16_t *reqs, uint16_t nreq,
                      tc_replies *out) {
        uint32_t len;
        uint8_t *p = info_payload(name, strlen(name), reqs, nreq, &len);
        tc_send_option(tc, option, p, len);
        free(p);
        tc_option_replies(tc, option, out);
}

/* Index of the NBD_REP_INFO of TYPE, or -1; it must not appear twice. */
static int find_info(const tc_replies *r, uint16_t type) {
        int found = -1;
        for (unsigned i = 0; i < r->n; i++)
                if (r->type[i] == NBDSDK_REP_INFO && r->len[i] >= 2 && wire_get16(r->data[i]) == type) {
                        CHECK(found < 0, "NBD_INFO %u sent twice", type);
                        found = (int) i;
                }
        return found;
}

/* A successful INFO/GO answer: only INFO replies, one INFO_EXPORT of the
 * right length, a final ACK. Returns the transmission flags. */
static uint16_t check_success(const tc_replies *r, uint64_t size) {
        CHECK(r->n >= 2 && r->type[r->n - 1] == NBDSDK_REP_ACK, "success ends with ACK, got 0x%x (%s)",
              r->type[r->n - 1], (char *) r->data[r->n - 1]);
        for (unsigned i = 0; i + 1 < r->n; i++)
                CHECK(r->type[i] == NBDSDK_REP_INFO, "only NBD_REP_INFO precedes the ACK");
        int e = find_info(r, NBDSDK_INFO_EXPORT);
        CHECK(e >= 0, "spec: NBD_INFO_EXPORT MUST be sent before the ACK");
        CHECK(r->len[e] == 12, "INFO_EXPORT is 12 bytes, got %u", r->len[e]);
        CHECK(wire_get64(r->data[e] + 2) == size, "export size");
        return wire_get16(r->data[e] + 10);
}

/* A failed INFO/GO: one error reply and nothing else (spec: an unknown
 * export SHOULD NOT be preceded by INFO replies). */
static void check_error(const tc_replies *r, uint32_t type) {
        CHECK(r->n == 1, "a single reply, got %u", r->n);
        CHECK(r->type[0] == type, "expected error 0x%x, got 0x%x (%s)", type, r->type[0], (char *) r->data[0]);
}

static bool in_handshake(tclient *tc) {
        return strcmp(nbdsdk_conn_get_state_name(tc->conn), "OPT_HEADER") == 0;
}

/* The flags GO reports for the current testdisk, with or without structured replies. */
static uint16_t go_flags(bool structured) {
        disk_setup();
        tclient *tc = tc_connect_fixed(server);
        if (structured)
                tc_structured(tc);
        uint64_t size = 0;
        uint16_t flags = 0;
        tc_go(tc, "", &size, &flags);
        CHECK(size == DISK_SIZE, "export size");
        tc_free(tc);
        server = nbdsdk_server_unref(server);
        return flags;
}

static void info_on_empty_name_describes_the_default_export(void) {
        open_handshake();
        tc_replies r;
        send_info(tc, NBDSDK_OPT_INFO, "", NULL, 0, &r);
        CHECK(check_success(&r, DISK_SIZE) == DEFAULT_FLAGS, "default flags");
        tc_replies_free(&r);
        CHECK(in_handshake(tc), "spec: after INFO the server stays in the handshake");
        tc_check_in_sync(tc);
        close_disk();
}

static void named_export_is_found_by_name_and_by_empty_name(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        tc = tc_connect_fixed(server);
        tc_replies r;
        send_info(tc, NBDSDK_OPT_INFO, "disk", NULL, 0, &r);
        check_success(&r, DISK_SIZE);
        tc_replies_free(&r);
        send_info(tc, NBDSDK_OPT_INFO, "", NULL, 0, &r);
        check_success(&r, DISK_SIZE);
        tc_replies_free(&r);
        send_info(tc, NBDSDK_OPT_GO, "disk", NULL, 0, &r);
        check_success(&r, DISK_SIZE);
        tc_replies_free(&r);
        CHECK(strcmp(nbdsdk_conn_get_export_name(tc->conn), "disk") == 0, "the connection serves \"disk\"");
        close_disk();
}

static void unknown_export_gets_err_unknown(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        tc = tc_connect_fixed(server);
        static const char *const names[] = { "nope", "Disk", "disk ", "disk/x" };
        static const uint16_t reqs[] = { NBDSDK_INFO_NAME, NBDSDK_INFO_BLOCK_SIZE };
        for (uint32_t opt = NBDSDK_OPT_INFO; opt <= NBDSDK_OPT_GO; opt++)
                for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                        tc_replies r;
                        send_info(tc, opt, names[i], reqs, 2, &r);
                        check_error(&r, NBDSDK_REP_ERR_UNKNOWN);
                        tc_replies_free(&r);
                        CHECK(in_handshake(tc), "a failed GO stays in the handshake");
                }
        tc_check_in_sync(tc);
        close_disk();
}

static void requested_info_is_sent(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        CHECK(nbdsdk_server_set_description(server, "a test disk") == 0, "description");
        tc = tc_connect_fixed(server);
        static const uint16_t reqs[] = { NBDSDK_INFO_NAME, NBDSDK_INFO_DESCRIPTION, NBDSDK_INFO_BLOCK_SIZE };
        tc_replies r;
        send_info(tc, NBDSDK_OPT_INFO, "", reqs, 3, &r);
        check_success(&r, DISK_SIZE);
        int i = find_info(&r, NBDSDK_INFO_NAME);
        CHECK(i >= 0 && r.len[i] == 2 + 4 && memcmp(r.data[i] + 2, "disk", 4) == 0,
              "INFO_NAME carries the canonical name \"disk\" for the request \"\"");
        i = find_info(&r, NBDSDK_INFO_DESCRIPTION);
        CHECK(i >= 0 && r.len[i] == 2 + 11 && memcmp(r.data[i] + 2, "a test disk", 11) == 0,
              "INFO_DESCRIPTION carries the description");
        i = find_info(&r, NBDSDK_INFO_BLOCK_SIZE);
        CHECK(i >= 0 && r.len[i] == 14, "INFO_BLOCK_SIZE is 14 bytes");
        CHECK(wire_get32(r.data[i] + 2) == 1 && wire_get32(r.data[i] + 6) == 4096 &&
              wire_get32(r.data[i] + 10) == 32u << 20,
              "default block sizes: minimum 1, preferred 4096, maximum 32 MiB, got %u/%u/%u",
              wire_get32(r.data[i] + 2), wire_get32(r.data[i] + 6), wire_get32(r.data[i] + 10));
        tc_replies_free(&r);
        close_disk();
}

static void description_absent_when_none_is_set(void) {
        open_handshake();
        static const uint16_t reqs[] = { NBDSDK_INFO_DESCRIPTION, NBDSDK_INFO_NAME };
        tc_replies r;
        send_info(tc, NBDSDK_OPT_GO, "", reqs, 2, &r);
        check_success(&r, DISK_SIZE);
        CHECK(find_info(&r, NBDSDK_INFO_DESCRIPTION) < 0, "no INFO_DESCRIPTION without a description");
        int i = find_info(&r, NBDSDK_INFO_NAME);
        CHECK(i >= 0 && r.len[i] == 2, "INFO_NAME of the default export \"\" is empty");
        tc_replies_free(&r);
        close_disk();
}

static void unknown_info_requests_are_ignored(void) {
        open_handshake();
        static const uint16_t reqs[] = { 0x7777, NBDSDK_INFO_NAME, 0xffff, 4 };
        tc_replies r;
        send_info(tc, NBDSDK_OPT_INFO, "", reqs, 4, &r);
        check_success(&r, DISK_SIZE);
        CHECK(find_info(&r, NBDSDK_INFO_NAME) >= 0, "the known request is still answered");
        CHECK(find_info(&r, 0x7777) < 0 && find_info(&r, 0xffff) < 0 && find_info(&r, 4) < 0,
              "spec: the server MUST ignore unknown information requests");
        tc_replies_free(&r);
        close_disk();
}

/* Send a raw INFO/GO payload and expect a single error, then check sync. */
static void expect_bad_payload(tclient *tc, uint32_t opt, const void *p, uint32_t len, uint32_t err,
                               const char *what) {
        tc_send_option(tc, opt, p, len);
        tc_replies r;
        tc_option_replies(tc, opt, &r);
        CHECK(r.n == 1 && r.type[0] == err, "%s: expected 0x%x, got 0x%x", what, err, r.type[0]);
        tc_replies_free(&r);
        CHECK(in_handshake(tc), "%s: still in the handshake", what);
        tc_check_in_sync(tc);
}

static void malformed_payloads_get_errors_and_stay_in_sync(void) {
        open_handshake();
        uint8_t p[64];
        for (uint32_t opt = NBDSDK_OPT_INFO; opt <= NBDSDK_OPT_GO; opt++) {
                expect_bad_payload(tc, opt, NULL, 0, NBDSDK_REP_ERR_INVALID, "no data");
                memset(p, 0, sizeof p);
                expect_bad_payload(tc, opt, p, 5, NBDSDK_REP_ERR_INVALID, "5 bytes (less than 6)");
                wire_put32(p, 100); /* name length past the end */
                expect_bad_payload(tc, opt, p, 10, NBDSDK_REP_ERR_INVALID, "name length past the end");
                wire_put32(p, UINT32_MAX);
                expect_bad_payload(tc, opt, p, 10, NBDSDK_REP_ERR_INVALID, "name length 2^32-1");
                wire_put32(p, 5); /* fits, but leaves no room for the count */
                expect_bad_payload(tc, opt, p, 10, NBDSDK_REP_ERR_INVALID, "name leaves no room for the count");
                wire_put32(p, 0);
                wire_put16(p + 4, 2); /* two requests, one present */
                expect_bad_payload(tc, opt, p, 8, NBDSDK_REP_ERR_INVALID, "count larger than the data");
                wire_put16(p + 4, 0); /* no requests, two bytes follow */
                expect_bad_payload(tc, opt, p, 8, NBDSDK_REP_ERR_INVALID, "count smaller than the data");
                wire_put16(p + 4, 1); /* one request and a stray byte */
                expect_bad_payload(tc, opt, p, 9, NBDSDK_REP_ERR_INVALID, "odd trailing byte");
                wire_put32(p, 3);
                memcpy(p + 4, "a\0b", 3);
                wire_put16(p + 7, 0);
                expect_bad_payload(tc, opt, p, 9, NBDSDK_REP_ERR_INVALID, "name containing NUL");
        }
        close_disk();
}

static void name_over_4096_bytes_is_too_big(void) {
        open_handshake();
        char name[NBDSDK_MAX_STRING + 1];
        memset(name, 'x', sizeof name);
        for (uint32_t opt = NBDSDK_OPT_INFO; opt <= NBDSDK_OPT_GO; opt++) {
                uint32_t len;
                uint8_t *p = info_payload(name, sizeof name, NULL, 0, &len);
                expect_bad_payload(tc, opt, p, len, NBDSDK_REP_ERR_TOO_BIG, "4097-byte name");
                free(p);
                /* 4096 bytes is a legal length: the export is merely unknown. */
                p = info_payload(name, NBDSDK_MAX_STRING, NULL, 0, &len);
                expect_bad_payload(tc, opt, p, len, NBDSDK_REP_ERR_UNKNOWN, "4096-byte unknown name");
                free(p);
        }
        close_disk();
}

static void name_of_4096_bytes_is_served(void) {
        disk_setup();
        char name[NBDSDK_MAX_STRING + 1];
        memset(name, 'n', NBDSDK_MAX_STRING);
        name[NBDSDK_MAX_STRING] = 0;
        CHECK(nbdsdk_server_set_export_name(server, name) == 0, "a 4096-byte export name");
        tc = tc_connect_fixed(server);
        static const uint16_t reqs[] = { NBDSDK_INFO_NAME };
        tc_replies r;
        send_info(tc, NBDSDK_OPT_GO, name, reqs, 1, &r);
        check_success(&r, DISK_SIZE);
        int i = find_info(&r, NBDSDK_INFO_NAME);
        CHECK(i >= 0 && r.len[i] == 2 + NBDSDK_MAX_STRING && memcmp(r.data[i] + 2, name, NBDSDK_MAX_STRING) == 0,
              "INFO_NAME carries all 4096 bytes");
        tc_replies_free(&r);
        close_disk();
}

static void info_then_go_return_identical_information(void) {
        td = td_new(DISK_SIZE);
        td->min_block = 512;
        td->pref_block = 4096;
        td->max_block = 1 << 20;
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        CHECK(nbdsdk_server_set_description(server, "described") == 0, "description");
        tc = tc_connect_fixed(server);
        tc_structured(tc);
        static const uint16_t reqs[] = { NBDSDK_INFO_BLOCK_SIZE, NBDSDK_INFO_NAME, NBDSDK_INFO_DESCRIPTION };
        tc_replies info, go;
        send_info(tc, NBDSDK_OPT_INFO, "disk", reqs, 3, &info);
        send_info(tc, NBDSDK_OPT_GO, "disk", reqs, 3, &go);
        check_success(&info, DISK_SIZE);
        CHECK(info.n == go.n, "INFO sent %u replies, GO %u", info.n, go.n);
        for (unsigned i = 0; i < info.n; i++)
                CHECK(info.type[i] == go.type[i] && info.len[i] == go.len[i] &&
                      memcmp(info.data[i], go.data[i], info.len[i]) == 0,
                      "spec: INFO then GO MUST return the same information (reply %u differs)", i);
        tc_replies_free(&info);
        tc_replies_free(&go);
        close_disk();
}

static void go_enters_transmission(void) {
        open_handshake();
        memcpy(td->data + 4096, "hello", 5);
        tc_go(tc, "", NULL, NULL);
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "REQ_HEADER") == 0, "GO's ACK starts transmission");
        tc_request(tc, 0, NBDSDK_CMD_READ, 7, 4096, 5, NULL, 0);
        char buf[5];
        CHECK(tc_simple_reply(tc, 7, buf, 5) == 0 && memcmp(buf, "hello", 5) == 0,
              "a READ right after GO's ACK is served (no padding in between)");
        close_disk();
}

static void flags_of_a_full_disk(void) {
        td = td_new(DISK_SIZE);
        CHECK(go_flags(false) == DEFAULT_FLAGS, "every capability present: flags 0x%x", DEFAULT_FLAGS);
        disk_teardown();
}

static void df_only_after_structured_replies(void) {
        td = td_new(DISK_SIZE);
        CHECK(!(go_flags(false) & NBDSDK_FLAG_SEND_DF), "spec: SEND_DF MUST be clear without structured replies");
        CHECK(go_flags(true) == (DEFAULT_FLAGS | NBDSDK_FLAG_SEND_DF), "SEND_DF once structured replies are on");
        open_handshake();
        tc_extended(tc);
        uint16_t flags = 0;
        tc_go(tc, "", NULL, &flags);
        CHECK(flags & NBDSDK_FLAG_SEND_DF, "SEND_DF with extended headers");
        close_disk();
}

#define WRITE_FLAGS (NBDSDK_FLAG_SEND_FUA | NBDSDK_FLAG_SEND_TRIM | NBDSDK_FLAG_SEND_WRITE_ZEROES | \
                     NBDSDK_FLAG_SEND_FAST_ZERO)
#define READ_ONLY_FLAGS ((DEFAULT_FLAGS & ~WRITE_FLAGS) | NBDSDK_FLAG_READ_ONLY)

static void read_only_by_setting(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_read_only(server, true) == 0, "read-only");
        tc = tc_connect_fixed(server);
        uint16_t flags = 0;
        tc_go(tc, "", NULL, &flags);
        CHECK(flags == READ_ONLY_FLAGS, "READ_ONLY set, write-only features cleared: got 0x%x", flags);
        CHECK(nbdsdk_conn_is_read_only(tc->conn), "the connection knows it is read-only");
        close_disk();
}

static void read_only_by_can_write(void) {
        td = td_new(DISK_SIZE);
        td->can_write = 0;
        uint16_t flags = go_flags(true);
        CHECK(flags == (READ_ONLY_FLAGS | NBDSDK_FLAG_SEND_DF), "can_write=0: got 0x%x", flags);
        td->can_write = 1;
        CHECK(go_flags(false) == DEFAULT_FLAGS, "can_write=1: writable");
        disk_teardown();
}

static void no_flush_means_no_flush_and_no_emulated_fua(void) {
        td = td_new(DISK_SIZE);
        td->has_flush = false;
        uint16_t flags = go_flags(false);
        CHECK(flags == (DEFAULT_FLAGS & ~(NBDSDK_FLAG_SEND_FLUSH | NBDSDK_FLAG_SEND_FUA)),
              "no flush callback: no SEND_FLUSH, no SEND_FUA; got 0x%x", flags);
        td->can_fua = NBDSDK_CAP_EMULATE;
        CHECK(!(go_flags(false) & NBDSDK_FLAG_SEND_FUA), "FUA cannot be emulated without flush");
        disk_teardown();
}

/* Write one block with FUA and return the callback log. */
static const char *fua_write_log(void) {
        disk_setup();
        tclient *tc = tc_connect_fixed(server);
        uint16_t flags = 0;
        tc_go(tc, "", NULL, &flags);
        CHECK(flags & NBDSDK_FLAG_SEND_FUA, "SEND_FUA advertised");
        td_clear_log(td);
        char buf[512] = "fua";
        tc_request(tc, NBDSDK_CMD_FLAG_FUA, NBDSDK_CMD_WRITE, 1, 0, sizeof buf, buf, sizeof buf);
        CHECK(tc_simple_reply(tc, 1, NULL, 0) == 0, "FUA write succeeds");
        tc_free(tc);
        server = nbdsdk_server_unref(server);
        return td->log;
}

static void fua_native_and_emulated(void) {
        td = td_new(DISK_SIZE);
        td->can_fua = NBDSDK_CAP_NATIVE;
        CHECK(strcmp(fua_write_log(), "w") == 0 && td->log_flags[0] == NBDSDK_FUA,
              "native FUA: pwrite gets NBDSDK_FUA and no flush follows (log \"%s\")", td->log);
        td->can_fua = NBDSDK_CAP_EMULATE;
        CHECK(strcmp(fua_write_log(), "wf") == 0 && td->log_flags[0] == 0,
              "emulated FUA: a plain pwrite then flush (log \"%s\")", td->log);
        td->can_fua = NBDSDK_CAP_NONE;
        CHECK(!(go_flags(false) & NBDSDK_FLAG_SEND_FUA), "can_fua NONE: no SEND_FUA");
        disk_teardown();
}

static void multi_conn_only_when_the_backend_says_so(void) {
        td = td_new(DISK_SIZE);
        CHECK(!(go_flags(false) & NBDSDK_FLAG_CAN_MULTI_CONN), "no can_multi_conn: not advertised");
        td->can_multi_conn = 0;
        CHECK(!(go_flags(false) & NBDSDK_FLAG_CAN_MULTI_CONN), "can_multi_conn=0: not advertised");
        td->can_multi_conn = 1;
        CHECK(go_flags(false) == (DEFAULT_FLAGS | NBDSDK_FLAG_CAN_MULTI_CONN), "can_multi_conn=1: advertised");
        disk_teardown();
}

static void cache_trim_and_zero_flags(void) {
        td = td_new(DISK_SIZE);
        td->has_cache = false;
        CHECK(go_flags(false) & NBDSDK_FLAG_SEND_CACHE, "no cache callback: emulated by reading");
        td->can_cache = NBDSDK_CAP_NONE;
        CHECK(go_flags(false) == (DEFAULT_FLAGS & ~NBDSDK_FLAG_SEND_CACHE), "can_cache NONE: no SEND_CACHE");
        td->has_trim = false;
        CHECK(!(go_flags(false) & NBDSDK_FLAG_SEND_TRIM), "no trim callback: no SEND_TRIM");
        td->can_fast_zero = 0;
        uint16_t flags = go_flags(false);
        CHECK((flags & NBDSDK_FLAG_SEND_WRITE_ZEROES) && !(flags & NBDSDK_FLAG_SEND_FAST_ZERO),
              "can_fast_zero=0: write-zeroes without fast zero");
        td->can_fast_zero = 1;
        td->can_zero = NBDSDK_CAP_NONE;
        flags = go_flags(false);
        CHECK(!(flags & (NBDSDK_FLAG_SEND_WRITE_ZEROES | NBDSDK_FLAG_SEND_FAST_ZERO)),
              "spec: SEND_FAST_ZERO MUST be clear when SEND_WRITE_ZEROES is; got 0x%x", flags);
        disk_teardown();
}

/* NBD_INFO_BLOCK_SIZE for the current testdisk: {minimum, preferred, maximum}. */
static void go_block_sizes(uint32_t *v) {
        disk_setup();
        tclient *tc = tc_connect_fixed(server);
        static const uint16_t reqs[] = { NBDSDK_INFO_BLOCK_SIZE };
        tc_replies r;
        send_info(tc, NBDSDK_OPT_GO, "", reqs, 1, &r);
        check_success(&r, DISK_SIZE);
        int i = find_info(&r, NBDSDK_INFO_BLOCK_SIZE);
        CHECK(i >= 0 && r.len[i] == 14, "INFO_BLOCK_SIZE sent");
        for (int k = 0; k < 3; k++)
                v[k] = wire_get32(r.data[i] + 2 + 4 * k);
        tc_replies_free(&r);
        tc_free(tc);
        server = nbdsdk_server_unref(server);
}

static void block_sizes_come_from_the_backend(void) {
        td = td_new(DISK_SIZE);
        uint32_t v[3];
        td->min_block = 512;
        td->pref_block = 65536;
        td->max_block = 1 << 20;
        go_block_sizes(v);
        CHECK(v[0] == 512 && v[1] == 65536 && v[2] == 1 << 20, "backend's sizes, got %u/%u/%u", v[0], v[1], v[2]);
        td->max_block = UINT32_MAX;
        go_block_sizes(v);
        CHECK(v[2] == 32u << 20, "the maximum is capped at the server's maximum payload, got %u", v[2]);
        disk_teardown();
}

static void invalid_block_sizes_fail_go_with_an_error(void) {
        static const uint32_t bad[][3] = {
                { 3, 4096, 1 << 20 },        /* minimum not a power of two */
                { 131072, 131072, 1 << 20 }, /* minimum over 64 KiB */
                { 512, 3000, 1 << 20 },      /* preferred not a power of two */
                { 4096, 2048, 1 << 20 },     /* preferred below the minimum */
                { 1, 256, 1 << 20 },         /* preferred below 512 */
                { 512, 4096, 1024 },         /* maximum below the preferred */
        };
        td = td_new(DISK_SIZE);
        td->min_block = 512; /* non-zero: the ops get a get_block_size callback */
        disk_setup();
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
                td->min_block = bad[k][0];
                td->pref_block = bad[k][1];
                td->max_block = bad[k][2];
                tclient *tc = tc_connect_fixed(server);
                static const uint16_t reqs[] = { NBDSDK_INFO_BLOCK_SIZE };
                for (uint32_t opt = NBDSDK_OPT_INFO; opt <= NBDSDK_OPT_GO; opt++) {
                        tc_replies r;
                        send_info(tc, opt, "", reqs, 1, &r);
                        CHECK(r.n == 1 && (r.type[0] & NBDSDK_REP_FLAG_ERROR),
                              "block sizes %u/%u/%u: a single error reply, got 0x%x", bad[k][0], bad[k][1],
                              bad[k][2], r.type[0]);
                        tc_replies_free(&r);
                        CHECK(in_handshake(tc), "a failed GO stays in the handshake");
                }
                tc_check_in_sync(tc);
                tc_free(tc);
        }
        disk_teardown();
}

TCASE_MAIN(T(info_on_empty_name_describes_the_default_export), T(named_export_is_found_by_name_and_by_empty_name),
           T(unknown_export_gets_err_unknown), T(requested_info_is_sent), T(description_absent_when_none_is_set),
           T(unknown_info_requests_are_ignored), T(malformed_payloads_get_errors_and_stay_in_sync),
           T(name_over_4096_bytes_is_too_big), T(name_of_4096_bytes_is_served),
           T(info_then_go_return_identical_information), T(go_enters_transmission), T(flags_of_a_full_disk),
           T(df_only_after_structured_replies), T(read_only_by_setting), T(read_only_by_can_write),
           T(no_flush_means_no_flush_and_no_emulated_fua), T(fua_native_and_emulated),
           T(multi_conn_only_when_the_backend_says_so), T(cache_trim_and_zero_flags),
           T(block_sizes_come_from_the_backend), T(invalid_block_sizes_fail_go_with_an_error))
