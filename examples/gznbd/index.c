/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The index: one pass over the whole gzip file at start-up, which checks it
 * (every member's CRC-32 and length), measures it, maps its all-zero blocks
 * and records where decompression can later start (gznbd.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <nbdsdk/nbdsdk.h>
#include "gznbd.h"

#define IN_CHUNK (256 * 1024)

struct builder {
        struct gz_index *idx;
        const char *path;
        size_t cap_points, map_words;
        unsigned char window[GZ_WINDOW]; /* a point's window, before compressing it */
        bool block_nonzero; /* the current zero-map block has a non-zero byte */
};

static bool all_zero(const unsigned char *p, size_t n) {
        return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static bool map_bit(const struct gz_index *idx, uint64_t block) {
        return idx->zero_map[block / 64] >> (block % 64) & 1;
}

/* Append a point; one at the same offset as the last replaces it (a member
 * that gave no output). */
static int add_point(struct builder *b, uint64_t out, uint64_t in, unsigned bits,
                     const unsigned char *ring, size_t ring_next) {
        struct gz_index *idx = b->idx;
        if (idx->n_points > 0 && idx->points[idx->n_points - 1].out == out) {
                idx->window_bytes -= idx->points[--idx->n_points].window_len;
                free(idx->points[idx->n_points].window);
        }
        if (idx->n_points == b->cap_points) {
                size_t cap = b->cap_points ? b->cap_points * 2 : 64;
                struct gz_point *p = realloc(idx->points, cap * sizeof *p);
                if (!p)
                        return -ENOMEM;
                idx->points = p;
                b->cap_points = cap;
        }
        struct gz_point *p = &idx->points[idx->n_points];
        *p = (struct gz_point) { .out = out, .in = in, .bits = bits };
        if (ring) {
                /* The ring's oldest bytes start at RING_NEXT. */
                memcpy(b->window, ring + ring_next, GZ_WINDOW - ring_next);
                memcpy(b->window + GZ_WINDOW - ring_next, ring, ring_next);
                uLongf len = compressBound(GZ_WINDOW);
                if (!(p->window = malloc(len)))
                        return -ENOMEM;
                if (compress2(p->window, &len, b->window, GZ_WINDOW, 1) != Z_OK) {
                        free(p->window);
                        return -ENOMEM;
                }
                unsigned char *shrunk = realloc(p->window, len);
                p->window = shrunk ? shrunk : p->window;
                p->window_len = (uint32_t) len;
                idx->window_bytes += len;
        }
        idx->n_points++;
        return 0;
}

static int end_block(struct builder *b, uint64_t block) {
        struct gz_index *idx = b->idx;
        if (block / 64 >= b->map_words) {
                size_t words = b->map_words ? b->map_words * 2 : 1024;
                uint64_t *m = realloc(idx->zero_map, words * sizeof *m);
                if (!m)
                        return -ENOMEM;
                memset(m + b->map_words, 0, (words - b->map_words) * sizeof *m);
                idx->zero_map = m;
                b->map_words = words;
        }
        if (!b->block_nonzero)
                idx->zero_map[block / 64] |= 1ull << (block % 64);
        b->block_nonzero = false;
        return 0;
}

/* Note which zero-map blocks the LEN new bytes at P (offset OUT) leave non-zero. */
static int scan(struct builder *b, const unsigned char *p, size_t len, uint64_t out) {
        while (len > 0) {
                size_t n = GZ_ZERO_BLOCK - out % GZ_ZERO_BLOCK;
                if (n > len)
                        n = len;
                if (!b->block_nonzero && !all_zero(p, n))
                        b->block_nonzero = true;
                p += n, len -= n, out += n;
                if (out % GZ_ZERO_BLOCK == 0) {
                        int r = end_block(b, out / GZ_ZERO_BLOCK - 1);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* What follows a member at byte AT: 1 another member, 0 the end of the file,
 * -EAGAIN bytes that are not gzip (ignored, as gzip(1) does, with a warning). */
static int next_member(int fd, const char *path, uint64_t at) {
        unsigned char magic[2];
        ssize_t n = pread(fd, magic, 2, (off_t) at);
        if (n < 0)
                return nbdsdk_error(-errno, "cannot read %s: %m", path);
        if (n == 0)
                return 0;
        if (n == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
                return 1;
        struct stat st;
        uint64_t size = fstat(fd, &st) == 0 ? (uint64_t) st.st_size : at + (uint64_t) n;
        nbdsdk_error(0, "warning: %s: ignoring %llu bytes after the gzip data (from byte %llu on): not a gzip member",
                     path, (unsigned long long) (size - at), (unsigned long long) at);
        return -EAGAIN;
}

/* The inflate loop, with the file open and the first point added. */
static int build(struct builder *b, int fd, uint64_t span, z_stream *z, unsigned char *in, unsigned char *ring) {
        struct gz_index *idx = b->idx;
        uint64_t pos = 0, out = 0;
        z->next_out = ring;
        z->avail_out = GZ_WINDOW;
        for (;;) {
                if (z->avail_in == 0) {
                        ssize_t n = pread(fd, in, IN_CHUNK, (off_t) pos);
                        if (n < 0)
                                return nbdsdk_error(-errno, "cannot read %s: %m", b->path);
                        if (n == 0)
                                return nbdsdk_error(-EINVAL, "%s is truncated: the gzip data ends unfinished at byte %llu",
                                                    b->path, (unsigned long long) pos);
                        pos += (uint64_t) n;
                        z->next_in = in;
                        z->avail_in = (uInt) n;
                }
                if (z->avail_out == 0) {
                        z->next_out = ring;
                        z->avail_out = GZ_WINDOW;
                }
                unsigned char *before = z->next_out;
                int zr = inflate(z, Z_BLOCK);
                size_t made = (size_t) (z->next_out - before);
                uint64_t used = pos - z->avail_in; /* compressed bytes consumed */
                if (zr == Z_MEM_ERROR)
                        return -ENOMEM;
                if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT || zr == Z_STREAM_ERROR)
                        return nbdsdk_error(-EINVAL, "%s: corrupt gzip data before byte %llu: %s", b->path,
                                            (unsigned long long) used, z->msg ? z->msg : "bad stream");
                int r = scan(b, before, made, out);
                if (r < 0)
                        return r;
                out += made;
                if (zr == Z_STREAM_END) { /* a member ends, its CRC and length right */
                        r = next_member(fd, b->path, used);
                        if (r <= 0)
                                break;
                        inflateReset(z);
                        idx->members++;
                        r = add_point(b, out, used, 0, NULL, 0);
                } else if ((z->data_type & 128) && !(z->data_type & 64) &&
                           out - idx->points[idx->n_points - 1].out >= span)
                        /* Between two deflate blocks, not after the last. */
                        r = add_point(b, out, used, (unsigned) z->data_type & 7, ring,
                                      (size_t) (z->next_out - ring) % GZ_WINDOW);
                if (r < 0)
                        return r;
        }
        idx->size = out;
        return out % GZ_ZERO_BLOCK ? end_block(b, out / GZ_ZERO_BLOCK) : 0;
}

int gz_index_build(int fd, const char *path, uint64_t span, struct gz_index *idx) {
        memset(idx, 0, sizeof *idx);
        unsigned char magic[2];
        ssize_t n = pread(fd, magic, 2, 0);
        if (n < 0)
                return nbdsdk_error(-errno, "cannot read %s: %m", path);
        if (n < 2 || magic[0] != 0x1f || magic[1] != 0x8b)
                return nbdsdk_error(-EINVAL, "%s is not a gzip file (it does not start with the bytes 1f 8b)", path);
        z_stream z = { 0 };
        struct builder *b = calloc(1, sizeof *b);
        unsigned char *in = gz_read_buffer(IN_CHUNK), *ring = calloc(1, GZ_WINDOW);
        int r = -ENOMEM;
        if (b && in && ring && inflateInit2(&z, 15 + 16) == Z_OK) {
                b->idx = idx;
                b->path = path;
                idx->members = 1;
                r = add_point(b, 0, 0, 0, NULL, 0);
                if (r == 0)
                        r = build(b, fd, span, &z, in, ring);
                inflateEnd(&z);
        }
        free(in);
        free(ring);
        free(b);
        if (r == -ENOMEM)
                nbdsdk_error(r, "out of memory indexing %s", path);
        if (r < 0)
                gz_index_free(idx);
        return r;
}

void gz_index_free(struct gz_index *idx) {
        for (size_t i = 0; i < idx->n_points; i++)
                free(idx->points[i].window);
        free(idx->points);
        free(idx->zero_map);
        memset(idx, 0, sizeof *idx);
}

size_t gz_index_find(const struct gz_index *idx, uint64_t offset) {
        size_t lo = 0, hi = idx->n_points; /* points[lo].out <= offset < points[hi].out */
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (idx->points[mid].out <= offset)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

uint64_t gz_index_end(const struct gz_index *idx, size_t i) {
        return i + 1 < idx->n_points ? idx->points[i + 1].out : idx->size;
}

uint64_t gz_index_run(const struct gz_index *idx, uint64_t offset, uint64_t end, bool *retzero) {
        uint64_t block = offset / GZ_ZERO_BLOCK, last = (end - 1) / GZ_ZERO_BLOCK;
        bool zero = map_bit(idx, block);
        while (block < last) {
                if ((block + 1) % 64 == 0 && idx->zero_map[(block + 1) / 64] == (zero ? ~0ull : 0) &&
                    block + 64 <= last) {
                        block += 64; /* a whole word of the same */
                        continue;
                }
                if (map_bit(idx, block + 1) != zero)
                        break;
                block++;
        }
        *retzero = zero;
        uint64_t run_end = (block + 1) * GZ_ZERO_BLOCK;
        return run_end < end ? run_end : end;
}
