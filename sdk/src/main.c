/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk_main(): the command line every nbdsdk server shares (nbdkit's and
 * qemu-nbd's conventions), listening, daemon and captive modes, signals. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include "config-file-internal.h"
#include "layers-internal.h"
#include "log-internal.h"
#include "server-internal.h"
#include "transport-internal.h"

#define SHUTDOWN_GRACE_USEC (5 * 1000000ULL)

typedef struct {
        const char *program;
        const char *port, *bind, *unix_path, *export_name, *description, *pidfile, *run, *config_path;
        const char *device;      /* -c: the kernel NBD device to serve instead of listening */
        bool read_only, foreground, use_stdin, exit_with_parent, print_uri, verbose;
        bool activated;          /* LISTEN_FDS was passed */
        int ready_fd;            /* daemon mode: tells the waiting parent we serve */
        unsigned threads;
        bool threads_given;      /* else the program's own setting (ops->setup) stands */
        uint64_t given;          /* bit i: long_options[i] was on the command line */
        config_file *config;     /* --config's, kept for the values it handed on */
        char *private_dir;       /* for -U - and --run */
        char *socket_path;
        int run_status;
        nbdsdk_server *server;
} main_state;

enum { OPT_PIDFILE = 256, OPT_RUN, OPT_EXIT_WITH_PARENT, OPT_PRINT_URI, OPT_VERSION, OPT_CONFIG };

static const struct option long_options[] = {
        { "port", required_argument, NULL, 'p' },
        { "bind", required_argument, NULL, 'b' },
        { "unix", required_argument, NULL, 'U' },
        { "export-name", required_argument, NULL, 'e' },
        { "description", required_argument, NULL, 'D' },
        { "read-only", no_argument, NULL, 'r' },
        { "foreground", no_argument, NULL, 'f' },
        { "pidfile", required_argument, NULL, OPT_PIDFILE },
        { "threads", required_argument, NULL, 't' },
        { "stdin", no_argument, NULL, 's' },
        { "connect", required_argument, NULL, 'c' },
        { "run", required_argument, NULL, OPT_RUN },
        { "exit-with-parent", no_argument, NULL, OPT_EXIT_WITH_PARENT },
        { "print-uri", no_argument, NULL, OPT_PRINT_URI },
        { "verbose", no_argument, NULL, 'v' },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
};
_Static_assert(sizeof long_options / sizeof long_options[0] <= 64, "main_state.given has a bit per option");

static void usage(const main_state *m, const struct nbdsdk_ops *ops) {
        char magic[64] = "";
        if (ops->magic_config_key) {
                size_t i = 0;
                for (; ops->magic_config_key[i] && i < sizeof magic - 3; i++)
                        magic[i] = (char) toupper((unsigned char) ops->magic_config_key[i]);
                strcpy(magic + i, " | ");
        }
        printf("Usage: %s [OPTIONS] [%skey=value ...]\n\n"
               "Serve a block device over NBD.\n\n"
               "  -p, --port PORT          TCP port (default %d)\n"
               "  -b, --bind ADDR          TCP address to listen on (default: all)\n"
               "  -U, --unix PATH          listen on a Unix socket (- = private temporary socket)\n"
               "  -e, --export-name NAME   export name (default \"\")\n"
               "  -D, --description TEXT   export description\n"
               "  -r, --read-only          refuse writes\n"
               "  -f, --foreground         do not fork into the background\n"
               "      --pidfile FILE       write the process id once listening\n"
               "  -t, --threads N          run callbacks on N worker threads (0: loop thread)\n"
               "  -s, --stdin              serve one client on stdin/stdout (inetd)\n"
               "  -c, --connect DEVICE     serve this machine's kernel NBD device (/dev/nbd0) instead\n"
               "      --run CMD            run CMD with $uri set, then exit with its status\n"
               "      --exit-with-parent   exit when the parent process exits\n"
               "      --print-uri          print the URI once listening\n"
               "  -v, --verbose            debug messages\n"
               "      --config FILE        settings and exports from FILE (see nbdsdk_main(3))\n"
               "      --version            print the version\n"
               "  -h, --help               this help\n",
               m->program, magic, NBDSDK_DEFAULT_PORT);
        if (ops->magic_config_key)
                printf("\nA bare argument is taken as %s=ARG.\n", ops->magic_config_key);
        if (ops->config_help)
                printf("\nBackend settings:\n%s\n", ops->config_help);
        const nbdsdk_server *s = m->server;
        if (s->n_config_keys)
                printf("\nOther settings:\n");
        for (size_t i = 0; i < s->n_config_keys; i++)
                printf("  %s\n", s->config_keys[i].help ? s->config_keys[i].help : s->config_keys[i].key);
        printf("\nSystemd socket activation (LISTEN_FDS) is used when present.\n");
}

static int fail(const main_state *m, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int fail(const main_state *m, const char *format, ...) {
        va_list ap;
        fprintf(stderr, "%s: ", m->program);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        return 1;
}

static int apply_config(main_state *m, const struct nbdsdk_ops *ops, const char *arg) {
        const char *eq = strchr(arg, '=');
        if (!eq && !ops->magic_config_key)
                return fail(m, "unexpected argument '%s' (settings are key=value) (see '%s --help')", arg, m->program);
        char *key = eq ? strndup(arg, (size_t) (eq - arg)) : strdup(ops->magic_config_key);
        if (!key)
                return fail(m, "out of memory");
        const char *value = eq ? eq + 1 : arg;
        int r = nbdsdk_server_config(m->server, key, value);
        if (r == -ENOENT)
                r = fail(m, "unknown setting '%s' (see '%s --help')", key, m->program);
        else if (r < 0)
                r = fail(m, "invalid value for '%s': %s (%s)", key, value, strerror(-r));
        free(key);
        return r;
}

/* The export clients get for the empty name (-e, or the config file's choice). */
static const char *default_export_name(const main_state *m) {
        return nbdsdk_export_get_name(nbdsdk_server_get_export(m->server, NULL));
}

/* Percent-encode what an NBD URI's path or query cannot hold as it is. */
static char *uri_escape(const char *text) {
        char *out = malloc(strlen(text) * 3 + 1), *p = out;
        if (!out)
                return NULL;
        for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
                if (isalnum(*c) || strchr("-._~/", *c))
                        *p++ = (char) *c;
                else
                        p += sprintf(p, "%%%02X", *c);
        }
        *p = '\0';
        return out;
}

/* The URI of the first listener (-U, -p or socket activation alike). */
static char *make_uri(const main_state *m) {
        if (m->server->n_listeners == 0)
                return NULL;
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(m->server->listeners[0].fd, (struct sockaddr *) &ss, &len) < 0)
                return NULL;
        char *name = uri_escape(default_export_name(m));
        char *uri = NULL, *path = NULL;
        int r = -1;
        /* nbds: a client must use TLS (its credentials are its own to add). */
        const char *s = m->server->tls_mode == NBDSDK_TLS_REQUIRE ? "s" : "";
        if (name && ss.ss_family == AF_UNIX && (path = uri_escape(((struct sockaddr_un *) &ss)->sun_path)))
                r = asprintf(&uri, "nbd%s+unix:///%s?socket=%s", s, name, path);
        else if (name && (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
                const char *host = m->bind ? m->bind : "localhost";
                bool v6 = strchr(host, ':') != NULL;
                r = asprintf(&uri, "nbd%s://%s%s%s:%d/%s", s, v6 ? "[" : "", host, v6 ? "]" : "",
                             nbdsdk_server_get_port(m->server), name);
        }
        free(name);
        free(path);
        return r < 0 ? NULL : uri;
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata);
static int on_grace_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) usec;
        (void) userdata;
        log_error("connections did not finish within the shutdown grace period");
        return sd_event_exit(sd_event_source_get_event(src), 0);
}

/* SIGUSR1: the layers report (statistics). */
static int on_report(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        (void) src;
        (void) si;
        main_state *m = userdata;
        layers_report(m->server);
        return 0;
}

static void begin_shutdown(main_state *m) {
        sd_event *e = nbdsdk_server_get_event(m->server);
        (void) sd_notify(0, "STOPPING=1");
        (void) sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, SHUTDOWN_GRACE_USEC, 0, on_grace_timeout, m);
        nbdsdk_server_shutdown(m->server, true);
}

static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        (void) src;
        main_state *m = userdata;
        log_debug("signal %u: shutting down", si->ssi_signo);
        if (m->server->shutting_down)
                return sd_event_exit(nbdsdk_server_get_event(m->server), 0);
        begin_shutdown(m);
        return 0;
}

static int on_run_exit(sd_event_source *src, const siginfo_t *si, void *userdata) {
        (void) src;
        main_state *m = userdata;
        m->run_status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
        begin_shutdown(m);
        return 0;
}

static int start_run(main_state *m, const char *uri) {
        sd_event *e = nbdsdk_server_get_event(m->server);
        pid_t pid = fork();
        if (pid < 0)
                return fail(m, "cannot fork: %m");
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                char port[16] = "";
                int p = nbdsdk_server_get_port(m->server);
                if (p > 0)
                        snprintf(port, sizeof port, "%d", p);
                setenv("uri", uri, 1);
                setenv("unixsocket", m->socket_path ? m->socket_path : "", 1);
                setenv("port", port, 1);
                setenv("exportname", default_export_name(m), 1);
                execl("/bin/sh", "sh", "-c", m->run, (char *) NULL);
                _exit(127);
        }
        int r = sd_event_add_child(e, NULL, pid, WEXITED, on_run_exit, m);
        return r < 0 ? fail(m, "cannot watch the --run command: %s", strerror(-r)) : 0;
}

/* Fork into the background. The parent exits only once the child reports
 * that it is ready to serve (see report_ready), so that whoever started the
 * server can connect as soon as it returns. */
static int daemonize(main_state *m) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return fail(m, "cannot make a pipe: %m");
        pid_t pid = fork();
        if (pid < 0)
                return fail(m, "cannot fork: %m");
        if (pid > 0) {
                close(pipefd[1]);
                char c;
                _exit(read(pipefd[0], &c, 1) == 1 ? 0 : 1);
        }
        close(pipefd[0]);
        m->ready_fd = pipefd[1];
        (void) setsid();
        FILE *f = freopen("/dev/null", "r", stdin);
        f = f ? freopen("/dev/null", "w", stdout) : NULL;
        (void) f;
        return 0;
}

static void report_ready(main_state *m) {
        (void) sd_notify(0, "READY=1");
        if (m->ready_fd >= 0) {
                (void) !write(m->ready_fd, "", 1);
                close(m->ready_fd);
                m->ready_fd = -1;
        }
}

static int listen_all(main_state *m) {
        nbdsdk_server *s = m->server;
        int r;
        if (m->device) { /* the device is connected in serve(), after the fork */
                if (m->port || m->unix_path || m->use_stdin || m->run || m->print_uri || m->activated)
                        return fail(m, "-c cannot be combined with -p, -U, -s, --run, --print-uri or socket activation");
                s->exit_loop_when_idle = true;
                return 0;
        }
        if (m->use_stdin) {
                if (m->port || m->unix_path || m->run || m->activated)
                        return fail(m, "-s cannot be combined with -p, -U, --run or socket activation");
                transport *t;
                if ((r = transport_fd_new(0, 1, &t)) < 0)
                        return fail(m, "cannot use stdin/stdout: %s", strerror(-r));
                s->exit_loop_when_idle = true;
                if ((r = server_serve_transport(s, t, 0, NULL)) < 0)
                        return fail(m, "cannot serve stdin: %s", strerror(-r));
                return 0;
        }
        if (m->activated) {
                if (m->port || m->unix_path || m->bind)
                        return fail(m, "socket activation cannot be combined with -p, -b or -U");
                r = nbdsdk_server_listen_activation(s);
                if (r <= 0)
                        return fail(m, "socket activation: %s", r < 0 ? strerror(-r) : "no sockets passed");
                return 0;
        }
        const char *path = m->unix_path;
        if ((path && strcmp(path, "-") == 0) || (!path && !m->port && m->run)) {
                m->private_dir = strdup("/tmp/nbdsdk-XXXXXX");
                if (!m->private_dir || !mkdtemp(m->private_dir))
                        return fail(m, "cannot make a private directory: %m");
                if (asprintf(&m->socket_path, "%s/socket", m->private_dir) < 0)
                        return fail(m, "out of memory");
        } else if (path && !(m->socket_path = strdup(path)))
                return fail(m, "out of memory");
        if (m->socket_path) {
                if ((r = nbdsdk_server_listen_unix(s, m->socket_path)) < 0)
                        return fail(m, "cannot listen on %s: %s", m->socket_path, strerror(-r));
        } else {
                char port[16];
                snprintf(port, sizeof port, "%s", m->port ? m->port : "10809");
                if ((r = nbdsdk_server_listen_tcp(s, m->bind, port)) < 0)
                        return fail(m, "cannot listen on %s port %s: %s", m->bind ? m->bind : "*", port,
                                    strerror(-r));
        }
        return 0;
}

static int write_pidfile(main_state *m) {
        if (!m->pidfile)
                return 0;
        FILE *f = fopen(m->pidfile, "w");
        if (!f || fprintf(f, "%d\n", (int) getpid()) < 0 || fclose(f) != 0)
                return fail(m, "cannot write %s: %m", m->pidfile);
        return 0;
}

/* Apply option C with ARG, from the command line or from a --config file's
 * [general] section: NULL, or what a good ARG would be. */
static const char *apply_option(main_state *m, int c, const char *arg) {
        char *end;
        unsigned long n;
        switch (c) {
        case 'p':
                n = strtoul(arg, &end, 10);
                if (*end || end == arg || n > 65535)
                        return "a port number from 0 to 65535";
                m->port = arg;
                break;
        case 't':
                n = strtoul(arg, &end, 10);
                if (*end || end == arg || n > 1024)
                        return "a number of threads from 0 to 1024";
                m->threads = (unsigned) n;
                m->threads_given = true;
                break;
        case 'b': m->bind = arg; break;
        case 'U': m->unix_path = arg; break;
        case 'e': m->export_name = arg; break;
        case 'D': m->description = arg; break;
        case 'r': m->read_only = true; break;
        case 'f': m->foreground = true; break;
        case 's': m->use_stdin = true; break;
        case 'c': m->device = arg; break;
        case 'v': m->verbose = true; break;
        case OPT_PIDFILE: m->pidfile = arg; break;
        case OPT_RUN: m->run = arg; break;
        case OPT_EXIT_WITH_PARENT: m->exit_with_parent = true; break;
        case OPT_PRINT_URI: m->print_uri = true; break;
        case OPT_CONFIG: m->config_path = arg; break;
        }
        return NULL;
}

/* The long options a --config file's [general] section may hold; the others
 * name or describe one export, or only make sense once. */
static const char *const general_keys[] = {
        "port", "bind", "unix", "read-only", "foreground", "pidfile", "threads", "verbose", "exit-with-parent",
};

static size_t option_index(int c) {
        size_t i = 0;
        while (long_options[i].name && long_options[i].val != c)
                i++;
        return i;
}

/* A [general] key is the long option of its name, unless the command line
 * gave that option: the command line wins. Switches take true or false.
 * The library's server-wide keys (TLS) are [general] keys too. */
static int apply_general(const char *key, const char *value, const char **retwhy, void *userdata) {
        main_state *m = userdata;
        size_t k = 0, n = sizeof general_keys / sizeof general_keys[0];
        while (k < n && strcmp(general_keys[k], key) != 0)
                k++;
        if (k == n)
                return config_key_is_server_wide(m->server, key) ? nbdsdk_server_config(m->server, key, value)
                                                                 : -ENOENT;
        const struct option *o = long_options;
        while (strcmp(o->name, key) != 0)
                o++;
        if (m->given & (UINT64_C(1) << (o - long_options)))
                return 0;
        if (o->has_arg == no_argument) {
                int on = config_file_parse_switch(value);
                if (on < 0) {
                        *retwhy = "true or false";
                        return -EINVAL;
                }
                if (!on)
                        return 0;
                value = NULL;
        }
        *retwhy = apply_option(m, o->val, value);
        return *retwhy ? -EINVAL : 0;
}

static int load_config_file(main_state *m) {
        if (m->export_name || m->description)
                return fail(m, "-e and -D cannot be combined with --config (name and describe the exports in the file)");
        char *error = NULL;
        if (config_file_apply(m->config_path, m->server, apply_general, m, &m->config, &error) == 0)
                return 0;
        fail(m, "%s", error ? error : "out of memory");
        free(error);
        return 1;
}

/* config_complete once for each export's userdata (exports may share one). */
static int complete_config(main_state *m, const struct nbdsdk_ops *ops) {
        const nbdsdk_server *s = m->server;
        for (size_t i = 0; ops->config_complete && i < s->n_exports; i++) {
                void *ud = s->exports[i]->userdata;
                bool done = false;
                for (size_t j = 0; j < i; j++)
                        done |= s->exports[j]->userdata == ud;
                int r = done ? 0 : ops->config_complete(ud);
                if (r < 0 && s->n_exports > 1)
                        return fail(m, "invalid settings for export '%s': %s", s->exports[i]->name, strerror(-r));
                if (r < 0)
                        return fail(m, "invalid settings: %s (see '%s --help')", strerror(-r), m->program);
        }
        return 0;
}

static int parse_args(main_state *m, int argc, char **argv, const struct nbdsdk_ops *ops) {
        int c;
        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":p:b:U:e:D:rft:sc:vh", long_options, NULL)) != -1) {
                switch (c) {
                case OPT_VERSION:
                        printf("%s %s (nbdsdk %d.%d)\n", m->program, ops->version ? ops->version : "",
                               NBDSDK_VERSION_MAJOR, NBDSDK_VERSION_MINOR);
                        return -1;
                case 'h':
                        usage(m, ops);
                        return -1;
                case ':':
                        return fail(m, "option '%s' needs an argument (see '%s --help')", argv[optind - 1], m->program);
                case '?':
                        return fail(m, "unknown option '%s' (see '%s --help')", argv[optind - 1], m->program);
                }
                size_t i = option_index(c);
                const char *why = apply_option(m, c, optarg);
                if (why)
                        return fail(m, "invalid --%s '%s' (%s)", long_options[i].name, optarg, why);
                m->given |= UINT64_C(1) << i;
        }
        if (m->config_path && load_config_file(m) != 0)
                return 1;
        if (m->port && m->unix_path)
                return fail(m, "-p (port) and -U (unix) cannot be used together");
        /* Settings on the command line are the default export's. */
        for (int i = optind; i < argc; i++)
                if (apply_config(m, ops, argv[i]) != 0)
                        return 1;
        nbdsdk_server_set_verbose(m->server, m->verbose); /* before config_complete, for its messages */
        return complete_config(m, ops);
}

static int configure_server(main_state *m) {
        nbdsdk_server *s = m->server;
        int r = 0;
        if (m->export_name && (r = nbdsdk_server_set_export_name(s, m->export_name)) < 0)
                return fail(m, "invalid export name: %s", strerror(-r));
        if (m->description && (r = nbdsdk_server_set_description(s, m->description)) < 0)
                return fail(m, "invalid description: %s", strerror(-r));
        nbdsdk_server_set_read_only(s, m->read_only);
        if (m->threads_given)
                nbdsdk_server_set_threads(s, m->threads);
        return 0;
}

static const char *device_error(int r) {
        switch (r) {
        case -ENOENT: return "no such device (is the nbd module loaded? modprobe nbd)";
        case -EBUSY: return "it is connected already (nbd-client -d disconnects it)";
        case -ENOTTY: return "not an NBD device";
        default: return strerror(-r);
        }
}

/* Listen first, then fork into the background (an sd-event loop must not cross
 * a fork), then build the loop and run. */
static int serve(main_state *m) {
        signal(SIGPIPE, SIG_IGN);
        m->activated = getenv("LISTEN_FDS") != NULL;
        int status = listen_all(m);
        char *uri = status == 0 && !m->use_stdin && !m->device ? make_uri(m) : NULL;
        if (status == 0 && m->print_uri && uri) {
                printf("%s\n", uri);
                fflush(stdout);
        }
        bool background = !m->foreground && !m->run && !m->use_stdin && !m->activated;
        if (status == 0 && background)
                status = daemonize(m);
        if (status == 0)
                status = write_pidfile(m);
        if (m->exit_with_parent)
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* start: after the fork, before the server runs (so it may still
         * register options, commands and metadata namespaces). */
        const struct nbdsdk_ops *ops = &m->server->ops;
        bool started = status == 0;
        int r;
        if (started && ops->start && (r = ops->start(m->server, m->server->userdata)) < 0) {
                status = fail(m, "the server could not start: %s", strerror(-r));
                started = false;
        }
        sd_event *e = NULL;
        r = status == 0 ? sd_event_new(&e) : 0;
        if (r < 0)
                status = fail(m, "cannot create the event loop: %s", strerror(-r));
        if (status == 0) {
                sigset_t mask;
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                sigaddset(&mask, SIGCHLD);
                sigaddset(&mask, SIGUSR1);
                sigprocmask(SIG_BLOCK, &mask, NULL);
                (void) sd_event_add_signal(e, NULL, SIGINT, on_signal, m);
                (void) sd_event_add_signal(e, NULL, SIGTERM, on_signal, m);
                (void) sd_event_add_signal(e, NULL, SIGUSR1, on_report, m);
                if ((r = nbdsdk_server_attach_event(m->server, e, 0)) < 0)
                        status = fail(m, "cannot attach to the event loop: %s", strerror(-r));
                /* WATCHDOG_USEC from the service manager: the loop pings it
                 * (unpinged, the manager would kill the server anyway). */
                else if ((r = sd_event_set_watchdog(e, true)) < 0)
                        status = fail(m, "cannot keep the service manager's watchdog: %s", strerror(-r));
        }
        /* The thread that keeps the device connected must be the serving process's. */
        if (status == 0 && m->device && (r = nbdsdk_server_connect_device(m->server, m->device, NULL)) < 0)
                status = fail(m, "cannot connect %s: %s", m->device, device_error(r));
        if (status == 0 && m->run)
                status = start_run(m, uri ? uri : "");
        if (status == 0) {
                report_ready(m);
                r = sd_event_loop(e);
                if (r < 0)
                        status = fail(m, "event loop failed: %s", strerror(-r));
                else if (m->run)
                        status = m->run_status;
        }
        free(uri);
        server_stop(m->server);
        if (started && ops->stop)
                ops->stop(m->server, m->server->userdata);
        nbdsdk_server_detach_event(m->server);
        sd_event_unref(e);
        return status;
}

int nbdsdk_main(int argc, char **argv, const struct nbdsdk_ops *ops, size_t ops_size, void *userdata) {
        main_state m = { .ready_fd = -1 };
        m.program = ops && ops->name ? ops->name : (argc > 0 ? basename(argv[0]) : "nbdsdk");
        log_set_program(m.program);
        if (!ops || ops_size == 0)
                return fail(&m, "no struct nbdsdk_ops given");
        int r = nbdsdk_server_new(ops, ops_size, userdata, &m.server);
        if (r < 0)
                return fail(&m, "cannot create the server: %s", strerror(-r));
        if (m.server->ops.setup && (r = m.server->ops.setup(m.server, userdata)) < 0) {
                m.server = nbdsdk_server_unref(m.server);
                return fail(&m, "the server could not be set up: %s", strerror(-r));
        }
        r = parse_args(&m, argc, argv, &m.server->ops);
        if (r != 0) {
                m.server = nbdsdk_server_unref(m.server);
                config_file_free(m.config);
                return r < 0 ? 0 : r;
        }
        int status = configure_server(&m);
        if (status == 0)
                status = serve(&m);
        m.server = nbdsdk_server_unref(m.server);
        m.config = config_file_free(m.config);
        if (m.pidfile && status == 0)
                (void) unlink(m.pidfile);
        if (m.private_dir) {
                (void) unlink(m.socket_path);
                (void) rmdir(m.private_dir);
        }
        free(m.socket_path);
        free(m.private_dir);
        return status;
}
