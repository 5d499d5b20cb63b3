/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* xnbd-sync: a disk image served over NBD and copied, change by change, to
 * failover servers (other xnbd-sync servers) before each change is
 * acknowledged, so that a client can go on with any of them when the primary
 * is lost (see xnbd-sync(1)).
 * Build: cc -D_GNU_SOURCE -o xnbd-sync *.c $(pkg-config --cflags --libs nbdsdk libsystemd glib-2.0)
 * Run:   ./xnbd-sync -f -U /tmp/b.sock b.img
 *        ./xnbd-sync -f -U /tmp/a.sock a.img replica=unix:/tmp/b.sock */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "xnbd-sync.h"

#define TIMEOUT_DEFAULT 30

static int xs_config(const char *key, const char *value, void *ud) {
        struct xs_disk *d = ud;
        if (strcmp(key, "file") == 0) {
                if (d->path)
                        return nbdsdk_error(-EINVAL, "file= given twice (%s, then %s)", d->path, value);
                d->path = g_strdup(value);
                return 0;
        }
        if (strcmp(key, "replica") == 0) {
                if (d->n_replicas == XNBD_MAX_REPLICAS)
                        return nbdsdk_error(-EINVAL, "replica=%s: at most %d replicas", value, XNBD_MAX_REPLICAS);
                if (!g_str_has_prefix(value, "unix:") && !strchr(value, ':'))
                        return nbdsdk_error(-EINVAL, "replica=%s: expected unix:PATH or HOST:PORT", value);
                return xs_replica_new(value, &d->replicas[d->n_replicas++]);
        }
        if (strcmp(key, "timeout") == 0) {
                char *end;
                errno = 0;
                unsigned long n = strtoul(value, &end, 10);
                if (errno || end == value || *end || n > 86400 || value[0] == '-')
                        return nbdsdk_error(-EINVAL, "timeout=%s: expected seconds from 0 to 86400", value);
                d->timeout_sec = (unsigned) n;
                return 0;
        }
        return -ENOENT;
}

static int xs_config_complete(void *ud) {
        struct xs_disk *d = ud;
        if (!d->path)
                return nbdsdk_error(-EINVAL, "the disk image is missing (xnbd-sync FILE, or file=FILE)");
        return xs_disk_open(d);
}

static int xs_setup(nbdsdk_server *server, void *ud) {
        return xs_follow_setup(server, ud);
}

/* Every change is made here and sent to the replicas in the order the loop
 * thread sees it, so the replicas apply them in the same order. */
static int xs_start(nbdsdk_server *server, void *ud) {
        struct xs_disk *d = ud;
        if (nbdsdk_server_get_threads(server) > 0)
                return nbdsdk_error(-EINVAL, "-t %u: xnbd-sync makes each change on its loop thread, in the "
                                    "order the changes come; worker threads would reorder them",
                                    nbdsdk_server_get_threads(server));
        for (unsigned i = 0; i < d->n_replicas; i++) {
                int r = xs_replica_start(d->replicas[i], d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* After the last connection: a goodbye to each replica. */
static void xs_stop(nbdsdk_server *server, void *ud) {
        struct xs_disk *d = ud;
        for (; d->n_replicas > 0; d->n_replicas--)
                xs_replica_free(d->replicas[d->n_replicas - 1]);
}

static int64_t xs_get_size(nbdsdk_conn *conn, void *ud) { return (int64_t) ((struct xs_disk *) ud)->size; }
static int xs_can_write(nbdsdk_conn *conn, void *ud) { return xs_follow_can_write(conn, ud); }
static int xs_yes(nbdsdk_conn *conn, void *ud) { return 1; }
static int xs_native(nbdsdk_conn *conn, void *ud) { return NBDSDK_CAP_NATIVE; }

static uint16_t fua(uint32_t flags) { return flags & NBDSDK_FUA ? NBDSDK_CMD_FLAG_FUA : 0; }

/* A change made here: noted (see follow.c) and sent to the replicas. */
static int share(nbdsdk_request *req, struct xs_disk *d, uint16_t type, uint16_t wflags, uint64_t off,
                 uint64_t count, const void *data) {
        xs_follow_note_change(d, req);
        return xs_replicas_forward(d, req, type, wflags, off, count, data);
}

static int xs_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        return xs_disk_pread(ud, buf, count, off);
}

static int xs_pwrite(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        int r = xs_disk_pwrite(ud, buf, count, off, flags & NBDSDK_FUA);
        return r < 0 ? r : share(req, ud, NBDSDK_CMD_WRITE, fua(flags), off, count, buf);
}

static int xs_flush(nbdsdk_request *req, uint32_t flags, void *ud) {
        int r = xs_disk_flush(ud);
        return r < 0 ? r : xs_replicas_forward(ud, req, NBDSDK_CMD_FLUSH, 0, 0, 0, NULL);
}

static int xs_trim(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        int r = xs_disk_trim(ud, count, off, flags & NBDSDK_FUA);
        return r < 0 ? r : share(req, ud, NBDSDK_CMD_TRIM, fua(flags), off, count, NULL);
}

static int xs_zero(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        bool may_trim = flags & NBDSDK_MAY_TRIM;
        int r = xs_disk_zero(ud, count, off, may_trim, flags & NBDSDK_FUA);
        return r < 0 ? r : share(req, ud, NBDSDK_CMD_WRITE_ZEROES,
                                               fua(flags) | (may_trim ? 0 : NBDSDK_CMD_FLAG_NO_HOLE), off, count, NULL);
}

static const struct nbdsdk_ops xs_ops = {
        .name = "xnbd-sync",
        .version = "1.0",
        .magic_config_key = "file",
        .config_help = "  file=FILE        the disk image (a bare argument is this)\n"
                       "  replica=ADDRESS  copy every change to the xnbd-sync server at unix:PATH or HOST:PORT\n"
                       "                   before acknowledging it (repeatable, at most 8)\n"
                       "  timeout=SECONDS  drop a replica that leaves a change unanswered this long\n"
                       "                   (default 30; 0: wait for ever)",
        .setup = xs_setup,
        .config = xs_config,
        .config_complete = xs_config_complete,
        .start = xs_start,
        .stop = xs_stop,
        .get_size = xs_get_size,
        .can_write = xs_can_write,
        .can_flush = xs_yes,
        .can_trim = xs_yes,
        .can_zero = xs_native,
        .can_fua = xs_native,
        .can_multi_conn = xs_yes,
        .pread = xs_pread,
        .pwrite = xs_pwrite,
        .flush = xs_flush,
        .trim = xs_trim,
        .zero = xs_zero,
};

int main(int argc, char **argv) {
        struct xs_disk d = { .fd = -1, .timeout_sec = TIMEOUT_DEFAULT };
        int status = NBDSDK_MAIN(argc, argv, &xs_ops, &d);
        xs_stop(NULL, &d); /* when start did not run */
        if (d.writers)
                g_hash_table_unref(d.writers);
        if (d.fd >= 0)
                close(d.fd);
        g_free(d.path);
        return status;
}
