/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running an sd-event loop, and the servers attached to it, from a plain
 * poll() loop. See nbdsdk_poll(3). */
#ifndef NBDSDK_POLL_H
#define NBDSDK_POLL_H

#include <poll.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

struct sd_event; /* sd_event from <systemd/sd-event.h> */

/* Call before each poll(). Arms EVENT's timers and sets *RETPFD to the one
 * descriptor to poll (POLLIN). Returns 0 when the host may wait, 1 when
 * something is already pending (poll without waiting, then dispatch),
 * -ESTALE once EVENT has exited (sd_event_exit(), nbdsdk_server_shutdown()
 * with EXIT_LOOP), or another -errno from sd-event. */
int nbdsdk_poll_prepare(struct sd_event *event, struct pollfd *retpfd);

/* Call after each poll(): dispatches one pending source of EVENT. Returns 1
 * when one was dispatched, 0 when nothing was pending (or EVENT has just
 * exited), or -errno from sd-event. */
int nbdsdk_poll_dispatch(struct sd_event *event);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
