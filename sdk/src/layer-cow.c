/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The copy-on-write layer (cow=ram|file): writes go to an overlay, in memory
 * (a memfd) or in a deleted temporary file, that all connections to the
 * export share; the layer below is only read. A map of one byte per block
 * tells blocks not written (read below), written (read the overlay) and
 * trimmed or zeroed (read zeroes) apart. Where the backend has native
 * snapshots the layer hands the connection over to it and leaves its chain. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "buffers-internal.h"
#include "layer-builtin-internal.h"
#include "layers-internal.h"

enum { BLOCK_BELOW, BLOCK_WRITTEN, BLOCK_ZERO };

typedef struct {
        bool in_file;            /* the overlay is a deleted file, not memory */
        uint32_t block;          /* bytes per block, a power of two */
        pthread_mutex_t lock;    /* the map, the overlay, read-modify-write */
        int fd;                  /* the overlay, once the first connection opened */
        uint64_t size;
        uint8_t *map;            /* a state per block */
        uint8_t *rmw;            /* one block, for partial writes */
} cow;

static int overlay_create(cow *c, uint64_t size) {
        if (c->in_file) {
                const char *dir = getenv("TMPDIR");
                c->fd = open(dir && *dir ? dir : "/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        } else {
                c->fd = memfd_create("nbdsdk-cow", MFD_CLOEXEC);
        }
        if (c->fd < 0)
                return -errno;
        uint64_t blocks = (size + c->block - 1) / c->block;
        if (ftruncate(c->fd, (off_t) size) < 0 || !(c->map = calloc(blocks ? blocks : 1, 1)) ||
            !(c->rmw = buffer_alloc(c->block))) {
                int r = errno ? -errno : -ENOMEM;
                close(c->fd);
                c->fd = -1;
                free(c->map);
                c->map = NULL;
                return r;
        }
        c->size = size;
        return 0;
}

static int cow_open(nbdsdk_conn *conn, nbdsdk_next *next, void *data) {
        cow *c = data;
        int r = layers_native_snapshot(conn, next);
        if (r != 0)
                return r < 0 ? r : NBDSDK_LAYER_SKIP;
        int64_t size = nbdsdk_next_get_size(next);
        pthread_mutex_lock(&c->lock);
        if (c->fd < 0)
                r = overlay_create(c, (uint64_t) size);
        else if ((uint64_t) size != c->size)
                r = nbdsdk_error(-EIO, "cow: the export's size changed under the overlay");
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int cow_capability(nbdsdk_next *next, int which, int below, void *data) {
        (void) next;
        (void) data;
        switch (which) {
        case NBDSDK_CAN_WRITE:
        case NBDSDK_CAN_FLUSH:
        case NBDSDK_CAN_TRIM:
        case NBDSDK_CAN_FAST_ZERO:
        case NBDSDK_CAN_EXTENTS:
        case NBDSDK_CAN_MULTI_CONN: /* one overlay for every connection */
                return 1;
        case NBDSDK_CAN_ZERO:
        case NBDSDK_CAN_FUA: /* nothing here persists: FUA costs nothing */
                return NBDSDK_CAP_NATIVE;
        default:
                return below;
        }
}

/* The blocks from OFFSET on that share the first one's state, up to END. */
static uint64_t run_end(const cow *c, uint64_t offset, uint64_t end) {
        uint64_t b = offset / c->block;
        uint8_t state = c->map[b];
        uint64_t e = (b + 1) * c->block;
        while (e < end && c->map[e / c->block] == state)
                e += c->block;
        return e < end ? e : end;
}

static int overlay_read(cow *c, void *buf, uint64_t count, uint64_t offset) {
        for (uint64_t done = 0; done < count;) {
                ssize_t n = pread(c->fd, (char *) buf + done, count - done, (off_t) (offset + done));
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (uint64_t) n;
        }
        return 0;
}

static int overlay_write(cow *c, const void *buf, uint64_t count, uint64_t offset) {
        for (uint64_t done = 0; done < count;) {
                ssize_t n = pwrite(c->fd, (const char *) buf + done, count - done, (off_t) (offset + done));
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                done += (uint64_t) n;
        }
        return 0;
}

/* Read the range as the overlay and the layer below make it up; the lock is held. */
static int read_merged(cow *c, nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count,
                       uint64_t offset) {
        uint64_t end = offset + count;
        for (uint64_t pos = offset; pos < end;) {
                uint64_t e = run_end(c, pos, end);
                char *dst = (char *) buf + (pos - offset);
                int r = 0;
                switch (c->map[pos / c->block]) {
                case BLOCK_BELOW: r = nbdsdk_next_pread(next, req, dst, e - pos, pos, 0); break;
                case BLOCK_WRITTEN: r = overlay_read(c, dst, e - pos, pos); break;
                default: memset(dst, 0, e - pos); break;
                }
                if (r < 0)
                        return r;
                pos = e;
        }
        return 0;
}

static int cow_pread(nbdsdk_request *req, nbdsdk_next *next, void *buf, uint64_t count, uint64_t offset,
                     uint32_t flags, void *data) {
        (void) flags;
        cow *c = data;
        pthread_mutex_lock(&c->lock);
        int r = read_merged(c, req, next, buf, count, offset);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Blocks B..B+N-1 become STATE; zeroed ones give their space back. */
static int mark(cow *c, uint64_t b, uint64_t n, uint8_t state) {
        memset(c->map + b, state, n);
        if (state != BLOCK_ZERO)
                return 0;
        uint64_t off = b * c->block, len = n * c->block;
        if (off + len > c->size)
                len = c->size - off;
        return fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) off, (off_t) len) < 0 &&
                               errno != EOPNOTSUPP ? -errno : 0;
}

/* Write BUF (NULL: zeroes) over part of block B: fetch the block as it reads
 * now unless the overlay holds it already. */
static int write_partial(cow *c, nbdsdk_request *req, nbdsdk_next *next, uint64_t b, const void *buf,
                         uint64_t count, uint64_t offset) {
        uint64_t start = b * c->block, len = c->block;
        if (start + len > c->size)
                len = c->size - start;
        if (!buf && c->map[b] == BLOCK_ZERO)
                return 0;
        if (c->map[b] == BLOCK_WRITTEN) {
                if (buf)
                        return overlay_write(c, buf, count, offset);
                memset(c->rmw, 0, count);
                return overlay_write(c, c->rmw, count, offset);
        }
        int r = read_merged(c, req, next, c->rmw, len, start);
        if (r < 0)
                return r;
        if (buf)
                memcpy(c->rmw + (offset - start), buf, count);
        else
                memset(c->rmw + (offset - start), 0, count);
        if ((r = overlay_write(c, c->rmw, len, start)) < 0)
                return r;
        return mark(c, b, 1, BLOCK_WRITTEN);
}

/* Write BUF (NULL: zeroes) at OFFSET: partial blocks at either end, whole
 * blocks between (zeroes there only change the map). */
static int cow_write(cow *c, nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count,
                     uint64_t offset) {
        uint64_t end = offset + count, bs = c->block;
        pthread_mutex_lock(&c->lock);
        int r = 0;
        for (uint64_t pos = offset; pos < end && r == 0;) {
                uint64_t b = pos / bs, block_end = (b + 1) * bs < c->size ? (b + 1) * bs : c->size;
                const char *src = buf ? (const char *) buf + (pos - offset) : NULL;
                if (pos != b * bs || end < block_end) {
                        uint64_t e = end < block_end ? end : block_end;
                        r = write_partial(c, req, next, b, src, e - pos, pos);
                        pos = e;
                        continue;
                }
                /* Whole blocks, up to the last one END covers entirely. */
                uint64_t whole_end = end >= c->size ? c->size : end / bs * bs;
                uint64_t n = (whole_end - pos + bs - 1) / bs;
                if (src && (r = overlay_write(c, src, whole_end - pos, pos)) < 0)
                        break;
                r = mark(c, b, n, src ? BLOCK_WRITTEN : BLOCK_ZERO);
                pos = whole_end;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int cow_pwrite(nbdsdk_request *req, nbdsdk_next *next, const void *buf, uint64_t count, uint64_t offset,
                      uint32_t flags, void *data) {
        (void) flags;
        return cow_write(data, req, next, buf, count, offset);
}

/* Trimmed blocks read as zeroes too (the spec lets them read as anything). */
static int cow_zero(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset, uint32_t flags,
                    void *data) {
        (void) flags;
        return cow_write(data, req, next, NULL, count, offset);
}

/* Nothing here outlives the server: there is nothing to persist. */
static int cow_flush(nbdsdk_request *req, nbdsdk_next *next, uint32_t flags, void *data) {
        (void) req;
        (void) next;
        (void) flags;
        (void) data;
        return 0;
}

static int cow_block_status(nbdsdk_request *req, nbdsdk_next *next, uint64_t count, uint64_t offset,
                            uint32_t flags, nbdsdk_extents *extents, void *data) {
        cow *c = data;
        uint64_t end = offset + count;
        int r = 0;
        pthread_mutex_lock(&c->lock);
        for (uint64_t pos = offset; pos < end && r == 0;) {
                uint64_t e = run_end(c, pos, end);
                switch (c->map[pos / c->block]) {
                case BLOCK_WRITTEN: r = nbdsdk_extents_add(extents, e - pos, 0); break;
                case BLOCK_ZERO: r = nbdsdk_extents_add(extents, e - pos, NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO); break;
                default: {
                        nbdsdk_extents *below;
                        if ((r = nbdsdk_extents_new(pos, e - pos, &below)) < 0)
                                break;
                        r = nbdsdk_next_block_status(next, req, e - pos, pos, flags, below);
                        uint64_t len;
                        uint32_t type;
                        for (size_t i = 0; r == 0 && nbdsdk_extents_get(below, i, NULL, &len, &type) == 0; i++)
                                r = nbdsdk_extents_add(extents, len, type);
                        nbdsdk_extents_free(below);
                }
                }
                pos = (flags & NBDSDK_REQ_ONE) ? end : e;
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

static void cow_unload(void *data) {
        cow *c = data;
        if (c->fd >= 0)
                close(c->fd);
        free(c->map);
        free(c->rmw);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static const struct nbdsdk_layer cow_layer = {
        .name = "cow", .priority = NBDSDK_PRIORITY_COW,
        .open = cow_open, .capability = cow_capability,
        .pread = cow_pread, .pwrite = cow_pwrite, .flush = cow_flush, .trim = cow_zero, .zero = cow_zero,
        .block_status = cow_block_status, .unload = cow_unload,
};

static void *cow_new(void) {
        cow *c = calloc(1, sizeof *c);
        if (c) {
                c->block = 4096;
                c->fd = -1;
                pthread_mutex_init(&c->lock, NULL);
        }
        return c;
}

/* cow=ram|file and cow-block-size=SIZE: the first makes the export's layer. */
static int cow_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        int r;
        cow *c = layer_find_or_add(exp, &cow_layer, cow_new, &r);
        if (!c)
                return r;
        if (strcmp(key, "cow") == 0) {
                if (strcmp(value, "ram") != 0 && strcmp(value, "file") != 0)
                        return nbdsdk_error(-EINVAL, "cow=%s: say ram or file", value);
                c->in_file = strcmp(value, "file") == 0;
                return 0;
        }
        uint64_t bs;
        if (nbdsdk_parse_size(value, &bs) < 0 || bs < 512 || bs > (1u << 20) || (bs & (bs - 1)))
                return nbdsdk_error(-EINVAL, "cow-block-size=%s: a power of two from 512 to 1M", value);
        c->block = (uint32_t) bs;
        return 0;
}

int layer_cow_register(nbdsdk_server *server) {
        int r = nbdsdk_server_add_config_key(server, "cow", "cow=ram|file   copy-on-write overlay: writes never reach the backend",
                                             cow_config, NULL, NULL);
        if (r == 0)
                r = nbdsdk_server_add_config_key(server, "cow-block-size",
                                                 "cow-block-size=SIZE   the overlay's block (default 4K)",
                                                 cow_config, NULL, NULL);
        return r;
}
