/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A server for test-main-hooks.sh: its start and stop hooks leave traces
 * (start: the pid of the serving process; stop: "stopped"), and fail=1 makes
 * start fail. start also registers a metadata namespace, x-hooks, whose one
 * context x-hooks:odd marks every odd 64 KiB block with status 1. setup asks
 * for 2 worker threads, and reads return "W" bytes when they run on a worker
 * thread, "L" on the loop thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <nbdsdk/nbdsdk.h>

static const char *trace_dir;
static bool fail_start;
static pthread_t loop_thread;

/* A key registered in setup, before the command line is parsed. */
static int greeting(nbdsdk_export *exp, const char *key, const char *value, void *ud) {
        (void) exp; (void) key; (void) ud;
        if (!trace_dir)
                return nbdsdk_error(-EINVAL, "trace= must come before greeting=");
        char path[4096];
        snprintf(path, sizeof path, "%s/greeting", trace_dir);
        FILE *f = fopen(path, "w");
        if (!f)
                return -errno;
        fprintf(f, "%s\n", value);
        fclose(f);
        return 0;
}

static int setup(nbdsdk_server *server, void *ud) {
        (void) ud;
        int r = nbdsdk_server_set_threads(server, 2); /* the program's default; -t overrides it */
        if (r < 0)
                return r;
        return nbdsdk_server_add_config_key(server, "greeting", "greeting=TEXT   written to TRACE/greeting",
                                            greeting, NULL, NULL);
}

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

static int odd_list(nbdsdk_conn *conn, const char *export_name, const char *query, nbdsdk_meta_list *list,
                    void *ud) {
        (void) conn; (void) export_name; (void) ud;
        return query[0] == '\0' || strcmp(query, "odd") == 0 ? nbdsdk_meta_list_add(list, "x-hooks:odd") : 0;
}

static int odd_select(nbdsdk_conn *conn, const char *export_name, const char *context, void *ud) {
        (void) conn; (void) export_name; (void) ud;
        return strcmp(context, "x-hooks:odd") == 0;
}

static int odd_status(nbdsdk_request *req, const char *context, uint64_t count, uint64_t offset, uint32_t flags,
                      nbdsdk_extents *ext, void *ud) {
        (void) req; (void) context; (void) flags; (void) ud;
        for (uint64_t pos = offset; pos < offset + count;) {
                uint64_t end = (pos / 65536 + 1) * 65536;
                int r = nbdsdk_extents_add(ext, end - pos, (pos / 65536) & 1);
                if (r < 0)
                        return r;
                pos = end;
        }
        return 0;
}

static const struct nbdsdk_meta_namespace odd_ns = {
        .name = "x-hooks", .list = odd_list, .select = odd_select, .block_status = odd_status,
};

static int start(nbdsdk_server *server, void *ud) {
        (void) ud;
        if (!server)
                return -EINVAL;
        if (fail_start)
                return nbdsdk_error(-EIO, "start refused, as asked");
        int r = nbdsdk_server_add_meta_namespace(server, &odd_ns, sizeof odd_ns, NULL, NULL);
        if (r < 0)
                return nbdsdk_error(r, "cannot register x-hooks");
        loop_thread = pthread_self();
        char pid[32];
        snprintf(pid, sizeof pid, "%d\n", (int) getpid());
        trace("started", pid);
        char threads[32];
        snprintf(threads, sizeof threads, "%u\n", nbdsdk_server_get_threads(server));
        trace("threads", threads);
        return 0;
}

static void stop(nbdsdk_server *server, void *ud) {
        (void) ud;
        trace("stopped", nbdsdk_server_get_n_connections(server) == 0 ? "no connections\n" : "connections left\n");
}

static int64_t get_size(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; return 1 << 20; }

static int pread_thread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        (void) req; (void) off; (void) flags; (void) ud;
        memset(buf, pthread_equal(pthread_self(), loop_thread) ? 'L' : 'W', count);
        return 0;
}

static const struct nbdsdk_ops ops = {
        .name = "main-hooks", .config = config, .get_size = get_size, .pread = pread_thread,
        .start = start, .stop = stop, .setup = setup,
};

int main(int argc, char **argv) { return NBDSDK_MAIN(argc, argv, &ops, NULL); }
