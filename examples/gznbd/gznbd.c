/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gznbd: a gzip-compressed disk image served read-only over NBD, with fast
 * random access (see gznbd(1)).
 * Build: cc -D_GNU_SOURCE -o gznbd *.c $(pkg-config --cflags --libs nbdsdk zlib)
 * Run:   ./gznbd -f -U /tmp/gz.sock disk.img.gz */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <nbdsdk/nbdsdk.h>
#include "gznbd.h"

#define SPAN_DEFAULT (1024 * 1024)
#define CACHE_DEFAULT (64 * 1024 * 1024)
#define SPAN_MIN GZ_WINDOW
#define SPAN_MAX (1024 * 1024 * 1024)

/* One per export: the program's for the first, new_export's for the others. */
struct gz_export {
        char *path, *index_path;
        uint64_t span, cache_limit;
        int fd;
        struct gz_index idx;
        struct gz_cache cache;
};

#define GZ_EXPORT_INIT { .span = SPAN_DEFAULT, .cache_limit = CACHE_DEFAULT, .fd = -1 }

static int gz_config(const char *key, const char *value, void *ud) {
        struct gz_export *e = ud;
        int r;
        if (strcmp(key, "file") == 0) {
                if (e->path)
                        return nbdsdk_error(-EINVAL, "file= given twice (%s, then %s)", e->path, value);
                return (e->path = strdup(value)) ? 0 : -ENOMEM;
        }
        if (strcmp(key, "span") == 0) {
                if ((r = nbdsdk_parse_size(value, &e->span)) < 0 || e->span < SPAN_MIN || e->span > SPAN_MAX)
                        return nbdsdk_error(-EINVAL, "span=%s: expected a size from 32K to 1G", value);
                return 0;
        }
        if (strcmp(key, "index") == 0) {
                free(e->index_path);
                return (e->index_path = strdup(value)) ? 0 : -ENOMEM;
        }
        if (strcmp(key, "cache") == 0)
                return nbdsdk_parse_size(value, &e->cache_limit) < 0
                       ? nbdsdk_error(-EINVAL, "cache=%s: expected a size, such as 256M (0: no cache)", value) : 0;
        return -ENOENT;
}

static int gz_config_complete(void *ud) {
        struct gz_export *e = ud;
        if (!e->path)
                return nbdsdk_error(-EINVAL, "the gzip file is missing (gznbd FILE.gz, or file=FILE.gz)");
        struct stat st; /* before reading: a change while indexing makes a saved index stale */
        if ((e->fd = open(e->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(e->fd, &st) < 0)
                return nbdsdk_error(-errno, "cannot open %s: %m", e->path);
        int r = e->index_path ? gz_index_load(e->index_path, &st, e->span, &e->idx) : 1;
        if (r == 0)
                nbdsdk_debug("%s: the index read from %s", e->path, e->index_path);
        else if ((r = gz_index_build(e->fd, e->path, e->span, &e->idx)) == 0 && e->index_path)
                gz_index_save(e->index_path, &st, e->span, &e->idx);
        if (r < 0)
                return r;
        if ((r = gz_cache_init(&e->cache, e->idx.n_points, e->cache_limit)) < 0)
                return nbdsdk_error(r, "out of memory for the cache of %s", e->path);
        nbdsdk_debug("%s: %llu bytes in %u gzip member(s), %zu access points, %llu KiB of windows", e->path,
                     (unsigned long long) e->idx.size, e->idx.members, e->idx.n_points,
                     (unsigned long long) e->idx.window_bytes / 1024);
        return 0;
}

static int gz_new_export(nbdsdk_export *exp, void *ud, void **retud) {
        struct gz_export *e = malloc(sizeof *e);
        if (!e)
                return -ENOMEM;
        *e = (struct gz_export) GZ_EXPORT_INIT;
        *retud = e;
        return 0;
}

static void gz_export_clear(struct gz_export *e) {
        if (e->cache.by_point)
                nbdsdk_debug("%s: %llu stretches decompressed, %llu reads served by the cache", e->path,
                             (unsigned long long) e->cache.decompressed, (unsigned long long) e->cache.hits);
        gz_cache_fini(&e->cache, e->idx.n_points);
        gz_index_free(&e->idx);
        if (e->fd >= 0)
                close(e->fd);
        free(e->path);
        free(e->index_path);
}

static void gz_free_export(nbdsdk_export *exp, void *ud) {
        gz_export_clear(ud);
        free(ud);
}

/* Decompressing blocks, so it goes to a worker thread; cached reads and zeroes
 * are served on the loop thread. */
static int gz_setup(nbdsdk_server *server, void *ud) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nbdsdk_server_set_threads(server, cpus < 2 ? 2 : cpus > 16 ? 16 : (unsigned) cpus);
        return nbdsdk_server_set_inline_first(server, true);
}

static int64_t gz_get_size(nbdsdk_conn *conn, void *ud) { return (int64_t) ((struct gz_export *) ud)->idx.size; }
static int gz_can_multi_conn(nbdsdk_conn *conn, void *ud) { return 1; }
static int gz_can_cache(nbdsdk_conn *conn, void *ud) { return NBDSDK_CAP_NATIVE; }

/* Bytes [OFF, OFF + N) of point I's stretch into DST (or only into the cache
 * when DST is NULL). 0, 1 if it would have to decompress and ONLY_CACHED, -errno. */
static int read_stretch(struct gz_export *e, size_t i, unsigned char *dst, uint64_t off, uint64_t n, bool only_cached) {
        bool zero;
        if (gz_index_run(&e->idx, off, off + n, &zero) == off + n && zero) {
                if (dst)
                        memset(dst, 0, n);
                return 0;
        }
        struct gz_stretch *s;
        const unsigned char *data;
        int r = gz_cache_get(&e->cache, e->fd, &e->idx, i, only_cached, &s, &data);
        if (r != 0)
                return r;
        if (dst)
                memcpy(dst, data + (off - e->idx.points[i].out), n);
        gz_cache_put(&e->cache, s);
        return 0;
}

/* Each stretch the range touches, through read_stretch; at most LIMIT bytes. */
static int read_range(nbdsdk_request *req, struct gz_export *e, unsigned char *dst, uint64_t count, uint64_t off,
                      uint64_t limit) {
        bool only_cached = !nbdsdk_request_may_block(req);
        for (uint64_t done = 0; count > 0 && done < limit;) {
                size_t i = gz_index_find(&e->idx, off);
                uint64_t n = gz_index_end(&e->idx, i) - off;
                if (n > count)
                        n = count;
                int r = read_stretch(e, i, dst, off, n, only_cached);
                if (r != 0)
                        return r == 1 ? NBDSDK_WOULD_BLOCK : r;
                if (dst)
                        dst += n;
                off += n, count -= n, done += n;
        }
        return 0;
}

static int gz_pread(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        return read_range(req, ud, buf, count, off, UINT64_MAX);
}

/* NBD_CMD_CACHE: decompress into the cache ahead of the reads, no more than it holds. */
static int gz_cache(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        struct gz_export *e = ud;
        return read_range(req, e, NULL, count, off, e->cache_limit);
}

/* All-zero blocks (found while indexing) read as zeroes and are reported as holes. */
static int gz_block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, nbdsdk_extents *x,
                           void *ud) {
        struct gz_export *e = ud;
        for (uint64_t end = off + count; off < end;) {
                bool zero;
                uint64_t next = gz_index_run(&e->idx, off, end, &zero);
                if (nbdsdk_extents_add(x, next - off, zero ? NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO : 0) < 0)
                        return -ENOMEM;
                if (flags & NBDSDK_REQ_ONE)
                        break;
                off = next;
        }
        return 0;
}

static const struct nbdsdk_ops gz_ops = {
        .name = "gznbd",
        .version = "1.0",
        .magic_config_key = "file",
        .config_help = "  file=FILE.gz   the gzip-compressed image (a bare argument is this)\n"
                       "  span=SIZE      decompressed bytes between access points (default 1M; 32K to 1G)\n"
                       "  cache=SIZE     decompressed data kept for reuse (default 64M; 0: none)\n"
                       "  index=FILE     keep the index in FILE, for restarts while FILE.gz is unchanged",
        .setup = gz_setup,
        .config = gz_config,
        .config_complete = gz_config_complete,
        .new_export = gz_new_export,
        .free_export = gz_free_export,
        .get_size = gz_get_size,
        .can_multi_conn = gz_can_multi_conn,
        .can_cache = gz_can_cache,
        .pread = gz_pread,
        .cache = gz_cache,
        .block_status = gz_block_status,
};

int main(int argc, char **argv) {
        struct gz_export first = GZ_EXPORT_INIT;
        int status = NBDSDK_MAIN(argc, argv, &gz_ops, &first);
        gz_export_clear(&first);
        return status;
}
