/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS (NBD_OPT_STARTTLS): X.509 certificates or pre-shared keys, through
 * GnuTLS. See nbdsdk_tls(3). */
#ifndef NBDSDK_TLS_H
#define NBDSDK_TLS_H

#include <stdbool.h>
#include <nbdsdk/nbdsdk-server.h>
#include <nbdsdk/nbdsdk-export.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Whether clients may, must or cannot use TLS. */
enum nbdsdk_tls_mode {
        NBDSDK_TLS_OFF,         /* STARTTLS is refused (NBD_REP_ERR_POLICY); the default */
        NBDSDK_TLS_ON,          /* clients choose: with or without TLS */
        NBDSDK_TLS_REQUIRE,     /* every option but STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD
                                 * before TLS; NBD_OPT_EXPORT_NAME closes the connection */
};

/* Set the mode. ON and REQUIRE need credentials (one of the next two calls)
 * by the time the server starts, which otherwise fails with -EINVAL. Returns
 * 0, -EINVAL (unknown mode), -EBUSY (the server runs), -ENOTSUP (nbdsdk was
 * built without GnuTLS: only OFF is accepted). */
int nbdsdk_server_set_tls(nbdsdk_server *server, int mode);

/* X.509: DIR holds server-cert.pem and server-key.pem (PEM; the certificate
 * may be followed by its chain), and may hold ca-cert.pem (the authority
 * client certificates must come from) and ca-crl.pem (revoked ones). They
 * are read now; an error is logged with the file and GnuTLS's reason and
 * returned as -errno (-ENOENT, -EACCES, -EINVAL for a file that does not
 * parse, -ENOTSUP without GnuTLS, -EBUSY once the server runs). */
int nbdsdk_server_set_tls_certificates(nbdsdk_server *server, const char *dir);

/* Pre-shared keys: PATH has one "username:key" line per client, the key in
 * hexadecimal (the format of GnuTLS's psktool). Read at each handshake, so
 * keys can be added while the server runs; checked now (it must be a
 * readable file). Returns 0 or -errno as above. */
int nbdsdk_server_set_tls_psk_file(nbdsdk_server *server, const char *path);

/* X.509 only: require a client certificate signed by DIR's ca-cert.pem
 * (needs that file by the time the server starts). Default off. Returns 0,
 * -EINVAL, -EBUSY. */
int nbdsdk_server_set_tls_verify_peer(nbdsdk_server *server, bool verify);

/* In NBDSDK_TLS_ON mode: EXP is served over TLS only. A client without TLS
 * gets NBD_REP_ERR_TLS_REQD for NBD_OPT_INFO and NBD_OPT_GO on it (its
 * NBD_OPT_EXPORT_NAME closes the connection), and NBD_OPT_LIST does not show
 * it. Default false. With TLS off the server then fails to start (-EINVAL).
 * Returns 0, -EINVAL (NULL), -EBUSY (the server runs). */
int nbdsdk_export_set_tls_only(nbdsdk_export *exp, bool tls_only);

/* Whether CONN's negotiation continued over TLS (after a successful
 * NBD_OPT_STARTTLS): in NBDSDK_TLS_ON mode a backend may use it to refuse an
 * export to clients without TLS. */
bool nbdsdk_conn_is_tls(nbdsdk_conn *conn);

/* With PSK: the client's username, valid while CONN lives; NULL otherwise. */
const char *nbdsdk_conn_get_tls_username(nbdsdk_conn *conn);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
