/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nbdsdk: a library for writing NBD servers. See nbdsdk(3). */
#ifndef NBDSDK_H
#define NBDSDK_H

#include <errno.h> /* callbacks return 0 or -errno */
#include <nbdsdk/nbdsdk-protocol.h>
#include <nbdsdk/nbdsdk-ops.h>
#include <nbdsdk/nbdsdk-server.h>
#include <nbdsdk/nbdsdk-export.h>
#include <nbdsdk/nbdsdk-conn.h>
#include <nbdsdk/nbdsdk-request.h>
#include <nbdsdk/nbdsdk-main.h>
#include <nbdsdk/nbdsdk-log.h>
#include <nbdsdk/nbdsdk-slot.h>
#include <nbdsdk/nbdsdk-option.h>
#include <nbdsdk/nbdsdk-command.h>
#include <nbdsdk/nbdsdk-meta.h>
#include <nbdsdk/nbdsdk-config.h>
#include <nbdsdk/nbdsdk-stage.h>
#include <nbdsdk/nbdsdk-layer.h>
#include <nbdsdk/nbdsdk-poll.h>
#include <nbdsdk/nbdsdk-tls.h>

#define NBDSDK_VERSION_MAJOR 0
#define NBDSDK_VERSION_MINOR 1

#endif
