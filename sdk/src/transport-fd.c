/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "transport-internal.h"

typedef struct {
        transport base;
        int rfd, wfd;
        bool is_socket, is_tcp;
        int lowat;                      /* the socket's SO_RCVLOWAT as last set */
} fd_transport;

static ssize_t fd_read(transport *t, void *buf, size_t len) {
        fd_transport *f = (fd_transport *) t;
        ssize_t n = read(f->rfd, buf, len);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return n;
}

static ssize_t fd_writev(transport *t, const struct iovec *iov, int iovcnt) {
        fd_transport *f = (fd_transport *) t;
        ssize_t n;
        if (f->is_socket) {
                struct msghdr msg = { .msg_iov = (struct iovec *) iov, .msg_iovlen = iovcnt };
                n = sendmsg(f->wfd, &msg, MSG_NOSIGNAL);
        } else
                n = writev(f->wfd, iov, iovcnt);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        return n;
}

/* Payloads this large are worth a system call to wait for in one wake-up: TCP
 * on loopback delivers them in pieces of a few tens of KiB, each of which
 * would otherwise cost an epoll_wait and a read. Larger waits are capped,
 * since the kernel grows the receive buffer to fit the mark. */
#define LOWAT_MIN (64 * 1024)
#define LOWAT_MAX (1024 * 1024)

static void fd_want(transport *t, size_t n) {
        fd_transport *f = (fd_transport *) t;
        if (!f->is_tcp)
                return; /* only TCP's poll honours SO_RCVLOWAT */
        int lowat = n < LOWAT_MIN ? 1 : n > LOWAT_MAX ? LOWAT_MAX : (int) n;
        if (lowat != f->lowat &&
            setsockopt(f->rfd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0)
                f->lowat = lowat;
}

static int fd_get_read_fd(transport *t) { return ((fd_transport *) t)->rfd; }
static int fd_get_write_fd(transport *t) { return ((fd_transport *) t)->wfd; }

static void fd_free(transport *t) {
        fd_transport *f = (fd_transport *) t;
        close(f->rfd);
        if (f->wfd != f->rfd)
                close(f->wfd);
        free(f);
}

static const struct transport_ops fd_ops = {
        .read = fd_read, .writev = fd_writev, .want = fd_want,
        .get_read_fd = fd_get_read_fd, .get_write_fd = fd_get_write_fd, .free = fd_free,
};

static int set_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

static bool is_tcp(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        return getsockname(fd, (struct sockaddr *) &ss, &len) == 0 &&
               (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

int transport_fd_new(int rfd, int wfd, transport **ret) {
        if (rfd < 0 || wfd < 0 || !ret)
                return -EBADF;
        int r = set_nonblock(rfd);
        if (r == 0 && wfd != rfd)
                r = set_nonblock(wfd);
        if (r < 0)
                return r;
        fd_transport *f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->base.ops = &fd_ops;
        f->rfd = rfd;
        f->wfd = wfd;
        struct stat st;
        f->is_socket = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
        f->is_tcp = is_tcp(rfd);
        f->lowat = 1;
        int one = 1;
        if (is_tcp(wfd))
                /* Replies are already gathered into one sendmsg per wake-up. */
                (void) setsockopt(wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        *ret = &f->base;
        return 0;
}
