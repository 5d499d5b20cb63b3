/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feed arbitrary client bytes to a connection (handshake and transmission)
 * over the in-memory transport. The backend checks that no callback ever
 * sees an invalid request; the sanitizers catch memory errors.
 *
 * Built two ways: with clang's libFuzzer (-Dfuzzing=true) this file is the
 * fuzz target; otherwise mutate.c drives it with seeded random mutations of
 * valid sessions, as a bounded test. */
#include <stdint.h>
#include <stdlib.h>
#include "fuzz-connection.h"
#include "tclient.h"
#include "testdisk.h"

int fuzz_one(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        /* The first byte picks the export's shape. */
        uint8_t shape = data[0];
        testdisk *td = td_new(64 * 1024);
        if (shape & 1)
                td->can_write = 0;
        if (shape & 2) {
                td->min_block = 512;
                td->pref_block = 4096;
                td->max_block = 32768;
        }
        td->has_block_status = !(shape & 4);
        td->has_zero = !(shape & 8);
        if (shape & 16)
                td->can_fua = NBDSDK_CAP_NATIVE;
        nbdsdk_server *s = td_server(td);
        (void) nbdsdk_server_set_max_in_flight(s, 4, 32u << 20);
        tclient *tc = tc_connect(s);
        /* Deliver the stream in a few pieces, draining output as a client would. */
        size_t pos = 1, step = size / 3 + 1;
        while (pos < size && !tc_closed(tc)) {
                size_t n = size - pos < step ? size - pos : step;
                mem_peer_send(tc->peer, data + pos, n);
                pos += n;
                for (int i = 0; i < 4; i++) {
                        tc_run(tc);
                        mem_peer_recv(tc->peer, NULL, mem_peer_pending(tc->peer));
                }
        }
        tc_hangup(tc);
        tc_free(tc);
        nbdsdk_server_unref(s);
        td_free(td);
        return 0;
}

#ifdef NBDSDK_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        return fuzz_one(data, size);
}
#endif
