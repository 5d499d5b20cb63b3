/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The statistics layer (stats=FILE): what it writes when asked (SIGUSR1 in
 * nbdsdk_main()) and when the server goes — per command the count, the
 * errors and the bytes exactly as the client sent them, and a latency
 * histogram holding every command once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tcase.h"
#include "fixture.h"
#include "layers-internal.h"

typedef struct {
        unsigned long long count, errors, bytes, histogram;
} row;

/* The report in PATH: the row of every command it names. */
static void read_report(const char *path, const char *const *names, row *rows, size_t n) {
        memset(rows, 0, n * sizeof *rows);
        FILE *f = fopen(path, "re");
        CHECK(f, "the report %s exists", path);
        char line[1024];
        CHECK(fgets(line, sizeof line, f) && strncmp(line, "command", 7) == 0, "the report starts with a heading");
        while (fgets(line, sizeof line, f)) {
                char name[32];
                row r = { 0 };
                double mean, max;
                int used;
                if (sscanf(line, "latency %31[^:]:%n", name, &used) == 1) {
                        unsigned long long bucket, k;
                        for (char *p = line + used; sscanf(p, " <%lluus:%llu%n", &bucket, &k, &used) == 2; p += used)
                                r.histogram += k;
                } else {
                        CHECK(sscanf(line, "%31s %llu %llu %llu %lf %lf", name, &r.count, &r.errors, &r.bytes, &mean,
                                     &max) == 6, "a report line: %s", line);
                        CHECK(mean >= 0 && max >= mean, "%s: mean %.1f us, max %.1f us", name, mean, max);
                }
                size_t i = 0;
                while (i < n && strcmp(names[i], name) != 0)
                        i++;
                CHECK(i < n, "the report names an unexpected command: %s", line);
                if (r.histogram)
                        rows[i].histogram = r.histogram;
                else
                        rows[i].count = r.count, rows[i].errors = r.errors, rows[i].bytes = r.bytes;
        }
        fclose(f);
}

enum { READ, WRITE, FLUSH, TRIM, ZERO, BLOCK_STATUS, N_ROWS };
static const char *const names[N_ROWS] = { "read", "write", "flush", "trim", "zero", "block-status" };

static void expect_row(const row *rows, unsigned i, unsigned long long count, unsigned long long errors,
                       unsigned long long bytes) {
        CHECK(rows[i].count == count && rows[i].errors == errors && rows[i].bytes == bytes,
              "%s: count %llu errors %llu bytes %llu, expected %llu %llu %llu", names[i], rows[i].count,
              rows[i].errors, rows[i].bytes, count, errors, bytes);
        CHECK(rows[i].histogram == count, "%s: the histogram holds %llu commands, not %llu", names[i],
              rows[i].histogram, count);
}

static void counts_errors_and_bytes_as_sent(void) {
        char path[] = "/tmp/nbdsdk-stats-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0, "a temporary file");
        close(fd);
        td = td_new(DISK_SIZE);
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "stats", path) == 0, "stats=%s", path);
        /* Every trim fails below the statistics. */
        CHECK(nbdsdk_server_config(server, "error-rate", "1") == 0 &&
              nbdsdk_server_config(server, "error-commands", "trim") == 0, "error-rate=1 error-commands=trim");
        tclient *s = tc_open(server, TC_SIMPLE, false, NULL);
        tclient *x = tc_open(server, TC_STRUCTURED, true, NULL);
        static uint8_t buf[40000];
        static const unsigned read_sizes[] = { 1, 512, 4096, 40000, 777 };
        unsigned long long read_bytes = 0, write_bytes = 0;
        for (unsigned i = 0; i < sizeof read_sizes / sizeof *read_sizes; i++) {
                CHECK(tc_read(i % 2 ? x : s, 0, i, 8192, buf, read_sizes[i]) == 0, "read %u", i);
                read_bytes += read_sizes[i];
        }
        for (unsigned i = 0; i < 7; i++) {
                fill(buf, 1000 + i, i);
                CHECK(tc_write(s, 0, i, i * 5000, buf, 1000 + i) == 0, "write %u", i);
                write_bytes += 1000 + i;
        }
        for (unsigned i = 0; i < 3; i++)
                CHECK(tc_command(x, 0, NBDSDK_CMD_FLUSH, i, 0, 0) == 0, "flush %u", i);
        for (unsigned i = 0; i < 4; i++)
                CHECK(tc_command(s, 0, NBDSDK_CMD_TRIM, i, 0, 4096) == NBDSDK_EIO, "trim %u fails", i);
        CHECK(tc_command(s, 0, NBDSDK_CMD_WRITE_ZEROES, 1, 4096, 100) == 0, "zero");
        tc_request(x, 0, NBDSDK_CMD_BLOCK_STATUS, 1, 0, 65536, NULL, 0);
        tc_extents e;
        tc_block_status_reply(x, 1, &e);

        /* Asked while running (SIGUSR1 in nbdsdk_main()). */
        layers_report(server);
        row rows[N_ROWS];
        read_report(path, names, rows, N_ROWS);
        expect_row(rows, READ, 5, 0, read_bytes);
        expect_row(rows, WRITE, 7, 0, write_bytes);
        expect_row(rows, FLUSH, 3, 0, 0);
        expect_row(rows, TRIM, 4, 4, 0);
        expect_row(rows, ZERO, 1, 0, 100);
        expect_row(rows, BLOCK_STATUS, 1, 0, 0);

        /* Written again, complete, when the server goes. */
        CHECK(tc_read(s, 0, 9, 0, buf, 100) == 0, "one more read");
        tc_free(s);
        tc_free(x);
        disk_teardown();
        read_report(path, names, rows, N_ROWS);
        expect_row(rows, READ, 6, 0, read_bytes + 100);
        expect_row(rows, TRIM, 4, 4, 0);
        unlink(path);
}

static void unwritable_file_is_an_error_not_a_crash(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "stats", "/nonexistent-nbdsdk-test/stats") == 0, "stats=FILE");
        CHECK(nbdsdk_server_config(server, "stats", "") == -EINVAL, "stats= needs a file name");
        open_disk(TC_SIMPLE, false);
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "read");
        layers_report(server);
        close_disk();
}

TCASE_MAIN(T(counts_errors_and_bytes_as_sent), T(unwritable_file_is_an_error_not_a_crash))
