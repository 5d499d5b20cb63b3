/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request log layer (log=FILE): for each command, a line as it reaches
 * the layer and one when it is done, both naming the connection and the
 * client's cookie; the command, offset, count and flags as the client sent
 * them, in the callbacks' terms; the result (an errno's name when it
 * failed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "tcase.h"
#include "fixture.h"

#define MAX_LINES 64

static char lines[MAX_LINES][256];
static unsigned n_lines;

static void read_log(const char *path) {
        FILE *f = fopen(path, "re");
        CHECK(f, "the log %s exists", path);
        n_lines = 0;
        while (n_lines < MAX_LINES && fgets(lines[n_lines], sizeof lines[n_lines], f)) {
                lines[n_lines][strcspn(lines[n_lines], "\n")] = '\0';
                n_lines++;
        }
        fclose(f);
}

/* The line after "conn ID cookie COOKIE: " that begins with START, ID being
 * the test connection's. */
static const char *find(unsigned long long cookie, const char *start) {
        for (unsigned i = 0; i < n_lines; i++) {
                unsigned long long c, id;
                int used = 0;
                if (sscanf(lines[i], "conn %llu cookie %llu: %n", &id, &c, &used) == 2 && used && c == cookie &&
                    id == nbdsdk_conn_get_id(tc->conn) && strncmp(lines[i] + used, start, strlen(start)) == 0)
                        return lines[i] + used;
        }
        return NULL;
}

static void expect_command(unsigned long long cookie, const char *started, const char *ended) {
        const char *s = find(cookie, started), *e = find(cookie, ended);
        CHECK(s, "cookie %llu: a line \"%s\" (%u lines logged)", cookie, started, n_lines);
        CHECK(e, "cookie %llu: a line beginning \"%s\"", cookie, ended);
        CHECK(s < e, "cookie %llu: the command's start is logged before its end", cookie);
        double us;
        CHECK(sscanf(strstr(e, " in ") ? strstr(e, " in ") : "", " in %lf us", &us) == 1 && us >= 0,
              "cookie %llu: the time it took: %s", cookie, e);
}

static void logs_each_command_as_it_starts_and_ends(void) {
        char path[] = "/tmp/nbdsdk-log-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0, "a temporary file");
        close(fd);
        td = td_new(DISK_SIZE);
        /* FUA and zeroes emulated below: the log shows the client's commands. */
        td->can_fua = td->can_zero = NBDSDK_CAP_EMULATE;
        td->has_zero = false;
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "log", path) == 0, "log=%s", path);
        /* Every trim fails below the log. */
        CHECK(nbdsdk_server_config(server, "error-rate", "1") == 0 &&
              nbdsdk_server_config(server, "error-commands", "trim") == 0, "error-rate=1 error-commands=trim");
        open_disk(TC_STRUCTURED, true);
        static uint8_t buf[8192];
        CHECK(tc_read(tc, 0, 11, 4096, buf, 512) == 0, "read");
        fill(buf, 1000, 1);
        CHECK(tc_write(tc, NBDSDK_CMD_FLAG_FUA, 12, 8192, buf, 1000) == 0, "write with FUA");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_FLUSH, 13, 0, 0) == 0, "flush");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_TRIM, 14, 0, 4096) == NBDSDK_EIO, "trim fails");
        CHECK(tc_command(tc, NBDSDK_CMD_FLAG_NO_HOLE, NBDSDK_CMD_WRITE_ZEROES, 15, 4096, 100) == 0,
              "zero, NO_HOLE");
        CHECK(tc_command(tc, 0, NBDSDK_CMD_WRITE_ZEROES, 16, 4096, 100) == 0, "zero, may trim");
        tc_request(tc, NBDSDK_CMD_FLAG_REQ_ONE, NBDSDK_CMD_BLOCK_STATUS, 17, 0, 65536, NULL, 0);
        tc_extents x;
        tc_block_status_reply(tc, 17, &x);

        read_log(path);
        expect_command(11, "read offset=4096 count=512 flags=-", "read done");
        expect_command(12, "write offset=8192 count=1000 flags=fua", "write done");
        expect_command(13, "flush offset=0 count=0 flags=-", "flush done");
        expect_command(14, "trim offset=0 count=4096 flags=-", "trim failed");
        CHECK(strstr(find(14, "trim failed"), ": EIO (Input/output error)"), "the error by name: %s",
              find(14, "trim failed"));
        expect_command(15, "zero offset=4096 count=100 flags=-", "zero done");
        expect_command(16, "zero offset=4096 count=100 flags=may-trim", "zero done");
        expect_command(17, "block-status offset=0 count=65536 flags=req-one", "block-status done");
        CHECK(n_lines == 14, "two lines per command and no more: %u", n_lines);

        /* Each line whole in the file as soon as it is written (line-buffered):
         * a server that hangs or crashes leaves its last commands there. */
        CHECK(tc_read(tc, 0, 18, 0, buf, 100) == 0, "one more read");
        read_log(path);
        expect_command(18, "read offset=0 count=100 flags=-", "read done");
        close_disk();
        unlink(path);
}

static void standard_error_with_a_dash(void) {
        char path[] = "/tmp/nbdsdk-log-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        CHECK(fd >= 0 && saved >= 0, "a temporary file");
        td = td_new(DISK_SIZE);
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "log", "-") == 0, "log=-");
        open_disk(TC_SIMPLE, false);
        uint8_t buf[512];
        fflush(stderr);
        CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO, "standard error to %s", path);
        uint32_t err = tc_read(tc, 0, 21, 512, buf, sizeof buf);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);
        CHECK(err == 0, "read");
        read_log(path);
        expect_command(21, "read offset=512 count=512 flags=-", "read done");
        close_disk();
        unlink(path);
}

static void bad_file_names_are_configuration_errors(void) {
        td = td_new(DISK_SIZE);
        server = td_server(td);
        CHECK(nbdsdk_server_config(server, "log", "") == -EINVAL, "log= needs a file name");
        CHECK(nbdsdk_server_config(server, "log", "/nonexistent-nbdsdk-test/log") == -ENOENT,
              "log= in a directory that does not exist");
        /* Nothing was set up: the export serves as before. */
        open_disk(TC_SIMPLE, false);
        uint8_t buf[512];
        CHECK(tc_read(tc, 0, 1, 0, buf, sizeof buf) == 0, "read");
        close_disk();
}

TCASE_MAIN(T(logs_each_command_as_it_starts_and_ends), T(standard_error_with_a_dash),
           T(bad_file_names_are_configuration_errors))
