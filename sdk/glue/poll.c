/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An sd-event loop run by someone else's poll(): prepare (which arms the
 * loop's timers inside its epoll descriptor), the host's wait, check,
 * dispatch. Polling that descriptor without preparing each time would miss
 * timers added while dispatching, such as a new connection's handshake
 * deadline. */
#include <errno.h>
#include <nbdsdk/nbdsdk-poll.h>
#include "glue-internal.h"

int glue_check(sd_event *event) {
        int state = sd_event_get_state(event);
        if (state == SD_EVENT_ARMED)
                return sd_event_wait(event, 0);
        return state < 0 ? state : state == SD_EVENT_PENDING;
}

int nbdsdk_poll_prepare(sd_event *event, struct pollfd *retpfd) {
        if (!event || !retpfd)
                return -EINVAL;
        /* Pending already, or prepared before but never checked: look first. */
        int r = glue_check(event);
        if (r == 0)
                r = sd_event_prepare(event);
        if (r < 0)
                return r;
        *retpfd = (struct pollfd) { .fd = sd_event_get_fd(event), .events = POLLIN };
        return r > 0;
}

int nbdsdk_poll_dispatch(sd_event *event) {
        if (!event)
                return -EINVAL;
        int r = glue_check(event);
        if (r > 0)
                r = sd_event_dispatch(event);
        return r < 0 ? r : r > 0;
}
