/* Opening the image: a raw file or block device, checked so that every problem
 * is one clear line before the server listens. */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>
#include "qemu-like.h"

/* The kernel's direct I/O alignment for FD: the logical sector size of a block
 * device, statx's STATX_DIOALIGN for a file, else the page size as a safe guess. */
static uint32_t direct_io_alignment(int fd, bool block_device) {
        int sector = 0;
        struct statx sx;
        if (block_device && ioctl(fd, BLKSSZGET, &sector) == 0 && sector > 0)
                return (uint32_t) sector;
        if (!block_device && statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > 0) {
                uint32_t a = sx.stx_dio_offset_align;
                return a > sx.stx_dio_mem_align ? a : sx.stx_dio_mem_align;
        }
        return 4096;
}

static bool is_rotational(dev_t rdev) {
        char path[64];
        int c = '0';
        snprintf(path, sizeof path, "/sys/dev/block/%u:%u/queue/rotational", major(rdev), minor(rdev));
        FILE *f = fopen(path, "r");
        if (f) {
                c = fgetc(f);
                fclose(f);
        }
        return c == '1';
}

/* Whether pwritev2() takes RWF_DSYNC here: a zero-length write with the flag
 * fails with EOPNOTSUPP on kernels (or files) that do not know it. */
static bool probe_native_fua(int fd) {
        struct iovec none = { 0 };
        return pwritev2(fd, &none, 1, 0, RWF_DSYNC) == 0;
}

static int open_image(const struct ql_config *cf, int flags) {
        const char *f = cf->file;
        int fd = open(f, flags);
        if (fd >= 0)
                return fd;
        if ((errno == EACCES || errno == EROFS || errno == EPERM) && (flags & O_ACCMODE) == O_RDWR &&
            access(f, R_OK) == 0)
                return ql_error("%s is read-only (%s): use -r/--read-only to serve it", f, strerror(errno)), -1;
        if (errno == EINVAL && (flags & O_DIRECT))
                return ql_error("--cache=%s needs direct I/O, which the file system holding %s does not support",
                                cf->cache == QL_CACHE_NONE ? "none" : "directsync", f), -1;
        return ql_error("cannot open %s: %s", f, strerror(errno)), -1;
}

/* Check the size of the file (SIZE bytes) against --offset and the alignment. */
static int check_size(const struct ql_config *cf, uint64_t size, uint32_t align) {
        const char *f = cf->file;
        if (size == 0)
                return ql_error("%s is empty: there is nothing to serve", f);
        if (size < 512)
                return ql_error("%s is too small (%" PRIu64 " bytes): an image holds at least 512 bytes", f, size);
        if (size % 512)
                return ql_error("the size of %s (%" PRIu64 " bytes) is not a multiple of 512", f, size);
        if (cf->offset >= size)
                return ql_error("--offset %" PRIu64 " is not inside %s (%" PRIu64 " bytes)", cf->offset, f, size);
        if (cf->offset % align || size % align)
                return ql_error("the offset (%" PRIu64 ") and the size of %s "
                                "(%" PRIu64 ") must be multiples of its direct I/O alignment (%" PRIu32 ")",
                                cf->offset, f, size, align);
        if (cf->offset % 512)
                return ql_error("--offset %" PRIu64 " is not a multiple of 512", cf->offset);
        return 0;
}

int image_open(const struct ql_config *cf, struct ql_image *img) {
        const char *f = cf->file;
        struct stat st;
        if (stat(f, &st) < 0)
                return ql_error("cannot open %s: %s", f, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return ql_error("%s is a directory, not an image", f);
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return ql_error("%s is neither a regular file nor a block device", f);

        bool direct = cf->cache == QL_CACHE_NONE || cf->cache == QL_CACHE_DIRECTSYNC;
        bool dsync = cf->cache == QL_CACHE_WRITETHROUGH || cf->cache == QL_CACHE_DIRECTSYNC;
        /* With --snapshot the image is only read: the clone or the overlay takes the writes. */
        bool write_original = !cf->read_only && !cf->snapshot;
        int flags = O_CLOEXEC | (direct ? O_DIRECT : 0) | (dsync ? O_DSYNC : 0);
        *img = (struct ql_image) {
                .fd = -1, .offset = cf->offset, .align = 1, .block_device = S_ISBLK(st.st_mode),
                .sync_writes = dsync, .ignore_flush = cf->cache == QL_CACHE_UNSAFE,
                .discard = cf->discard_unmap, .detect_zeroes = cf->detect_zeroes,
                .snap.lock = PTHREAD_MUTEX_INITIALIZER,
        };
        if ((img->fd = open_image(cf, (write_original ? O_RDWR : O_RDONLY) | flags)) < 0)
                return 1;

        uint64_t size = (uint64_t) st.st_size;
        if (img->block_device && ioctl(img->fd, BLKGETSIZE64, &size) < 0)
                return ql_error("cannot read the size of %s: %s", f, strerror(errno));
        /* Block devices take discards and zeroing in whole sectors only. */
        if (direct || img->block_device)
                img->align = direct_io_alignment(img->fd, img->block_device);
        if (check_size(cf, size, img->align) != 0)
                return 1;
        img->size = size - cf->offset;
        struct statfs sf;
        img->in_memory = !direct && !img->block_device && fstatfs(img->fd, &sf) == 0 &&
                         (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
        img->rotational = img->block_device && is_rotational(st.st_rdev);
        /* FUA is probed on what will be written: the image, or a test clone of it. */
        int written = write_original ? img->fd : -1;
        if (cf->snapshot && !cf->read_only && !img->block_device)
                written = snapshot_probe(f, img->fd, size, O_RDWR | flags, &img->snap);
        img->native_fua = written >= 0 && !dsync && probe_native_fua(written);
        if (written >= 0 && written != img->fd)
                close(written);
        return 0;
}

void image_close(struct ql_image *img) {
        if (img->fd >= 0)
                close(img->fd);
        free(img->snap.dir);
}
