/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Driving the server from outside: the per-connection readiness API with a
 * plain poll() loop, and sd-event attachment with real sockets, listeners and
 * worker threads. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include "sockclient.h"
#include "tcase.h"
#include "tclient.h"
#include "testdisk.h"
#include "wire-internal.h"

/* Run the connection with poll() until it has nothing left to do. */
static void poll_until_quiet(nbdsdk_conn *conn) {
        for (int i = 0; i < 1000; i++) {
                uint32_t ev = nbdsdk_conn_get_events(conn);
                struct pollfd p = { .fd = nbdsdk_conn_get_fd(conn),
                                    .events = (short) ((ev & 1 ? POLLIN : 0) | (ev & 4 ? POLLOUT : 0)) };
                if (poll(&p, 1, 20) == 0)
                        return;
                if (nbdsdk_conn_process(conn, (uint32_t) p.revents) < 0)
                        return;
        }
}

static void readiness_api_with_poll(void) {
        testdisk *td = td_new(1 << 20);
        memset(td->data + 4096, 0x5a, 512);
        nbdsdk_server *s = td_server(td);
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        nbdsdk_conn *conn;
        CHECK(nbdsdk_server_serve_fd(s, sv[0], 0, &conn) == 0, "serve an already-connected fd");
        CHECK(nbdsdk_conn_get_fd(conn) == sv[0], "the readiness fd is the socket");
        CHECK(nbdsdk_conn_get_events(conn) & 1, "waiting to read the client's flags");
        /* Interleave: the client writes, the host loop runs the connection. */
        uint8_t g[18], r[10];
        poll_until_quiet(conn);
        sc_read(sv[1], g, sizeof g);
        sc_send_export_name(sv[1]);
        poll_until_quiet(conn);
        sc_read(sv[1], r, sizeof r);
        CHECK(wire_get64(r) == 1 << 20, "export size over the socket");
        sc_request(sv[1], NBDSDK_CMD_READ, 7, 4096, 512);
        poll_until_quiet(conn);
        uint64_t cookie;
        CHECK(sc_reply(sv[1], &cookie) == 0 && cookie == 7, "read succeeded");
        uint8_t data[512];
        sc_read(sv[1], data, sizeof data);
        CHECK(data[0] == 0x5a && data[511] == 0x5a, "read returned the disk's bytes");
        sc_request(sv[1], NBDSDK_CMD_DISC, 8, 0, 0);
        poll_until_quiet(conn);
        CHECK(nbdsdk_conn_process(conn, 0) == -ECONNRESET, "closed after DISC");
        CHECK(read(sv[1], data, 1) == 0, "the client sees end of stream");
        nbdsdk_conn_unref(conn);
        close(sv[1]);
        nbdsdk_server_unref(s);
        td_free(td);
}

typedef struct {
        char path[108];
        int done_fd;
        int n_requests;
        unsigned mismatches;
} client_job;

/* A client thread: connect, write a pattern, read it back with many requests
 * in flight, disconnect, then tell the loop it is done. */
static void *client_thread(void *arg) {
        client_job *job = arg;
        job->mismatches = sc_write_read_back(job->path, 1 << 20, job->n_requests);
        CHECK(write(job->done_fd, "x", 1) == 1, "signal the loop");
        return NULL;
}

static int on_done(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) fd;
        (void) revents;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(src), 0);
}

static void run_listener_test(unsigned threads) {
        testdisk *td = td_new(1 << 20);
        nbdsdk_server *s = td_server(td);
        CHECK(nbdsdk_server_set_threads(s, threads) == 0, "threads");
        char dir[] = "/tmp/nbdsdk-test-XXXXXX";
        CHECK(mkdtemp(dir), "temporary directory");
        client_job job = { .n_requests = 200 };
        snprintf(job.path, sizeof job.path, "%s/sock", dir);
        CHECK(nbdsdk_server_listen_unix(s, job.path) == 0, "listen on a Unix socket");
        sd_event *e;
        CHECK(sd_event_new(&e) == 0, "event loop");
        CHECK(nbdsdk_server_attach_event(s, e, 0) == 0, "attach");
        CHECK(nbdsdk_server_attach_event(s, e, 0) == -EBUSY, "attaching twice is refused");
        CHECK(nbdsdk_server_set_threads(s, 1) == -EBUSY, "settings are frozen once running");
        int pipefd[2];
        CHECK(pipe(pipefd) == 0, "pipe");
        job.done_fd = pipefd[1];
        CHECK(sd_event_add_io(e, NULL, pipefd[0], EPOLLIN, on_done, NULL) >= 0, "done source");
        pthread_t t;
        CHECK(pthread_create(&t, NULL, client_thread, &job) == 0, "client thread");
        /* Bounded: a timer ends the loop if the client hangs. */
        CHECK(sd_event_add_time_relative(e, NULL, CLOCK_MONOTONIC, 20 * 1000000ULL, 0, NULL,
                                         (void *) (intptr_t) 99) >= 0, "watchdog");
        CHECK(sd_event_loop(e) == 0, "the loop ended because the client finished");
        pthread_join(t, NULL);
        CHECK(job.mismatches == 0, "data read back matches what was written (%u bytes differ)", job.mismatches);
        CHECK(nbdsdk_server_shutdown(s, false) == 0, "shutdown");
        CHECK(access(job.path, F_OK) != 0, "the socket file is removed when the listener closes");
        nbdsdk_server_detach_event(s);
        nbdsdk_server_unref(s);
        sd_event_unref(e);
        close(pipefd[0]);
        close(pipefd[1]);
        rmdir(dir);
        td_free(td);
}

static void sd_event_listener_loop_thread(void) { run_listener_test(0); }
static void sd_event_listener_worker_threads(void) { run_listener_test(4); }

static unsigned n_opened, n_closed;
static void count_opened(nbdsdk_conn *conn, void *ud) { (void) conn; (void) ud; n_opened++; }
static void count_closed(nbdsdk_conn *conn, void *ud) {
        (void) conn;
        CHECK(nbdsdk_server_get_n_connections(ud) == n_opened - n_closed - 1, "closed after leaving the list");
        n_closed++;
}

/* Run the loop for a moment (bounded), so that pending events are handled. */
static void spin(sd_event *e) {
        for (int i = 0; i < 20; i++)
                CHECK(sd_event_run(e, 10 * 1000) >= 0, "sd_event_run");
}

static void connection_limit_and_callbacks(void) {
        testdisk *td = td_new(1 << 20);
        nbdsdk_server *s = td_server(td);
        n_opened = n_closed = 0;
        CHECK(nbdsdk_server_set_max_connections(s, 1) == 0, "limit");
        CHECK(nbdsdk_server_set_connection_callbacks(s, count_opened, count_closed, s) == 0, "callbacks");
        char dir[] = "/tmp/nbdsdk-test-XXXXXX";
        CHECK(mkdtemp(dir), "temporary directory");
        char path[128];
        snprintf(path, sizeof path, "%s/sock", dir);
        CHECK(nbdsdk_server_listen_unix(s, path) == 0, "listen");
        sd_event *e;
        CHECK(sd_event_new(&e) == 0 && nbdsdk_server_attach_event(s, e, 0) == 0, "attach");
        int a = sc_connect_unix(path);
        spin(e);
        int b = sc_connect_unix(path); /* waits in the backlog */
        spin(e);
        CHECK(n_opened == 1 && nbdsdk_server_get_n_connections(s) == 1, "only one connection accepted");
        struct pollfd p = { .fd = b, .events = POLLIN };
        CHECK(poll(&p, 1, 0) == 0, "the second client gets no greeting while the first is connected");
        close(a);
        spin(e);
        CHECK(n_closed == 1, "the closed callback ran for the first client");
        CHECK(n_opened == 2, "the second client was accepted once the first left");
        CHECK(poll(&p, 1, 1000) == 1, "the second client now gets its greeting");
        close(b);
        spin(e);
        CHECK(n_closed == 2 && nbdsdk_server_get_n_connections(s) == 0, "both closed");
        nbdsdk_server_detach_event(s);
        nbdsdk_server_unref(s);
        sd_event_unref(e);
        rmdir(dir);
        td_free(td);
}

/* Whether the completion descriptor is readable now. */
static bool completion_fd_readable(nbdsdk_server *s) {
        struct pollfd p = { .fd = nbdsdk_server_get_completion_fd(s), .events = POLLIN };
        return poll(&p, 1, 0) == 1;
}

typedef struct {
        nbdsdk_request *req;
        int result;
        bool fd_readable;
} completion_job;

/* An event source of the program's own on the server's loop completes a
 * request, as an asynchronous backend's would. */
static int complete_from_the_loop(sd_event_source *src, void *userdata) {
        (void) src;
        completion_job *job = userdata;
        job->result = nbdsdk_request_complete(job->req, 0);
        job->fd_readable = completion_fd_readable(nbdsdk_conn_get_server(nbdsdk_request_get_conn(job->req)));
        return 0;
}

static void *complete_from_a_thread(void *userdata) {
        completion_job *job = userdata;
        job->result = nbdsdk_request_complete(job->req, 0);
        return NULL;
}

/* The client hangs up: the server on E closes the connection, leaves the
 * loop and goes, with its disk. */
static void end_session(int client_fd, nbdsdk_server *s, sd_event *e, testdisk *td) {
        close(client_fd);
        spin(e);
        CHECK(nbdsdk_server_get_n_connections(s) == 0, "the connection closed with the client");
        nbdsdk_server_detach_event(s);
        nbdsdk_server_unref(s);
        sd_event_unref(e);
        td_free(td);
}

/* A disk whose data callbacks defer, served on a new sd-event loop to a
 * client on a socket pair, with N_FLUSH FLUSHes (cookies FIRST_COOKIE on) in
 * flight. */
typedef struct {
        testdisk *td;
        nbdsdk_server *s;
        sd_event *e;
        int fd; /* the client's end */
} deferring_server;

static deferring_server serve_deferring_disk(unsigned n_flush, uint64_t first_cookie) {
        deferring_server ds = { .td = td_new(1 << 20) };
        ds.td->defer = true;
        ds.s = td_server(ds.td);
        CHECK(sd_event_new(&ds.e) == 0 && nbdsdk_server_attach_event(ds.s, ds.e, 0) == 0, "attach");
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        CHECK(nbdsdk_server_serve_fd(ds.s, sv[0], 0, NULL) == 0, "serve the socket");
        ds.fd = sv[1];
        /* The whole handshake and the FLUSHes up front: the server reads them in turn. */
        sc_send_export_name(ds.fd);
        for (unsigned i = 0; i < n_flush; i++)
                sc_request(ds.fd, NBDSDK_CMD_FLUSH, first_cookie + i, 0, 0);
        spin(ds.e);
        CHECK(ds.td->n_deferred == n_flush, "%u FLUSHes in flight, %u expected", ds.td->n_deferred, n_flush);
        uint8_t g[18], r[10];
        sc_read(ds.fd, g, sizeof g);
        sc_read(ds.fd, r, sizeof r);
        CHECK(wire_get64(r) == 1 << 20, "the export's size");
        return ds;
}

/* Completions on the loop's own thread come back without waking the loop
 * through the completion descriptor; those of other threads wake it. */
static void completion_on_the_loop_thread_makes_no_wakeup(void) {
        deferring_server ds = serve_deferring_disk(2, 31);
        testdisk *td = ds.td;
        nbdsdk_server *s = ds.s;
        sd_event *e = ds.e;
        CHECK(!completion_fd_readable(s), "no completion waits yet");

        completion_job local = { .req = td->deferred[0], .result = 1 };
        sd_event_source *src;
        CHECK(sd_event_add_defer(e, &src, complete_from_the_loop, &local) >= 0 &&
              sd_event_source_set_enabled(src, SD_EVENT_ONESHOT) >= 0, "a source of the program's");
        spin(e);
        sd_event_source_unref(src);
        CHECK(local.result == 0, "completed on the loop thread");
        CHECK(!local.fd_readable, "a completion on the loop thread leaves the completion descriptor alone");
        uint64_t cookie;
        CHECK(sc_reply(ds.fd, &cookie) == 0 && cookie == 31, "the first FLUSH is answered in the next round");

        completion_job remote = { .req = td->deferred[1], .result = 1 };
        pthread_t t;
        CHECK(pthread_create(&t, NULL, complete_from_a_thread, &remote) == 0, "thread");
        pthread_join(t, NULL);
        CHECK(remote.result == 0, "completed on another thread");
        CHECK(completion_fd_readable(s), "a completion on another thread wakes the loop through the descriptor");
        spin(e);
        CHECK(!completion_fd_readable(s), "the loop read the descriptor");
        CHECK(sc_reply(ds.fd, &cookie) == 0 && cookie == 32, "the second FLUSH is answered");
        end_session(ds.fd, s, e, td);
}

/* An option handler that defers, and the program's event source on the
 * server's loop that sends its ACK, as a handler waiting for another service
 * watched by the same loop would. */
#define OPT_PRIVATE 0x4e530001u
static nbdsdk_conn *deferred_option;

static int defer_option(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len; (void) ud;
        deferred_option = nbdsdk_conn_ref(conn);
        return NBDSDK_DEFER;
}

static int ack_from_the_loop(sd_event_source *src, void *userdata) {
        (void) src;
        bool *fd_readable = userdata;
        CHECK(nbdsdk_conn_option_reply(deferred_option, NBDSDK_REP_ACK, NULL, 0) == 0, "the deferred ACK");
        *fd_readable = completion_fd_readable(nbdsdk_conn_get_server(deferred_option));
        deferred_option = nbdsdk_conn_unref(deferred_option);
        return 0;
}

/* A deferred option's reply sent on the loop's own thread comes back
 * without waking the loop through the completion descriptor either. */
static void option_reply_on_the_loop_thread_makes_no_wakeup(void) {
        testdisk *td = td_new(1 << 20);
        nbdsdk_server *s = td_server(td);
        CHECK(nbdsdk_server_add_option(s, OPT_PRIVATE, "X", defer_option, NULL, 0, NULL) == 0, "a private option");
        sd_event *e;
        CHECK(sd_event_new(&e) == 0 && nbdsdk_server_attach_event(s, e, 0) == 0, "attach");
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        CHECK(nbdsdk_server_serve_fd(s, sv[0], 0, NULL) == 0, "serve the socket");
        /* Fixed newstyle and no zeroes, then the option without data. */
        uint8_t hello[4 + 16];
        wire_put32(hello, 3);
        wire_put64(hello + 4, NBDSDK_MAGIC_OPTS);
        wire_put32(hello + 12, OPT_PRIVATE);
        wire_put32(hello + 16, 0);
        sc_write(sv[1], hello, sizeof hello);
        spin(e);
        CHECK(deferred_option != NULL, "the handler deferred");

        bool fd_readable = true;
        sd_event_source *src;
        CHECK(sd_event_add_defer(e, &src, ack_from_the_loop, &fd_readable) >= 0 &&
              sd_event_source_set_enabled(src, SD_EVENT_ONESHOT) >= 0, "a source of the program's");
        spin(e);
        sd_event_source_unref(src);
        CHECK(!fd_readable, "a reply on the loop thread leaves the completion descriptor alone");
        uint8_t greeting[18], reply[20];
        sc_read(sv[1], greeting, sizeof greeting);
        sc_read(sv[1], reply, sizeof reply);
        CHECK(wire_get32(reply + 8) == OPT_PRIVATE && wire_get32(reply + 12) == NBDSDK_REP_ACK,
              "the client gets the ACK in the next round");
        end_session(sv[1], s, e, td);
}

/* A completion made on the loop thread just before the server leaves that
 * loop is answered on the next one. */
static void completions_follow_the_server_to_another_loop(void) {
        deferring_server ds = serve_deferring_disk(1, 41);
        testdisk *td = ds.td;
        nbdsdk_server *s = ds.s;
        sd_event *e1 = ds.e, *e2;
        /* This thread ran the first loop: the completion is its own. */
        CHECK(nbdsdk_request_complete(td->deferred[0], 0) == 0, "complete on the loop thread");
        CHECK(nbdsdk_server_detach_event(s) == 0, "detach before the first loop runs again");
        sd_event_unref(e1);
        CHECK(sd_event_new(&e2) == 0 && nbdsdk_server_attach_event(s, e2, 0) == 0, "attach to the second loop");
        spin(e2);
        struct pollfd p = { .fd = ds.fd, .events = POLLIN };
        CHECK(poll(&p, 1, 1000) == 1, "the reply arrives from the second loop");
        uint64_t cookie;
        CHECK(sc_reply(ds.fd, &cookie) == 0 && cookie == 41, "the FLUSH is answered");
        end_session(ds.fd, s, e2, td);
}

TCASE_MAIN(T(readiness_api_with_poll), T(sd_event_listener_loop_thread), T(sd_event_listener_worker_threads),
           T(connection_limit_and_callbacks), T(completion_on_the_loop_thread_makes_no_wakeup),
           T(option_reply_on_the_loop_thread_makes_no_wakeup), T(completions_follow_the_server_to_another_loop))
