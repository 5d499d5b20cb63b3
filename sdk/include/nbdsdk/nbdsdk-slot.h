/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slots: what a registration (an option, a command, a metadata namespace, a
 * config key, a stage) hands back, to undo it later. See nbdsdk_slot(3). */
#ifndef NBDSDK_SLOT_H
#define NBDSDK_SLOT_H

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* A slot belongs to the server it was made on: it is valid until it is
 * dropped or the server is freed, whichever comes first. */
typedef struct nbdsdk_slot nbdsdk_slot;

/* Undo the registration SLOT came from, and free SLOT. Dropping an option
 * registered with NBDSDK_OPTION_REPLACE brings back the handler it replaced.
 * Returns 0, -EINVAL (NULL), -EBUSY (the server runs: the registration and
 * the slot stay). */
int nbdsdk_slot_drop(nbdsdk_slot *slot);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
