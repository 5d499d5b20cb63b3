/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request stages: registered per server, compiled per connection when
 * transmission starts (a stage whose condition is false for the connection
 * is left out of its chain), and run around the data path with the verdicts
 * CONTINUE, HANDLED, DEFER or -errno. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "conn-internal.h"
#include "errno-internal.h"
#include "log-internal.h"
#include "request-internal.h"
#include "server-internal.h"
#include "slot-internal.h"

enum { PHASE_BEFORE, PHASE_DATA, PHASE_AFTER, PHASE_DONE };

static const char *const point_names[STAGE_POINTS] = { "received", "before_data", "after_data", "after_reply" };

static void stage_slot_remove(nbdsdk_slot *slot) {
        nbdsdk_server *s = slot->server;
        for (size_t i = 0; i < s->n_stages; i++)
                if (s->stages[i].order == slot->id) {
                        slot_array_remove(s->stages, &s->n_stages, sizeof *s->stages, &s->stages[i]);
                        return;
                }
}

int nbdsdk_server_add_stage(nbdsdk_server *s, const struct nbdsdk_stage *stage, size_t stage_size, void *userdata,
                            nbdsdk_slot **retslot) {
        if (!s || !stage || stage_size < offsetof(struct nbdsdk_stage, run) + sizeof(void *))
                return -EINVAL;
        struct nbdsdk_stage st = { 0 };
        memcpy(&st, stage, stage_size < sizeof st ? stage_size : sizeof st);
        if (!st.name || !st.run || st.point < 0 || st.point >= STAGE_POINTS)
                return -EINVAL;
        if (s->running)
                return -EBUSY;
        nbdsdk_slot *slot = NULL;
        if (retslot && !(slot = slot_new(s, stage_slot_remove)))
                return -ENOMEM;
        /* Until the server starts the registry is in registration order, so
         * the last entry has the highest order, even after drops. */
        unsigned order = s->n_stages ? s->stages[s->n_stages - 1].order + 1 : 0;
        stage_entry *v = realloc(s->stages, (s->n_stages + 1) * sizeof *v);
        if (v) {
                s->stages = v;
                v[s->n_stages++] = (stage_entry) { .st = st, .userdata = userdata, .order = order };
        }
        return slot_commit(slot, v ? 0 : -ENOMEM, order, NULL, retslot);
}

static int stage_cmp(const void *a, const void *b) {
        const stage_entry *x = a, *y = b;
        if (x->st.point != y->st.point)
                return x->st.point < y->st.point ? -1 : 1;
        if (x->st.priority != y->st.priority)
                return x->st.priority < y->st.priority ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

void stages_seal(nbdsdk_server *s) {
        if (s->n_stages)
                qsort(s->stages, s->n_stages, sizeof *s->stages, stage_cmp);
}

void stage_chain_fini(stage_chain *c) {
        for (int p = 0; p < STAGE_POINTS; p++)
                free(c->v[p]);
        free(c->text);
        *c = (stage_chain) { 0 };
}

int stage_chain_compile(nbdsdk_conn *conn) {
        nbdsdk_server *s = conn->server;
        stage_chain *c = &conn->chain;
        stage_chain_fini(c);
        size_t textlen = 1;
        for (size_t i = 0; i < s->n_stages; i++) {
                const stage_entry *e = &s->stages[i];
                if (e->st.enabled && e->st.enabled(conn, e->userdata) <= 0)
                        continue; /* compiled out: costs this connection nothing */
                int p = e->st.point;
                const stage_entry **v = realloc(c->v[p], (c->n[p] + 1) * sizeof *v);
                if (!v)
                        return -ENOMEM;
                c->v[p] = v;
                v[c->n[p]++] = e;
                textlen += strlen(e->st.name) + 16;
        }
        if (!(c->text = malloc(textlen)))
                return -ENOMEM;
        char *t = c->text;
        *t = '\0';
        for (int p = 0; p < STAGE_POINTS; p++)
                for (size_t i = 0; i < c->n[p]; i++)
                        t += sprintf(t, "%s%s%s", i ? ", " : t == c->text ? "" : "; ",
                                     i ? "" : point_names[p], i ? "" : ": "),
                        t += sprintf(t, "%s", c->v[p][i]->st.name);
        if (c->text[0])
                log_debug("conn %llu: stages %s", (unsigned long long) conn->id, c->text);
        return 0;
}

static bool stage_applies(const stage_entry *e, const nbdsdk_request *req) {
        uint64_t bit = req->type < 64 ? NBDSDK_COMMAND_BIT(req->type) : 0;
        if (e->st.commands && !(e->st.commands & bit))
                return false;
        return (req->flags & e->st.request_flags) == e->st.request_flags;
}

/* The next stage of POINT that applies to REQ, from req->stage_index on. */
static const stage_entry *next_stage(nbdsdk_request *req, int point) {
        const stage_chain *c = &req->conn->chain;
        while (req->stage_index < c->n[point]) {
                const stage_entry *e = c->v[point][req->stage_index++];
                if (stage_applies(e, req))
                        return e;
        }
        return NULL;
}

uint32_t stages_received(nbdsdk_request *req, const char **retmsg) {
        req->stage_index = 0;
        for (const stage_entry *e; (e = next_stage(req, NBDSDK_STAGE_RECEIVED));) {
                int r = e->st.run(req, e->userdata);
                if (r < 0) {
                        *retmsg = "refused by a request stage";
                        return errno_to_nbd(r, false, false);
                }
                if (r != NBDSDK_CONTINUE)
                        log_error("stage %s returned %d at \"received\", where only CONTINUE or -errno apply",
                                  e->st.name, r);
        }
        req->stage_index = 0;
        return 0;
}

/* Run one stage; the request may be resumed from another thread as soon as
 * the stage returns NBDSDK_DEFER, so nothing touches it after that. */
static int run_stage(nbdsdk_request *req, const stage_entry *e) {
        req->stage_waiting = true;
        atomic_store(&req->deferred, 1);
        int r = e->st.run(req, e->userdata);
        if (r == NBDSDK_DEFER)
                return r;
        if (!atomic_exchange(&req->deferred, 0)) {
                log_error("stage %s completed its request but returned %d, not NBDSDK_DEFER", e->st.name, r);
                return NBDSDK_DEFER;
        }
        req->stage_waiting = false;
        if (r != NBDSDK_CONTINUE && r != NBDSDK_HANDLED && r >= 0) {
                log_error("stage %s returned %d; stages return CONTINUE, HANDLED, DEFER or -errno", e->st.name, r);
                return -EIO;
        }
        return r;
}

static void enter_after(nbdsdk_request *req, int result) {
        req->data_result = result;
        req->phase = PHASE_AFTER;
        req->stage_index = 0;
}

bool request_pipeline_run(nbdsdk_request *req, int result, int *retresult) {
        for (;;) {
                /* Coming back from a deferred stage: resume continues, complete
                 * finishes the stage as HANDLED with its result. */
                int verdict = NBDSDK_CONTINUE;
                if (req->stage_waiting) {
                        req->stage_waiting = false;
                        verdict = req->resume_continue ? NBDSDK_CONTINUE : result < 0 ? result : NBDSDK_HANDLED;
                }
                switch (req->phase) {
                case PHASE_BEFORE: {
                        const stage_entry *e = verdict == NBDSDK_CONTINUE ? next_stage(req, NBDSDK_STAGE_BEFORE_DATA) : NULL;
                        if (verdict != NBDSDK_CONTINUE) {
                                enter_after(req, verdict < 0 ? verdict : 0);
                                continue;
                        }
                        if (!e) {
                                req->phase = PHASE_DATA;
                                datapath_begin(req);
                                result = 0;
                                continue;
                        }
                        int r = run_stage(req, e);
                        if (r == NBDSDK_DEFER)
                                return false;
                        if (r != NBDSDK_CONTINUE)
                                enter_after(req, r < 0 ? r : 0);
                        continue;
                }
                case PHASE_DATA: {
                        int r;
                        if (!datapath_run(req, result, &r))
                                return false;
                        enter_after(req, r);
                        continue;
                }
                case PHASE_AFTER: {
                        if (verdict != NBDSDK_CONTINUE) {
                                if (verdict < 0)
                                        req->data_result = verdict;
                                req->phase = PHASE_DONE;
                                continue;
                        }
                        const stage_entry *e = next_stage(req, NBDSDK_STAGE_AFTER_DATA);
                        if (!e) {
                                req->phase = PHASE_DONE;
                                continue;
                        }
                        int r = run_stage(req, e);
                        if (r == NBDSDK_DEFER)
                                return false;
                        if (r < 0)
                                req->data_result = r;
                        else if (r == NBDSDK_HANDLED)
                                req->phase = PHASE_DONE;
                        continue;
                }
                default:
                        *retresult = req->data_result;
                        return true;
                }
        }
}

void stages_after_reply(nbdsdk_request *req) {
        req->stage_index = 0;
        for (const stage_entry *e; (e = next_stage(req, NBDSDK_STAGE_AFTER_REPLY));) {
                int r = e->st.run(req, e->userdata);
                if (r == NBDSDK_DEFER)
                        log_error("stage %s deferred at \"after_reply\", where nothing waits", e->st.name);
        }
}

int nbdsdk_request_resume(nbdsdk_request *req) {
        if (!req)
                return -EINVAL;
        if (!atomic_exchange(&req->deferred, 0))
                return -EALREADY;
        req->resume_continue = true;
        req->resume_result = 0;
        server_queue_completion(req->conn->server, req);
        return 0;
}

int nbdsdk_request_get_result(nbdsdk_request *req) {
        return req ? req->data_result : -EINVAL;
}

int nbdsdk_conn_set_flags(nbdsdk_conn *conn, uint32_t mask, uint32_t values) {
        if (!conn)
                return -EINVAL;
        conn->user_flags = (conn->user_flags & ~mask) | (values & mask);
        return 0;
}

uint32_t nbdsdk_conn_get_flags(nbdsdk_conn *conn) {
        return conn ? conn->user_flags : 0;
}

const char *nbdsdk_conn_get_stage_chain(nbdsdk_conn *conn) {
        return conn && conn->chain.text ? conn->chain.text : "";
}
