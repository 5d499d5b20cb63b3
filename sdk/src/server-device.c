/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Serving this machine's kernel NBD driver directly, as qemu-nbd -c does: the
 * default export is served on one end of a socket pair, without a handshake,
 * and the other end is given to the device with the driver's ioctls; a thread
 * waits in NBD_DO_IT for as long as the device stays connected. */
#include <errno.h>
#include <fcntl.h>
#include <linux/nbd.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "conn-internal.h"
#include "export-internal.h"

struct attachment {
        int device, sock; /* the device, and the socket end the driver holds */
};

static void *attachment_wait(void *arg) {
        struct attachment *a = arg;
        /* Returns once the device is disconnected: nbd-client -d (the driver
         * then sends NBD_CMD_DISC), or the server closing its end. */
        (void) ioctl(a->device, NBD_DO_IT);
        (void) ioctl(a->device, NBD_CLEAR_QUE);
        (void) ioctl(a->device, NBD_CLEAR_SOCK);
        close(a->sock);
        close(a->device);
        free(a);
        return NULL;
}

/* The driver's settings for the open export of CONN, ending with the socket. */
static int configure(int device, nbdsdk_conn *conn, int sock) {
        const export_state *x = &conn->exp;
        unsigned long block = x->min_block < 512 ? 512 : x->min_block;
        if (block > (unsigned long) sysconf(_SC_PAGESIZE))
                return -EINVAL; /* the driver's blocks are at most a page */
        if (ioctl(device, NBD_SET_BLKSIZE, block) < 0 || ioctl(device, NBD_SET_SIZE_BLOCKS, x->size / block) < 0 ||
            ioctl(device, NBD_SET_FLAGS, (unsigned long) export_eflags(conn)) < 0 ||
            ioctl(device, NBD_SET_SOCK, (unsigned long) sock) < 0)
                return -errno;
        return 0;
}

int nbdsdk_server_connect_device(nbdsdk_server *server, const char *device, nbdsdk_conn **retconn) {
        if (!server || !device)
                return -EINVAL;
        struct attachment *a = malloc(sizeof *a);
        if (!a)
                return -ENOMEM;
        int sv[2], r = 0;
        nbdsdk_conn *conn = NULL;
        if ((a->device = open(device, O_RDWR | O_CLOEXEC)) < 0)
                r = -errno;
        else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                r = -errno;
                close(a->device);
        } else {
                a->sock = sv[1];
                r = nbdsdk_server_serve_fd(server, sv[0], NBDSDK_SERVE_NO_HANDSHAKE, &conn);
                if (r == 0 && (r = configure(a->device, conn, a->sock)) == 0) {
                        pthread_attr_t attr;
                        pthread_attr_init(&attr);
                        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                        pthread_t thread;
                        r = -pthread_create(&thread, &attr, attachment_wait, a);
                        pthread_attr_destroy(&attr);
                        if (r < 0)
                                (void) ioctl(a->device, NBD_CLEAR_SOCK);
                }
                if (r < 0) {
                        if (conn) /* the caller reports why */
                                conn_end(conn, "the device could not be connected");
                        close(a->sock);
                        close(a->device);
                }
        }
        if (r < 0) {
                free(a);
                nbdsdk_conn_unref(conn);
                return r;
        }
        if (retconn)
                *retconn = conn;
        else
                nbdsdk_conn_unref(conn);
        return 0;
}
