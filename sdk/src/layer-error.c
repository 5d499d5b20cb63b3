/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The error-injection layer: fails a share of the commands, of chosen types
 * and touching a chosen range, with a chosen errno — for testing clients
 * (and ourselves). Keys: error-rate=P (0..1 or N%), error=ERRNO (EIO),
 * error-commands=LIST, error-range=START-END, error-seed=N. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "layer-builtin-internal.h"
#include "layers-internal.h"

typedef struct {
        wrap_hooks hooks;        /* first: the wrapping layer's data */
        int error;               /* positive errno */
        double rate;
        uint32_t commands;       /* NBDSDK_COMMAND_BIT()s */
        uint64_t start, end;     /* end 0: everywhere */
        pthread_mutex_t lock;
        uint64_t rng;            /* xorshift64 state */
} injector;

static const struct { const char *name; uint16_t command; } command_names[] = {
        { "read", NBDSDK_CMD_READ }, { "write", NBDSDK_CMD_WRITE }, { "flush", NBDSDK_CMD_FLUSH },
        { "trim", NBDSDK_CMD_TRIM }, { "cache", NBDSDK_CMD_CACHE }, { "zero", NBDSDK_CMD_WRITE_ZEROES },
        { "block-status", NBDSDK_CMD_BLOCK_STATUS },
};

static const struct { const char *name; int error; } errno_names[] = {
        { "EIO", EIO }, { "EPERM", EPERM }, { "ENOMEM", ENOMEM }, { "EINVAL", EINVAL },
        { "ENOSPC", ENOSPC }, { "EOVERFLOW", EOVERFLOW }, { "ESHUTDOWN", ESHUTDOWN },
        { "ENOTSUP", ENOTSUP },
};

/* A uniform draw in [0, 1). */
static double draw(injector *in) {
        pthread_mutex_lock(&in->lock);
        uint64_t x = in->rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        in->rng = x;
        pthread_mutex_unlock(&in->lock);
        return (double) (x >> 11) / (double) (1ull << 53);
}

static int error_before(nbdsdk_request *req, uint16_t command, uint64_t count, uint64_t offset, uint32_t flags,
                        void *data) {
        (void) flags;
        injector *in = data;
        if (!(in->commands & NBDSDK_COMMAND_BIT(command)))
                return 0;
        /* A range leaves FLUSH (which has none) alone. */
        if (in->end && (count == 0 || offset >= in->end || offset + count <= in->start))
                return 0;
        if (in->rate <= 0 || draw(in) >= in->rate)
                return 0;
        nbdsdk_request_set_error_message(req, "error layer: injected %s", strerror(in->error));
        return -in->error;
}

static void error_unload(void *data) {
        injector *in = data;
        pthread_mutex_destroy(&in->lock);
        free(in);
}

static void *error_new(void) {
        injector *in = calloc(1, sizeof *in);
        if (in) {
                in->hooks = (wrap_hooks) { error_before, NULL };
                in->error = EIO;
                for (size_t i = 0; i < sizeof command_names / sizeof *command_names; i++)
                        in->commands |= (uint32_t) NBDSDK_COMMAND_BIT(command_names[i].command);
                in->rng = 0x9e3779b97f4a7c15ull;
                pthread_mutex_init(&in->lock, NULL);
        }
        return in;
}

static int parse_rate(const char *value, double *ret) {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (end != value && *end == '%' && end[1] == '\0')
                v /= 100, end++;
        if (errno || end == value || *end || !(v >= 0 && v <= 1))
                return nbdsdk_error(-EINVAL, "error-rate=%s: a probability from 0 to 1, or a percentage", value);
        *ret = v;
        return 0;
}

static int parse_commands(const char *value, uint32_t *ret) {
        uint32_t mask = 0;
        for (const char *p = value; *p;) {
                size_t len = strcspn(p, ",");
                size_t i = 0;
                while (i < sizeof command_names / sizeof *command_names &&
                       (strlen(command_names[i].name) != len || strncmp(command_names[i].name, p, len) != 0))
                        i++;
                if (i == sizeof command_names / sizeof *command_names)
                        return nbdsdk_error(-EINVAL, "error-commands: unknown command \"%.*s\" (read, write, "
                                            "flush, trim, zero, cache, block-status)", (int) len, p);
                mask |= (uint32_t) NBDSDK_COMMAND_BIT(command_names[i].command);
                p += len + (p[len] == ',');
        }
        if (!mask)
                return nbdsdk_error(-EINVAL, "error-commands: name at least one command");
        *ret = mask;
        return 0;
}

static int parse_range(const char *value, uint64_t *retstart, uint64_t *retend) {
        const char *dash = strchr(value, '-');
        char first[64];
        uint64_t start, end;
        if (!dash || (size_t) (dash - value) >= sizeof first)
                return nbdsdk_error(-EINVAL, "error-range=%s: say START-END, e.g. 1M-2M", value);
        memcpy(first, value, (size_t) (dash - value));
        first[dash - value] = '\0';
        if (nbdsdk_parse_size(first, &start) < 0 || nbdsdk_parse_size(dash + 1, &end) < 0 || end <= start)
                return nbdsdk_error(-EINVAL, "error-range=%s: say START-END with START below END", value);
        *retstart = start;
        *retend = end;
        return 0;
}

static int error_config(nbdsdk_export *exp, const char *key, const char *value, void *userdata) {
        (void) userdata;
        int r;
        struct nbdsdk_layer layer = layer_wrap("error", NBDSDK_PRIORITY_ERROR, NULL, error_unload);
        injector *in = layer_find_or_add(exp, &layer, error_new, &r);
        if (!in)
                return r;
        if (strcmp(key, "error-rate") == 0)
                return parse_rate(value, &in->rate);
        if (strcmp(key, "error-commands") == 0)
                return parse_commands(value, &in->commands);
        if (strcmp(key, "error-range") == 0)
                return parse_range(value, &in->start, &in->end);
        if (strcmp(key, "error-seed") == 0) {
                char *end;
                errno = 0;
                unsigned long long seed = strtoull(value, &end, 0);
                if (errno || end == value || *end)
                        return nbdsdk_error(-EINVAL, "error-seed=%s: a number", value);
                in->rng = seed * 0x9e3779b97f4a7c15ull | 1; /* never 0: xorshift would stay there */
                return 0;
        }
        for (size_t i = 0; i < sizeof errno_names / sizeof *errno_names; i++)
                if (strcmp(errno_names[i].name, value) == 0) {
                        in->error = errno_names[i].error;
                        return 0;
                }
        return nbdsdk_error(-EINVAL, "error=%s: one of EIO, EPERM, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, "
                            "ESHUTDOWN, ENOTSUP", value);
}

int layer_error_register(nbdsdk_server *server) {
        static const struct { const char *key, *help; } keys[] = {
                { "error-rate", "error-rate=P   fail this share of commands (0..1 or N%): error injection" },
                { "error", "error=ERRNO   the injected error (EIO, ENOSPC, EPERM ...; default EIO)" },
                { "error-commands", "error-commands=LIST   commands to fail (read,write,flush,trim,zero,cache,block-status)" },
                { "error-range", "error-range=START-END   fail only commands touching these bytes" },
                { "error-seed", "error-seed=N   seed of the injection's random draws" },
        };
        int r = 0;
        for (size_t i = 0; r == 0 && i < sizeof keys / sizeof *keys; i++)
                r = nbdsdk_server_add_config_key(server, keys[i].key, keys[i].help, error_config, NULL, NULL);
        return r;
}
