/* qemu-like -d DEVICE: disconnect a local kernel NBD device, whoever serves it
 * (the driver sends NBD_CMD_DISC, and its server then ends), as qemu-nbd -d. */
#include <errno.h>
#include <fcntl.h>
#include <linux/nbd.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "qemu-like.h"

int device_disconnect(const char *path) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return ql_error("cannot open %s: %m", path);
        int r = ioctl(fd, NBD_DISCONNECT);
        if (r == 0)
                (void) ioctl(fd, NBD_CLEAR_SOCK);
        int error = errno;
        close(fd);
        errno = error;
        if (r < 0 && error == ENOTTY)
                return ql_error("cannot disconnect %s: not an NBD device", path);
        if (r < 0)
                return ql_error("cannot disconnect %s: %m", path);
        printf("%s disconnected\n", path);
        return 0;
}
