/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS (spec "TLS support"): the settings, the FORCEDTLS rules over the
 * in-memory transport, and whole sessions with a GnuTLS client driven over
 * it: a PSK handshake, options and data over TLS while the client's side
 * takes only a few KiB at a time (so the server's sends block mid-record),
 * what STARTTLS makes the server forget, and what the connection says of
 * its TLS. */
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "tcase.h"
#include "fixture.h"
#include "server-internal.h"
#include "wire-internal.h"

static const uint8_t junk[] = { 0xde, 0xad, 0xbe, 0xef };
static const char key_hex[] = "00112233445566778899aabbccddeeff";
static char psk_path[] = "/tmp/nbdsdk-test-tls-XXXXXX";

static void write_psk_file(void) {
        int fd = mkstemp(psk_path);
        CHECK(fd >= 0, "a temporary PSK file");
        char line[128];
        int n = snprintf(line, sizeof line, "alice:%s\n", key_hex);
        CHECK(write(fd, line, (size_t) n) == n, "writing the PSK file");
        close(fd);
}

static void tls_server(int mode) {
        disk_setup();
        CHECK(nbdsdk_server_set_tls(server, mode) == 0, "TLS mode %d", mode);
        CHECK(nbdsdk_server_set_tls_psk_file(server, psk_path) == 0, "the PSK file");
}

static void settings_are_checked(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_tls(server, 3) == -EINVAL, "an unknown mode");
        CHECK(nbdsdk_server_set_tls_certificates(server, "/nonexistent") == -ENOENT, "a missing directory");
        CHECK(nbdsdk_server_set_tls_psk_file(server, "/nonexistent") == -ENOENT, "a missing PSK file");
        CHECK(nbdsdk_server_set_tls_psk_file(server, "/tmp") == -EINVAL, "a directory as PSK file");
        CHECK(nbdsdk_server_config(server, "tls-psk", "/nonexistent") == -EINVAL,
              "tls-psk= naming no file is a bad value, not an unknown key (-ENOENT)");
        CHECK(nbdsdk_server_config(server, "tls", "maybe") == -EINVAL, "tls=maybe");
        CHECK(nbdsdk_server_config(server, "tls-verify-peer", "require") == -EINVAL, "tls-verify-peer=require");
        CHECK(nbdsdk_server_config(server, "tls", "require") == 0 && server->tls_mode == NBDSDK_TLS_REQUIRE,
              "tls=require");
        /* Without credentials the server cannot start. */
        transport *t;
        mem_peer *peer;
        CHECK(transport_mem_new(&t, &peer) == 0, "in-memory transport");
        CHECK(server_serve_transport(server, t, 0, NULL) == -EINVAL, "tls=require without credentials");
        mem_peer_free(peer);
        /* A PSK does not let the server check client certificates. */
        CHECK(nbdsdk_server_config(server, "tls-psk", psk_path) == 0, "tls-psk=");
        CHECK(nbdsdk_server_config(server, "tls-verify-peer", "true") == 0 && server->tls_verify_peer,
              "tls-verify-peer=true");
        CHECK(transport_mem_new(&t, &peer) == 0, "in-memory transport");
        CHECK(server_serve_transport(server, t, 0, NULL) == -EINVAL, "verifying clients without a CA");
        mem_peer_free(peer);
        CHECK(nbdsdk_server_config(server, "tls-verify-peer", "false") == 0 && !server->tls_verify_peer,
              "tls-verify-peer=false");
        disk_teardown();
}

static void require_refuses_options_before_starttls(void) {
        tls_server(NBDSDK_TLS_REQUIRE);
        tc = tc_connect_fixed(server);
        static const uint8_t info[6] = { 0 }; /* the default export, no requests */
        const struct { uint32_t option; const void *data; uint32_t len; } refused[] = {
                { NBDSDK_OPT_INFO, info, sizeof info }, { NBDSDK_OPT_GO, info, sizeof info },
                { NBDSDK_OPT_LIST, NULL, 0 }, { NBDSDK_OPT_STRUCTURED_REPLY, NULL, 0 },
                { NBDSDK_OPT_EXTENDED_HEADERS, NULL, 0 }, { 99, junk, sizeof junk },
        };
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
                tc_send_option(tc, refused[i].option, refused[i].data, refused[i].len);
                uint8_t *msg;
                uint32_t type = tc_option_reply(tc, refused[i].option, &msg, NULL);
                CHECK(type == NBDSDK_REP_ERR_TLS_REQD && strstr((char *) msg, "STARTTLS"),
                      "option %u before TLS: ERR_TLS_REQD saying to send STARTTLS, got 0x%x (%s)",
                      refused[i].option, type, (char *) msg);
                free(msg);
        }
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, junk, sizeof junk, NBDSDK_REP_ERR_INVALID);
        tc_option_expect(tc, NBDSDK_OPT_LIST, NULL, 0, NBDSDK_REP_ERR_TLS_REQD); /* still in sync */
        tc_option_expect(tc, NBDSDK_OPT_ABORT, NULL, 0, NBDSDK_REP_ACK);
        CHECK(tc_closed(tc), "ABORT is honoured without TLS");
        close_disk();
}

static void require_closes_on_export_name(void) {
        tls_server(NBDSDK_TLS_REQUIRE);
        tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, NULL, 0);
        CHECK(tc_closed(tc), "EXPORT_NAME cannot be refused with a reply: the server hangs up");
        close_disk();
}

static void data_before_the_tls_hello_closes(void) {
        tls_server(NBDSDK_TLS_ON);
        tc = tc_connect_fixed(server);
        uint8_t opt[16 + sizeof junk];
        wire_put64(opt, NBDSDK_MAGIC_OPTS);
        wire_put32(opt + 8, NBDSDK_OPT_STARTTLS);
        wire_put32(opt + 12, 0);
        memcpy(opt + 16, junk, sizeof junk); /* plaintext the server must not take as TLS */
        tc_send(tc, opt, sizeof opt);
        CHECK(tc_option_reply(tc, NBDSDK_OPT_STARTTLS, NULL, NULL) == NBDSDK_REP_ACK, "STARTTLS is acknowledged");
        CHECK(tc_closed(tc), "then the connection closes: bytes came before the TLS handshake");
        close_disk();
}

/* A GnuTLS client over TC's in-memory transport. Whenever it would wait,
 * the server runs. */
static gnutls_session_t client;
static gnutls_psk_client_credentials_t client_psk;

static ssize_t client_pull(gnutls_transport_ptr_t p, void *buf, size_t len) {
        (void) p;
        if (mem_peer_pending(tc->peer) == 0)
                tc_run(tc);
        size_t n = mem_peer_recv(tc->peer, buf, len);
        if (n == 0 && !tc_closed(tc)) {
                gnutls_transport_set_errno(client, EAGAIN);
                return -1;
        }
        return (ssize_t) n;
}

static ssize_t client_push(gnutls_transport_ptr_t p, const void *buf, size_t len) {
        (void) p;
        CHECK(mem_peer_send(tc->peer, buf, len) == 0, "queueing %zu bytes", len);
        return (ssize_t) len;
}

/* Start TLS on TC with KEY; returns GnuTLS's handshake result. */
static int client_handshake(const char *key) {
        CHECK(gnutls_init(&client, GNUTLS_CLIENT | GNUTLS_NONBLOCK) == 0, "client session");
        CHECK(gnutls_priority_set_direct(client, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", NULL) == 0, "priority");
        CHECK(gnutls_psk_allocate_client_credentials(&client_psk) == 0, "client credentials");
        gnutls_datum_t k = { (unsigned char *) key, (unsigned) strlen(key) };
        CHECK(gnutls_psk_set_client_credentials(client_psk, "alice", &k, GNUTLS_PSK_KEY_HEX) == 0, "client key");
        CHECK(gnutls_credentials_set(client, GNUTLS_CRD_PSK, client_psk) == 0, "credentials");
        gnutls_transport_set_pull_function(client, client_pull);
        gnutls_transport_set_push_function(client, client_push);
        int r = GNUTLS_E_AGAIN;
        for (int i = 0; i < 1000 && r == GNUTLS_E_AGAIN; i++) {
                r = gnutls_handshake(client);
                tc_run(tc);
        }
        return r;
}

static void client_end(void) {
        gnutls_deinit(client);
        gnutls_psk_free_client_credentials(client_psk);
}

static void client_send(const void *buf, size_t len) {
        for (size_t done = 0; done < len;) {
                ssize_t n = gnutls_record_send(client, (const char *) buf + done, len - done);
                CHECK(n > 0, "client send: %s", gnutls_strerror((int) n));
                done += (size_t) n;
        }
        tc_run(tc);
}

static void client_recv(void *buf, size_t len) {
        size_t done = 0;
        for (int i = 0; done < len && i < 100000; i++) {
                ssize_t n = gnutls_record_recv(client, (char *) buf + done, len - done);
                CHECK(n > 0 || n == GNUTLS_E_AGAIN, "client receive: %s", n ? gnutls_strerror((int) n) : "end");
                if (n > 0)
                        done += (size_t) n;
        }
        CHECK(done == len, "expected %zu bytes over TLS, got %zu", len, done);
}

/* An option over TLS and its final reply's type; the NBD_REP_SERVER replies
 * before it are counted in *N_SERVER unless NULL, INFO ones skipped. */
static uint32_t client_option(uint32_t option, const void *data, uint32_t len, unsigned *n_server) {
        uint8_t h[16];
        wire_put64(h, NBDSDK_MAGIC_OPTS);
        wire_put32(h + 8, option);
        wire_put32(h + 12, len);
        client_send(h, sizeof h);
        if (len)
                client_send(data, len);
        for (;;) {
                uint8_t r[20];
                client_recv(r, sizeof r);
                CHECK(wire_get64(r) == NBDSDK_MAGIC_OPT_REPLY && wire_get32(r + 8) == option, "an option reply");
                uint32_t type = wire_get32(r + 12), n = wire_get32(r + 16);
                uint8_t *skip = malloc(n + 1);
                client_recv(skip, n);
                free(skip);
                if (type == NBDSDK_REP_SERVER && n_server)
                        ++*n_server;
                if (type != NBDSDK_REP_INFO && type != NBDSDK_REP_SERVER)
                        return type;
        }
}

static void client_request(uint16_t type, uint64_t cookie, uint64_t offset, uint32_t len) {
        uint8_t h[32];
        client_send(h, tc_encode_request(h, false, 0, type, cookie, offset, len));
}

static void client_simple_reply(uint64_t cookie) {
        uint8_t r[16];
        client_recv(r, sizeof r);
        CHECK(wire_get32(r) == NBDSDK_MAGIC_SIMPLE_REPLY,
              "a simple reply: structured replies negotiated before STARTTLS were forgotten (magic 0x%08x)",
              wire_get32(r));
        CHECK(wire_get32(r + 4) == 0 && wire_get64(r + 8) == cookie, "success for cookie %llu",
              (unsigned long long) cookie);
}

static void psk_session_carries_options_and_data(void) {
        tls_server(NBDSDK_TLS_ON);
        tc = tc_connect_fixed(server);
        tc_structured(tc); /* before TLS: to be forgotten */
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ACK);
        CHECK(!nbdsdk_conn_is_tls(tc->conn), "not TLS until the handshake is done");
        int r = client_handshake(key_hex);
        CHECK(r == 0, "PSK handshake: %s", gnutls_strerror(r));
        CHECK(nbdsdk_conn_is_tls(tc->conn), "the connection says it is TLS");
        const char *user = nbdsdk_conn_get_tls_username(tc->conn);
        CHECK(user && strcmp(user, "alice") == 0, "the PSK username is alice, got %s", user ? user : "NULL");
        CHECK(client_option(NBDSDK_OPT_STARTTLS, NULL, 0, NULL) == NBDSDK_REP_ERR_INVALID, "a second STARTTLS is invalid");
        static const uint8_t go[6] = { 0 };
        CHECK(client_option(NBDSDK_OPT_GO, go, sizeof go, NULL) == NBDSDK_REP_ACK, "GO over TLS");
        /* The client's side takes 3000 bytes at a time: sends block mid-record. */
        mem_peer_set_write_budget(tc->peer, 3000);
        enum { LEN = 256 * 1024 };
        uint8_t *out = malloc(LEN), *in = malloc(LEN);
        for (size_t i = 0; i < LEN; i++)
                out[i] = (uint8_t) (i * 7 + i / 4096);
        client_request(NBDSDK_CMD_WRITE, 1, 4096, LEN);
        client_send(out, LEN);
        client_simple_reply(1);
        for (uint64_t cookie = 2; cookie < 5; cookie++) {
                client_request(NBDSDK_CMD_READ, cookie, 4096, LEN);
                client_simple_reply(cookie);
                client_recv(in, LEN);
                CHECK(memcmp(in, out, LEN) == 0, "read %llu returns what was written, over TLS",
                      (unsigned long long) cookie);
        }
        free(out);
        free(in);
        client_request(NBDSDK_CMD_DISC, 5, 0, 0);
        tc_run(tc);
        CHECK(tc_closed(tc), "DISC closes the connection");
        client_end();
        close_disk();
}

static void wrong_key_fails_the_handshake(void) {
        tls_server(NBDSDK_TLS_REQUIRE);
        tc = tc_connect_fixed(server);
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ACK);
        int r = client_handshake("ffeeddccbbaa99887766554433221100");
        CHECK(r < 0 && r != GNUTLS_E_AGAIN, "the handshake fails with another key");
        tc_run(tc);
        CHECK(tc_closed(tc), "and the server hangs up");
        client_end();
        close_disk();
}

static void stalled_handshake_times_out(void) {
        tls_server(NBDSDK_TLS_REQUIRE);
        CHECK(nbdsdk_server_set_timeouts(server, 1, 0) == 0, "a 1 s handshake timeout");
        tc = tc_connect_fixed(server);
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ACK);
        tc_run(tc);
        CHECK(!tc_closed(tc), "the server waits for the TLS hello");
        nanosleep(&(struct timespec) { 1, 200 * 1000 * 1000 }, NULL);
        tc_run(tc);
        CHECK(tc_closed(tc), "a client that never starts its TLS handshake is dropped at the handshake timeout");
        close_disk();
}

/* The data of INFO or GO for NAME, without information requests. */
static uint32_t name_option(const char *name, uint8_t *buf) {
        size_t n = strlen(name);
        wire_put32(buf, (uint32_t) n);
        memcpy(buf + 4, name, n);
        wire_put16(buf + 4 + n, 0);
        return (uint32_t) (n + 6);
}

/* SELECTIVETLS: the default export TLS-only, "public" not. */
static void tls_only_export_needs_tls(void) {
        tls_server(NBDSDK_TLS_ON);
        CHECK(nbdsdk_server_config(server, "tls-only", "maybe") == -EINVAL, "tls-only=maybe");
        CHECK(nbdsdk_server_config(server, "tls-only", "true") == 0, "tls-only=true");
        CHECK(nbdsdk_server_add_export(server, "public", td, NULL) == 0, "a second export");
        tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        tc_replies list;
        tc_option_replies(tc, NBDSDK_OPT_LIST, &list);
        CHECK(list.n == 2 && list.type[0] == NBDSDK_REP_SERVER && wire_get32(list.data[0]) == 6 &&
                      memcmp(list.data[0] + 4, "public", 6) == 0 && list.type[1] == NBDSDK_REP_ACK,
              "LIST without TLS shows only the export that does not need it");
        tc_replies_free(&list);
        uint8_t buf[32];
        for (uint32_t option = NBDSDK_OPT_INFO; option <= NBDSDK_OPT_GO; option++) {
                tc_send_option(tc, option, buf, name_option("", buf));
                uint8_t *msg;
                uint32_t type = tc_option_reply(tc, option, &msg, NULL);
                CHECK(type == NBDSDK_REP_ERR_TLS_REQD && strstr((char *) msg, "TLS only"),
                      "option %u for the TLS-only export without TLS: ERR_TLS_REQD, got 0x%x (%s)", option, type,
                      (char *) msg);
                free(msg);
        }
        tc_send_option(tc, NBDSDK_OPT_INFO, buf, name_option("public", buf));
        tc_replies info;
        tc_option_replies(tc, NBDSDK_OPT_INFO, &info);
        CHECK(info.n >= 2 && info.type[info.n - 1] == NBDSDK_REP_ACK, "INFO for the other export without TLS");
        tc_replies_free(&info);
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ACK);
        int r = client_handshake(key_hex);
        CHECK(r == 0, "PSK handshake: %s", gnutls_strerror(r));
        unsigned n_server = 0;
        CHECK(client_option(NBDSDK_OPT_LIST, NULL, 0, &n_server) == NBDSDK_REP_ACK && n_server == 2,
              "LIST over TLS shows both exports (%u)", n_server);
        CHECK(client_option(NBDSDK_OPT_GO, buf, name_option("", buf), NULL) == NBDSDK_REP_ACK,
              "GO for the TLS-only export over TLS");
        client_end();
        close_disk();
        /* EXPORT_NAME cannot be refused with a reply. */
        tls_server(NBDSDK_TLS_ON);
        CHECK(nbdsdk_export_set_tls_only(nbdsdk_server_get_export(server, NULL), true) == 0, "TLS-only");
        tc = tc_connect_fixed(server);
        tc_send_option(tc, NBDSDK_OPT_EXPORT_NAME, NULL, 0);
        CHECK(tc_closed(tc), "EXPORT_NAME for the TLS-only export without TLS: the server hangs up");
        close_disk();
}

static void tls_only_export_needs_tls_on(void) {
        disk_setup();
        CHECK(nbdsdk_export_set_tls_only(nbdsdk_server_get_export(server, NULL), true) == 0, "TLS-only");
        transport *t;
        mem_peer *peer;
        CHECK(transport_mem_new(&t, &peer) == 0, "in-memory transport");
        CHECK(server_serve_transport(server, t, 0, NULL) == -EINVAL, "a TLS-only export with TLS off");
        mem_peer_free(peer);
        disk_teardown();
}

static void cleanup(void) {
        unlink(psk_path);
}

int main(int argc, char **argv) {
        static const tcase cases[] = {
                T(settings_are_checked), T(require_refuses_options_before_starttls),
                T(require_closes_on_export_name), T(data_before_the_tls_hello_closes),
                T(psk_session_carries_options_and_data), T(wrong_key_fails_the_handshake),
                T(stalled_handshake_times_out), T(tls_only_export_needs_tls), T(tls_only_export_needs_tls_on),
        };
        write_psk_file();
        atexit(cleanup);
        return tcase_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
