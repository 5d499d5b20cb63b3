/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TLS with GnuTLS: the server's X.509 and PSK credentials, and the transport
 * a connection runs over after NBD_OPT_STARTTLS, non-blocking like the plain
 * one it wraps (whose reads and writes carry the records). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include "log-internal.h"
#include "tls-internal.h"

struct tls_creds {
        gnutls_certificate_credentials_t x509;
        gnutls_psk_server_credentials_t psk;
        bool has_ca;             /* the X.509 directory had ca-cert.pem */
};

bool tls_available(void) {
        return true;
}

static tls_creds *creds_get(tls_creds **c) {
        if (!*c)
                *c = calloc(1, sizeof **c);
        return *c;
}

void tls_creds_free(tls_creds *c) {
        if (!c)
                return;
        if (c->x509)
                gnutls_certificate_free_credentials(c->x509);
        if (c->psk)
                gnutls_psk_free_server_credentials(c->psk);
        free(c);
}

/* 0 if PATH is a file we can read, else -errno, logged. */
static int check_readable(const char *path) {
        struct stat st;
        if (stat(path, &st) < 0 || access(path, R_OK) < 0) {
                int r = -errno;
                log_error("TLS: cannot read %s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                log_error("TLS: %s is not a regular file", path);
                return -EINVAL;
        }
        return 0;
}

/* GnuTLS's result GR of reading PATH: 0 or -EINVAL, logged. */
static int gnutls_result(int gr, const char *path) {
        if (gr >= 0)
                return 0;
        log_error("TLS: %s: %s", path, gnutls_strerror(gr));
        return -EINVAL;
}

/* Load the optional authority files of DIR into X. */
static int load_authority(gnutls_certificate_credentials_t x, const char *dir, bool *has_ca) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ca-cert.pem", dir);
        *has_ca = access(path, F_OK) == 0;
        int r = 0;
        if (*has_ca && (r = check_readable(path)) == 0)
                r = gnutls_result(gnutls_certificate_set_x509_trust_file(x, path, GNUTLS_X509_FMT_PEM), path);
        snprintf(path, sizeof path, "%s/ca-crl.pem", dir);
        if (r == 0 && access(path, F_OK) == 0 && (r = check_readable(path)) == 0)
                r = gnutls_result(gnutls_certificate_set_x509_crl_file(x, path, GNUTLS_X509_FMT_PEM), path);
        return r;
}

int tls_creds_set_x509(tls_creds **pc, const char *dir) {
        tls_creds *c = creds_get(pc);
        if (!c)
                return -ENOMEM;
        char cert[4096], key[4096];
        if ((size_t) snprintf(cert, sizeof cert, "%s/server-cert.pem", dir) >= sizeof cert)
                return -ENAMETOOLONG;
        snprintf(key, sizeof key, "%s/server-key.pem", dir);
        int r = check_readable(cert);
        if (r == 0)
                r = check_readable(key);
        if (r < 0)
                return r;
        gnutls_certificate_credentials_t x;
        if (gnutls_certificate_allocate_credentials(&x) < 0)
                return -ENOMEM;
        bool has_ca = false;
        r = gnutls_result(gnutls_certificate_set_x509_key_file(x, cert, key, GNUTLS_X509_FMT_PEM), cert);
        if (r == 0)
                r = load_authority(x, dir, &has_ca);
        if (r == 0)
                r = gnutls_result(gnutls_certificate_set_known_dh_params(x, GNUTLS_SEC_PARAM_MEDIUM), dir);
        if (r < 0) {
                gnutls_certificate_free_credentials(x);
                return r;
        }
        if (c->x509)
                gnutls_certificate_free_credentials(c->x509);
        c->x509 = x;
        c->has_ca = has_ca;
        return 0;
}

int tls_creds_set_psk(tls_creds **pc, const char *path) {
        tls_creds *c = creds_get(pc);
        if (!c)
                return -ENOMEM;
        int r = check_readable(path);
        if (r < 0)
                return r;
        gnutls_psk_server_credentials_t p;
        if (gnutls_psk_allocate_server_credentials(&p) < 0)
                return -ENOMEM;
        r = gnutls_result(gnutls_psk_set_server_credentials_file(p, path), path);
        if (r == 0)
                r = gnutls_result(gnutls_psk_set_server_known_dh_params(p, GNUTLS_SEC_PARAM_MEDIUM), path);
        if (r < 0) {
                gnutls_psk_free_server_credentials(p);
                return r;
        }
        if (c->psk)
                gnutls_psk_free_server_credentials(c->psk);
        c->psk = p;
        return 0;
}

bool tls_creds_usable(const tls_creds *c, bool verify, const char **why) {
        if (!c || (!c->x509 && !c->psk))
                *why = "TLS needs certificates or a PSK file";
        else if (verify && !(c->x509 && c->has_ca))
                *why = "verifying clients needs certificates with a ca-cert.pem";
        else
                return true;
        return false;
}

/* The session. A record holds at most this much; a send that would block
 * must be retried with the same bytes, so they wait in STAGE. */
#define TLS_RECORD 16384

typedef struct {
        transport base;
        transport *inner;
        gnutls_session_t session;
        bool established;
        bool pending;            /* STAGE's send would have blocked: send it again, as it is */
        size_t staged;
        unsigned char stage[TLS_RECORD];
} tls_transport;

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len) {
        tls_transport *t = p;
        ssize_t n = t->inner->ops->read(t->inner, buf, len);
        if (n < 0) {
                gnutls_transport_set_errno(t->session, (int) -n);
                return -1;
        }
        return n;
}

static ssize_t tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt) {
        tls_transport *t = p;
        ssize_t n = t->inner->ops->writev(t->inner, (const struct iovec *) iov, iovcnt);
        if (n < 0) {
                gnutls_transport_set_errno(t->session, (int) -n);
                return -1;
        }
        return n;
}

/* Reads record after record until LEN bytes or an empty socket: one call
 * takes all that has arrived, and a short read means, as with the plain
 * transport, that nothing more is waiting (GnuTLS keeps back only what did
 * not fit into BUF). */
static ssize_t tls_read(transport *tp, void *buf, size_t len) {
        tls_transport *t = (tls_transport *) tp;
        size_t got = 0;
        while (got < len) {
                ssize_t n = gnutls_record_recv(t->session, (char *) buf + got, len - got);
                if (n > 0) {
                        got += (size_t) n;
                        continue;
                }
                if (n == GNUTLS_E_INTERRUPTED)
                        continue;
                if (got > 0)
                        break; /* the end or the error again next time */
                if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION)
                        return 0;
                if (n == GNUTLS_E_AGAIN)
                        return -EAGAIN;
                log_error("TLS: receiving failed: %s", gnutls_strerror((int) n));
                return -EPROTO;
        }
        return (ssize_t) got;
}

/* Skip N bytes of IOV from (*I, *OFF), copying them to DST unless NULL. */
static void iov_take(const struct iovec *iov, int iovcnt, int *i, size_t *off, unsigned char *dst, size_t n) {
        while (n > 0 && *i < iovcnt) {
                size_t k = iov[*i].iov_len - *off < n ? iov[*i].iov_len - *off : n;
                if (dst) {
                        memcpy(dst, (const char *) iov[*i].iov_base + *off, k);
                        dst += k;
                }
                n -= k;
                *off += k;
                if (*off == iov[*i].iov_len) {
                        (*i)++;
                        *off = 0;
                }
        }
}

static size_t iov_left(const struct iovec *iov, int iovcnt, int i, size_t off) {
        size_t n = 0;
        for (; i < iovcnt; i++, off = 0)
                n += iov[i].iov_len - off;
        return n;
}

/* The caller's data is copied into records of up to TLS_RECORD bytes. What
 * is staged and not yet sent was not counted as written, so the caller's
 * next IOV starts with it: it is skipped there, not copied again. */
static ssize_t tls_writev(transport *tp, const struct iovec *iov, int iovcnt) {
        tls_transport *t = (tls_transport *) tp;
        int i = 0;
        size_t off = 0, done = 0;
        iov_take(iov, iovcnt, &i, &off, NULL, t->staged);
        for (;;) {
                if (!t->pending) {
                        size_t room = TLS_RECORD - t->staged, left = iov_left(iov, iovcnt, i, off);
                        size_t n = left < room ? left : room;
                        iov_take(iov, iovcnt, &i, &off, t->stage + t->staged, n);
                        t->staged += n;
                }
                if (t->staged == 0)
                        return (ssize_t) done;
                ssize_t n = gnutls_record_send(t->session, t->stage, t->staged);
                if (n == GNUTLS_E_INTERRUPTED)
                        continue;
                t->pending = n == GNUTLS_E_AGAIN;
                if (n == GNUTLS_E_AGAIN)
                        return done > 0 ? (ssize_t) done : -EAGAIN;
                if (n < 0) {
                        log_error("TLS: sending failed: %s", gnutls_strerror((int) n));
                        return done > 0 ? (ssize_t) done : -EPIPE;
                }
                /* A record smaller than the stage (the client limited their size). */
                memmove(t->stage, t->stage + n, t->staged - (size_t) n);
                t->staged -= (size_t) n;
                done += (size_t) n;
        }
}

static int tls_get_read_fd(transport *tp) {
        transport *inner = ((tls_transport *) tp)->inner;
        return inner->ops->get_read_fd(inner);
}

static int tls_get_write_fd(transport *tp) {
        transport *inner = ((tls_transport *) tp)->inner;
        return inner->ops->get_write_fd(inner);
}

/* The spec wants TLS shut down before the socket closes: a close_notify,
 * if the socket takes it now (the connection does not wait any more). */
static void tls_free(transport *tp) {
        tls_transport *t = (tls_transport *) tp;
        if (t->established && !t->pending && t->staged == 0)
                gnutls_bye(t->session, GNUTLS_SHUT_WR);
        gnutls_deinit(t->session);
        t->inner->ops->free(t->inner);
        free(t);
}

static const struct transport_ops tls_ops = {
        .read = tls_read, .writev = tls_writev,
        .get_read_fd = tls_get_read_fd, .get_write_fd = tls_get_write_fd, .free = tls_free,
};

/* The protocol versions and, with PSK, its key exchanges. TLS 1.2 or later
 * (the spec: older ones only if configured explicitly). */
static const char *priority(const tls_creds *c) {
        return c->psk ? "NORMAL:-VERS-TLS1.1:-VERS-TLS1.0:+ECDHE-PSK:+DHE-PSK:+PSK"
                      : "NORMAL:-VERS-TLS1.1:-VERS-TLS1.0";
}

static int session_setup(tls_transport *t, tls_creds *c, bool verify) {
        gnutls_session_t s = t->session;
        int gr = gnutls_priority_set_direct(s, priority(c), NULL);
        if (gr >= 0 && c->x509)
                gr = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->x509);
        if (gr >= 0 && c->psk)
                gr = gnutls_credentials_set(s, GNUTLS_CRD_PSK, c->psk);
        if (gr < 0) {
                log_error("TLS: cannot set up a session: %s", gnutls_strerror(gr));
                return -EINVAL;
        }
        if (verify) {
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
                gnutls_session_set_verify_cert(s, NULL, 0);
        }
        gnutls_handshake_set_timeout(s, 0); /* the connection's handshake timeout applies */
        gnutls_transport_set_ptr(s, t);
        gnutls_transport_set_pull_function(s, tls_pull);
        gnutls_transport_set_vec_push_function(s, tls_push);
        return 0;
}

int transport_tls_new(transport *inner, tls_creds *c, bool verify, transport **ret) {
        tls_transport *t = calloc(1, sizeof *t);
        if (!t || gnutls_init(&t->session, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
                free(t);
                return -ENOMEM;
        }
        t->base.ops = &tls_ops;
        t->inner = inner;
        int r = session_setup(t, c, verify);
        if (r < 0) {
                gnutls_deinit(t->session);
                free(t);
                return r;
        }
        *ret = &t->base;
        return 0;
}

int transport_tls_handshake(transport *tp, const char **why) {
        tls_transport *t = (tls_transport *) tp;
        int gr;
        do
                gr = gnutls_handshake(t->session);
        while (gr < 0 && gr != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(gr));
        if (gr == GNUTLS_E_AGAIN)
                return 0;
        if (gr < 0) {
                *why = gnutls_strerror(gr);
                return -EPROTO;
        }
        t->established = true;
        return 1;
}

bool transport_tls_wants_write(transport *tp) {
        return gnutls_record_get_direction(((tls_transport *) tp)->session) == 1;
}

void transport_tls_describe(transport *tp, char *buf, size_t size) {
        char *desc = gnutls_session_get_desc(((tls_transport *) tp)->session);
        snprintf(buf, size, "%s", desc ? desc : "?");
        gnutls_free(desc);
}

const char *transport_tls_username(transport *tp) {
        return gnutls_psk_server_get_username(((tls_transport *) tp)->session);
}
