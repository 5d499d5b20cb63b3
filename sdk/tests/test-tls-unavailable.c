/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk built without GnuTLS (meson -Dtls=disabled): TLS can only be off, every
 * other TLS setting says so, and STARTTLS is refused as by a server without TLS. */
#include "tcase.h"
#include "fixture.h"
#include "server-internal.h"

static void only_off_is_accepted(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_tls(server, NBDSDK_TLS_OFF) == 0, "tls=off");
        CHECK(nbdsdk_server_set_tls(server, NBDSDK_TLS_ON) == -ENOTSUP, "tls=on without GnuTLS");
        CHECK(nbdsdk_server_set_tls(server, NBDSDK_TLS_REQUIRE) == -ENOTSUP, "tls=require without GnuTLS");
        CHECK(nbdsdk_server_config(server, "tls", "require") == -ENOTSUP, "the tls key without GnuTLS");
        CHECK(nbdsdk_server_set_tls_certificates(server, "/tmp") == -ENOTSUP, "certificates without GnuTLS");
        CHECK(nbdsdk_server_set_tls_psk_file(server, "/tmp") == -ENOTSUP, "a PSK file without GnuTLS");
        CHECK(server->tls_mode == NBDSDK_TLS_OFF, "TLS stays off");
        disk_teardown();
}

static void starttls_is_refused_by_policy(void) {
        open_handshake();
        tc_option_expect(tc, NBDSDK_OPT_STARTTLS, NULL, 0, NBDSDK_REP_ERR_POLICY);
        tc_check_in_sync(tc);
        close_disk();
}

TCASE_MAIN(T(only_off_is_accepted), T(starttls_is_refused_by_policy))
