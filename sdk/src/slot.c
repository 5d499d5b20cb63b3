/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Slots: a registration's handle for undoing it. The server keeps every
 * slot in a list and frees them with itself; the registries know nothing
 * of slots beyond the remove function each kind supplies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "server-internal.h"
#include "slot-internal.h"

nbdsdk_slot *slot_new(nbdsdk_server *server, void (*remove)(nbdsdk_slot *slot)) {
        nbdsdk_slot *slot = calloc(1, sizeof *slot);
        if (slot) {
                slot->server = server;
                slot->remove = remove;
        }
        return slot;
}

int slot_commit(nbdsdk_slot *slot, int r, uint64_t id, const void *ptr, nbdsdk_slot **retslot) {
        if (r < 0 || !slot) {
                free(slot);
                return r;
        }
        nbdsdk_server *s = slot->server;
        slot->id = id;
        slot->ptr = ptr;
        slot->next = s->slots;
        if (s->slots)
                s->slots->prev = slot;
        s->slots = slot;
        *retslot = slot;
        return 0;
}

void slot_array_remove(void *array, size_t *n, size_t size, void *element) {
        size_t i = (size_t) ((char *) element - (char *) array) / size;
        memmove(element, (char *) element + size, (*n - i - 1) * size);
        (*n)--;
}

void slots_free(nbdsdk_server *s) {
        while (s->slots) {
                nbdsdk_slot *next = s->slots->next;
                free(s->slots);
                s->slots = next;
        }
}

int nbdsdk_slot_drop(nbdsdk_slot *slot) {
        if (!slot)
                return -EINVAL;
        nbdsdk_server *s = slot->server;
        if (s->running)
                return -EBUSY; /* lookups take no locks: the registries are frozen */
        slot->remove(slot);
        if (slot->prev)
                slot->prev->next = slot->next;
        else
                s->slots = slot->next;
        if (slot->next)
                slot->next->prev = slot->prev;
        free(slot);
        return 0;
}
