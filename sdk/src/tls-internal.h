/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS through GnuTLS (tls.c), or its absence (tls-unavailable.c): the
 * server's credentials and the transport a connection switches to after
 * NBD_OPT_STARTTLS. */
#pragma once

#include <stdbool.h>
#include "transport-internal.h"

/* Whether nbdsdk was built with GnuTLS. */
bool tls_available(void);

/* A server's credentials: X.509, PSK, or both. */
typedef struct tls_creds tls_creds;

/* Load DIR's certificates into *C (created if NULL). Returns 0 or -errno,
 * having logged what was wrong. */
int tls_creds_set_x509(tls_creds **c, const char *dir);
/* Use the keys of PATH (read at each handshake) in *C (created if NULL). */
int tls_creds_set_psk(tls_creds **c, const char *path);
/* Whether C can serve a handshake: some credentials, and to VERIFY client
 * certificates an authority to check them against. False with a message in
 * WHY otherwise. */
bool tls_creds_usable(const tls_creds *c, bool verify, const char **why);
void tls_creds_free(tls_creds *c);

/* A TLS server session over INNER (taken over, unless this fails), asking for
 * a client certificate if VERIFY. */
int transport_tls_new(transport *inner, tls_creds *c, bool verify, transport **ret);
/* Advance T's handshake: 1 done, 0 would block (see transport_tls_wants_write),
 * -EPROTO failed (*WHY says why). */
int transport_tls_handshake(transport *t, const char **why);
/* Whether T's handshake waits for its socket to take more (else: for input). */
bool transport_tls_wants_write(transport *t);
/* After the handshake: what was negotiated, for the log. */
void transport_tls_describe(transport *t, char *buf, size_t size);
/* The PSK username the client used, or NULL. */
const char *transport_tls_username(transport *t);
