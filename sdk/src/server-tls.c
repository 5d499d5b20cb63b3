/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server's TLS settings (nbdsdk_tls(3)): the calls, their config keys,
 * and what a connection asks about its TLS. */
#include <errno.h>
#include <string.h>
#include "config-file-internal.h"
#include "conn-internal.h"
#include "log-internal.h"
#include "server-internal.h"

int nbdsdk_server_set_tls(nbdsdk_server *s, int mode) {
        CHECK_SETTABLE(s);
        if (mode != NBDSDK_TLS_OFF && mode != NBDSDK_TLS_ON && mode != NBDSDK_TLS_REQUIRE)
                return -EINVAL;
        if (mode != NBDSDK_TLS_OFF && !tls_available())
                return nbdsdk_error(-ENOTSUP, "TLS: this nbdsdk was built without GnuTLS");
        s->tls_mode = mode;
        return 0;
}

int nbdsdk_server_set_tls_certificates(nbdsdk_server *s, const char *dir) {
        CHECK_SETTABLE(s);
        return dir ? tls_creds_set_x509(&s->tls_creds, dir) : -EINVAL;
}

int nbdsdk_server_set_tls_psk_file(nbdsdk_server *s, const char *path) {
        CHECK_SETTABLE(s);
        return path ? tls_creds_set_psk(&s->tls_creds, path) : -EINVAL;
}

int nbdsdk_server_set_tls_verify_peer(nbdsdk_server *s, bool verify) {
        CHECK_SETTABLE(s);
        s->tls_verify_peer = verify;
        return 0;
}

int nbdsdk_export_set_tls_only(nbdsdk_export *exp, bool tls_only) {
        if (!exp)
                return -EINVAL;
        CHECK_SETTABLE(exp->server);
        exp->tls_only = tls_only;
        return 0;
}

int server_tls_check(nbdsdk_server *s) {
        const char *why;
        for (size_t i = 0; s->tls_mode == NBDSDK_TLS_OFF && i < s->n_exports; i++)
                if (s->exports[i]->tls_only)
                        return nbdsdk_error(-EINVAL, "export \"%s\" is TLS-only, but TLS is off",
                                            s->exports[i]->name);
        if (s->tls_mode == NBDSDK_TLS_OFF || tls_creds_usable(s->tls_creds, s->tls_verify_peer, &why))
                return 0;
        return nbdsdk_error(-EINVAL, "tls=%s: %s", s->tls_mode == NBDSDK_TLS_ON ? "on" : "require", why);
}

bool nbdsdk_conn_is_tls(nbdsdk_conn *conn) {
        return conn && conn->tls && conn->state != CONN_TLS_HANDSHAKE && conn->state != CONN_CLOSED;
}

bool server_tls_hides(const nbdsdk_conn *conn, const nbdsdk_export *exp) {
        return exp->tls_only && !conn->tls;
}

const char *nbdsdk_conn_get_tls_username(nbdsdk_conn *conn) {
        return nbdsdk_conn_is_tls(conn) ? transport_tls_username(conn->transport) : NULL;
}

/* The config keys. A missing file is a bad value there: -ENOENT would say
 * "no such key". */

static int file_result(int r) {
        return r == -ENOENT ? -EINVAL : r;
}

static int tls_key(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        static const char *const modes[] = { "off", "on", "require" };
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
                if (strcmp(value, modes[i]) == 0)
                        return nbdsdk_server_set_tls(nbdsdk_export_get_server(exp), (int) i);
        return nbdsdk_error(-EINVAL, "%s=%s: expected off, on or require", key, value);
}

static int certificates_key(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) key;
        (void) userdata;
        return file_result(nbdsdk_server_set_tls_certificates(nbdsdk_export_get_server(exp), value));
}

static int psk_key(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) key;
        (void) userdata;
        return file_result(nbdsdk_server_set_tls_psk_file(nbdsdk_export_get_server(exp), value));
}

static int verify_peer_key(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        int on = config_file_parse_switch(value);
        return on < 0 ? nbdsdk_error(-EINVAL, "%s=%s: expected true or false", key, value)
                      : nbdsdk_server_set_tls_verify_peer(nbdsdk_export_get_server(exp), on);
}

/* tls-only: this export's, unlike the others. */
static int tls_only_key(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        int on = config_file_parse_switch(value);
        return on < 0 ? nbdsdk_error(-EINVAL, "%s=%s: expected true or false", key, value)
                      : nbdsdk_export_set_tls_only(exp, on);
}

int server_tls_register(nbdsdk_server *s) {
        static const struct {
                const char *key, *help;
                nbdsdk_config_handler handler;
        } server_wide[] = {
                { "tls", "tls=off|on|require   TLS: refused (default), offered, or required", tls_key },
                { "tls-certificates",
                  "tls-certificates=DIR   X.509: server-cert.pem, server-key.pem [, ca-cert.pem, ca-crl.pem]",
                  certificates_key },
                { "tls-psk", "tls-psk=FILE   pre-shared keys, a username:hexkey line per client", psk_key },
                { "tls-verify-peer", "tls-verify-peer=true   require a client certificate signed by ca-cert.pem",
                  verify_peer_key },
        };
        for (size_t i = 0; i < sizeof server_wide / sizeof server_wide[0]; i++) {
                int r = config_key_add_server_wide(s, server_wide[i].key, server_wide[i].help,
                                                   server_wide[i].handler);
                if (r < 0)
                        return r;
        }
        return nbdsdk_server_add_config_key(s, "tls-only", "tls-only=true   with tls=on: this export only over TLS",
                                            tls_only_key, NULL, NULL);
}
