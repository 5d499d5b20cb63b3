/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running an sd-event loop, and the servers attached to it, inside a GLib
 * main loop. Not included by <nbdsdk/nbdsdk.h>: build with
 * $(pkg-config --cflags --libs nbdsdk glib-2.0). See nbdsdk_glib(3). */
#ifndef NBDSDK_GLIB_H
#define NBDSDK_GLIB_H

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

struct sd_event; /* sd_event from <systemd/sd-event.h> */

/* A new GSource (one reference, for the caller) that runs EVENT, which it
 * keeps a reference to, in whatever GMainContext the source is attached to.
 * Once EVENT has exited, the source calls its callback, if one was set with
 * g_source_set_callback() (a GSourceFunc; its result is ignored), and
 * removes itself. Returns 0, -EINVAL (NULL arguments) or -errno from
 * sd_event_get_fd(). */
int nbdsdk_glib_source_new(struct sd_event *event, GSource **retsource);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
