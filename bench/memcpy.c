/* The benchmark's memory-bandwidth limit: copies 1 MiB blocks between two
 * buffers larger than the CPU caches for SECONDS, then prints
 * "BYTES ELAPSED_SECONDS".  A server answering a 1 MiB read must move the
 * data at least once like this.
 *
 *   memcpy SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCK (1u << 20)
#define AREA (64u << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc == 2 ? atof(argv[1]) : 0;
    if (seconds <= 0) {
        fprintf(stderr, "usage: memcpy SECONDS\n");
        return 2;
    }
    char *src = malloc(AREA), *dst = malloc(AREA);
    if (!src || !dst) {
        perror("malloc");
        return 1;
    }
    memset(src, 0xa5, AREA);
    memset(dst, 0x5a, AREA);
    unsigned long long bytes = 0;
    double start = now(), end = start + seconds, t = start;
    size_t off = 0;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            memcpy(dst + off, src + off, BLOCK);
            off = (off + BLOCK) % AREA;
        }
        bytes += 64ull * BLOCK;
        t = now();
    }
    /* Keeps the copies observable so the compiler cannot drop them. */
    if (dst[off] != (char)0xa5)
        return 1;
    printf("%llu %.6f\n", bytes, t - start);
    return 0;
}
