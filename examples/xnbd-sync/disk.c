/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The image file: whole reads and writes, and zeroes and holes through
 * fallocate where the file system has them. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "xnbd-sync.h"

int xs_disk_open(struct xs_disk *d) {
        struct stat st;
        if ((d->fd = open(d->path, O_RDWR | O_CLOEXEC)) < 0 || fstat(d->fd, &st) < 0)
                return nbdsdk_error(-errno, "cannot open %s: %m", d->path);
        if (!S_ISREG(st.st_mode))
                return nbdsdk_error(-EINVAL, "%s is not a regular file", d->path);
        d->size = (uint64_t) st.st_size;
        return 0;
}

int xs_disk_pread(struct xs_disk *d, void *buf, uint64_t count, uint64_t off) {
        for (char *p = buf; count > 0;) {
                ssize_t n = pread(d->fd, p, count, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO; /* the file shrank under us */
                p += n, off += (uint64_t) n, count -= (uint64_t) n;
        }
        return 0;
}

static int finish(struct xs_disk *d, bool fua) {
        return fua ? xs_disk_flush(d) : 0;
}

int xs_disk_pwrite(struct xs_disk *d, const void *buf, uint64_t count, uint64_t off, bool fua) {
        for (const char *p = buf; count > 0;) {
                ssize_t n = pwrite(d->fd, p, count, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n, off += (uint64_t) n, count -= (uint64_t) n;
        }
        return finish(d, fua);
}

int xs_disk_flush(struct xs_disk *d) {
        return fdatasync(d->fd) == 0 ? 0 : -errno;
}

static int falloc(struct xs_disk *d, int mode, uint64_t count, uint64_t off) {
        return fallocate(d->fd, mode, (off_t) off, (off_t) count) == 0 ? 0 : errno == EOPNOTSUPP ? -ENOTSUP : -errno;
}

/* A hint: where the file system cannot punch holes, nothing is done. */
int xs_disk_trim(struct xs_disk *d, uint64_t count, uint64_t off, bool fua) {
        int r = falloc(d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, off);
        return r == -ENOTSUP ? 0 : r < 0 ? r : finish(d, fua);
}

static int write_zeroes(struct xs_disk *d, uint64_t count, uint64_t off) {
        static const char zeroes[65536];
        for (uint64_t n; count > 0; count -= n, off += n) {
                n = count < sizeof zeroes ? count : sizeof zeroes;
                int r = xs_disk_pwrite(d, zeroes, n, off, false);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A hole where allowed, else zeroes in place (on tmpfs, which lacks
 * ZERO_RANGE: a hole allocated again), else zeroes written. */
int xs_disk_zero(struct xs_disk *d, uint64_t count, uint64_t off, bool may_trim, bool fua) {
        int r = may_trim ? falloc(d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, off) : -ENOTSUP;
        if (r == -ENOTSUP)
                r = falloc(d, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, count, off);
        if (r == -ENOTSUP && (r = falloc(d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, off)) == 0)
                r = falloc(d, FALLOC_FL_KEEP_SIZE, count, off);
        if (r == -ENOTSUP)
                r = write_zeroes(d, count, off);
        return r < 0 ? r : finish(d, fua);
}
