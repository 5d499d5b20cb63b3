/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request stages (nbdsdk_stage(3)): the registry, each connection's compiled
 * chains, and the per-request pipeline around the data path. */
#pragma once

#include <stdbool.h>
#include <nbdsdk/nbdsdk.h>

#define STAGE_POINTS 4

typedef struct stage_entry {
        struct nbdsdk_stage st;
        void *userdata;
        unsigned order;          /* registration order, for ties */
} stage_entry;

/* Per connection: the stages included, per point, in running order. */
typedef struct {
        const stage_entry **v[STAGE_POINTS];
        size_t n[STAGE_POINTS];
        char *text;              /* for nbdsdk_conn_get_stage_chain */
} stage_chain;

/* Sort the registry once the server starts. */
void stages_seal(nbdsdk_server *server);
/* Build CONN's chains when transmission starts. Returns 0 or -ENOMEM. */
int stage_chain_compile(nbdsdk_conn *conn);
void stage_chain_fini(stage_chain *c);
/* RECEIVED stages; returns 0 or the NBD error refusing the request. */
uint32_t stages_received(nbdsdk_request *req, const char **retmsg);
/* BEFORE_DATA stages, the data path, AFTER_DATA stages. RESULT is what the
 * last deferred step finished with. Returns true when done (*retresult set),
 * false while something waits. */
bool request_pipeline_run(nbdsdk_request *req, int result, int *retresult);
/* AFTER_REPLY stages, once the reply has been written. */
void stages_after_reply(nbdsdk_request *req);
