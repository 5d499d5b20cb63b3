/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include "fixture.h"

testdisk *td;
nbdsdk_server *server;
tclient *tc;
uint16_t eflags;
const char *mode;

void disk_setup(void) {
        if (!td)
                td = td_new(DISK_SIZE);
        if (!server)
                server = td_server(td);
}

void disk_teardown(void) {
        server = nbdsdk_server_unref(server);
        td_free(td);
        td = NULL;
}

void open_handshake(void) {
        disk_setup();
        tc = tc_connect_fixed(server);
}

void open_disk(tc_mode m, bool meta) {
        disk_setup();
        mode = tc_mode_names[m];
        tc = tc_open(server, m, meta, &eflags);
        td_clear_log(td);
}

void close_disk(void) {
        tc_free(tc);
        tc = NULL;
        disk_teardown();
}

void expect_log(const char *want) {
        CHECK(strcmp(td->log, want) == 0, "%s: backend calls \"%s\", expected \"%s\"", mode, td->log, want);
}

void fill(uint8_t *buf, size_t len, unsigned seed) {
        for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t) (seed * 31 + i * 7 + (i >> 9) + 1);
}
