/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the poll and GLib glue share. */
#ifndef NBDSDK_GLUE_INTERNAL_H
#define NBDSDK_GLUE_INTERNAL_H

#include <systemd/sd-event.h>

/* After the host's wait: 1 when EVENT has a source ready to dispatch, 0 when
 * not (or when it was not prepared), -errno. */
int glue_check(sd_event *event);

#endif
