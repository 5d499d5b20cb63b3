/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The glue that runs a server's sd-event loop inside a plain poll() loop and
 * inside a GLib main loop: a real listener, a client that reads back what it
 * wrote, then a silent client that the handshake timeout must drop (its timer
 * is created while dispatching its accept, the last thing the loop does, so
 * it only fires if the glue arms timers before every wait), the host's own
 * sources still served, and the loop ending on nbdsdk_server_shutdown(); and
 * a request completed from a GLib callback of the host's. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <glib-unix.h>
#include <systemd/sd-event.h>
#include <nbdsdk/nbdsdk-glib.h>
#include <nbdsdk/nbdsdk-poll.h>
#include "sockclient.h"
#include "tcase.h"
#include "tclient.h"
#include "testdisk.h"

#define N_BLOCKS 64

typedef struct {
        testdisk *td;
        nbdsdk_server *server;
        sd_event *event;
        char dir[32], path[64];
        pthread_t thread;
        int done_pipe[2];   /* the data client writes a byte here when finished */
        int silent;         /* then a client that never sends its flags, or -1 */
        unsigned mismatches;
        bool client_done, silent_dropped, stopped;
} scene;

static void *data_client(void *arg) {
        scene *sc = arg;
        sc->mismatches = sc_write_read_back(sc->path, 1 << 20, N_BLOCKS);
        CHECK(write(sc->done_pipe[1], "x", 1) == 1, "tell the host loop");
        return NULL;
}

/* A server on a Unix socket with a 1 s handshake timeout, attached to a new
 * sd-event loop that nobody runs yet, and the data client's thread. */
static void scene_start(scene *sc, unsigned threads) {
        *sc = (scene) { .td = td_new(1 << 20), .silent = -1 };
        sc->server = td_server(sc->td);
        CHECK(nbdsdk_server_set_threads(sc->server, threads) == 0, "threads");
        CHECK(nbdsdk_server_set_timeouts(sc->server, 1, 0) == 0, "handshake timeout");
        strcpy(sc->dir, "/tmp/nbdsdk-glue-XXXXXX");
        CHECK(mkdtemp(sc->dir), "temporary directory");
        snprintf(sc->path, sizeof sc->path, "%s/sock", sc->dir);
        CHECK(nbdsdk_server_listen_unix(sc->server, sc->path) == 0, "listen");
        CHECK(sd_event_new(&sc->event) == 0, "event loop");
        CHECK(nbdsdk_server_attach_event(sc->server, sc->event, 0) == 0, "attach");
        CHECK(pipe(sc->done_pipe) == 0, "pipe");
        CHECK(pthread_create(&sc->thread, NULL, data_client, sc) == 0, "client thread");
}

/* The silent client's socket is readable: the greeting, then end of stream
 * once the server has dropped it. */
static void scene_silent_readable(scene *sc) {
        char buf[64];
        ssize_t n = read(sc->silent, buf, sizeof buf);
        CHECK(n >= 0, "read from the server (%s)", strerror(errno));
        sc->silent_dropped |= n == 0;
}

/* The data client is through: the silent one connects. */
static void scene_done_readable(scene *sc) {
        char c;
        CHECK(read(sc->done_pipe[0], &c, 1) == 1, "done byte");
        sc->client_done = true;
        sc->silent = sc_connect_unix(sc->path);
}

/* Once both clients are through, stop the server and make its loop exit. */
static void scene_maybe_stop(scene *sc) {
        if (sc->client_done && sc->silent_dropped && !sc->stopped) {
                CHECK(nbdsdk_server_shutdown(sc->server, true) == 0, "shutdown");
                sc->stopped = true;
        }
}

static void scene_finish(scene *sc) {
        pthread_join(sc->thread, NULL);
        CHECK(sc->client_done, "the data client finished while the host loop ran");
        CHECK(sc->mismatches == 0, "data read back matches what was written (%u bytes differ)", sc->mismatches);
        CHECK(sc->silent_dropped, "the handshake timeout dropped the silent client");
        CHECK(sd_event_get_state(sc->event) == SD_EVENT_FINISHED, "the sd-event loop has exited");
        CHECK(access(sc->path, F_OK) != 0, "the listener is gone");
        nbdsdk_server_detach_event(sc->server);
        nbdsdk_server_unref(sc->server);
        sd_event_unref(sc->event);
        if (sc->silent >= 0)
                close(sc->silent);
        close(sc->done_pipe[0]);
        close(sc->done_pipe[1]);
        rmdir(sc->dir);
        td_free(sc->td);
}

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A host loop of its own: poll() over the server's loop and its own two
 * descriptors, bounded at 15 s. */
static void run_poll(unsigned threads) {
        scene sc;
        scene_start(&sc, threads);
        double deadline = now() + 15;
        int r = 0;
        while (now() < deadline) {
                /* The silent client's socket stays readable at end of stream. */
                struct pollfd p[3] = { [1] = { .fd = sc.silent_dropped ? -1 : sc.silent, .events = POLLIN },
                                       [2] = { .fd = sc.done_pipe[0], .events = POLLIN } };
                r = nbdsdk_poll_prepare(sc.event, &p[0]);
                if (r < 0)
                        break;
                CHECK(p[0].fd == sd_event_get_fd(sc.event) && p[0].events == POLLIN, "the loop's descriptor");
                int n = poll(p, 3, r > 0 ? 0 : 1000);
                CHECK(n >= 0, "poll");
                if (p[1].revents)
                        scene_silent_readable(&sc);
                if (p[2].revents)
                        scene_done_readable(&sc);
                CHECK(nbdsdk_poll_dispatch(sc.event) >= 0, "dispatch");
                scene_maybe_stop(&sc);
        }
        CHECK(r == -ESTALE, "the loop ended by exiting (%d), within the time limit", r);
        CHECK(nbdsdk_poll_dispatch(sc.event) == 0, "nothing to dispatch after the exit");
        scene_finish(&sc);
}

static gboolean on_silent(gint fd, GIOCondition cond, gpointer sc) {
        (void) fd;
        (void) cond;
        scene_silent_readable(sc);
        return ((scene *) sc)->silent_dropped ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static gboolean on_done(gint fd, GIOCondition cond, gpointer sc) {
        (void) fd;
        (void) cond;
        scene_done_readable(sc);
        GSource *w = g_unix_fd_source_new(((scene *) sc)->silent, G_IO_IN | G_IO_HUP);
        g_source_set_callback(w, G_SOURCE_FUNC(on_silent), sc, NULL);
        g_source_attach(w, g_main_context_get_thread_default());
        g_source_unref(w);
        return G_SOURCE_REMOVE;
}

static gboolean on_loop_exit(gpointer exited) {
        *(bool *) exited = true;
        return G_SOURCE_CONTINUE; /* ignored */
}

static gboolean on_tick(gpointer ticks) {
        ++*(unsigned *) ticks;
        return G_SOURCE_CONTINUE;
}

/* A GLib host: its own context with the server's source, fd watches and a
 * timer of its own, iterated until the source says the loop exited (15 s
 * bound). */
static void run_glib(unsigned threads) {
        scene sc;
        scene_start(&sc, threads);
        GMainContext *ctx = g_main_context_new();
        GSource *src;
        CHECK(nbdsdk_glib_source_new(sc.event, &src) == 0, "source");
        bool exited = false;
        g_source_set_callback(src, on_loop_exit, &exited, NULL);
        g_source_attach(src, ctx);
        g_main_context_push_thread_default(ctx);
        GSource *w[2] = { g_unix_fd_source_new(sc.done_pipe[0], G_IO_IN), g_timeout_source_new(100) };
        unsigned ticks = 0;
        g_source_set_callback(w[0], G_SOURCE_FUNC(on_done), &sc, NULL);
        g_source_set_callback(w[1], on_tick, &ticks, NULL);
        for (int i = 0; i < 2; i++)
                g_source_attach(w[i], ctx);
        double deadline = now() + 15;
        while (!exited && now() < deadline) {
                g_main_context_iteration(ctx, TRUE);
                scene_maybe_stop(&sc);
        }
        CHECK(exited, "the source's callback ran when the loop exited, within the time limit");
        CHECK(g_source_is_destroyed(src), "and the source removed itself");
        CHECK(ticks >= 5, "the host's own timer kept running (%u ticks over the 1 s timeout)", ticks);
        for (int i = 0; i < 2; i++) {
                g_source_destroy(w[i]);
                g_source_unref(w[i]);
        }
        g_source_unref(src);
        g_main_context_pop_thread_default(ctx);
        g_main_context_unref(ctx);
        scene_finish(&sc);
}

static void poll_loop_thread(void) { run_poll(0); }
static void poll_worker_threads(void) { run_poll(2); }
static void glib_loop_thread(void) { run_glib(0); }
static void glib_worker_threads(void) { run_glib(2); }

/* An asynchronous backend driven by GLib completes a request from a callback
 * of the host's own: on the thread that runs the connections, so without the
 * completion descriptor, through a defer source that the GLib source must
 * find ready on its next round. */
typedef struct {
        testdisk *td;
        nbdsdk_server *server;
        int result;
        bool fd_readable;
} glib_completion;

static gboolean complete_from_glib(gpointer data) {
        glib_completion *c = data;
        c->result = nbdsdk_request_complete(c->td->deferred[0], 0);
        struct pollfd p = { .fd = nbdsdk_server_get_completion_fd(c->server), .events = POLLIN };
        c->fd_readable = poll(&p, 1, 0) == 1;
        return G_SOURCE_REMOVE;
}

/* Iterate CTX (a host timer wakes it every 50 ms) until FD is readable or
 * DEADLINE; true if readable. */
static bool iterate_until_readable(GMainContext *ctx, int fd, double deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        while (poll(&p, 1, 0) == 0) {
                if (now() > deadline)
                        return false;
                g_main_context_iteration(ctx, TRUE);
        }
        return true;
}

static void glib_host_completes_a_deferred_request(void) {
        glib_completion c = { .td = td_new(1 << 20), .result = 1 };
        c.td->defer = true;
        c.server = td_server(c.td);
        sd_event *e;
        CHECK(sd_event_new(&e) == 0 && nbdsdk_server_attach_event(c.server, e, 0) == 0, "attach");
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        CHECK(nbdsdk_server_serve_fd(c.server, sv[0], 0, NULL) == 0, "serve the socket");
        sc_send_export_name(sv[1]);
        sc_request(sv[1], NBDSDK_CMD_FLUSH, 51, 0, 0);
        GMainContext *ctx = g_main_context_new();
        GSource *src, *tick = g_timeout_source_new(50);
        unsigned ticks = 0;
        CHECK(nbdsdk_glib_source_new(e, &src) == 0, "source");
        g_source_attach(src, ctx);
        g_source_set_callback(tick, on_tick, &ticks, NULL);
        g_source_attach(tick, ctx);
        double deadline = now() + 10;
        CHECK(iterate_until_readable(ctx, sv[1], deadline), "the greeting arrives");
        while (c.td->n_deferred == 0 && now() < deadline)
                g_main_context_iteration(ctx, TRUE);
        CHECK(c.td->n_deferred == 1, "the FLUSH is in flight");
        uint8_t g[18], r[10];
        sc_read(sv[1], g, sizeof g);
        sc_read(sv[1], r, sizeof r);
        GSource *idle = g_idle_source_new();
        g_source_set_callback(idle, complete_from_glib, &c, NULL);
        g_source_attach(idle, ctx);
        g_source_unref(idle);
        CHECK(iterate_until_readable(ctx, sv[1], now() + 10), "the reply arrives while GLib runs");
        CHECK(c.result == 0, "completed from the host's callback");
        CHECK(!c.fd_readable, "on the loop's own thread, without the completion descriptor");
        uint64_t cookie;
        CHECK(sc_reply(sv[1], &cookie) == 0 && cookie == 51, "the FLUSH is answered");
        close(sv[1]);
        deadline = now() + 10;
        while (nbdsdk_server_get_n_connections(c.server) > 0 && now() < deadline)
                g_main_context_iteration(ctx, TRUE);
        CHECK(nbdsdk_server_get_n_connections(c.server) == 0, "the connection closed with the client");
        g_source_destroy(tick);
        g_source_unref(tick);
        g_source_destroy(src);
        g_source_unref(src);
        g_main_context_unref(ctx);
        nbdsdk_server_detach_event(c.server);
        nbdsdk_server_unref(c.server);
        sd_event_unref(e);
        td_free(c.td);
}

static void bad_arguments(void) {
        struct pollfd p;
        GSource *src;
        sd_event *e;
        CHECK(nbdsdk_poll_prepare(NULL, &p) == -EINVAL, "prepare without a loop");
        CHECK(nbdsdk_poll_dispatch(NULL) == -EINVAL, "dispatch without a loop");
        CHECK(nbdsdk_glib_source_new(NULL, &src) == -EINVAL, "source without a loop");
        CHECK(sd_event_new(&e) == 0, "event loop");
        CHECK(nbdsdk_poll_prepare(e, NULL) == -EINVAL, "prepare without a pollfd");
        CHECK(nbdsdk_glib_source_new(e, NULL) == -EINVAL, "source without a result pointer");
        CHECK(nbdsdk_poll_dispatch(e) == 0, "nothing prepared, nothing dispatched");
        sd_event_unref(e);
}

TCASE_MAIN(T(poll_loop_thread), T(poll_worker_threads), T(glib_loop_thread), T(glib_worker_threads),
           T(glib_host_completes_a_deferred_request), T(bad_arguments))
