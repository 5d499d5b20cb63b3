/* glib-app: a GLib program that, next to its own work (here a heartbeat and
 * signal handling, all GLib sources), serves a RAM disk over NBD from the
 * same GLib main loop and thread.
 * Build: cc glib-app.c -o glib-app $(pkg-config --cflags --libs nbdsdk glib-2.0)
 * Run:   ./glib-app /tmp/app.sock 64M   (SIGINT or SIGTERM: stop once clients have left) */
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <glib.h>
#include <glib-unix.h>
#include <nbdsdk/nbdsdk.h>
#include <nbdsdk/nbdsdk-glib.h>

struct app {
        char *disk;
        uint64_t size;
        unsigned served;        /* connections so far */
        nbdsdk_server *server;
        GMainLoop *loop;
};

static int64_t app_get_size(nbdsdk_conn *conn, void *ud) { return (int64_t) ((struct app *) ud)->size; }
static void *app_map(nbdsdk_conn *conn, void *ud) { return ((struct app *) ud)->disk; }
static int app_flush(nbdsdk_request *req, uint32_t flags, void *ud) { return 0; }

static const struct nbdsdk_ops app_ops = {
        .name = "glib-app", .get_size = app_get_size, .map = app_map, .flush = app_flush,
};

static void app_opened(nbdsdk_conn *conn, void *ud) { ((struct app *) ud)->served++; }

static gboolean app_heartbeat(gpointer ud) {
        struct app *app = ud;
        printf("glib-app: %u connection(s) open, %u served\n",
               nbdsdk_server_get_n_connections(app->server), app->served);
        fflush(stdout);
        return G_SOURCE_CONTINUE;
}

/* Stop accepting, let the clients finish; the loop exits after the last one. */
static gboolean app_stop(gpointer ud) {
        printf("glib-app: stopping\n");
        fflush(stdout);
        nbdsdk_server_shutdown(((struct app *) ud)->server, true);
        return G_SOURCE_REMOVE;
}

static gboolean app_served(gpointer ud) {
        g_main_loop_quit(((struct app *) ud)->loop);
        return G_SOURCE_REMOVE;
}

int main(int argc, char **argv) {
        struct app app = { .loop = g_main_loop_new(NULL, FALSE) };
        GSource *source;
        int r = argc == 3 ? nbdsdk_parse_size(argv[2], &app.size) : -EINVAL;
        if (r < 0 || app.size == 0) {
                fprintf(stderr, "usage: glib-app SOCKET SIZE\n");
                return 2;
        }
        app.disk = mmap(NULL, app.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        r = app.disk == MAP_FAILED ? -errno : nbdsdk_server_new(&app_ops, sizeof app_ops, &app, &app.server);
        if (r >= 0)
                r = nbdsdk_server_set_connection_callbacks(app.server, app_opened, NULL, &app);
        if (r >= 0)
                r = nbdsdk_server_listen_unix(app.server, argv[1]);
        /* A default sd-event loop of this thread, which GLib then runs. */
        if (r >= 0)
                r = nbdsdk_server_attach_event(app.server, NULL, 0);
        if (r >= 0)
                r = nbdsdk_glib_source_new(nbdsdk_server_get_event(app.server), &source);
        if (r < 0) {
                fprintf(stderr, "glib-app: %s\n", strerror(-r));
                return 1;
        }
        g_source_set_callback(source, app_served, &app, NULL);
        g_source_attach(source, NULL);
        g_source_unref(source);
        g_timeout_add_seconds(1, app_heartbeat, &app);
        g_unix_signal_add(SIGINT, app_stop, &app);
        g_unix_signal_add(SIGTERM, app_stop, &app);
        printf("glib-app: serving nbd+unix:///?socket=%s\n", argv[1]);
        fflush(stdout);
        g_main_loop_run(app.loop);
        printf("glib-app: served %u connection(s)\n", app.served);
        nbdsdk_server_detach_event(app.server);
        nbdsdk_server_unref(app.server);
        g_main_loop_unref(app.loop);
        return 0;
}
