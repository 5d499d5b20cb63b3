/* qemu-like: a qemu-nbd-style raw image server on nbdsdk. Shared declarations. */
#ifndef QEMU_LIKE_H
#define QEMU_LIKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

#define QL_VERSION "1.0"
#define QL_DEFAULT_THREADS 8

enum ql_cache { QL_CACHE_WRITEBACK, QL_CACHE_WRITETHROUGH, QL_CACHE_NONE, QL_CACHE_DIRECTSYNC, QL_CACHE_UNSAFE };
enum ql_detect_zeroes { QL_DETECT_OFF, QL_DETECT_ON, QL_DETECT_UNMAP };

/* The command line (cli.c). */
/* --object tls-creds-x509 or tls-creds-psk (qemu's TLS credentials). */
struct ql_tls_creds {
        bool psk;                /* tls-creds-psk: DIR/keys.psk; else X.509 files in DIR */
        char *id, *dir;
        bool verify_peer;        /* X.509: client certificates required (qemu's default) */
};

#define QL_MAX_OBJECTS 8

struct ql_config {
        const char *file;
        const char *port;        /* NULL: not given (10809 when listening on TCP) */
        const char *bind;        /* NULL: not given (0.0.0.0) */
        const char *socket_path; /* -k */
        const char *device;      /* -c: the local kernel NBD device served instead of listening */
        const char *export_name;
        const char *description;
        const char *pid_file;
        uint64_t offset;
        unsigned shared;         /* -e: clients at once, 0 = unlimited */
        unsigned threads;
        enum ql_cache cache;
        enum ql_detect_zeroes detect_zeroes;
        bool read_only, snapshot, persistent, fork, verbose, discard_unmap;
        bool disconnect;         /* -d: FILE is a kernel NBD device to disconnect */
        struct ql_tls_creds objects[QL_MAX_OBJECTS];
        unsigned n_objects;
        const char *tls_creds_id;          /* --tls-creds */
        const struct ql_tls_creds *tls;    /* its object: TLS required */
};

/* Parse argv into CONFIG. Returns 0 to go on, 1 after a one-line error, and
 * -1 after --help or --version (exit 0). */
int cli_parse(int argc, char **argv, struct ql_config *config);
/* Free what cli_parse allocated. */
void cli_free(struct ql_config *config);

/* -d: disconnect the kernel NBD device PATH (device.c). 0, or 1 after a message. */
int device_disconnect(const char *path);

/* --snapshot with reflinks (snapshot.c). */
struct ql_snapshot {
        char *dir;            /* where the image can be cloned; NULL: nowhere (the overlay serves) */
        int flags;            /* open flags of the clone */
        int error;            /* errno of the first failed attempt to clone, for -v */
        bool cloned;          /* the image's fd is the clone now */
        pthread_mutex_t lock; /* making the clone */
};

/* The open image (image.c). */
struct ql_image {
        int fd;             /* the image, or its --snapshot clone once made */
        uint64_t offset;    /* where the export starts in the file */
        uint64_t size;      /* bytes served */
        uint32_t align;     /* alignment of offsets, lengths (and buffers) for direct I/O
                             * and block devices; 1 for buffered files */
        bool block_device;
        bool in_memory;     /* a buffered file on tmpfs or ramfs: I/O never waits for a disk */
        bool rotational;
        bool native_fua;    /* pwritev2(RWF_DSYNC) works */
        bool sync_writes;   /* opened O_DSYNC: every write is durable already */
        bool ignore_flush;  /* --cache=unsafe */
        bool discard;       /* --discard=unmap */
        bool multi_conn;    /* -e N with N != 1 */
        enum ql_detect_zeroes detect_zeroes;
        struct ql_snapshot snap;
};

/* Open and check CONFIG->file (with --snapshot: read-only, and find out whether
 * it can be cloned). Returns 0 or 1 after a one-line error. */
int image_open(const struct ql_config *config, struct ql_image *image);
/* Close the image (or its clone) and free what image_open() allocated. */
void image_close(struct ql_image *image);

/* Whether the file system can clone PATH, whose open file SOURCE has SIZE
 * bytes: try it, next to PATH and in $TMPDIR. Fills SNAP (the directory, or
 * the errno why not) and returns a test clone opened with FLAGS, or -1. */
int snapshot_probe(const char *path, int source, uint64_t size, int flags, struct ql_snapshot *snap);
/* Put the copy-on-write layer on SERVER's export and say with -v which way
 * the snapshot of PATH is kept. Returns 0 or 1 after a one-line error. */
int snapshot_setup(nbdsdk_server *server, const char *path, const struct ql_image *image);
/* The backend's native snapshot callbacks (struct nbdsdk_ops). */
int snapshot_can(nbdsdk_conn *conn, void *userdata);
int snapshot_begin(nbdsdk_conn *conn, void *userdata);

/* The data path (backend.c); userdata is the struct ql_image. */
extern const struct nbdsdk_ops ql_ops;

/* "qemu-like: message" on stderr (log.c). Returns 1, the exit status of a setup error. */
int ql_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

#endif
