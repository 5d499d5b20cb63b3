/* ramdisk: a RAM disk served over NBD, the nbdsdk "hello world".
 * Build: cc ramdisk.c -o ramdisk $(pkg-config --cflags --libs nbdsdk)
 * Run:   ./ramdisk -f -U /tmp/ram.sock 1G   (see --help) */
#include <string.h>
#include <sys/mman.h>
#include <nbdsdk/nbdsdk.h>

/* One disk per export: the first is main's, the others (--config) new_export's. */
struct disk { char *data; uint64_t size; };

/* Anonymous memory, like the data: both last as long as the process. */
static int rd_new_export(nbdsdk_export *exp, void *ud, void **retdisk) {
        return (*retdisk = mmap(NULL, sizeof(struct disk), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
                == MAP_FAILED ? -errno : 0;
}

static int rd_config(const char *key, const char *value, void *ud)
{ return strcmp(key, "size") == 0 ? nbdsdk_parse_size(value, &((struct disk *) ud)->size) : -ENOENT; }

static int rd_config_complete(void *ud) {
        struct disk *d = ud;
        if (d->size == 0)
                return nbdsdk_error(-EINVAL, "the disk's size is missing (ramdisk SIZE)");
        /* Anonymous memory: untouched pages cost nothing and read as zeroes. */
        d->data = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        return d->data == MAP_FAILED ? -errno : 0;
}

static int64_t rd_get_size(nbdsdk_conn *conn, void *ud) { return (int64_t) ((struct disk *) ud)->size; }
static int rd_multi_conn(nbdsdk_conn *conn, void *ud) { return 1; }
static int rd_flush(nbdsdk_request *req, uint32_t flags, void *ud) { return 0; }

/* Reads and writes: the library copies between the socket and the disk's memory itself. */
static void *rd_map(nbdsdk_conn *conn, void *ud) { return ((struct disk *) ud)->data; }

/* Zero and trim: whole pages go back to the kernel (and then read as zeroes). */
static int rd_zero(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, void *ud) {
        char *data = ((struct disk *) ud)->data;
        uint64_t start = (off + 4095) & ~4095ull, end = (off + count) & ~4095ull;
        if (start >= end) /* no whole page: zero it all by hand */
                start = end = off + count;
        memset(data + off, 0, start - off), memset(data + end, 0, off + count - end);
        return start == end || madvise(data + start, end - start, MADV_DONTNEED) == 0 ? 0 : -errno;
}

/* Pages never written (or given back) are holes that read as zeroes. */
static int rd_block_status(nbdsdk_request *req, uint64_t count, uint64_t off, uint32_t flags, nbdsdk_extents *x, void *ud) {
        unsigned char in_core[4096]; /* a byte per page: up to 16 MiB per call */
        uint64_t first = off / 4096, n = (off + count - 1) / 4096 - first + 1, end = off + count, p;
        if (mincore(((struct disk *) ud)->data + first * 4096, (n < 4096 ? n : 4096) * 4096, in_core) < 0)
                return -errno;
        for (p = first; p < first + n && p < first + 4096; p++, off = p * 4096)
                if (nbdsdk_extents_add(x, ((p + 1) * 4096 < end ? (p + 1) * 4096 : end) - off,
                                       in_core[p - first] & 1 ? 0 : NBDSDK_EXTENT_HOLE | NBDSDK_EXTENT_ZERO) < 0)
                        return -ENOMEM;
        return 0;
}

static const struct nbdsdk_ops ramdisk_ops = {
        .name = "ramdisk", .version = "1.0", .magic_config_key = "size", .config_help = "  size=SIZE   size of the disk",
        .config = rd_config, .config_complete = rd_config_complete, .new_export = rd_new_export, .get_size = rd_get_size,
        .can_multi_conn = rd_multi_conn, .map = rd_map, .flush = rd_flush, .trim = rd_zero,
        .zero = rd_zero, .block_status = rd_block_status,
};

int main(int argc, char **argv) { return NBDSDK_MAIN(argc, argv, &ramdisk_ops, &(struct disk) { 0 }); }
