/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* xnbd-sync: a disk image served over NBD and replicated, write by write, to
 * failover servers through a private protocol extension. See xnbd-sync(1). */
#ifndef XNBD_SYNC_H
#define XNBD_SYNC_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

/* The extension, XNBD_SYNC. A primary sends the option, with its disk's size
 * (8 bytes, big-endian), before NBD_OPT_GO; a replica that accepts follows it:
 * the connection may then send XNBD_CMD_SUM, and no other client may write
 * until it closes. Numbers in a range of our own ("xS"). */
#define XNBD_OPT_SYNC 0x78530001u
#define XNBD_CMD_SUM 0x7853
/* XNBD_CMD_SUM's reply: one SHA-256 per XNBD_SUM_BLOCK bytes of the range (the
 * last block may be shorter), at most XNBD_SUM_MAX bytes per request. */
#define XNBD_SUM_BLOCK 65536u
#define XNBD_SUM_LEN 32u
#define XNBD_SUM_MAX (4u * 1024 * 1024)

#define XNBD_MAX_REPLICAS 8

struct xs_replica;

/* The program's state: one export. */
struct xs_disk {
        char *path;
        int fd;
        uint64_t size;
        /* As a primary: the replicas, in the order given. */
        struct xs_replica *replicas[XNBD_MAX_REPLICAS];
        unsigned n_replicas;
        unsigned timeout_sec;   /* a replica silent this long with changes unanswered is dropped */
        /* As a replica: the primary's connection, and the other connections
         * that were offered writing (a primary is refused while there are). */
        nbdsdk_conn *primary;
        GHashTable *writers;
        bool changed_alone;     /* a client other than a primary changed the disk */
};

/* disk.c: the image file. */
int xs_disk_open(struct xs_disk *d);
int xs_disk_pread(struct xs_disk *d, void *buf, uint64_t count, uint64_t off);
int xs_disk_pwrite(struct xs_disk *d, const void *buf, uint64_t count, uint64_t off, bool fua);
int xs_disk_flush(struct xs_disk *d);
int xs_disk_trim(struct xs_disk *d, uint64_t count, uint64_t off, bool fua);
int xs_disk_zero(struct xs_disk *d, uint64_t count, uint64_t off, bool may_trim, bool fua);

/* sums.c: XNBD_CMD_SUM's answer for the disk's range [OFF, OFF + COUNT), into
 * SUMS (XNBD_SUM_LEN bytes per block). 0 or -errno. */
int xs_sums(struct xs_disk *d, uint64_t off, uint64_t count, unsigned char *sums);

/* follow.c: the replica's side of the extension. */
int xs_follow_setup(nbdsdk_server *server, struct xs_disk *d);
int xs_follow_can_write(nbdsdk_conn *conn, struct xs_disk *d);
/* A change is made for REQ: one from a client other than the primary keeps
 * the disk from following a primary for the rest of the run. */
void xs_follow_note_change(struct xs_disk *d, nbdsdk_request *req);

/* replica.c: the primary's side, one connection to each replica. */
/* The big-endian number of BYTES bytes at P (the wire's byte order). */
uint64_t xs_get_be(const unsigned char *p, int bytes);
int xs_replica_new(const char *address, struct xs_replica **retr);
/* Connect, negotiate XNBD_SYNC and make the replica's disk the same as D's
 * (blocking; before the server runs). 0 or -errno, with a message printed. */
int xs_replica_start(struct xs_replica *r, struct xs_disk *d);
/* Send a change to every replica still connected, after it is made on the
 * primary's disk: 0 when there is none (the request is done), NBDSDK_DEFER
 * when REQ completes once each replica has answered. A replica that fails
 * is dropped, with a message; the request succeeds all the same. */
int xs_replicas_forward(struct xs_disk *d, nbdsdk_request *req, uint16_t type, uint16_t wire_flags,
                        uint64_t off, uint64_t count, const void *data);
void xs_replica_free(struct xs_replica *r);
const char *xs_replica_address(const struct xs_replica *r);

#endif
