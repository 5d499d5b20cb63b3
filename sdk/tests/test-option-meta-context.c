/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT (spec "Metadata
 * querying"): base:allocation, wildcards, ignored queries, malformed payloads,
 * and a selection that is replaced even when SET fails. */
#include <stdlib.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

/* A meta context payload: name length (4), name, query count (4), then
 * length (4) and text of each query. */
static uint8_t *meta_payload(const char *export, const char *const *queries, uint32_t nq, uint32_t *retlen) {
        size_t el = strlen(export), len = 8 + el;
        for (uint32_t i = 0; i < nq; i++)
                len += 4 + strlen(queries[i]);
        uint8_t *p = malloc(len), *q = p;
        CHECK(p, "out of memory");
        wire_put32(q, (uint32_t) el);
        memcpy(q + 4, export, el);
        q += 4 + el;
        wire_put32(q, nq);
        q += 4;
        for (uint32_t i = 0; i < nq; i++) {
                size_t ql = strlen(queries[i]);
                wire_put32(q, (uint32_t) ql);
                memcpy(q + 4, queries[i], ql);
                q += 4 + ql;
        }
        *retlen = (uint32_t) len;
        return p;
}

static void send_meta(tclient *tc, uint32_t option, const char *export, const char *const *queries, uint32_t nq,
                      tc_replies *out) {
        uint32_t len;
        uint8_t *p = meta_payload(export, queries, nq, &len);
        tc_send_option(tc, option, p, len);
        free(p);
        tc_option_replies(tc, option, out);
}

/* The answer is exactly one META_CONTEXT for base:allocation, then ACK;
 * returns the context id. */
static uint32_t expect_base_allocation(const tc_replies *r) {
        CHECK(r->n == 2, "one META_CONTEXT then ACK, got %u replies (first 0x%x: %s)", r->n, r->type[0],
              (char *) r->data[0]);
        CHECK(r->type[0] == NBDSDK_REP_META_CONTEXT && r->type[1] == NBDSDK_REP_ACK, "META_CONTEXT then ACK");
        CHECK(r->len[0] == 4 + 15 && memcmp(r->data[0] + 4, "base:allocation", 15) == 0,
              "the context is named base:allocation");
        return wire_get32(r->data[0]);
}

static void expect_only(const tc_replies *r, uint32_t type) {
        CHECK(r->n == 1 && r->type[0] == type, "expected only 0x%x, got 0x%x (%s) among %u replies", type,
              r->type[0], (char *) r->data[0], r->n);
}

/* After GO on "", BLOCK_STATUS over the first 4 KiB: 0 and the context id
 * of the answer, or the error. */
static uint32_t block_status_after_go(tclient *tc, uint32_t *retid) {
        tc_go(tc, "", NULL, NULL);
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 9, 0, 4096, NULL, 0);
        uint16_t flags;
        uint8_t *p;
        uint64_t len;
        uint16_t type = tc_chunk(tc, 9, &flags, &p, &len);
        uint32_t err = 0;
        CHECK(flags & NBDSDK_REPLY_FLAG_DONE, "a single chunk");
        if (type == NBDSDK_REPLY_TYPE_ERROR)
                err = wire_get32(p);
        else {
                CHECK(type == NBDSDK_REPLY_TYPE_BLOCK_STATUS && len == 12, "one BLOCK_STATUS descriptor");
                *retid = wire_get32(p);
                CHECK(wire_get32(p + 4) == 4096 &&
                      wire_get32(p + 8) == (NBDSDK_STATE_HOLE | NBDSDK_STATE_ZERO), "an unwritten hole");
        }
        free(p);
        return err;
}

static void set_selects_base_allocation_with_a_nonzero_id(void) {
        open_handshake();
        tc_structured(tc);
        static const char *const q[] = { "base:allocation" };
        tc_replies r;
        send_meta(tc, NBDSDK_OPT_SET_META_CONTEXT, "", q, 1, &r);
        uint32_t id = expect_base_allocation(&r);
        tc_replies_free(&r);
        CHECK(id != 0, "SET gives the context a nonzero id");
        uint32_t got = 0;
        CHECK(block_status_after_go(tc, &got) == 0, "BLOCK_STATUS works after SET");
        CHECK(got == id, "BLOCK_STATUS answers with the id SET returned (%u, got %u)", id, got);
        close_disk();
}

static void selection_made_by_empty_name_survives_go_by_canonical_name(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        tc = tc_connect_fixed(server);
        tc_structured(tc);
        tc_set_meta_context(tc, "", "base:allocation");
        uint8_t p[10];
        wire_put32(p, 4);
        memcpy(p + 4, "disk", 4);
        wire_put16(p + 8, 0);
        tc_send_option(tc, NBDSDK_OPT_GO, p, sizeof p);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_GO, &r);
        CHECK(r.type[r.n - 1] == NBDSDK_REP_ACK, "GO \"disk\" succeeds");
        tc_replies_free(&r);
        tc_request(tc, 0, NBDSDK_CMD_BLOCK_STATUS, 3, 0, 4096, NULL, 0);
        uint16_t type = tc_chunk(tc, 3, NULL, NULL, NULL);
        CHECK(type == NBDSDK_REPLY_TYPE_BLOCK_STATUS, "\"\" and \"disk\" are the same export: the context is kept");
        close_disk();
}

static void list_with_no_queries_lists_base_allocation_with_id_0(void) {
        open_handshake();
        tc_structured(tc);
        tc_replies r;
        send_meta(tc, NBDSDK_OPT_LIST_META_CONTEXT, "", NULL, 0, &r);
        CHECK(expect_base_allocation(&r) == 0, "spec: LIST's context ids SHOULD be 0");
        tc_replies_free(&r);
        close_disk();
}

static void base_wildcard_lists_but_does_not_select(void) {
        open_handshake();
        tc_structured(tc);
        static const char *const q[] = { "base:" };
        tc_replies r;
        send_meta(tc, NBDSDK_OPT_LIST_META_CONTEXT, "", q, 1, &r);
        CHECK(expect_base_allocation(&r) == 0, "LIST \"base:\" lists base:allocation");
        tc_replies_free(&r);
        send_meta(tc, NBDSDK_OPT_SET_META_CONTEXT, "", q, 1, &r);
        expect_only(&r, NBDSDK_REP_ACK);
        tc_replies_free(&r);
        uint32_t id;
        CHECK(block_status_after_go(tc, &id) == NBDSDK_EINVAL, "SET \"base:\" selected nothing: EINVAL");
        close_disk();
}

static void unknown_queries_are_ignored(void) {
        open_handshake();
        tc_structured(tc);
        static const char *const unknown[] = { "qemu:dirty-bitmap:x", "base:other", "base:allocation2",
                                               "BASE:allocation" };
        tc_replies r;
        for (uint32_t opt = NBDSDK_OPT_LIST_META_CONTEXT; opt <= NBDSDK_OPT_SET_META_CONTEXT; opt++) {
                for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
                        send_meta(tc, opt, "", &unknown[i], 1, &r);
                        expect_only(&r, NBDSDK_REP_ACK);
                        tc_replies_free(&r);
                }
                /* Mixed with a match, only the match is answered. */
                static const char *const mixed[] = { "foo:bar", "base:allocation", "base:nope" };
                send_meta(tc, opt, "", mixed, 3, &r);
                uint32_t id = expect_base_allocation(&r);
                CHECK(opt == NBDSDK_OPT_LIST_META_CONTEXT ? id == 0 : id != 0, "LIST id 0, SET id nonzero");
                tc_replies_free(&r);
        }
        tc_check_in_sync(tc);
        close_disk();
}

static void repeated_query_is_answered_once(void) {
        open_handshake();
        tc_structured(tc);
        static const char *const q[] = { "base:allocation", "base:", "base:allocation" };
        tc_replies r;
        send_meta(tc, NBDSDK_OPT_LIST_META_CONTEXT, "", q, 3, &r);
        CHECK(expect_base_allocation(&r) == 0, "LIST names each context once");
        tc_replies_free(&r);
        send_meta(tc, NBDSDK_OPT_SET_META_CONTEXT, "", q, 3, &r);
        CHECK(expect_base_allocation(&r) != 0, "SET selects the context once, with one id");
        tc_replies_free(&r);
        close_disk();
}

static void set_without_structured_replies_is_invalid(void) {
        open_handshake();
        static const char *const q[] = { "base:allocation" };
        tc_replies r;
        send_meta(tc, NBDSDK_OPT_SET_META_CONTEXT, "", q, 1, &r);
        expect_only(&r, NBDSDK_REP_ERR_INVALID);
        tc_replies_free(&r);
        tc_check_in_sync(tc);
        close_disk();
}

/* A raw payload that must get ERR (for both options), keeping the stream in sync. */
static void expect_bad(tclient *tc, const uint8_t *p, uint32_t len, uint32_t err, const char *what) {
        for (uint32_t opt = NBDSDK_OPT_LIST_META_CONTEXT; opt <= NBDSDK_OPT_SET_META_CONTEXT; opt++) {
                tc_send_option(tc, opt, p, len);
                tc_replies r;
                tc_option_replies(tc, opt, &r);
                CHECK(r.n == 1 && r.type[0] == err, "%s (option %u): expected 0x%x, got 0x%x", what, opt, err,
                      r.type[0]);
                tc_replies_free(&r);
                tc_check_in_sync(tc);
        }
}

static void malformed_payloads_are_invalid(void) {
        open_handshake();
        tc_structured(tc);
        uint8_t p[64] = { 0 };
        expect_bad(tc, p, 0, NBDSDK_REP_ERR_INVALID, "no data");
        expect_bad(tc, p, 7, NBDSDK_REP_ERR_INVALID, "7 bytes");
        wire_put32(p, 50);
        expect_bad(tc, p, 16, NBDSDK_REP_ERR_INVALID, "export name length past the end");
        wire_put32(p, UINT32_MAX);
        expect_bad(tc, p, 16, NBDSDK_REP_ERR_INVALID, "export name length 2^32-1");
        /* "" then one query of 20 bytes with only 15 present. */
        wire_put32(p, 0);
        wire_put32(p + 4, 1);
        wire_put32(p + 8, 20);
        memcpy(p + 12, "base:allocation", 15);
        expect_bad(tc, p, 27, NBDSDK_REP_ERR_INVALID, "query length past the end");
        wire_put32(p + 8, UINT32_MAX);
        expect_bad(tc, p, 27, NBDSDK_REP_ERR_INVALID, "query length 2^32-1");
        /* Two queries announced, one present. */
        wire_put32(p + 4, 2);
        wire_put32(p + 8, 15);
        expect_bad(tc, p, 27, NBDSDK_REP_ERR_INVALID, "query count past the end");
        /* A query length field cut short. */
        expect_bad(tc, p, 29, NBDSDK_REP_ERR_INVALID, "second query's length cut short");
        /* One query and trailing bytes. */
        wire_put32(p + 4, 1);
        expect_bad(tc, p, 30, NBDSDK_REP_ERR_INVALID, "trailing bytes after the last query");
        /* No queries and trailing bytes. */
        wire_put32(p + 4, 0);
        expect_bad(tc, p, 12, NBDSDK_REP_ERR_INVALID, "trailing bytes after zero queries");
        close_disk();
}

static void unknown_export_is_err_unknown(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        tc = tc_connect_fixed(server);
        tc_structured(tc);
        static const char *const q[] = { "base:allocation" };
        for (uint32_t opt = NBDSDK_OPT_LIST_META_CONTEXT; opt <= NBDSDK_OPT_SET_META_CONTEXT; opt++) {
                tc_replies r;
                send_meta(tc, opt, "nope", q, 1, &r);
                expect_only(&r, NBDSDK_REP_ERR_UNKNOWN);
                tc_replies_free(&r);
                send_meta(tc, opt, "disk", q, 1, &r);
                expect_base_allocation(&r);
                tc_replies_free(&r);
        }
        tc_check_in_sync(tc);
        close_disk();
}

static void oversized_query_is_too_big(void) {
        open_handshake();
        tc_structured(tc);
        char *big = malloc(NBDSDK_MAX_STRING + 2);
        memset(big, 'q', NBDSDK_MAX_STRING + 1);
        memcpy(big, "base:", 5);
        big[NBDSDK_MAX_STRING + 1] = 0;
        const char *const q[] = { big };
        uint32_t len;
        uint8_t *p = meta_payload("", q, 1, &len);
        expect_bad(tc, p, len, NBDSDK_REP_ERR_TOO_BIG, "a 4097-byte query");
        free(p);
        big[NBDSDK_MAX_STRING + 1] = 0;
        p = meta_payload(big, NULL, 0, &len);
        expect_bad(tc, p, len, NBDSDK_REP_ERR_TOO_BIG, "a 4097-byte export name");
        free(p);
        free(big);
        close_disk();
}

/* SET base:allocation, then the SET given by P/LEN; afterwards nothing is selected. */
static void failed_set_clears(const uint8_t *p, uint32_t len, uint32_t expect, const char *what) {
        disk_setup();
        CHECK(nbdsdk_server_set_export_name(server, "disk") == 0, "export name");
        tc = tc_connect_fixed(server);
        tc_structured(tc);
        tc_set_meta_context(tc, "", "base:allocation");
        tc_send_option(tc, NBDSDK_OPT_SET_META_CONTEXT, p, len);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_SET_META_CONTEXT, &r);
        expect_only(&r, expect);
        tc_replies_free(&r);
        uint32_t id;
        CHECK(block_status_after_go(tc, &id) == NBDSDK_EINVAL,
              "spec: SET replaces the selection even when it fails (%s): BLOCK_STATUS gets EINVAL", what);
        close_disk();
}

static void set_replaces_the_selection_even_when_it_fails(void) {
        static const char *const q[] = { "base:allocation" };
        static const char *const none[] = { "foo:bar" };
        uint32_t len;
        uint8_t *p = meta_payload("nope", q, 1, &len);
        failed_set_clears(p, len, NBDSDK_REP_ERR_UNKNOWN, "unknown export");
        free(p);
        p = meta_payload("", q, 1, &len);
        failed_set_clears(p, len - 1, NBDSDK_REP_ERR_INVALID, "truncated query");
        free(p);
        p = meta_payload("", NULL, 0, &len);
        failed_set_clears(p, len, NBDSDK_REP_ACK, "zero queries select nothing");
        free(p);
        p = meta_payload("", none, 1, &len);
        failed_set_clears(p, len, NBDSDK_REP_ACK, "only unknown queries");
        free(p);
}

TCASE_MAIN(T(set_selects_base_allocation_with_a_nonzero_id),
           T(selection_made_by_empty_name_survives_go_by_canonical_name),
           T(list_with_no_queries_lists_base_allocation_with_id_0), T(base_wildcard_lists_but_does_not_select),
           T(unknown_queries_are_ignored), T(repeated_query_is_answered_once),
           T(set_without_structured_replies_is_invalid),
           T(malformed_payloads_are_invalid), T(unknown_export_is_err_unknown), T(oversized_query_is_too_big),
           T(set_replaces_the_selection_even_when_it_fails))
