/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The request log layer (log=FILE): a line when each command reaches the
 * layer and one when it is done, with its result and how long it took. A
 * command is named by its connection (the pointer the -v debug lines use
 * too) and the client's cookie, so the two lines of a command, and the
 * client's own trace, can be matched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "layer-builtin-internal.h"
#include "layers-internal.h"
#include "request-internal.h"

typedef struct {
        wrap_hooks hooks;        /* first: the wrapping layer's data */
        FILE *f;
        bool own;                /* f was opened here (not standard error) */
} request_log;

/* The flags set in FLAGS, by name; "-" for none. */
static const char *flag_names(uint32_t flags, char *buf, size_t size) {
        static const struct { uint32_t flag; const char *name; } names[] = {
                { NBDSDK_FUA, "fua" }, { NBDSDK_MAY_TRIM, "may-trim" },
                { NBDSDK_FAST_ZERO, "fast-zero" }, { NBDSDK_REQ_ONE, "req-one" },
        };
        size_t len = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < sizeof names / sizeof *names; i++)
                if (flags & names[i].flag)
                        len += (size_t) snprintf(buf + len, size - len, "%s%s", len ? "," : "", names[i].name);
        return len ? buf : "-";
}

static int log_before(nbdsdk_request *req, uint16_t command, uint64_t count, uint64_t offset, uint32_t flags,
                      void *data) {
        request_log *l = data;
        char buf[64];
        fprintf(l->f, "conn %llu cookie %llu: %s offset=%llu count=%llu flags=%s\n",
                (unsigned long long) nbdsdk_conn_get_id(req->conn), (unsigned long long) req->cookie,
                wrap_command_name(command), (unsigned long long) offset, (unsigned long long) count,
                flag_names(flags, buf, sizeof buf));
        return 0;
}

static void log_after(nbdsdk_request *req, uint16_t command, uint64_t count, int result, uint64_t nsec,
                      void *data) {
        (void) count;
        request_log *l = data;
        char why[128] = "";
        if (result < 0) {
                const char *name = strerrorname_np(-result);
                snprintf(why, sizeof why, ": %s (%s)", name ? name : "unknown error", strerror(-result));
        }
        fprintf(l->f, "conn %llu cookie %llu: %s %s in %.1f us%s\n",
                (unsigned long long) nbdsdk_conn_get_id(req->conn), (unsigned long long) req->cookie,
                wrap_command_name(command), result < 0 ? "failed" : "done", nsec / 1000.0, why);
}

static void log_unload(void *data) {
        request_log *l = data;
        if (l->own)
                fclose(l->f);
        free(l);
}

static void *log_new(void) {
        request_log *l = calloc(1, sizeof *l);
        if (l) {
                l->hooks = (wrap_hooks) { log_before, log_after };
                l->f = stderr;
        }
        return l;
}

static int log_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) key;
        (void) userdata;
        if (!*value)
                return nbdsdk_error(-EINVAL, "log= needs a file name (or - for standard error)");
        /* Opened now, so that a path that cannot be written is a configuration
         * error, not a log that silently stays empty. */
        FILE *f = stderr;
        if (strcmp(value, "-") != 0) {
                if (!(f = fopen(value, "ae")))
                        return nbdsdk_error(-errno, "log=%s: cannot open it for writing: %m", value);
                setvbuf(f, NULL, _IOLBF, 0); /* each line whole, and there at once */
        }
        int r;
        struct nbdsdk_layer layer = layer_wrap("log", NBDSDK_PRIORITY_LOG, NULL, log_unload);
        request_log *l = layer_find_or_add(exp, &layer, log_new, &r);
        if (!l) {
                if (f != stderr)
                        fclose(f);
                return r;
        }
        if (l->own)
                fclose(l->f);
        l->f = f;
        l->own = f != stderr;
        return 0;
}

int layer_log_register(nbdsdk_server *server) {
        return nbdsdk_server_add_config_key(server, "log",
                                            "log=FILE   a line per command as it starts and as it ends (- for standard error)",
                                            log_config, NULL, NULL);
}
