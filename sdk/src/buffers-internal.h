/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server's stash of large request buffers (buffers.c). */
#pragma once

#include <pthread.h>
#include <stddef.h>

/* Buffers smaller than this are freed: malloc hands their memory out again
 * from its heap. Larger ones come from fresh mmap'd pages, whose first touch
 * is what a new connection's big reads and writes would pay. */
#define STASH_MIN_BUFFER (64u << 10)
#define STASH_MAX_BUFFERS 256
#define STASH_MAX_BYTES (64u << 20)

typedef struct {
        void *buf;
        size_t cap;
} stashed_buffer;

/* Buffers kept for any connection of the server, from connections that
 * ended or had more than their own cache keeps. Any thread. */
typedef struct {
        pthread_mutex_t lock;
        stashed_buffer v[STASH_MAX_BUFFERS];
        size_t n;
        size_t bytes;
} buffer_stash;

/* A data buffer of SIZE bytes that starts on a page (on a cache line below
 * 4 KiB), for free(); NULL if out of memory. */
void *buffer_alloc(size_t size);

void buffer_stash_init(buffer_stash *stash);
/* Free every buffer kept. */
void buffer_stash_fini(buffer_stash *stash);
/* The smallest buffer kept of at least SIZE bytes (of equal ones, the one
 * given last), taken out of the stash (its size in *RETCAP), or NULL (always
 * for SIZE below STASH_MIN_BUFFER). */
void *buffer_stash_take(buffer_stash *stash, size_t size, size_t *retcap);
/* Keep BUF (CAP bytes, from buffer_alloc; NULL is ignored) or free it: small ones,
 * and those over the stash's bounds, are freed. */
void buffer_stash_give(buffer_stash *stash, void *buf, size_t cap);
