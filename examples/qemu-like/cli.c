/* qemu-like's command line: qemu-nbd's options, parsed into struct ql_config. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "qemu-like.h"

static const char usage[] =
        "Usage: qemu-like [OPTIONS] FILE\n"
        "Serve the raw image or block device FILE over NBD, like qemu-nbd.\n"
        "\n"
        "Connection:\n"
        "  -p, --port=PORT          TCP port to listen on (default 10809)\n"
        "  -b, --bind=ADDR          address to listen on (default 0.0.0.0)\n"
        "  -k, --socket=PATH        listen on a Unix socket instead of TCP\n"
        "  -e, --shared=N           serve up to N clients at once (default 1, 0: no limit);\n"
        "                           multi-conn is advertised unless N is 1\n"
        "  -t, --persistent         keep serving after the last client disconnects\n"
        "  -x, --export-name=NAME   export name (default \"\")\n"
        "  -D, --description=TEXT   export description\n"
        "  -c, --connect=DEV        serve the local kernel NBD device DEV instead of listening\n"
        "                           (in the background unless -v; ends when DEV is disconnected)\n"
        "  -d, --disconnect         disconnect the kernel NBD device FILE and exit\n"
        "      --fork               run in the background once listening\n"
        "      --pid-file=PATH      write the server's process ID to PATH\n"
        "  -v, --verbose            print debugging messages\n"
        "      --object=tls-creds-x509,id=ID,dir=DIR,endpoint=server[,verify-peer=on|off]\n"
        "      --object=tls-creds-psk,id=ID,dir=DIR,endpoint=server\n"
        "                           TLS credentials: DIR's server-cert.pem, server-key.pem\n"
        "                           and ca-cert.pem (clients need certificates unless\n"
        "                           verify-peer=off), or DIR/keys.psk (psktool's format)\n"
        "      --tls-creds=ID       require TLS with the credentials of object ID\n"
        "\n"
        "Image:\n"
        "  -f, --format=FORMAT      image format; only 'raw' is supported\n"
        "  -r, --read-only          export read-only\n"
        "  -s, --snapshot           serve a throw-away copy: writes never reach FILE\n"
        "                           (a reflink clone, else an overlay in $TMPDIR)\n"
        "  -o, --offset=OFFSET      serve FILE from OFFSET bytes on\n"
        "      --cache=MODE         writeback (default), writethrough, none, directsync, unsafe\n"
        "      --discard=MODE       ignore (default) or unmap: whether trims free space\n"
        "      --detect-zeroes=MODE off (default), on, or unmap: write zeroes efficiently\n"
        "  -T, --threads=N          worker threads for file I/O (default 8)\n"
        "\n"
        "  -h, --help               show this help\n"
        "  -V, --version            show the version\n"
        "Systemd socket activation (one socket, LISTEN_FDS=1) replaces -p, -b and -k.\n";

enum { OPT_FORK = 256, OPT_PID_FILE, OPT_CACHE, OPT_DISCARD, OPT_DETECT_ZEROES, OPT_OBJECT, OPT_TLS_CREDS };

static const struct option options[] = {
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "socket", required_argument, NULL, 'k' },
        { "shared", required_argument, NULL, 'e' },
        { "persistent", no_argument, NULL, 't' },
        { "connect", required_argument, NULL, 'c' },
        { "disconnect", no_argument, NULL, 'd' },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { "verbose", no_argument, NULL, 'v' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "snapshot", no_argument, NULL, 's' },
        { "offset", required_argument, NULL, 'o' },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "discard", required_argument, NULL, OPT_DISCARD },
        { "detect-zeroes", required_argument, NULL, OPT_DETECT_ZEROES },
        { "threads", required_argument, NULL, 'T' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "tls-creds", required_argument, NULL, OPT_TLS_CREDS },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 },
};

/* Index of TEXT in the NULL-terminated NAMES, or -1. */
static int lookup(const char *text, const char *const *names) {
        for (int i = 0; names[i]; i++)
                if (strcmp(text, names[i]) == 0)
                        return i;
        return -1;
}

/* A decimal number from MIN to MAX. */
static int parse_number(const char *text, unsigned long min, unsigned long max, unsigned long *ret) {
        char *end;
        if (text[0] < '0' || text[0] > '9')
                return -1;
        unsigned long v = strtoul(text, &end, 10);
        if (*end || v < min || v > max)
                return -1;
        *ret = v;
        return 0;
}

/* A qemu on/off value, as qemu spells them. */
static int parse_bool(const char *text, bool *ret) {
        static const char *const words[] = { "off", "on", "no", "yes", "false", "true", NULL };
        int i = lookup(text, words);
        if (i < 0)
                return -1;
        *ret = i % 2;
        return 0;
}

/* One property of --object: KEY=VALUE into O; ENDPOINT is set by endpoint=server. */
static int object_property(struct ql_tls_creds *o, char *prop, bool *endpoint) {
        char *eq = strchr(prop, '=');
        if (!eq)
                return ql_error("--object: '%s' is not key=value", prop);
        *eq = 0;
        const char *value = eq + 1;
        char **field = strcmp(prop, "id") == 0 ? &o->id : strcmp(prop, "dir") == 0 ? &o->dir : NULL;
        if (field) {
                free(*field);
                return (*field = strdup(value)) ? 0 : ql_error("out of memory");
        }
        if (strcmp(prop, "endpoint") == 0) {
                if (strcmp(value, "server") != 0)
                        return ql_error("--object: qemu-like needs TLS credentials with endpoint=server, not '%s'", value);
                *endpoint = true;
                return 0;
        }
        if (strcmp(prop, "verify-peer") == 0 && !o->psk)
                return parse_bool(value, &o->verify_peer) == 0 ? 0
                                                                 : ql_error("--object: invalid verify-peer '%s' (on or off)", value);
        return ql_error("--object: unknown property '%s' for %s", prop, o->psk ? "tls-creds-psk" : "tls-creds-x509");
}

/* The next comma-separated field at *POS, or NULL after the last one. As in
 * qemu, ",," stands for a comma inside a field (dir=/a,,b is "/a,b"); the
 * field is unescaped in place. */
static char *next_field(char **pos) {
        char *field = *pos, *out = field;
        if (!field)
                return NULL;
        for (char *in = field;; in++) {
                if (*in == ',' && in[1] == ',')
                        in++;
                else if (*in == ',' || *in == 0) {
                        *pos = *in ? in + 1 : NULL;
                        *out = 0;
                        return field;
                }
                *out++ = *in;
        }
}

/* --object TYPE,id=ID,dir=DIR,endpoint=server[,verify-peer=on|off]. */
static int parse_object(const char *arg, struct ql_config *cf) {
        if (cf->n_objects == QL_MAX_OBJECTS)
                return ql_error("--object: at most %d objects", QL_MAX_OBJECTS);
        char *text = strdup(arg), *pos = text;
        if (!text)
                return ql_error("out of memory");
        struct ql_tls_creds *o = &cf->objects[cf->n_objects++];
        *o = (struct ql_tls_creds) { .verify_peer = true };
        const char *type = next_field(&pos);
        int r = 0;
        if (type && strcmp(type, "tls-creds-psk") == 0)
                o->psk = true;
        else if (!type || strcmp(type, "tls-creds-x509") != 0)
                r = ql_error("--object: unsupported type '%s' (qemu-like knows tls-creds-x509 and tls-creds-psk)",
                             type ? type : "");
        bool endpoint = false;
        for (char *prop; r == 0 && (prop = next_field(&pos));)
                r = object_property(o, prop, &endpoint);
        if (r == 0 && (!o->id || !o->dir))
                r = ql_error("--object %s needs id= and dir=", type);
        if (r == 0 && !endpoint)
                r = ql_error("--object %s: qemu-like needs TLS credentials with endpoint=server", o->id);
        for (unsigned i = 0; r == 0 && i + 1 < cf->n_objects; i++)
                if (strcmp(cf->objects[i].id, o->id) == 0)
                        r = ql_error("--object: id '%s' is used twice", o->id);
        free(text);
        return r;
}

static int parse_option(int c, const char *arg, struct ql_config *cf) {
        static const char *const caches[] = { "writeback", "writethrough", "none", "directsync", "unsafe", NULL };
        static const char *const discards[] = { "ignore", "unmap", NULL };
        static const char *const detects[] = { "off", "on", "unmap", NULL };
        unsigned long n;
        int i;
        switch (c) {
        case 'p':
                if (parse_number(arg, 1, 65535, &n) < 0)
                        return ql_error("invalid port '%s' (expected 1 to 65535)", arg);
                cf->port = arg;
                return 0;
        case 'b': cf->bind = arg; return 0;
        case 'k': cf->socket_path = arg; return 0;
        case 'e':
                if (parse_number(arg, 0, 1u << 20, &n) < 0)
                        return ql_error("invalid --shared value '%s' (expected a number of clients, 0 for no limit)", arg);
                cf->shared = (unsigned) n;
                return 0;
        case 't': cf->persistent = true; return 0;
        case 'c': cf->device = arg; return 0;
        case 'd': cf->disconnect = true; return 0;
        case 'x': cf->export_name = arg; return 0;
        case 'D': cf->description = arg; return 0;
        case OPT_FORK: cf->fork = true; return 0;
        case OPT_PID_FILE: cf->pid_file = arg; return 0;
        case 'v': cf->verbose = true; return 0;
        case 'f':
                if (strcmp(arg, "raw") != 0)
                        return ql_error("image format '%s' is not supported: qemu-like serves raw images only", arg);
                return 0;
        case 'r': cf->read_only = true; return 0;
        case 's': cf->snapshot = true; return 0;
        case 'o':
                if (nbdsdk_parse_size(arg, &cf->offset) < 0)
                        return ql_error("invalid offset '%s'", arg);
                return 0;
        case OPT_CACHE:
                if ((i = lookup(arg, caches)) < 0)
                        return ql_error("invalid --cache mode '%s' (writeback, writethrough, none, directsync, unsafe)", arg);
                cf->cache = (enum ql_cache) i;
                return 0;
        case OPT_DISCARD:
                if ((i = lookup(arg, discards)) < 0)
                        return ql_error("invalid --discard mode '%s' (ignore, unmap)", arg);
                cf->discard_unmap = i == 1;
                return 0;
        case OPT_DETECT_ZEROES:
                if ((i = lookup(arg, detects)) < 0)
                        return ql_error("invalid --detect-zeroes mode '%s' (off, on, unmap)", arg);
                cf->detect_zeroes = (enum ql_detect_zeroes) i;
                return 0;
        case 'T':
                if (parse_number(arg, 1, 1024, &n) < 0)
                        return ql_error("invalid --threads value '%s' (expected 1 to 1024)", arg);
                cf->threads = (unsigned) n;
                return 0;
        case OPT_OBJECT: return parse_object(arg, cf);
        case OPT_TLS_CREDS: cf->tls_creds_id = arg; return 0;
        default:
                /* getopt_long printed what was wrong. */
                return 1;
        }
}

int cli_parse(int argc, char **argv, struct ql_config *cf) {
        *cf = (struct ql_config) { .shared = 1, .threads = QL_DEFAULT_THREADS };
        int c;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":p:b:k:e:tc:dx:D:vf:rso:T:hV", options, NULL)) != -1) {
                if (c == 'h')
                        return fputs(usage, stdout), -1;
                if (c == 'V')
                        return printf("qemu-like %s (nbdsdk %d.%d)\n", QL_VERSION, NBDSDK_VERSION_MAJOR,
                                      NBDSDK_VERSION_MINOR), -1;
                if (c == '?')
                        return ql_error("unknown option '%s' (see --help)", argv[optind - 1]);
                if (c == ':')
                        return ql_error("option '%s' needs a value", argv[optind - 1]);
                if (parse_option(c, optarg, cf) != 0)
                        return 1;
        }
        if (optind != argc - 1)
                return ql_error(optind == argc ? "no image file given (see --help)"
                                               : "exactly one image file expected (see --help)");
        cf->file = argv[optind];
        if (cf->device && (cf->port || cf->bind || cf->socket_path || cf->tls || cf->tls_creds_id || cf->disconnect))
                return ql_error("-c/--connect cannot be combined with -p, -b, -k, --tls-creds or -d");
        if (cf->device && !cf->verbose)
                cf->fork = true; /* as qemu-nbd: the command returns once the device is connected */
        if (cf->socket_path && (cf->port || cf->bind))
                return ql_error("-k/--socket cannot be combined with -p/--port or -b/--bind");
        if (cf->detect_zeroes == QL_DETECT_UNMAP && !cf->discard_unmap)
                return ql_error("--detect-zeroes=unmap needs --discard=unmap");
        for (unsigned i = 0; cf->tls_creds_id && !cf->tls && i < cf->n_objects; i++)
                if (strcmp(cf->objects[i].id, cf->tls_creds_id) == 0)
                        cf->tls = &cf->objects[i];
        if (cf->tls_creds_id && !cf->tls)
                return ql_error("--tls-creds: no --object has id '%s'", cf->tls_creds_id);
        return 0;
}

void cli_free(struct ql_config *cf) {
        for (unsigned i = 0; i < cf->n_objects; i++) {
                free(cf->objects[i].id);
                free(cf->objects[i].dir);
        }
}
