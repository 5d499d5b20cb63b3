/* The data path: the nbdsdk callbacks on the open image (with --snapshot, its
 * reflink clone, or nbdsdk's copy-on-write layer above them, see snapshot.c).
 * Requests start on the loop thread (nbdsdk_server_set_inline_first): what
 * cannot wait for a disk runs there at once — any I/O on a file in memory
 * (tmpfs), reads the page cache holds — and everything else is sent to the
 * worker threads with NBDSDK_WOULD_BLOCK. Callbacks return -errno, which
 * fails that request only. */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include "qemu-like.h"

static int64_t get_size(nbdsdk_conn *conn, void *ud) {
        struct ql_image *img = ud;
        return (int64_t) img->size;
}

/* Direct I/O wants aligned offsets and lengths: say so, and the library keeps
 * clients to it. Without it, any byte range works. */
static int get_block_size(nbdsdk_conn *conn, uint32_t *min, uint32_t *pref, uint32_t *max, void *ud) {
        struct ql_image *img = ud;
        *min = img->align;
        *pref = img->align > 4096 ? img->align : 4096;
        *max = UINT32_MAX; /* lowered to the server's maximum payload */
        return 0;
}

static int can_flush(nbdsdk_conn *conn, void *ud) { return 1; }
static int can_trim(nbdsdk_conn *conn, void *ud) { return ((struct ql_image *) ud)->discard; }
static int can_zero(nbdsdk_conn *conn, void *ud) { return NBDSDK_CAP_NATIVE; }
static int can_fast_zero(nbdsdk_conn *conn, void *ud) { return 1; }
static int can_cache(nbdsdk_conn *conn, void *ud) { return NBDSDK_CAP_NATIVE; }
static int can_multi_conn(nbdsdk_conn *conn, void *ud) { return ((struct ql_image *) ud)->multi_conn; }
static int is_rotational(nbdsdk_conn *conn, void *ud) { return ((struct ql_image *) ud)->rotational; }
/* SEEK_DATA/SEEK_HOLE say nothing about a block device's allocation. */
static int can_extents(nbdsdk_conn *conn, void *ud) { return !((struct ql_image *) ud)->block_device; }

static int can_fua(nbdsdk_conn *conn, void *ud) {
        struct ql_image *img = ud;
        return img->sync_writes || img->native_fua ? NBDSDK_CAP_NATIVE : NBDSDK_CAP_EMULATE;
}

static int sync_data(struct ql_image *img) {
        if (img->ignore_flush)
                return 0;
        return fdatasync(img->fd) == 0 ? 0 : -errno;
}

/* Whether the call may run here: it may block, or it cannot (the file is in memory). */
static bool may_run(nbdsdk_request *req, const struct ql_image *img) {
        return img->in_memory || nbdsdk_request_may_block(req);
}

static int flush(nbdsdk_request *req, uint32_t flags, void *ud) {
        return may_run(req, ud) ? sync_data(ud) : NBDSDK_WOULD_BLOCK;
}

/* After a trim or zero that returned R: FUA, and write-through caching (where
 * O_DSYNC covers only writes), want the result durable. */
static int finish_write(struct ql_image *img, uint32_t flags, int r) {
        return r == 0 && ((flags & NBDSDK_FUA) || img->sync_writes) ? sync_data(img) : r;
}

/* The whole of COUNT bytes at OFFSET of the file, read or written through
 * BUF, which direct I/O needs aligned. The library's buffers start on a page
 * (nbdsdk_ops(3)); a part of one passed on by a layer, or an alignment above
 * a page, goes through an aligned copy. */
static int transfer(struct ql_image *img, bool write, void *buf, uint64_t count, uint64_t offset, int rwflags) {
        void *io = buf;
        if (img->align > 1 && (uintptr_t) buf % img->align) {
                if (posix_memalign(&io, img->align, count) != 0)
                        return -ENOMEM;
                if (write)
                        memcpy(io, buf, count);
        }
        int r = 0;
        for (uint64_t done = 0; done < count && r == 0;) {
                struct iovec v = { (char *) io + done, count - done };
                ssize_t n = write ? pwritev2(img->fd, &v, 1, (off_t) (offset + done), rwflags)
                                  : pread(img->fd, v.iov_base, v.iov_len, (off_t) (offset + done));
                if (n < 0 && errno != EINTR)
                        r = -errno;
                else if (n == 0)
                        r = -EIO; /* the file ends early: it shrank under us */
                else if (n > 0)
                        done += (uint64_t) n;
        }
        if (io != buf) {
                if (!write && r == 0)
                        memcpy(buf, io, count);
                free(io);
        }
        return r;
}

/* On the loop thread: the read at once if the page cache holds all of it. */
static int read_cached(struct ql_image *img, void *buf, uint64_t count, uint64_t offset) {
        if (img->align > 1)
                return NBDSDK_WOULD_BLOCK; /* direct I/O always waits for the disk */
        struct iovec v = { buf, count };
        ssize_t n = preadv2(img->fd, &v, 1, (off_t) offset, RWF_NOWAIT);
        return n >= 0 && (uint64_t) n == count ? 0 : NBDSDK_WOULD_BLOCK; /* a short read: the rest on a worker */
}

static int pread_cb(nbdsdk_request *req, void *buf, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return read_cached(img, buf, count, img->offset + off);
        return transfer(img, false, buf, count, img->offset + off, 0);
}

static bool all_zero(const unsigned char *buf, uint64_t count) {
        return buf[0] == 0 && memcmp(buf, buf + 1, count - 1) == 0;
}

static int zero(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud);

static int pwrite_cb(nbdsdk_request *req, const void *buf, uint64_t count, uint64_t off, uint32_t flags,
                     void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return NBDSDK_WOULD_BLOCK;
        /* --detect-zeroes: a write of zeroes becomes a (cheaper) write-zeroes. */
        if (img->detect_zeroes != QL_DETECT_OFF && all_zero(buf, count)) {
                uint32_t zflags = (flags & NBDSDK_FUA) | (img->detect_zeroes == QL_DETECT_UNMAP ? NBDSDK_MAY_TRIM : 0);
                int r = zero(req, count, off, zflags, ud);
                if (r != -ENOTSUP)
                        return r;
        }
        bool fua = (flags & NBDSDK_FUA) && !img->sync_writes;
        return transfer(img, true, (void *) buf, count, img->offset + off, fua ? RWF_DSYNC : 0);
}

/* fallocate MODE on the file's range, or the matching block device ioctl. */
static int deallocate(struct ql_image *img, int mode, uint64_t count, uint64_t offset) {
        if (fallocate(img->fd, mode, (off_t) offset, (off_t) count) == 0)
                return 0;
        return errno == EOPNOTSUPP ? -ENOTSUP : -errno;
}

static int trim(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return NBDSDK_WOULD_BLOCK;
        uint64_t range[2] = { img->offset + off, count };
        int r = img->block_device ? (ioctl(img->fd, BLKDISCARD, range) == 0 ? 0 : -errno)
                                  : deallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, range[0]);
        /* A trim is advice: where the storage cannot deallocate, ignoring it is right. */
        if (r == -ENOTSUP || r == -EOPNOTSUPP)
                r = 0;
        return finish_write(img, flags, r);
}

/* Zeroes without writing them: punch a hole where the client allows it (and
 * --discard=unmap), else have the file system zero the range in place. These
 * are fast; on a block device only the punch is (BLKZEROOUT may fall back to
 * writing), so BLKZEROOUT is used only for requests without FAST_ZERO. */
static int zero(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return NBDSDK_WOULD_BLOCK;
        uint64_t offset = img->offset + off;
        int r = -ENOTSUP;
        if ((flags & NBDSDK_MAY_TRIM) && img->discard)
                r = deallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, offset);
        if (r == -ENOTSUP && !img->block_device)
                r = deallocate(img, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, count, offset);
        /* Without ZERO_RANGE (tmpfs): punch, then allocate the range again, so that
         * the space stays reserved as it would be without --discard=unmap. */
        if (r == -ENOTSUP && !img->block_device &&
            (r = deallocate(img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, offset)) == 0)
                r = deallocate(img, 0, count, offset);
        if (r == -ENOTSUP && img->block_device && !(flags & NBDSDK_FAST_ZERO)) {
                uint64_t range[2] = { offset, count };
                r = ioctl(img->fd, BLKZEROOUT, range) == 0 ? 0 : -errno;
        }
        /* -ENOTSUP: the library writes zeroes itself, or fails a FAST_ZERO request. */
        return finish_write(img, flags, r);
}

static int cache(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return NBDSDK_WOULD_BLOCK;
        return -posix_fadvise(img->fd, (off_t) (img->offset + off), (off_t) count, POSIX_FADV_WILLNEED);
}

/* Allocation from SEEK_DATA / SEEK_HOLE: holes read as zeroes. */
static int block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags,
                        nbdsdk_extents *ext, void *ud) {
        struct ql_image *img = ud;
        if (!may_run(req, img))
                return NBDSDK_WOULD_BLOCK;
        off_t pos = (off_t) (img->offset + off), end = pos + (off_t) count;
        while (pos < end) {
                off_t data = lseek(img->fd, pos, SEEK_DATA);
                if (data < 0 && errno != ENXIO)
                        return -errno;
                if (data < 0 || data > pos) { /* a hole up to DATA (ENXIO: up to the end) */
                        off_t stop = data < 0 || data > end ? end : data;
                        if (nbdsdk_extents_add(ext, (uint64_t) (stop - pos), NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO) < 0)
                                return -ENOMEM;
                        pos = stop;
                } else {
                        off_t hole = lseek(img->fd, pos, SEEK_HOLE);
                        if (hole < 0)
                                return -errno;
                        off_t stop = hole > end ? end : hole;
                        if (nbdsdk_extents_add(ext, (uint64_t) (stop - pos), 0) < 0)
                                return -ENOMEM;
                        pos = stop;
                }
                if (flags & NBDSDK_REQ_ONE)
                        break;
        }
        return 0;
}

const struct nbdsdk_ops ql_ops = {
        .name = "qemu-like",
        .version = QL_VERSION,
        .get_size = get_size,
        .get_block_size = get_block_size,
        .can_flush = can_flush,
        .can_trim = can_trim,
        .can_zero = can_zero,
        .can_fast_zero = can_fast_zero,
        .can_fua = can_fua,
        .can_cache = can_cache,
        .can_multi_conn = can_multi_conn,
        .can_extents = can_extents,
        .is_rotational = is_rotational,
        .pread = pread_cb,
        .pwrite = pwrite_cb,
        .flush = flush,
        .trim = trim,
        .zero = zero,
        .cache = cache,
        .block_status = block_status,
        .can_snapshot = snapshot_can,
        .snapshot_begin = snapshot_begin,
};
