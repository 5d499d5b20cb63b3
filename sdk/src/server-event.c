/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Attaching a server to an sd-event loop: listeners, connections (io and a
 * timer each), and the completion queue (its eventfd, and a defer source for
 * completions on the loop's own thread) become event sources. Other loops
 * embed the server through sd-event's own fd (see nbdsdk_server(3)). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include "conn-internal.h"
#include "log-internal.h"
#include "server-internal.h"

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) src;
        (void) fd;
        (void) revents;
        conn_run(userdata);
        return 0;
}

/* A timeout closes and may free the connection: hold it until done. conn_run
 * pushes the new deadline to the timer unless the connection is closed. */
static int on_conn_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) src;
        nbdsdk_conn *conn = nbdsdk_conn_ref(userdata);
        conn_check_timeout(conn, usec);
        conn_run(conn);
        nbdsdk_conn_unref(conn);
        return 0;
}

static int on_conn_hold(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) src;
        (void) usec;
        conn_run(userdata);
        return 0;
}

void conn_update_event_sources(nbdsdk_conn *conn) {
        if (!conn->io_source)
                return;
        uint32_t events = conn_wanted_events(conn);
        if (conn->io_wsource) {
                /* Separate read and write fds (stdin and stdout). */
                uint32_t out = events & EPOLLOUT;
                events &= ~(uint32_t) EPOLLOUT;
                if (out)
                        (void) sd_event_source_set_io_events(conn->io_wsource, out);
                (void) sd_event_source_set_enabled(conn->io_wsource, out ? SD_EVENT_ON : SD_EVENT_OFF);
        }
        if (events)
                (void) sd_event_source_set_io_events(conn->io_source, events);
        /* With nothing wanted the source must be off, or hang-ups would spin. */
        (void) sd_event_source_set_enabled(conn->io_source, events ? SD_EVENT_ON : SD_EVENT_OFF);
        if (conn->hold_source) {
                if (conn->hold_until) {
                        (void) sd_event_source_set_time(conn->hold_source, conn->hold_until);
                        (void) sd_event_source_set_enabled(conn->hold_source, SD_EVENT_ONESHOT);
                } else
                        (void) sd_event_source_set_enabled(conn->hold_source, SD_EVENT_OFF);
        }
        if (conn->timer_source) {
                if (conn->deadline == UINT64_MAX)
                        (void) sd_event_source_set_enabled(conn->timer_source, SD_EVENT_OFF);
                else {
                        (void) sd_event_source_set_time(conn->timer_source, conn->deadline);
                        (void) sd_event_source_set_enabled(conn->timer_source, SD_EVENT_ONESHOT);
                }
        }
}

int server_event_add_conn(nbdsdk_server *s, nbdsdk_conn *conn) {
        int rfd = conn->transport->ops->get_read_fd(conn->transport);
        int wfd = conn->transport->ops->get_write_fd(conn->transport);
        int r = sd_event_add_io(s->event, &conn->io_source, rfd, EPOLLIN, on_conn_io, conn);
        if (r >= 0 && wfd != rfd)
                r = sd_event_add_io(s->event, &conn->io_wsource, wfd, EPOLLOUT, on_conn_io, conn);
        if (r >= 0)
                r = sd_event_add_time(s->event, &conn->timer_source, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                      on_conn_timer, conn);
        /* Batching waits are short: this timer fires to the microsecond. */
        if (r >= 0)
                r = sd_event_add_time(s->event, &conn->hold_source, CLOCK_MONOTONIC, UINT64_MAX, 1,
                                      on_conn_hold, conn);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(conn->io_source, s->priority);
        (void) sd_event_source_set_priority(conn->hold_source, s->priority);
        conn_update_event_sources(conn);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) src;
        (void) revents;
        nbdsdk_server *s = userdata;
        /* A bounded batch per wake-up keeps one listener from starving the rest. */
        for (int i = 0; i < 16 && !s->shutting_down && (s->max_conns == 0 || s->n_conns < s->max_conns); i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_error("accept failed: %m");
                        break;
                }
                transport *t;
                int r = transport_fd_new(cfd, cfd, &t);
                if (r < 0) {
                        close(cfd);
                        continue;
                }
                r = server_serve_transport(s, t, 0, NULL);
                if (r < 0)
                        log_error("cannot serve a new connection: %s", strerror(-r));
        }
        return 0;
}

int server_event_add_listener(nbdsdk_server *s, listener *l) {
        int r = sd_event_add_io(s->event, &l->source, l->fd, EPOLLIN, on_accept, s);
        if (r >= 0)
                (void) sd_event_source_set_priority(l->source, s->priority);
        server_event_update_listeners(s);
        return r;
}

void server_event_update_listeners(nbdsdk_server *s) {
        bool accept = s->max_conns == 0 || s->n_conns < s->max_conns;
        for (size_t i = 0; i < s->n_listeners; i++)
                if (s->listeners[i].source)
                        (void) sd_event_source_set_enabled(s->listeners[i].source, accept ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int on_completions(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        (void) src;
        (void) fd;
        (void) revents;
        nbdsdk_server *s = userdata;
        completion_queue_clear_wake(&s->completions);
        server_process_completions(s);
        return 0;
}

static int on_local_completions(sd_event_source *src, void *userdata) {
        (void) src;
        server_process_completions(userdata);
        return 0;
}

/* An asynchronous backend often completes on the loop's own thread (its
 * events are sources on the same loop), and so does an option handler's
 * deferred reply: the defer source then brings the news back in the loop's
 * next round without the eventfd's write, wake-up and read. Any other thread,
 * or a server on a loop other than sd-event, wakes the loop through the
 * eventfd. */
static bool on_loop_thread(const nbdsdk_server *s) {
        return s->completion_defer &&
               pthread_equal(pthread_self(), atomic_load_explicit(&s->loop_thread, memory_order_relaxed));
}

static void run_defer_next_round(nbdsdk_server *s) {
        (void) sd_event_source_set_enabled(s->completion_defer, SD_EVENT_ONESHOT);
}

void server_queue_completion(nbdsdk_server *s, nbdsdk_request *req) {
        bool local = on_loop_thread(s);
        completion_queue_push(&s->completions, req, !local);
        if (local)
                run_defer_next_round(s);
}

void server_queue_conn(nbdsdk_server *s, nbdsdk_conn *conn) {
        bool local = on_loop_thread(s);
        completion_queue_push_conn(&s->completions, conn, !local);
        if (local)
                run_defer_next_round(s);
}

int nbdsdk_server_attach_event(nbdsdk_server *s, sd_event *event, int64_t priority) {
        if (!s)
                return -EINVAL;
        if (s->event)
                return -EBUSY;
        int r = event ? (s->event = sd_event_ref(event), 0) : sd_event_default(&s->event);
        if (r < 0)
                return r;
        s->priority = priority;
        r = server_start(s);
        if (r >= 0)
                r = sd_event_add_io(s->event, &s->completion_source, s->completions.efd, EPOLLIN,
                                    on_completions, s);
        if (r >= 0)
                r = sd_event_add_defer(s->event, &s->completion_defer, on_local_completions, s);
        if (r >= 0) {
                atomic_store_explicit(&s->loop_thread, pthread_self(), memory_order_relaxed);
                (void) sd_event_source_set_priority(s->completion_defer, s->priority);
                (void) sd_event_source_set_enabled(s->completion_defer, SD_EVENT_OFF);
        }
        for (size_t i = 0; r >= 0 && i < s->n_listeners; i++)
                r = server_event_add_listener(s, &s->listeners[i]);
        for (nbdsdk_conn *c = s->conns; r >= 0 && c; c = c->next)
                r = server_event_add_conn(s, c);
        if (r < 0)
                nbdsdk_server_detach_event(s);
        return r;
}

int nbdsdk_server_detach_event(nbdsdk_server *s) {
        if (!s)
                return -EINVAL;
        if (!s->event)
                return 0;
        s->completion_source = sd_event_source_disable_unref(s->completion_source);
        s->completion_defer = sd_event_source_disable_unref(s->completion_defer);
        /* What the defer source was to bring back waits for the next loop. */
        completion_queue_wake_if_queued(&s->completions);
        for (size_t i = 0; i < s->n_listeners; i++)
                s->listeners[i].source = sd_event_source_disable_unref(s->listeners[i].source);
        for (nbdsdk_conn *c = s->conns; c; c = c->next) {
                c->io_source = sd_event_source_disable_unref(c->io_source);
                c->io_wsource = sd_event_source_disable_unref(c->io_wsource);
                c->timer_source = sd_event_source_disable_unref(c->timer_source);
                c->hold_source = sd_event_source_disable_unref(c->hold_source);
        }
        s->event = sd_event_unref(s->event);
        return 0;
}

sd_event *nbdsdk_server_get_event(nbdsdk_server *s) {
        return s ? s->event : NULL;
}
