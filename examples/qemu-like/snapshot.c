/* --snapshot: a throw-away copy of the image that shares its blocks (a reflink,
 * FICLONE), so that writes never reach the original. The copy is an unlinked
 * file: it disappears when the server exits. The generic copy-on-write layer of
 * nbdsdk, for file systems without reflinks, does not exist yet. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "qemu-like.h"

/* An unlinked file in DIR cloned from SOURCE, or -1 with errno set. */
static int clone_in(const char *dir, int source, int flags) {
        int fd = open(dir, O_TMPFILE | flags, 0600);
        if (fd < 0)
                return -1;
        if (ioctl(fd, FICLONE, source) < 0) {
                int saved = errno;
                close(fd);
                errno = saved;
                return -1;
        }
        return fd;
}

int snapshot_clone(const char *path, int *fd, int flags) {
        /* Next to the image first (the same file system, so a clone can work),
         * then in $TMPDIR in case that is on the same file system. */
        char *copy = strdup(path);
        if (!copy)
                return ql_error("out of memory");
        char *slash = strrchr(copy, '/');
        const char *dir = !slash ? "." : slash == copy ? "/" : (*slash = '\0', copy);
        const char *tmpdir = getenv("TMPDIR");
        int clone = clone_in(dir, *fd, flags), error = errno;
        if (clone < 0 && tmpdir && *tmpdir)
                clone = clone_in(tmpdir, *fd, flags);
        free(copy);
        if (clone < 0)
                return ql_error("--snapshot currently needs a file system with reflinks (btrfs, xfs), because "
                                "the generic copy-on-write layer is not available yet: cannot clone %s (%s)",
                                path, strerror(error));
        close(*fd);
        *fd = clone;
        return 0;
}
