/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Decompressing one stretch of the image, from an access point to the next:
 * inflate resumes mid-stream (raw deflate, primed with the bits left over and
 * the window) or at a member's gzip header. Every member starts a point, so a
 * stretch never crosses into another member. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <nbdsdk/nbdsdk.h>
#include "gznbd.h"

#define IN_CHUNK (64 * 1024)

/* Set Z up to start at point P (its input comes from byte *RETPOS on). */
static int resume(int fd, const struct gz_point *p, z_stream *z, uint64_t *retpos) {
        *retpos = p->in;
        if (!p->window)
                return inflateInit2(z, 15 + 16) == Z_OK ? 0 : -ENOMEM;
        if (inflateInit2(z, -15) != Z_OK)
                return -ENOMEM;
        if (p->bits) {
                unsigned char c;
                ssize_t n = pread(fd, &c, 1, (off_t) p->in - 1);
                if (n != 1)
                        return n < 0 ? -errno : -EIO;
                inflatePrime(z, (int) p->bits, c >> (8 - p->bits));
        }
        unsigned char *window = malloc(GZ_WINDOW);
        uLongf len = GZ_WINDOW;
        int r = !window ? -ENOMEM
                : uncompress(window, &len, p->window, p->window_len) != Z_OK || len != GZ_WINDOW ||
                  inflateSetDictionary(z, window, GZ_WINDOW) != Z_OK ? -EIO : 0;
        free(window);
        return r;
}

void *gz_read_buffer(size_t size) {
        void *buf;
        return posix_memalign(&buf, 4096, size) == 0 ? buf : NULL;
}

int gz_extract(int fd, const struct gz_index *idx, size_t i, unsigned char *buf) {
        const struct gz_point *p = &idx->points[i];
        uint64_t left = gz_index_end(idx, i) - p->out, pos;
        z_stream z = { 0 };
        unsigned char *in = gz_read_buffer(IN_CHUNK);
        int r = in ? resume(fd, p, &z, &pos) : -ENOMEM;
        z.next_out = buf;
        while (r == 0 && left > 0) {
                if (z.avail_in == 0) {
                        ssize_t n = pread(fd, in, IN_CHUNK, (off_t) pos);
                        if (n <= 0) {
                                r = n < 0 ? -errno : -EIO; /* the file shrank */
                                break;
                        }
                        pos += (uint64_t) n;
                        z.next_in = in;
                        z.avail_in = (uInt) n;
                }
                z.avail_out = left < (1u << 30) ? (uInt) left : 1u << 30;
                unsigned char *before = z.next_out;
                int zr = inflate(&z, Z_NO_FLUSH);
                left -= (uint64_t) (z.next_out - before);
                if (zr == Z_MEM_ERROR)
                        r = -ENOMEM;
                else if (zr == Z_STREAM_END ? left > 0 : zr != Z_OK && zr != Z_BUF_ERROR)
                        r = -EIO; /* the member ended early, or bad data: not the file indexed */
        }
        if (r < 0)
                nbdsdk_error(r, "decompressing from byte %llu of the image failed: %s (has the file changed since it was indexed?)",
                             (unsigned long long) p->out, r == -EIO && z.msg ? z.msg : strerror(-r));
        inflateEnd(&z);
        free(in);
        return r;
}
