/* --snapshot: clients may write, but nothing reaches the image, and what they
 * wrote is gone when the server exits. The export always carries nbdsdk's
 * copy-on-write layer (cow=file: an overlay in a deleted file in $TMPDIR,
 * shared by every connection and kept for the server's life, like qemu-nbd's
 * temporary overlay), and the image is opened read-only. Where the image's
 * file system can clone it (reflinks: btrfs, xfs ...), found out once at
 * start-up, the backend reports a native snapshot instead: the cow layer then
 * leaves each connection's chain, and the first connection makes an unlinked
 * reflink clone of the image that all I/O goes to from then on, for the rest
 * of the server's life (so there is nothing to undo when a connection closes,
 * and no snapshot_end). Block devices cannot be cloned: the overlay serves them. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "qemu-like.h"

/* The probe clones this much of the image (or all of it, if smaller): a
 * multiple of any file system's block, as FICLONERANGE wants. */
#define PROBE_LENGTH (64 * 1024)

/* An unlinked file in DIR, opened with FLAGS, holding a clone of the first
 * LENGTH bytes of SOURCE (0: all of it); or -1 with errno set. */
static int clone_in(const char *dir, int source, int flags, uint64_t length) {
        int fd = open(dir, O_TMPFILE | flags, 0600);
        if (fd < 0)
                return -1;
        struct file_clone_range range = { .src_fd = source, .src_length = length };
        if (ioctl(fd, FICLONERANGE, &range) < 0) {
                int saved = errno;
                close(fd);
                errno = saved;
                return -1;
        }
        return fd;
}

int snapshot_probe(const char *path, int source, uint64_t size, int flags, struct ql_snapshot *snap) {
        /* Next to the image first (the same file system, so a clone can work),
         * then in $TMPDIR in case that is on the same file system. */
        char *near = strdup(path);
        if (!near) {
                snap->error = ENOMEM;
                return -1;
        }
        char *slash = strrchr(near, '/');
        const char *dirs[] = { !slash ? "." : slash == near ? "/" : (*slash = '\0', near), getenv("TMPDIR") };
        uint64_t length = size > PROBE_LENGTH ? PROBE_LENGTH : 0;
        int fd = -1;
        for (size_t i = 0; i < 2 && fd < 0; i++) {
                if (!dirs[i] || !*dirs[i])
                        continue;
                if ((fd = clone_in(dirs[i], source, flags, length)) >= 0 && !(snap->dir = strdup(dirs[i]))) {
                        close(fd);
                        fd = -1;
                        errno = ENOMEM;
                }
                /* The first failure says most: the image's own directory. */
                if (fd < 0 && !snap->error)
                        snap->error = errno;
        }
        free(near);
        snap->flags = flags;
        return fd;
}

int snapshot_setup(nbdsdk_server *srv, const char *path, const struct ql_image *img) {
        if (img->snap.dir)
                nbdsdk_debug("snapshot: reflink clone (made in %s by the first client)", img->snap.dir);
        else if (img->block_device)
                nbdsdk_debug("snapshot: copy-on-write overlay (%s is a block device)", path);
        else
                nbdsdk_debug("snapshot: copy-on-write overlay (cannot clone %s: %s)", path,
                             strerror(img->snap.error));
        nbdsdk_export *exp = nbdsdk_server_get_export(srv, NULL);
        int r = nbdsdk_export_config(exp, "cow", "file");
        /* The overlay's reads from the image must keep its direct I/O alignment. */
        if (r == 0 && img->align > 4096) {
                char size[16];
                snprintf(size, sizeof size, "%u", (unsigned) img->align);
                r = nbdsdk_export_config(exp, "cow-block-size", size);
        }
        return r < 0 ? ql_error("cannot set up the copy-on-write overlay: %s", strerror(-r)) : 0;
}

int snapshot_can(nbdsdk_conn *conn, void *ud) {
        return ((struct ql_image *) ud)->snap.dir != NULL;
}

/* Requests run (on the loop thread or a worker), but each connection's only after its own
 * snapshot_begin returned: whoever makes the clone switches img->fd under the
 * lock before any I/O can use it, and the original is not read again. */
int snapshot_begin(nbdsdk_conn *conn, void *ud) {
        struct ql_image *img = ud;
        struct ql_snapshot *snap = &img->snap;
        int r = 0;
        pthread_mutex_lock(&snap->lock);
        if (!snap->cloned) {
                int fd = clone_in(snap->dir, img->fd, snap->flags, 0);
                if (fd < 0) {
                        r = nbdsdk_error(-errno, "snapshot: cannot clone the image in %s: %m", snap->dir);
                } else {
                        close(img->fd);
                        img->fd = fd;
                        snap->cloned = true;
                        nbdsdk_debug("snapshot: reflink clone made in %s", snap->dir);
                }
        }
        pthread_mutex_unlock(&snap->lock);
        return r;
}
