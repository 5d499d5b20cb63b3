/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gznbd: a gzip-compressed image served read-only over NBD, with random
 * access through an index of access points. See gznbd(1). */
#ifndef GZNBD_H
#define GZNBD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define GZ_WINDOW 32768       /* deflate's history: what resuming mid-stream needs */
#define GZ_ZERO_BLOCK 4096    /* granularity of the map of all-zero blocks */

/* A place decompression can start from: the start of a gzip member, or a
 * deflate block boundary inside one (IN is the byte holding the block's
 * first bit; BITS of the byte before it are still unused, and WINDOW is the
 * GZ_WINDOW bytes of output before OUT, compressed with zlib's compress2
 * into WINDOW_LEN bytes). */
struct gz_point {
        uint64_t out;          /* uncompressed offset */
        uint64_t in;           /* compressed offset */
        unsigned bits;         /* 0-7 */
        unsigned char *window; /* NULL at a member start */
        uint32_t window_len;
};

struct gz_index {
        struct gz_point *points; /* by OUT, the first at 0 */
        size_t n_points;
        uint64_t size;           /* uncompressed bytes */
        uint64_t *zero_map;      /* a bit per GZ_ZERO_BLOCK: set = all zero */
        unsigned members;        /* gzip members read */
        uint64_t window_bytes;   /* the points' windows, compressed */
};

/* index.c: read the whole file once (checking every member's CRC and length)
 * and record a point at least every SPAN bytes of output and at every member.
 * Returns 0 or -errno, with a message printed. */
int gz_index_build(int fd, const char *path, uint64_t span, struct gz_index *idx);
void gz_index_free(struct gz_index *idx);
/* index-file.c: the index of the gzip file whose fstat is GZ, from the file
 * PATH if it describes that file as GZ does, with SPAN. Returns 0, or 1 when
 * PATH is missing or not usable (a warning says why, unless missing). */
int gz_index_load(const char *path, const struct stat *gz, uint64_t span, struct gz_index *idx);
/* Write IDX, made of the gzip file as GZ was before it was read, to PATH
 * (replacing it whole); a warning when it cannot. */
void gz_index_save(const char *path, const struct stat *gz, uint64_t span, const struct gz_index *idx);
/* The point that decompression of OFFSET (< size) starts from. */
size_t gz_index_find(const struct gz_index *idx, uint64_t offset);
/* Where point I's stretch ends: the next point, or the end of the data. */
uint64_t gz_index_end(const struct gz_index *idx, size_t i);
/* The end (at most END) of the run of blocks that are all zero, or all not,
 * from OFFSET (< END <= size) on; *RETZERO says which. */
uint64_t gz_index_run(const struct gz_index *idx, uint64_t offset, uint64_t end, bool *retzero);

/* extract.c: decompress point I's whole stretch into BUF. 0 or -errno. */
int gz_extract(int fd, const struct gz_index *idx, size_t i, unsigned char *buf);
/* extract.c: a buffer of SIZE bytes to pread the gzip file into, on a page:
 * on an AMD EPYC VM the kernel's copy into a 256 KiB buffer at malloc's
 * alignment ran 3-4 times slower, and the index pass over a 196 MiB file
 * took 0.06-0.10 s of system time instead of 0.13-0.23. NULL if out of
 * memory; free() it. */
void *gz_read_buffer(size_t size);

/* cache.c: decompressed stretches, shared by all threads, least recently
 * used first out once over LIMIT bytes (stretches in use are never
 * dropped, so a small limit still works). */
struct gz_stretch;
struct gz_cache {
        pthread_mutex_t lock;
        pthread_cond_t loaded;
        struct gz_stretch **by_point; /* by point index, NULL when absent */
        struct gz_stretch *lru_head, *lru_tail; /* unused stretches, newest first */
        uint64_t bytes, limit;
        uint64_t decompressed, hits; /* stretches decompressed; gets served without */
};
int gz_cache_init(struct gz_cache *c, size_t n_points, uint64_t limit);
void gz_cache_fini(struct gz_cache *c, size_t n_points);
/* Point I's stretch (*RETDATA, its first byte at the point's OUT), decompressed
 * with gz_extract unless cached; release it with gz_cache_put. Returns 0, 1
 * when ONLY_CACHED and it is not cached yet, or -errno. */
int gz_cache_get(struct gz_cache *c, int fd, const struct gz_index *idx, size_t i, bool only_cached,
                 struct gz_stretch **retstretch, const unsigned char **retdata);
void gz_cache_put(struct gz_cache *c, struct gz_stretch *s);

#endif
