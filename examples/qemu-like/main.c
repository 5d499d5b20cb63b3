/* qemu-like: serve a raw image or block device over NBD with qemu-nbd's command
 * line, built on nbdsdk's lower-level API: the server, its listeners and an
 * sd-event loop, driven here rather than by nbdsdk_main().
 * Run: qemu-like -k /tmp/disk.sock -t disk.img   (see --help and qemu-like(8)) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include "qemu-like.h"

/* Connections get this long to finish after SIGINT/SIGTERM. */
#define SHUTDOWN_GRACE_USEC (5 * 1000000ull)

struct ql_state {
        struct ql_config cf;
        struct ql_image img;
        nbdsdk_server *server;
        sd_event *event;
        int ready_fd;  /* --fork: tells the waiting parent that we serve */
        bool pid_written;
        bool stopping;
};

/* --tls-creds: TLS required, with the object's credentials (their files'
 * problems are logged by nbdsdk as it reads them). */
static int configure_tls(nbdsdk_server *srv, const struct ql_tls_creds *o) {
        int r = nbdsdk_server_set_tls(srv, NBDSDK_TLS_REQUIRE);
        if (r < 0)
                return ql_error("--tls-creds: %s", r == -ENOTSUP ? "this nbdsdk has no TLS" : strerror(-r));
        char path[4096];
        if (o->psk && (size_t) snprintf(path, sizeof path, "%s/keys.psk", o->dir) >= sizeof path)
                return ql_error("--object %s: dir too long", o->id);
        r = o->psk ? nbdsdk_server_set_tls_psk_file(srv, path) : nbdsdk_server_set_tls_certificates(srv, o->dir);
        if (r == 0 && !o->psk)
                r = nbdsdk_server_set_tls_verify_peer(srv, o->verify_peer);
        return r < 0 ? ql_error("--object %s: unusable TLS credentials in %s: %s", o->id, o->dir, strerror(-r)) : 0;
}

static int configure(struct ql_state *s) {
        const struct ql_config *cf = &s->cf;
        nbdsdk_server *srv = s->server;
        int r = 0;
        if (cf->export_name && (r = nbdsdk_server_set_export_name(srv, cf->export_name)) < 0)
                return ql_error("invalid export name: %s", strerror(-r));
        if (cf->description && (r = nbdsdk_server_set_description(srv, cf->description)) < 0)
                return ql_error("invalid description: %s", strerror(-r));
        nbdsdk_server_set_read_only(srv, cf->read_only);
        nbdsdk_server_set_threads(srv, cf->threads);
        nbdsdk_server_set_inline_first(srv, true);
        nbdsdk_server_set_verbose(srv, cf->verbose);
        nbdsdk_server_set_max_connections(srv, cf->shared);
        if (cf->tls && (r = configure_tls(srv, cf->tls)) != 0)
                return r;
        /* -r -s: nothing is written, so there is nothing to keep away from the image. */
        return cf->snapshot && !cf->read_only ? snapshot_setup(srv, cf->file, &s->img) : 0;
}

/* qemu-nbd's socket activation: exactly one socket, and then no -p, -b, -k. */
static int listen_activated(struct ql_state *s, int n) {
        const struct ql_config *cf = &s->cf;
        if (cf->port || cf->bind || cf->socket_path)
                return ql_error("-p, -b and -k cannot be used with systemd socket activation");
        if (n != 1)
                return ql_error("systemd socket activation passed %d sockets; qemu-like takes exactly one", n);
        int r = nbdsdk_server_listen_activation(s->server);
        return r < 0 ? ql_error("cannot use the socket from systemd: %s", strerror(-r)) : 0;
}

static int listen_all(struct ql_state *s) {
        const struct ql_config *cf = &s->cf;
        int n = sd_listen_fds(0), r;
        if (n < 0)
                return ql_error("invalid systemd socket activation variables: %s", strerror(-n));
        if (n > 0)
                return listen_activated(s, n);
        if (cf->socket_path) {
                r = nbdsdk_server_listen_unix(s->server, cf->socket_path);
                return r < 0 ? ql_error("cannot listen on %s: %s", cf->socket_path, strerror(-r)) : 0;
        }
        const char *host = cf->bind ? cf->bind : "0.0.0.0", *port = cf->port ? cf->port : "10809";
        r = nbdsdk_server_listen_tcp(s->server, host, port);
        return r < 0 ? ql_error("cannot listen on %s port %s: %s", host, port, strerror(-r)) : 0;
}

/* --fork: the parent waits until the child serves (or fails) and exits with that. */
static int daemonize(struct ql_state *s) {
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return ql_error("cannot make a pipe: %m");
        pid_t pid = fork();
        if (pid < 0)
                return ql_error("cannot fork: %m");
        if (pid > 0) {
                char c;
                close(pipefd[1]);
                _exit(read(pipefd[0], &c, 1) == 1 ? 0 : 1);
        }
        close(pipefd[0]);
        s->ready_fd = pipefd[1];
        (void) setsid();
        if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout))
                return ql_error("cannot redirect to /dev/null: %m");
        return 0;
}

static int write_pid_file(struct ql_state *s) {
        const char *path = s->cf.pid_file;
        if (!path)
                return 0;
        FILE *f = fopen(path, "we");
        if (!f || fprintf(f, "%d\n", (int) getpid()) < 0 || fclose(f) != 0)
                return ql_error("cannot write the pid file %s: %m", path);
        s->pid_written = true;
        return 0;
}

static void report_ready(struct ql_state *s) {
        (void) sd_notify(0, "READY=1");
        if (s->ready_fd >= 0) {
                (void) !write(s->ready_fd, "", 1);
                close(s->ready_fd);
                s->ready_fd = -1;
        }
}

static int on_grace_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        ql_error("clients did not finish within the shutdown grace period");
        return sd_event_exit(sd_event_source_get_event(src), 0);
}

static void stop(struct ql_state *s) {
        if (s->stopping)
                return;
        s->stopping = true;
        (void) sd_notify(0, "STOPPING=1");
        (void) sd_event_add_time_relative(s->event, NULL, CLOCK_MONOTONIC, SHUTDOWN_GRACE_USEC, 0,
                                          on_grace_timeout, s);
        nbdsdk_server_shutdown(s->server, true);
}

/* SIGINT, SIGTERM: finish gracefully; a second signal exits at once. */
static int on_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        struct ql_state *s = userdata;
        if (s->stopping)
                return sd_event_exit(s->event, 0);
        stop(s);
        return 0;
}

/* Without -t, the server ends with its last client, as qemu-nbd does; with
 * -c, when the device is disconnected. */
static void on_closed(nbdsdk_conn *conn, void *userdata) {
        struct ql_state *s = userdata;
        if ((!s->cf.persistent || s->cf.device) && nbdsdk_server_get_n_connections(s->server) == 0)
                stop(s);
}

static int run(struct ql_state *s) {
        sigset_t mask;
        int r = sd_event_new(&s->event);
        if (r < 0)
                return ql_error("cannot create the event loop: %s", strerror(-r));
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        if ((r = sd_event_add_signal(s->event, NULL, SIGINT, on_signal, s)) < 0 ||
            (r = sd_event_add_signal(s->event, NULL, SIGTERM, on_signal, s)) < 0)
                return ql_error("cannot watch signals: %s", strerror(-r));
        if ((r = nbdsdk_server_attach_event(s->server, s->event, 0)) < 0)
                return ql_error("cannot start serving: %s", strerror(-r));
        if ((r = sd_event_set_watchdog(s->event, true)) < 0) /* WATCHDOG_USEC, if any */
                return ql_error("cannot keep the service manager's watchdog: %s", strerror(-r));
        /* After the fork: the thread that keeps the device connected is this process's. */
        if (s->cf.device && (r = nbdsdk_server_connect_device(s->server, s->cf.device, NULL)) < 0)
                return ql_error("cannot connect %s: %s", s->cf.device,
                                r == -EBUSY ? "it is connected already (qemu-like -d disconnects it)"
                                : r == -ENOTTY ? "not an NBD device" : strerror(-r));
        report_ready(s);
        r = sd_event_loop(s->event);
        nbdsdk_server_detach_event(s->server);
        return r < 0 ? ql_error("event loop failed: %s", strerror(-r)) : 0;
}

static int serve(struct ql_state *s) {
        signal(SIGPIPE, SIG_IGN);
        int status = image_open(&s->cf, &s->img);
        if (status != 0)
                return status;
        s->img.multi_conn = s->cf.shared != 1;
        int r = nbdsdk_server_new(&ql_ops, sizeof ql_ops, &s->img, &s->server);
        if (r < 0)
                return ql_error("cannot create the server: %s", strerror(-r));
        r = nbdsdk_server_set_connection_callbacks(s->server, NULL, on_closed, s);
        status = r < 0 ? ql_error("cannot set connection callbacks: %s", strerror(-r)) : configure(s);
        if (status == 0 && !s->cf.device)
                status = listen_all(s);
        if (status == 0 && s->cf.fork)
                status = daemonize(s);
        if (status == 0)
                status = write_pid_file(s);
        if (status == 0)
                status = run(s);
        /* Dropping the server closes the listeners and removes the Unix socket. */
        nbdsdk_server_unref(s->server);
        sd_event_unref(s->event);
        if (s->pid_written)
                unlink(s->cf.pid_file);
        image_close(&s->img);
        return status;
}

int main(int argc, char **argv) {
        struct ql_state s = { .ready_fd = -1 };
        int status = cli_parse(argc, argv, &s.cf);
        if (status == 0)
                status = s.cf.disconnect ? device_disconnect(s.cf.file) : serve(&s);
        cli_free(&s.cf);
        return status < 0 ? 0 : status;
}
