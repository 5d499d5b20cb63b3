/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Option handlers that return NBDSDK_DEFER (nbdsdk_option(3)): the replies
 * come later from another thread, in order, and the client then goes on
 * negotiating; meanwhile no further option is read, the handshake timeout
 * still applies, and a connection that goes away makes later replies fail
 * with -ENOTCONN. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "tcase.h"
#include "fixture.h"
#include "wire-internal.h"

#define OPT_X 0x4e530001u

/* What the deferring handler holds, and what the replying thread sends. */
static nbdsdk_conn *held;
static int early_replies;        /* sent by the handler before it defers */
static int server_replies;       /* NBDSDK_REP_SERVER replies the thread sends before its final one */
static bool final_error;         /* the thread ends with an error carrying a message, not ACK */
static int thread_results[8];    /* what the thread's calls returned */

static int x_defer(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len; (void) ud;
        for (int i = 0; i < early_replies; i++) {
                uint8_t name[4 + 5];
                wire_put32(name, 5);
                memcpy(name + 4, "early", 5);
                CHECK(nbdsdk_conn_option_reply(conn, NBDSDK_REP_SERVER, name, sizeof name) == 0, "a reply before DEFER");
        }
        held = nbdsdk_conn_ref(conn);
        return NBDSDK_DEFER;
}

/* The other thread: its replies, then the reference goes. */
static void *finish(void *arg) {
        (void) arg;
        int n = 0;
        for (int i = 0; i < server_replies; i++) {
                uint8_t name[4 + 6];
                wire_put32(name, 6);
                memcpy(name + 4, "late-", 5);
                name[9] = (uint8_t) ('0' + i);
                thread_results[n++] = nbdsdk_conn_option_reply(held, NBDSDK_REP_SERVER, name, sizeof name);
                struct timespec ts = { 0, 1000 * 1000 };
                nanosleep(&ts, NULL); /* let the loop wake up between replies */
        }
        if (final_error)
                thread_results[n++] = nbdsdk_conn_option_error(held, NBDSDK_REP_ERR_POLICY, "not now, %s", "later");
        else
                thread_results[n++] = nbdsdk_conn_option_reply(held, NBDSDK_REP_ACK, NULL, 0);
        thread_results[n++] = nbdsdk_conn_option_reply(held, NBDSDK_REP_ACK, NULL, 0);
        held = nbdsdk_conn_unref(held);
        return NULL;
}

static void setup(int early, int late, bool error) {
        disk_setup();
        held = NULL;
        early_replies = early;
        server_replies = late;
        final_error = error;
        memset(thread_results, 0x7f, sizeof thread_results);
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_defer, NULL, 0, NULL) == 0, "register");
        tc = tc_connect_fixed(server);
}

/* The completion fd becomes readable: a loop polling it would wake up. */
static bool loop_woken(int timeout_ms) {
        struct pollfd p = { .fd = nbdsdk_server_get_completion_fd(server), .events = POLLIN };
        return poll(&p, 1, timeout_ms) == 1;
}

static void deferred_ack_from_another_thread(void) {
        setup(0, 0, false);
        tc_send_option(tc, OPT_X, NULL, 0);
        CHECK(held && tc_pending(tc) == 0, "the handler deferred: no reply yet");
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "OPT_WAIT") == 0, "the connection waits");
        CHECK(!loop_woken(0), "nothing for the loop yet");
        pthread_t t;
        pthread_create(&t, NULL, finish, NULL);
        pthread_join(t, NULL);
        CHECK(thread_results[0] == 0, "the ACK from the other thread is taken");
        CHECK(thread_results[1] == -EINVAL, "nothing after the final reply");
        CHECK(loop_woken(0), "the reply woke the loop");
        tc_replies r;
        tc_option_replies(tc, OPT_X, &r);
        CHECK(r.n == 1 && r.type[0] == NBDSDK_REP_ACK && r.len[0] == 0, "the client gets the ACK");
        tc_replies_free(&r);
        uint64_t size = 0;
        tc_go(tc, "", &size, NULL);
        CHECK(size == DISK_SIZE, "negotiation goes on: GO works");
        close_disk();
}

/* Run the server whenever the completion fd says so, until OPT_X's final
 * reply has arrived; collect the replies. */
static void loop_until_final(tc_replies *r) {
        r->n = 0;
        while (r->n == 0 || !(r->type[r->n - 1] == NBDSDK_REP_ACK || (r->type[r->n - 1] & NBDSDK_REP_FLAG_ERROR))) {
                if (tc_pending(tc) == 0) {
                        CHECK(loop_woken(5000), "the loop is woken for each reply");
                        continue;
                }
                CHECK(r->n < TC_REPLIES_MAX, "too many replies");
                r->type[r->n] = tc_option_reply(tc, OPT_X, &r->data[r->n], &r->len[r->n]);
                r->n++;
        }
}

static void several_replies_in_order(void) {
        setup(1, 3, false);
        tc_send_option(tc, OPT_X, NULL, 0);
        pthread_t t;
        pthread_create(&t, NULL, finish, NULL);
        tc_replies r;
        loop_until_final(&r);
        pthread_join(t, NULL);
        CHECK(r.n == 5, "one early reply, three late ones, then ACK (%u)", r.n);
        CHECK(r.type[0] == NBDSDK_REP_SERVER && memcmp(r.data[0] + 4, "early", 5) == 0,
              "the reply sent before DEFER comes first");
        for (int i = 0; i < 3; i++) {
                char want[8];
                snprintf(want, sizeof want, "late-%d", i);
                CHECK(r.type[1 + i] == NBDSDK_REP_SERVER && r.len[1 + i] == 10 && memcmp(r.data[1 + i] + 4, want, 6) == 0,
                      "late reply %d in order", i);
        }
        CHECK(r.type[4] == NBDSDK_REP_ACK, "then the ACK");
        tc_replies_free(&r);
        CHECK(thread_results[0] == 0 && thread_results[1] == 0 && thread_results[2] == 0 && thread_results[3] == 0,
              "every reply was taken");
        tc_check_in_sync(tc);
        tc_go(tc, "", NULL, NULL);
        close_disk();
}

static void deferred_error_carries_its_message(void) {
        setup(0, 0, true);
        tc_send_option(tc, OPT_X, NULL, 0);
        pthread_t t;
        pthread_create(&t, NULL, finish, NULL);
        pthread_join(t, NULL);
        CHECK(thread_results[0] == 0 && thread_results[1] == -EINVAL, "the error is final");
        tc_replies r;
        tc_option_replies(tc, OPT_X, &r);
        CHECK(r.n == 1 && r.type[0] == NBDSDK_REP_ERR_POLICY, "the client gets the error");
        CHECK(strcmp((char *) r.data[0], "not now, later") == 0, "with its message: \"%s\"", (char *) r.data[0]);
        tc_replies_free(&r);
        tc_check_in_sync(tc);
        tc_go(tc, "", NULL, NULL);
        close_disk();
}

static void client_hanging_up_meanwhile(void) {
        setup(0, 1, false);
        tc_send_option(tc, OPT_X, NULL, 0);
        CHECK(held, "deferred");
        tc_hangup(tc);
        CHECK(tc_closed(tc), "the server noticed the hang-up while waiting");
        /* The thread's reference is the last: the connection is freed there. */
        tc->conn = nbdsdk_conn_unref(tc->conn);
        pthread_t t;
        pthread_create(&t, NULL, finish, NULL);
        pthread_join(t, NULL);
        CHECK(thread_results[0] == -ENOTCONN && thread_results[1] == -ENOTCONN,
              "replies to a closed connection: -ENOTCONN");
        CHECK(held == NULL, "the thread dropped its reference");
        close_disk();
}

static void handshake_timeout_applies_while_waiting(void) {
        disk_setup();
        CHECK(nbdsdk_server_set_timeouts(server, 1, 0) == 0, "timeouts");
        setup(0, 0, false);
        tc_send_option(tc, OPT_X, NULL, 0);
        CHECK(held && !tc_closed(tc), "deferred");
        struct timespec ts = { 1, 200 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        tc_run(tc);
        CHECK(tc_closed(tc), "the handshake deadline passed while the option waited");
        finish(NULL);
        CHECK(thread_results[0] == -ENOTCONN, "the late reply: -ENOTCONN");
        close_disk();
}

static void client_sending_more_meanwhile_is_dropped(void) {
        setup(0, 0, false);
        tc_send_option(tc, OPT_X, NULL, 0);
        tc_send_option(tc, NBDSDK_OPT_LIST, NULL, 0);
        CHECK(tc_closed(tc), "spec: no option before the final reply; the connection is dropped");
        CHECK(tc_pending(tc) == 0, "and LIST was not answered");
        finish(NULL);
        CHECK(thread_results[0] == -ENOTCONN, "the late reply: -ENOTCONN");
        close_disk();
}

static int x_ack_then_defer(nbdsdk_conn *conn, uint32_t option, const void *data, size_t len, void *ud) {
        (void) option; (void) data; (void) len; (void) ud;
        CHECK(nbdsdk_conn_option_reply(conn, NBDSDK_REP_ACK, NULL, 0) == 0, "ACK");
        return NBDSDK_DEFER;
}

static void final_reply_before_defer_finishes_the_option(void) {
        disk_setup();
        CHECK(nbdsdk_server_add_option(server, OPT_X, "X", x_ack_then_defer, NULL, 0, NULL) == 0, "register");
        tc = tc_connect_fixed(server);
        tc_send_option(tc, OPT_X, NULL, 0);
        tc_replies r;
        tc_option_replies(tc, OPT_X, &r);
        CHECK(r.n == 1 && r.type[0] == NBDSDK_REP_ACK, "ACK");
        tc_replies_free(&r);
        CHECK(strcmp(nbdsdk_conn_get_state_name(tc->conn), "OPT_HEADER") == 0, "nothing to wait for");
        CHECK(nbdsdk_conn_option_reply(tc->conn, NBDSDK_REP_ACK, NULL, 0) == -EINVAL, "no option is open");
        tc_check_in_sync(tc);
        close_disk();
}

TCASE_MAIN(T(deferred_ack_from_another_thread), T(several_replies_in_order), T(deferred_error_carries_its_message),
           T(client_hanging_up_meanwhile), T(handshake_timeout_applies_while_waiting),
           T(client_sending_more_meanwhile_is_dropped), T(final_reply_before_defer_finishes_the_option))
