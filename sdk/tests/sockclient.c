/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "sockclient.h"
#include "tclient.h"
#include "wire-internal.h"

int sc_connect_unix(const char *path) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        CHECK(fd >= 0 && strlen(path) < sizeof sun.sun_path, "a Unix socket for %s", path);
        strcpy(sun.sun_path, path);
        CHECK(connect(fd, (struct sockaddr *) &sun, sizeof sun) == 0, "connect to %s", path);
        return fd;
}

void sc_write(int fd, const void *buf, size_t len) {
        CHECK(write(fd, buf, len) == (ssize_t) len, "client write");
}

void sc_read(int fd, void *buf, size_t len) {
        size_t have = 0;
        while (have < len) {
                ssize_t n = read(fd, (char *) buf + have, len - have);
                CHECK(n > 0, "client read (%zd, %s)", n, strerror(errno));
                have += (size_t) n;
        }
}

void sc_send_export_name(int fd) {
        uint8_t f[4], opt[16];
        wire_put32(f, NBDSDK_FLAG_C_FIXED_NEWSTYLE | NBDSDK_FLAG_C_NO_ZEROES);
        sc_write(fd, f, 4);
        wire_put64(opt, NBDSDK_MAGIC_OPTS);
        wire_put32(opt + 8, NBDSDK_OPT_EXPORT_NAME);
        wire_put32(opt + 12, 0);
        sc_write(fd, opt, 16);
}

uint64_t sc_handshake(int fd) {
        uint8_t g[18], r[10];
        sc_read(fd, g, sizeof g);
        CHECK(wire_get64(g) == NBDSDK_MAGIC_INIT, "greeting");
        sc_send_export_name(fd);
        sc_read(fd, r, sizeof r);
        return wire_get64(r);
}

void sc_request(int fd, uint16_t type, uint64_t cookie, uint64_t off, uint32_t len) {
        uint8_t h[32];
        sc_write(fd, h, tc_encode_request(h, false, 0, type, cookie, off, len));
}

uint32_t sc_reply(int fd, uint64_t *retcookie) {
        uint8_t h[16];
        sc_read(fd, h, sizeof h);
        CHECK(wire_get32(h) == NBDSDK_MAGIC_SIMPLE_REPLY, "simple reply");
        *retcookie = wire_get64(h + 8);
        return wire_get32(h + 4);
}

unsigned sc_write_read_back(const char *path, uint64_t export_size, int n_blocks) {
        int fd = sc_connect_unix(path);
        CHECK(sc_handshake(fd) == export_size, "export size");
        CHECK((uint64_t) n_blocks * 4096 <= export_size, "the blocks fit");
        uint8_t block[4096];
        uint64_t cookie;
        unsigned mismatches = 0;
        for (int i = 0; i < n_blocks; i++) {
                memset(block, i + 1, sizeof block);
                sc_request(fd, NBDSDK_CMD_WRITE, (uint64_t) i, (uint64_t) i * 4096, 4096);
                sc_write(fd, block, sizeof block);
        }
        for (int i = 0; i < n_blocks; i++)
                CHECK(sc_reply(fd, &cookie) == 0 && cookie < (uint64_t) n_blocks, "write reply");
        for (int i = 0; i < n_blocks; i++)
                sc_request(fd, NBDSDK_CMD_READ, (uint64_t) i, (uint64_t) i * 4096, 4096);
        for (int i = 0; i < n_blocks; i++) {
                CHECK(sc_reply(fd, &cookie) == 0 && cookie < (uint64_t) n_blocks, "read reply");
                sc_read(fd, block, sizeof block);
                for (size_t k = 0; k < sizeof block; k++)
                        mismatches += block[k] != (uint8_t) (cookie + 1);
        }
        sc_request(fd, NBDSDK_CMD_DISC, 0, 0, 0);
        char c;
        CHECK(read(fd, &c, 1) == 0, "the server closes after DISC");
        close(fd);
        return mismatches;
}
