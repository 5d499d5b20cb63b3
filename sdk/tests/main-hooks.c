/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A server for test-main-hooks.sh: its start and stop hooks leave traces
 * (start: the pid of the serving process; stop: "stopped"), and fail=1 makes
 * start fail. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nbdsdk/nbdsdk.h>

static const char *trace_dir;
static bool fail_start;

static int config(const char *key, const char *value, void *ud) {
        (void) ud;
        if (strcmp(key, "trace") == 0)
                trace_dir = value;
        else if (strcmp(key, "fail") == 0)
                fail_start = strcmp(value, "1") == 0;
        else
                return -ENOENT;
        return 0;
}

static void trace(const char *name, const char *text) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", trace_dir, name);
        FILE *f = fopen(path, "w");
        if (f) {
                fputs(text, f);
                fclose(f);
        }
}

static int start(nbdsdk_server *server, void *ud) {
        (void) ud;
        if (!server)
                return -EINVAL;
        if (fail_start)
                return nbdsdk_error(-EIO, "start refused, as asked");
        char pid[32];
        snprintf(pid, sizeof pid, "%d\n", (int) getpid());
        trace("started", pid);
        return 0;
}

static void stop(nbdsdk_server *server, void *ud) {
        (void) ud;
        trace("stopped", nbdsdk_server_get_n_connections(server) == 0 ? "no connections\n" : "connections left\n");
}

static int64_t get_size(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return 1 << 20; }

static int pread_zero(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) off; (void) flags; (void) ud;
        memset(buf, 0, count);
        return 0;
}

static const struct nbdsdk_ops ops = {
        .name = "main-hooks", .config = config, .get_size = get_size, .pread = pread_zero,
        .start = start, .stop = stop,
};

int main(int argc, char **argv) { return NBDSDK_MAIN(argc, argv, &ops, NULL); }
