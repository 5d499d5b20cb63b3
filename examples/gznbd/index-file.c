/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The index kept in a file (index=FILE), so that a restart skips the pass over
 * the whole gzip file. The file says which gzip file it describes (its size,
 * modification time and inode) and with which span; one that does not match,
 * or is damaged (a CRC-32 covers it), is rebuilt. The numbers are in this
 * machine's byte order: the file is a cache, not an exchange format. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <nbdsdk/nbdsdk.h>
#include "gznbd.h"

#define MAGIC "GZNBDIX1"

/* What the index was built from and with; all of it must match to reuse it. */
struct header {
        char magic[8];
        uint32_t window, zero_block;
        uint64_t gz_size, gz_mtime_sec, gz_mtime_nsec, gz_ino, span;
        uint64_t size, members, n_points;
};

struct point_record {
        uint64_t out, in;
        uint32_t bits, window_len; /* window_len 0: no window */
};

static void describe(const struct stat *gz, uint64_t span, struct header *h) {
        memset(h, 0, sizeof *h);
        memcpy(h->magic, MAGIC, sizeof h->magic);
        h->window = GZ_WINDOW;
        h->zero_block = GZ_ZERO_BLOCK;
        h->gz_size = (uint64_t) gz->st_size;
        h->gz_mtime_sec = (uint64_t) gz->st_mtim.tv_sec;
        h->gz_mtime_nsec = (uint64_t) gz->st_mtim.tv_nsec;
        h->gz_ino = (uint64_t) gz->st_ino;
        h->span = span;
}

static size_t map_words(uint64_t size) {
        return (size_t) ((size + GZ_ZERO_BLOCK - 1) / GZ_ZERO_BLOCK + 63) / 64;
}

/* Reads and writes that keep a running CRC-32 of the bytes (none for N = 0:
 * crc32() of no buffer restarts the sum). */
static bool get(FILE *f, void *p, size_t n, uLong *crc) {
        if (n == 0)
                return true;
        if (fread(p, n, 1, f) != 1)
                return false;
        *crc = crc32(*crc, p, (uInt) n);
        return true;
}

static bool put(FILE *f, const void *p, size_t n, uLong *crc) {
        if (n == 0)
                return true;
        *crc = crc32(*crc, p, (uInt) n);
        return fwrite(p, n, 1, f) == 1;
}

/* The body after a matching header: NULL when it is all there and intact,
 * else what is wrong. */
static const char *load_body(FILE *f, const struct header *h, uLong crc, struct gz_index *idx) {
        /* Bounds before allocating: deflate expands at most about 1032 times,
         * a member takes at least 18 bytes, points are a span apart but at members. */
        if (h->size > h->gz_size * 1100 || h->members > h->gz_size / 18 + 1 || h->n_points == 0 ||
            h->n_points > h->size / h->span + h->members + 1)
                return "its counts are impossible (damaged)";
        idx->size = h->size;
        idx->members = (unsigned) h->members;
        idx->points = calloc(h->n_points, sizeof *idx->points);
        idx->zero_map = calloc(map_words(h->size) + 1, sizeof *idx->zero_map);
        if (!idx->points || !idx->zero_map)
                return "there is not enough memory to read it";
        for (idx->n_points = 0; idx->n_points < h->n_points; idx->n_points++) {
                struct point_record r;
                if (!get(f, &r, sizeof r, &crc))
                        return "it is truncated";
                struct gz_point *p = &idx->points[idx->n_points];
                *p = (struct gz_point) { .out = r.out, .in = r.in, .bits = r.bits & 7, .window_len = r.window_len };
                if (r.window_len > compressBound(GZ_WINDOW))
                        return "a window is impossibly long (damaged)";
                if (r.window_len && !(p->window = malloc(r.window_len)))
                        return "there is not enough memory to read it";
                if (r.window_len && !get(f, p->window, r.window_len, &crc))
                        return "it is truncated";
                idx->window_bytes += r.window_len;
                if (p->out > h->size || (idx->n_points > 0 && p->out <= idx->points[idx->n_points - 1].out) ||
                    (idx->n_points == 0 && p->out != 0))
                        return "its access points are out of order";
        }
        if (!get(f, idx->zero_map, map_words(h->size) * sizeof *idx->zero_map, &crc))
                return "it is truncated";
        uint32_t want;
        if (fread(&want, sizeof want, 1, f) != 1 || want != (uint32_t) crc || fgetc(f) != EOF)
                return "its checksum does not match (damaged)";
        return NULL;
}

int gz_index_load(const char *path, const struct stat *gz, uint64_t span, struct gz_index *idx) {
        memset(idx, 0, sizeof *idx);
        struct header want, got;
        describe(gz, span, &want);
        FILE *f = fopen(path, "rbe");
        if (!f) {
                if (errno != ENOENT)
                        nbdsdk_error(0, "warning: cannot read the index %s: %m; indexing again", path);
                return 1;
        }
        uLong crc = crc32(0, NULL, 0);
        const char *why = NULL;
        if (!get(f, &got, sizeof got, &crc))
                why = "it is truncated";
        else if (memcmp(got.magic, want.magic, sizeof got.magic) != 0)
                why = "it is not a gznbd index";
        else if (got.window != want.window || got.zero_block != want.zero_block || got.span != want.span)
                why = "it was made with other settings (span)";
        else if (got.gz_size != want.gz_size || got.gz_mtime_sec != want.gz_mtime_sec ||
                 got.gz_mtime_nsec != want.gz_mtime_nsec || got.gz_ino != want.gz_ino)
                why = "the gzip file has changed since (size, time or inode)";
        else
                why = load_body(f, &got, crc, idx);
        fclose(f);
        if (!why)
                return 0;
        gz_index_free(idx);
        nbdsdk_error(0, "warning: not using the index %s: %s; indexing again", path, why);
        return 1;
}

static bool save(FILE *f, const struct header *h, const struct gz_index *idx) {
        uLong crc = crc32(0, NULL, 0);
        bool ok = put(f, h, sizeof *h, &crc);
        for (size_t i = 0; ok && i < idx->n_points; i++) {
                const struct gz_point *p = &idx->points[i];
                struct point_record r = { .out = p->out, .in = p->in, .bits = p->bits, .window_len = p->window_len };
                ok = put(f, &r, sizeof r, &crc) && put(f, p->window, p->window_len, &crc);
        }
        ok = ok && put(f, idx->zero_map, map_words(idx->size) * sizeof *idx->zero_map, &crc);
        uint32_t sum = (uint32_t) crc;
        return ok && fwrite(&sum, sizeof sum, 1, f) == 1;
}

void gz_index_save(const char *path, const struct stat *gz, uint64_t span, const struct gz_index *idx) {
        struct header h;
        char *tmp = NULL;
        int fd = -1;
        FILE *f = NULL;
        /* Written whole under another name, then renamed: a reader never sees half. */
        bool ok = asprintf(&tmp, "%s.XXXXXX", path) >= 0 && (fd = mkstemp(tmp)) >= 0 && (f = fdopen(fd, "wb"));
        if (ok) {
                describe(gz, span, &h);
                h.size = idx->size;
                h.members = idx->members;
                h.n_points = idx->n_points;
                ok = save(f, &h, idx) && fflush(f) == 0 && fsync(fileno(f)) == 0;
        }
        int error = errno;
        if (f && fclose(f) != 0 && ok)
                ok = false, error = errno;
        else if (!f && fd >= 0)
                close(fd);
        if (ok && rename(tmp, path) != 0)
                ok = false, error = errno;
        if (ok)
                nbdsdk_debug("saved the index in %s", path);
        else {
                errno = error;
                nbdsdk_error(0, "warning: cannot save the index in %s: %m", path);
                if (fd >= 0)
                        unlink(tmp);
        }
        free(tmp);
}
