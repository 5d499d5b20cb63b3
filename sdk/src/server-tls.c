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

/* The config keys: server-wide, whichever export section they are in. */

static int tls_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        nbdsdk_server *s = nbdsdk_export_get_server(exp);
        int r = 1;
        if (strcmp(key, "tls-certificates") == 0)
                r = nbdsdk_server_set_tls_certificates(s, value);
        else if (strcmp(key, "tls-psk") == 0)
                r = nbdsdk_server_set_tls_psk_file(s, value);
        if (r <= 0) /* a missing file is a bad value: -ENOENT would say "no such key" */
                return r == -ENOENT ? -EINVAL : r;
        if (strcmp(key, "tls-verify-peer") == 0) {
                int on = config_file_parse_switch(value);
                return on < 0 ? nbdsdk_error(-EINVAL, "%s=%s: expected true or false", key, value)
                              : nbdsdk_server_set_tls_verify_peer(s, on);
        }
        static const char *const modes[] = { "off", "on", "require" };
        size_t i = 0;
        while (i < sizeof modes / sizeof modes[0] && strcmp(value, modes[i]) != 0)
                i++;
        if (i == sizeof modes / sizeof modes[0])
                return nbdsdk_error(-EINVAL, "tls=%s: expected off, on or require", value);
        return nbdsdk_server_set_tls(s, (int) i);
}

static const struct {
        const char *key, *help;
} keys[] = {
        { "tls", "tls=off|on|require   TLS: refused (default), offered, or required" },
        { "tls-certificates", "tls-certificates=DIR   X.509: server-cert.pem, server-key.pem [, ca-cert.pem, ca-crl.pem]" },
        { "tls-psk", "tls-psk=FILE   pre-shared keys, a username:hexkey line per client" },
        { "tls-verify-peer", "tls-verify-peer=true   require a client certificate signed by ca-cert.pem" },
};

/* tls-only=true|false: this export's, unlike the keys above. */
static int tls_only_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        int on = config_file_parse_switch(value);
        return on < 0 ? nbdsdk_error(-EINVAL, "%s=%s: expected true or false", key, value)
                      : nbdsdk_export_set_tls_only(exp, on);
}

int server_tls_register(nbdsdk_server *s) {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                int r = nbdsdk_server_add_config_key(s, keys[i].key, keys[i].help, tls_config, NULL, NULL);
                if (r < 0)
                        return r;
        }
        return nbdsdk_server_add_config_key(s, "tls-only", "tls-only=true   with tls=on: this export only over TLS",
                                            tls_only_config, NULL, NULL);
}

bool server_tls_is_key(const char *key) {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                if (strcmp(keys[i].key, key) == 0)
                        return true;
        return false;
}
