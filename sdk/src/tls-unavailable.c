/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk built without GnuTLS: no credentials can be loaded, so TLS stays
 * off and STARTTLS is refused as by a server without TLS. */
#include <errno.h>
#include "log-internal.h"
#include "tls-internal.h"

bool tls_available(void) {
        return false;
}

static int unavailable(void) {
        log_error("TLS: this nbdsdk was built without GnuTLS");
        return -ENOTSUP;
}

int tls_creds_set_x509(tls_creds **c, const char *dir) {
        (void) c;
        (void) dir;
        return unavailable();
}

int tls_creds_set_psk(tls_creds **c, const char *path) {
        (void) c;
        (void) path;
        return unavailable();
}

bool tls_creds_usable(const tls_creds *c, bool verify, const char **why) {
        (void) c;
        (void) verify;
        *why = "this nbdsdk was built without GnuTLS";
        return false;
}

void tls_creds_free(tls_creds *c) {
        (void) c;
}

int transport_tls_new(transport *inner, tls_creds *c, bool verify, transport **ret) {
        (void) c;
        (void) verify;
        (void) inner;
        (void) ret;
        return -ENOTSUP;
}

int transport_tls_handshake(transport *t, const char **why) {
        (void) t;
        *why = "no TLS";
        return -EPROTO;
}

bool transport_tls_wants_write(transport *t) {
        (void) t;
        return false;
}

void transport_tls_describe(transport *t, char *buf, size_t size) {
        (void) t;
        if (size)
                buf[0] = 0;
}

const char *transport_tls_username(transport *t) {
        (void) t;
        return NULL;
}
