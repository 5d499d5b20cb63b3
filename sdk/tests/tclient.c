/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tclient.h"
#include "server-internal.h"
#include "wire-internal.h"

void tc_fail(const char *file, int line, const char *cond, const char *format, ...) {
        va_list ap;
        fprintf(stderr, "FAIL %s:%d: ", file, line);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, " [%s]\n", cond);
        exit(1);
}

tclient *tc_connect(nbdsdk_server *server) {
        tclient *tc = calloc(1, sizeof *tc);
        CHECK(tc, "out of memory");
        transport *t;
        CHECK(transport_mem_new(&t, &tc->peer) == 0, "in-memory transport");
        tc->server = nbdsdk_server_ref(server);
        CHECK(server_serve_transport(server, t, 0, &tc->conn) == 0, "serving the in-memory transport");
        return tc;
}

tclient *tc_connect_fixed(nbdsdk_server *server) {
        tclient *tc = tc_connect(server);
        tc_read_greeting(tc);
        tc_send_flags(tc, NBDSDK_FLAG_C_FIXED_NEWSTYLE | NBDSDK_FLAG_C_NO_ZEROES);
        return tc;
}

void tc_free(tclient *tc) {
        if (!tc_closed(tc))
                nbdsdk_conn_kill(tc->conn);
        server_process_completions(tc->server);
        nbdsdk_conn_unref(tc->conn);
        mem_peer_free(tc->peer);
        nbdsdk_server_unref(tc->server);
        free(tc);
}

void tc_run(tclient *tc) {
        (void) nbdsdk_conn_process(tc->conn, 0);
}

void tc_send(tclient *tc, const void *data, size_t len) {
        CHECK(mem_peer_send(tc->peer, data, len) == 0, "queueing %zu bytes", len);
        tc_run(tc);
}

void tc_wait_for(tclient *tc, size_t want) {
        /* Worker threads answer in their own time, mostly within microseconds:
         * spin a while, then nap, up to 5 s. */
        for (int i = 0; i < 6000; i++) {
                tc_run(tc);
                if (mem_peer_pending(tc->peer) >= want || tc_closed(tc))
                        return;
                if (i < 1000)
                        sched_yield();
                else
                        nanosleep(&(struct timespec) { 0, 1000 * 1000 }, NULL);
        }
}

void tc_recv(tclient *tc, void *buf, size_t len) {
        tc_wait_for(tc, len);
        size_t have = mem_peer_pending(tc->peer);
        CHECK(have >= len, "expected %zu bytes from the server, it sent %zu", len, have);
        mem_peer_recv(tc->peer, buf, len);
}

size_t tc_pending(tclient *tc) {
        tc_run(tc);
        return mem_peer_pending(tc->peer);
}

bool tc_closed(tclient *tc) {
        return mem_peer_server_closed(tc->peer);
}

void tc_hangup(tclient *tc) {
        mem_peer_close(tc->peer);
        tc_run(tc);
}

void tc_read_greeting(tclient *tc) {
        uint8_t g[18];
        tc_recv(tc, g, sizeof g);
        CHECK(wire_get64(g) == NBDSDK_MAGIC_INIT, "greeting starts with NBDMAGIC");
        CHECK(wire_get64(g + 8) == NBDSDK_MAGIC_OPTS, "greeting carries IHAVEOPT");
        CHECK(wire_get16(g + 16) == (NBDSDK_FLAG_FIXED_NEWSTYLE | NBDSDK_FLAG_NO_ZEROES),
              "handshake flags are FIXED_NEWSTYLE|NO_ZEROES, got 0x%x", wire_get16(g + 16));
}

void tc_send_flags(tclient *tc, uint32_t flags) {
        uint8_t f[4];
        wire_put32(f, flags);
        tc_send(tc, f, 4);
}

void tc_send_option(tclient *tc, uint32_t option, const void *data, uint32_t len) {
        uint8_t h[16];
        wire_put64(h, NBDSDK_MAGIC_OPTS);
        wire_put32(h + 8, option);
        wire_put32(h + 12, len);
        CHECK(mem_peer_send(tc->peer, h, 16) == 0, "queueing");
        if (len)
                CHECK(mem_peer_send(tc->peer, data, len) == 0, "queueing");
        tc_run(tc);
}

uint32_t tc_option_reply(tclient *tc, uint32_t option, uint8_t **data, uint32_t *len) {
        uint8_t h[20];
        tc_recv(tc, h, sizeof h);
        CHECK(wire_get64(h) == NBDSDK_MAGIC_OPT_REPLY, "option reply magic");
        CHECK(wire_get32(h + 8) == option, "reply answers option %u, not %u", option, wire_get32(h + 8));
        uint32_t n = wire_get32(h + 16);
        uint8_t *p = malloc(n + 1);
        CHECK(p, "out of memory");
        tc_recv(tc, p, n);
        p[n] = 0;
        if (data)
                *data = p;
        else
                free(p);
        if (len)
                *len = n;
        return wire_get32(h + 12);
}

void tc_option_expect(tclient *tc, uint32_t option, const void *data, uint32_t len, uint32_t type) {
        tc_send_option(tc, option, data, len);
        uint8_t *msg;
        uint32_t got = tc_option_reply(tc, option, &msg, NULL);
        CHECK(got == type, "option %u: expected reply 0x%x, got 0x%x (%s)", option, type, got, (char *) msg);
        free(msg);
}

void tc_structured(tclient *tc) {
        tc_option_expect(tc, NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0, NBDSDK_REP_ACK);
        tc->structured = true;
}

void tc_extended(tclient *tc) {
        tc_option_expect(tc, NBDSDK_OPT_EXTENDED_HEADERS, NULL, 0, NBDSDK_REP_ACK);
        tc->extended = true;
        tc->structured = true;
}

void tc_set_meta_context(tclient *tc, const char *export, const char *query) {
        size_t nl = strlen(export), ql = strlen(query);
        uint8_t *p = malloc(12 + nl + ql);
        wire_put32(p, (uint32_t) nl);
        memcpy(p + 4, export, nl);
        wire_put32(p + 4 + nl, 1);
        wire_put32(p + 8 + nl, (uint32_t) ql);
        memcpy(p + 12 + nl, query, ql);
        tc_send_option(tc, NBDSDK_OPT_SET_META_CONTEXT, p, (uint32_t) (12 + nl + ql));
        free(p);
        uint8_t *d;
        uint32_t len;
        CHECK(tc_option_reply(tc, NBDSDK_OPT_SET_META_CONTEXT, &d, &len) == NBDSDK_REP_META_CONTEXT,
              "SET_META_CONTEXT selects %s", query);
        CHECK(len > 4, "META_CONTEXT carries an id and a name");
        tc->meta_id = wire_get32(d);
        free(d);
        CHECK(tc_option_reply(tc, NBDSDK_OPT_SET_META_CONTEXT, NULL, NULL) == NBDSDK_REP_ACK, "ACK");
}

void tc_go(tclient *tc, const char *name, uint64_t *retsize, uint16_t *retflags) {
        size_t nl = strlen(name);
        uint8_t *p = malloc(6 + nl);
        wire_put32(p, (uint32_t) nl);
        memcpy(p + 4, name, nl);
        wire_put16(p + 4 + nl, 0);
        tc_send_option(tc, NBDSDK_OPT_GO, p, (uint32_t) (6 + nl));
        free(p);
        bool got_export = false;
        for (;;) {
                uint8_t *d;
                uint32_t len;
                uint32_t type = tc_option_reply(tc, NBDSDK_OPT_GO, &d, &len);
                if (type == NBDSDK_REP_ACK) {
                        free(d);
                        break;
                }
                CHECK(type == NBDSDK_REP_INFO, "GO replies INFO or ACK, got 0x%x (%s)", type, (char *) d);
                if (wire_get16(d) == NBDSDK_INFO_EXPORT) {
                        CHECK(len == 12, "INFO_EXPORT is 12 bytes");
                        if (retsize)
                                *retsize = wire_get64(d + 2);
                        if (retflags)
                                *retflags = wire_get16(d + 10);
                        got_export = true;
                }
                free(d);
        }
        CHECK(got_export, "GO sent NBD_INFO_EXPORT before its ACK");
}

size_t tc_encode_request(uint8_t h[32], bool extended, uint16_t flags, uint16_t type, uint64_t cookie,
                         uint64_t offset, uint64_t length) {
        size_t n;
        if (extended) {
                wire_put32(h, NBDSDK_MAGIC_EXT_REQUEST);
                wire_put64(h + 24, length);
                n = 32;
        } else {
                wire_put32(h, NBDSDK_MAGIC_REQUEST);
                wire_put32(h + 24, (uint32_t) length);
                n = 28;
        }
        wire_put16(h + 4, flags);
        wire_put16(h + 6, type);
        wire_put64(h + 8, cookie);
        wire_put64(h + 16, offset);
        return n;
}

void tc_request(tclient *tc, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset,
                uint64_t length, const void *payload, size_t payload_len) {
        uint8_t h[32];
        size_t n = tc_encode_request(h, tc->extended, flags, type, cookie, offset, length);
        CHECK(mem_peer_send(tc->peer, h, n) == 0, "queueing");
        if (payload_len)
                CHECK(mem_peer_send(tc->peer, payload, payload_len) == 0, "queueing");
        tc_run(tc);
}

uint32_t tc_simple_reply(tclient *tc, uint64_t cookie, void *data, size_t datalen) {
        uint8_t h[16];
        tc_recv(tc, h, sizeof h);
        CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY, "simple reply magic, got 0x%08x", wire_get32(h));
        CHECK(wire_get64(h + 8) == cookie, "reply echoes cookie %llu", (unsigned long long) cookie);
        uint32_t err = wire_get32(h + 4);
        if (err == 0 && datalen)
                tc_recv(tc, data, datalen);
        return err;
}

uint16_t tc_chunk(tclient *tc, uint64_t cookie, uint16_t *retflags, uint8_t **payload, uint64_t *retlen) {
        uint8_t h[32];
        uint64_t len;
        if (tc->extended) {
                tc_recv(tc, h, 32);
                CHECK(wire_get32(h) == NBDSDK_MAGIC_EXT_REPLY, "extended reply magic, got 0x%08x", wire_get32(h));
                len = wire_get64(h + 24);
                tc->chunk_offset = wire_get64(h + 16);
        } else {
                tc_recv(tc, h, 20);
                CHECK(wire_get32(h) == NBDSDK_MAGIC_STRUCTURED_REPLY, "structured reply magic, got 0x%08x",
                      wire_get32(h));
                len = wire_get32(h + 16);
        }
        CHECK(wire_get64(h + 8) == cookie, "chunk echoes cookie %llu", (unsigned long long) cookie);
        uint8_t *p = malloc(len + 1);
        CHECK(p, "out of memory");
        tc_recv(tc, p, len);
        p[len] = 0;
        if (retflags)
                *retflags = wire_get16(h + 4);
        if (retlen)
                *retlen = len;
        if (payload)
                *payload = p;
        else
                free(p);
        return wire_get16(h + 6);
}

uint32_t tc_reply_status(tclient *tc, uint64_t cookie) {
        tc_wait_for(tc, 4);
        uint8_t magic[4];
        CHECK(mem_peer_pending(tc->peer) >= 4, "a reply is waiting");
        /* Peek at the magic to tell simple from structured. */
        uint8_t h[16];
        if (!tc->extended) {
                mem_peer_recv(tc->peer, magic, 4);
                if (wire_get32(magic) == NBDSDK_MAGIC_SIMPLE_REPLY) {
                        tc_recv(tc, h + 4, 12);
                        CHECK(wire_get64(h + 8) == cookie, "reply echoes cookie");
                        return wire_get32(h + 4);
                }
                CHECK(wire_get32(magic) == NBDSDK_MAGIC_STRUCTURED_REPLY, "reply magic 0x%08x", wire_get32(magic));
                uint8_t rest[16];
                tc_recv(tc, rest, 16);
                CHECK(wire_get64(rest + 4) == cookie, "chunk echoes cookie");
                uint16_t flags = wire_get16(rest), type = wire_get16(rest + 2);
                uint32_t len = wire_get32(rest + 12);
                uint8_t *p = malloc(len + 1);
                tc_recv(tc, p, len);
                CHECK(flags & NBDSDK_REPLY_FLAG_DONE, "single chunk is final");
                uint32_t err = type == NBDSDK_REPLY_TYPE_ERROR ? wire_get32(p) : 0;
                CHECK(type == NBDSDK_REPLY_TYPE_ERROR || type == NBDSDK_REPLY_TYPE_NONE, "chunk type %u", type);
                free(p);
                return err;
        }
        uint16_t flags;
        uint8_t *p;
        uint16_t type = tc_chunk(tc, cookie, &flags, &p, NULL);
        CHECK(flags & NBDSDK_REPLY_FLAG_DONE, "single chunk is final");
        CHECK(type == NBDSDK_REPLY_TYPE_ERROR || type == NBDSDK_REPLY_TYPE_NONE, "chunk type %u", type);
        uint32_t err = type == NBDSDK_REPLY_TYPE_ERROR ? wire_get32(p) : 0;
        free(p);
        return err;
}

uint32_t tc_structured_read(tclient *tc, uint64_t cookie, uint64_t offset, void *buf, uint64_t len,
                            unsigned *retdata_chunks, unsigned *rethole_chunks) {
        unsigned nd = 0, nh = 0;
        uint64_t covered = 0;
        uint32_t err = 0;
        for (;;) {
                uint16_t flags;
                uint8_t *p;
                uint64_t plen;
                uint16_t type = tc_chunk(tc, cookie, &flags, &p, &plen);
                if (type == NBDSDK_REPLY_TYPE_OFFSET_DATA) {
                        uint64_t off = wire_get64(p);
                        CHECK(off >= offset && off + plen - 8 <= offset + len, "data chunk inside the request");
                        memcpy((char *) buf + (off - offset), p + 8, plen - 8);
                        covered += plen - 8;
                        nd++;
                } else if (type == NBDSDK_REPLY_TYPE_OFFSET_HOLE) {
                        uint64_t off = wire_get64(p);
                        uint32_t hl = wire_get32(p + 8);
                        CHECK(hl > 0 && off >= offset && off + hl <= offset + len, "hole chunk inside the request");
                        memset((char *) buf + (off - offset), 0, hl);
                        covered += hl;
                        nh++;
                } else if (type == NBDSDK_REPLY_TYPE_ERROR) {
                        err = wire_get32(p);
                } else
                        CHECK(type == NBDSDK_REPLY_TYPE_NONE, "unexpected chunk type %u in a read", type);
                free(p);
                if (flags & NBDSDK_REPLY_FLAG_DONE)
                        break;
        }
        if (err == 0)
                CHECK(covered == len, "chunks cover the whole read (%llu of %llu)", (unsigned long long) covered,
                      (unsigned long long) len);
        if (retdata_chunks)
                *retdata_chunks = nd;
        if (rethole_chunks)
                *rethole_chunks = nh;
        return err;
}

void tc_option_replies(tclient *tc, uint32_t option, tc_replies *out) {
        out->n = 0;
        for (;;) {
                CHECK(out->n < TC_REPLIES_MAX, "more than %d replies to option %u", TC_REPLIES_MAX, option);
                unsigned i = out->n++;
                out->type[i] = tc_option_reply(tc, option, &out->data[i], &out->len[i]);
                if (out->type[i] == NBDSDK_REP_ACK || (out->type[i] & NBDSDK_REP_FLAG_ERROR))
                        break;
        }
        CHECK(tc_pending(tc) == 0, "nothing follows the final reply to option %u", option);
}

void tc_replies_free(tc_replies *r) {
        for (unsigned i = 0; i < r->n; i++)
                free(r->data[i]);
        r->n = 0;
}

void tc_check_in_sync(tclient *tc) {
        CHECK(tc_pending(tc) == 0, "no stray bytes from the server");
        CHECK(!tc_closed(tc), "the connection is still open");
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, NBDSDK_OPT_LIST, &r);
        CHECK(r.n == 2 && r.type[0] == NBDSDK_REP_SERVER && r.type[1] == NBDSDK_REP_ACK,
              "the next option (LIST) is answered with SERVER then ACK");
        tc_replies_free(&r);
}

const char *const tc_mode_names[TC_MODES] = { "simple", "structured", "extended" };

tclient *tc_open(nbdsdk_server *server, tc_mode mode, bool meta, uint16_t *retflags) {
        tclient *tc = tc_connect_fixed(server);
        if (mode == TC_STRUCTURED)
                tc_structured(tc);
        else if (mode == TC_EXTENDED)
                tc_extended(tc);
        if (meta)
                tc_set_meta_context(tc, "", "base:allocation");
        tc_go(tc, "", NULL, retflags);
        return tc;
}

uint32_t tc_read(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, void *buf, uint64_t len) {
        tc_request(tc, flags, NBDSDK_CMD_READ, cookie, offset, len, NULL, 0);
        if (!tc->structured)
                return tc_simple_reply(tc, cookie, buf, len);
        return tc_structured_read(tc, cookie, offset, buf, len, NULL, NULL);
}

void tc_send_write(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, uint64_t len, const void *data,
                   size_t datalen) {
        if (tc->extended)
                flags |= NBDSDK_CMD_FLAG_PAYLOAD_LEN;
        tc_request(tc, flags, NBDSDK_CMD_WRITE, cookie, offset, len, data, datalen);
}

uint32_t tc_write(tclient *tc, uint16_t flags, uint64_t cookie, uint64_t offset, const void *buf, uint64_t len) {
        tc_send_write(tc, flags, cookie, offset, len, buf, len);
        return tc_reply_status(tc, cookie);
}

uint32_t tc_command(tclient *tc, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t offset, uint64_t len) {
        tc_request(tc, flags, type, cookie, offset, len, NULL, 0);
        return tc_reply_status(tc, cookie);
}

void tc_block_status_reply(tclient *tc, uint64_t cookie, tc_extents *out) {
        uint16_t flags;
        uint8_t *p;
        uint64_t len;
        uint16_t type = tc_chunk(tc, cookie, &flags, &p, &len);
        uint16_t want = tc->extended ? NBDSDK_REPLY_TYPE_BLOCK_STATUS_EXT : NBDSDK_REPLY_TYPE_BLOCK_STATUS;
        CHECK(type == want, "block status chunk type %u, expected %u (%s)", type, want,
              type == NBDSDK_REPLY_TYPE_ERROR && len > 6 ? (char *) p + 6 : "");
        CHECK(flags & NBDSDK_REPLY_FLAG_DONE, "the only status chunk is final");
        CHECK(wire_get32(p) == tc->meta_id, "chunk names the selected context %u", tc->meta_id);
        size_t head = tc->extended ? 8 : 4, esize = tc->extended ? 16 : 8;
        CHECK(len > head && (len - head) % esize == 0, "status payload of %llu bytes holds whole extents",
              (unsigned long long) len);
        out->n = (unsigned) ((len - head) / esize);
        CHECK(out->n <= TC_EXTENTS_MAX, "at most %d extents expected", TC_EXTENTS_MAX);
        if (tc->extended)
                CHECK(wire_get32(p + 4) == out->n, "descriptor count matches the payload");
        for (unsigned i = 0; i < out->n; i++) {
                const uint8_t *e = p + head + i * esize;
                out->length[i] = tc->extended ? wire_get64(e) : wire_get32(e);
                out->status[i] = tc->extended ? wire_get64(e + 8) : wire_get32(e + 4);
                CHECK(out->length[i] > 0, "extent %u has a nonzero length", i);
        }
        free(p);
}
