/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Request stages: functions run at chosen points of every request's life,
 * each able to skip ahead, wait, or fail the request. See nbdsdk_stage(3). */
#ifndef NBDSDK_STAGE_H
#define NBDSDK_STAGE_H

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-slot.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Where a stage runs. */
#define NBDSDK_STAGE_RECEIVED    0 /* header read, before validation and payload */
#define NBDSDK_STAGE_BEFORE_DATA 1 /* a valid request, before the data path */
#define NBDSDK_STAGE_AFTER_DATA  2 /* the data path's result is known, before the reply */
#define NBDSDK_STAGE_AFTER_REPLY 3 /* the reply has been sent */

/* Verdicts of a stage's run (besides NBDSDK_DEFER and a negative errno). */
#define NBDSDK_CONTINUE 0          /* nothing to do here: go on */
#define NBDSDK_HANDLED  2          /* this stage produced the result: skip ahead */

/* For struct nbdsdk_stage.commands. */
#define NBDSDK_COMMAND_BIT(type) (UINT64_C(1) << (type))

struct nbdsdk_stage {
        const char *name;
        int point;               /* NBDSDK_STAGE_* */
        int priority;            /* lower runs first; ties in registration order */
        uint64_t commands;       /* NBDSDK_COMMAND_BIT()s of the commands it is for; 0: all */
        uint32_t request_flags;  /* run only for requests with all these NBDSDK_FUA ... flags */
        /* Per connection, when transmission starts: 1 to include the stage in
         * this connection's chain, 0 to leave it out (it then costs nothing).
         * NULL: always included. */
        int (*enabled)(nbdsdk_conn *conn, void *userdata);
        int (*run)(nbdsdk_request *req, void *userdata);
};

/* Register STAGE (copied; STAGE_SIZE is sizeof(struct nbdsdk_stage)). RETSLOT
 * (may be NULL) receives a slot that undoes the registration (nbdsdk_slot(3)).
 * Returns 0, -EINVAL (NULL, no name or run, unknown point), -EBUSY (the
 * server runs), -ENOMEM. */
int nbdsdk_server_add_stage(nbdsdk_server *server, const struct nbdsdk_stage *stage, size_t stage_size,
                            void *userdata, nbdsdk_slot **retslot);

/* After a stage returned NBDSDK_DEFER: continue with the next stage (from any
 * thread; nbdsdk_request_complete(req, error) instead finishes the stage as
 * HANDLED with that result). Returns 0, -EINVAL, -EALREADY (not deferred). */
int nbdsdk_request_resume(nbdsdk_request *req);
/* The data path's result so far (0 or a negative errno), for AFTER_DATA and
 * AFTER_REPLY stages. */
int nbdsdk_request_get_result(nbdsdk_request *req);

/* Flags of the connection's own, for the author's conditions (e.g. set by an
 * option handler, read by a stage's enabled callback). set_flags sets the
 * bits of MASK to those of VALUES; returns 0 or -EINVAL. */
int nbdsdk_conn_set_flags(nbdsdk_conn *conn, uint32_t mask, uint32_t values);
uint32_t nbdsdk_conn_get_flags(nbdsdk_conn *conn);
/* The connection's compiled stage chain, e.g. "before_data: auth, cache;
 * after_reply: stats" ("" before transmission or without stages). */
const char *nbdsdk_conn_get_stage_chain(nbdsdk_conn *conn);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
