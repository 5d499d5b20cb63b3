/* The machine's one-time cost the benchmark's fill keeps out of the measured
 * windows: the time of a 4 KiB write from user code to a page the kernel
 * wrote last (as a server's read() into its memory does), against a page user
 * code wrote last.  Prints "AFTER_USER_US AFTER_KERNEL_US", microseconds per
 * page, over a fresh 64 MiB area each.  Bare metal shows about the same
 * figure twice; a virtual machine with shadow page tables may not.
 *
 *   first-touch
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

#define AREA (64u << 20)
#define PAGE 4096u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A fresh area written once by user code (memset) or by the kernel (read
 * from /dev/zero), then timed: one 4 KiB user write to every page. */
static double us_per_page(int by_kernel)
{
    static char block[PAGE];
    char *area = mmap(NULL, AREA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        return -1;
    if (by_kernel) {
        int fd = open("/dev/zero", O_RDONLY);
        for (size_t off = 0; fd >= 0 && off < AREA; off += 1u << 20)
            if (read(fd, area + off, 1u << 20) != 1u << 20)
                return -1;
        close(fd);
    } else
        memset(area, 0, AREA);
    memset(block, 0x5a, PAGE);
    double start = now();
    for (size_t off = 0; off < AREA; off += PAGE)
        memcpy(area + off, block, PAGE);
    double us = (now() - start) * 1e6 / (AREA / PAGE);
    /* Keeps the copies observable so the compiler cannot drop them. */
    if (area[AREA - 1] != 0x5a)
        return -1;
    munmap(area, AREA);
    return us;
}

int main(void)
{
    double user = us_per_page(0), kernel = us_per_page(1);
    if (user < 0 || kernel < 0) {
        perror("first-touch");
        return 1;
    }
    printf("%.2f %.2f\n", user, kernel);
    return 0;
}
