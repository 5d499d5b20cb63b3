/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slots (slot.c). Each registration kind gives its slots a function that
 * undoes one registration, and a number or pointer telling it which. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <nbdsdk/nbdsdk.h>

struct nbdsdk_slot {
        nbdsdk_server *server;
        nbdsdk_slot *prev, *next;          /* the server's slots */
        void (*remove)(nbdsdk_slot *slot); /* undoes the registration */
        uint64_t id;                       /* which one: a number (option, command, stage) ... */
        const void *ptr;                   /* ... or something it owns (an entry, a key) */
};

/* For a registration about to be made on SERVER (made first, so that a
 * registration never fails for want of its slot): a slot that REMOVE will
 * undo. NULL when out of memory. */
nbdsdk_slot *slot_new(nbdsdk_server *server, void (*remove)(nbdsdk_slot *slot));
/* End the registration: when R is 0, fill SLOT (NULL if the caller wants
 * none) with ID and PTR and hand it out in *RETSLOT; otherwise free it.
 * Returns R. */
int slot_commit(nbdsdk_slot *slot, int r, uint64_t id, const void *ptr, nbdsdk_slot **retslot);
/* Registries are arrays: take ELEMENT out of ARRAY, which has *N elements of SIZE bytes. */
void slot_array_remove(void *array, size_t *n, size_t size, void *element);
/* Free every slot of SERVER (its registrations stay). */
void slots_free(nbdsdk_server *server);
