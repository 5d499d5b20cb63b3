/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The statistics layer (stats=FILE): per command, the count, errors, bytes
 * and a latency histogram with a bucket per power of two of microseconds.
 * Written to FILE ("-": standard error) when the server goes and on SIGUSR1
 * (nbdsdk_main()). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "layer-builtin-internal.h"
#include "layers-internal.h"

#define BUCKETS 32 /* up to 2^31 us, about 36 minutes */
#define COMMANDS (NBDSDK_CMD_BLOCK_STATUS + 1)

typedef struct {
        uint64_t count, errors, bytes, nsec_total, nsec_max;
        uint64_t hist[BUCKETS];  /* [i]: latencies below 2^i us (and at least 2^(i-1)) */
} command_stats;

typedef struct {
        wrap_hooks hooks;        /* first: the wrapping layer's data */
        char *path;
        pthread_mutex_t lock;
        command_stats cmd[COMMANDS];
} stats;

static void stats_after(nbdsdk_request *req, uint16_t command, uint64_t count, int result, uint64_t nsec,
                        void *data) {
        (void) req;
        stats *s = data;
        unsigned bucket = 0;
        for (uint64_t us = nsec / 1000; us && bucket < BUCKETS - 1; us >>= 1)
                bucket++;
        pthread_mutex_lock(&s->lock);
        command_stats *c = &s->cmd[command];
        c->count++;
        if (result < 0)
                c->errors++;
        else if (command != NBDSDK_CMD_BLOCK_STATUS && command != NBDSDK_CMD_CACHE)
                c->bytes += count;
        c->nsec_total += nsec;
        if (nsec > c->nsec_max)
                c->nsec_max = nsec;
        c->hist[bucket]++;
        pthread_mutex_unlock(&s->lock);
}

static void write_report(FILE *f, stats *s) {
        fprintf(f, "%-12s %12s %8s %16s %10s %10s\n", "command", "count", "errors", "bytes", "mean-us", "max-us");
        for (unsigned i = 0; i < COMMANDS; i++) {
                const command_stats *c = &s->cmd[i];
                if (!wrap_command_name(i) || c->count == 0)
                        continue;
                fprintf(f, "%-12s %12llu %8llu %16llu %10.1f %10.1f\n", wrap_command_name(i), (unsigned long long) c->count,
                        (unsigned long long) c->errors, (unsigned long long) c->bytes,
                        c->nsec_total / 1000.0 / (double) c->count, c->nsec_max / 1000.0);
        }
        for (unsigned i = 0; i < COMMANDS; i++) {
                const command_stats *c = &s->cmd[i];
                if (!wrap_command_name(i) || c->count == 0)
                        continue;
                fprintf(f, "latency %s:", wrap_command_name(i));
                for (unsigned b = 0; b < BUCKETS; b++)
                        if (c->hist[b])
                                fprintf(f, " <%lluus:%llu", 1ull << b, (unsigned long long) c->hist[b]);
                fputc('\n', f);
        }
}

static void stats_report(void *data) {
        stats *s = data;
        bool to_stderr = strcmp(s->path, "-") == 0;
        FILE *f = to_stderr ? stderr : fopen(s->path, "we");
        if (!f) {
                nbdsdk_error(-errno, "stats: cannot write %s: %m", s->path);
                return;
        }
        pthread_mutex_lock(&s->lock);
        write_report(f, s);
        pthread_mutex_unlock(&s->lock);
        if (to_stderr)
                fflush(f);
        else if (fclose(f) != 0)
                nbdsdk_error(-errno, "stats: cannot write %s: %m", s->path);
}

static void stats_unload(void *data) {
        stats *s = data;
        if (s->path)
                stats_report(s);
        free(s->path);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

static void *stats_new(void) {
        stats *s = calloc(1, sizeof *s);
        if (s) {
                s->hooks = (wrap_hooks) { NULL, stats_after };
                pthread_mutex_init(&s->lock, NULL);
        }
        return s;
}

static int stats_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) key;
        (void) userdata;
        if (!*value)
                return nbdsdk_error(-EINVAL, "stats= needs a file name (or - for standard error)");
        int r;
        struct nbdsdk_layer layer = layer_wrap("stats", NBDSDK_PRIORITY_STATS, stats_report, stats_unload);
        stats *s = layer_find_or_add(exp, &layer, stats_new, &r);
        if (!s)
                return r;
        char *path = strdup(value);
        if (!path)
                return -ENOMEM;
        free(s->path);
        s->path = path;
        return 0;
}

int layer_stats_register(nbdsdk_server *server) {
        return nbdsdk_server_add_config_key(server, "stats",
                                            "stats=FILE   per-command counts, bytes and latencies, written at exit and on SIGUSR1",
                                            stats_config, NULL, NULL);
}
