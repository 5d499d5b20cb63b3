/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An sd-event loop as one GSource: GLib's prepare, check and dispatch steps
 * are sd-event's, and GLib polls the loop's epoll descriptor. */
#include <errno.h>
#include <nbdsdk/nbdsdk-glib.h>
#include <nbdsdk/nbdsdk-poll.h>
#include "glue-internal.h"

typedef struct {
        GSource source;
        sd_event *event;
} event_source;

static gboolean es_prepare(GSource *source, gint *timeout) {
        struct pollfd unused;
        *timeout = -1; /* the loop's timers are inside its descriptor */
        /* Errors (an exited loop) are "ready": dispatch removes the source. */
        return nbdsdk_poll_prepare(((event_source *) source)->event, &unused) != 0;
}

static gboolean es_check(GSource *source) {
        return glue_check(((event_source *) source)->event) != 0;
}

/* Once the loop has exited (or failed), the callback hears of it and the
 * source goes away. */
static gboolean es_dispatch(GSource *source, GSourceFunc callback, gpointer user_data) {
        sd_event *event = ((event_source *) source)->event;
        if (nbdsdk_poll_dispatch(event) >= 0 && sd_event_get_state(event) != SD_EVENT_FINISHED)
                return G_SOURCE_CONTINUE;
        if (callback)
                callback(user_data);
        return G_SOURCE_REMOVE;
}

static void es_finalize(GSource *source) {
        sd_event_unref(((event_source *) source)->event);
}

static GSourceFuncs event_source_funcs = {
        .prepare = es_prepare,
        .check = es_check,
        .dispatch = es_dispatch,
        .finalize = es_finalize,
};

int nbdsdk_glib_source_new(sd_event *event, GSource **retsource) {
        if (!event || !retsource)
                return -EINVAL;
        int fd = sd_event_get_fd(event);
        if (fd < 0)
                return fd;
        GSource *source = g_source_new(&event_source_funcs, sizeof(event_source));
        ((event_source *) source)->event = sd_event_ref(event);
        g_source_set_name(source, "nbdsdk sd-event");
        g_source_add_unix_fd(source, fd, G_IO_IN);
        *retsource = source;
        return 0;
}
