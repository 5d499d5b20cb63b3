/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state most unit tests share: one test disk, a server on it and, in
 * transmission tests, one client connection in a chosen reply mode. */
#pragma once

#include "tclient.h"
#include "testdisk.h"

extern testdisk *td;
extern nbdsdk_server *server;
extern tclient *tc;
extern uint16_t eflags;          /* transmission flags from open_disk() */
extern const char *mode;         /* the reply mode's name, for messages */

#define DISK_SIZE (1 << 20)

/* The disk (a DISK_SIZE one with the defaults, unless the test made TD
 * already to configure it) and a server on it (likewise). */
void disk_setup(void);
/* Drop the server and free the disk. */
void disk_teardown(void);

/* disk_setup(), then connect: greeting read, FIXED_NEWSTYLE | NO_ZEROES sent. */
void open_handshake(void);
/* disk_setup(), then connect, negotiate M (and base:allocation when META),
 * GO, and clear the backend log. */
void open_disk(tc_mode m, bool meta);
/* Hang up TC, then disk_teardown(). */
void close_disk(void);

/* The backend saw exactly these calls (one letter each, see testdisk.h). */
void expect_log(const char *want);
/* A byte pattern that depends on SEED. */
void fill(uint8_t *buf, size_t len, unsigned seed);

/* A test NAME that runs NAME_in(m) in every reply mode, or in those with
 * structured replies. */
#define ALL_MODES(name) \
        static void name(void) { for (tc_mode m = TC_SIMPLE; m < TC_MODES; m++) name##_in(m); }
#define STRUCTURED_MODES(name) \
        static void name(void) { for (tc_mode m = TC_STRUCTURED; m < TC_MODES; m++) name##_in(m); }
