/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD wire constants, taken from the NBD specification (doc/proto.md in the
 * NetworkBlockDevice/nbd repository, master plus the extension-ext-header branch).
 * Every name carries the NBDSDK_ prefix so that it cannot clash with <linux/nbd.h>. */
#ifndef NBDSDK_PROTOCOL_H
#define NBDSDK_PROTOCOL_H

#include <stdint.h>

/* Magics (spec: "Handshake phase" and "Transmission phase"). */
#define NBDSDK_MAGIC_INIT            UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBDSDK_MAGIC_OPTS            UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBDSDK_MAGIC_OPT_REPLY       UINT64_C(0x0003e889045565a9)
#define NBDSDK_MAGIC_REQUEST         UINT32_C(0x25609513)
#define NBDSDK_MAGIC_EXT_REQUEST     UINT32_C(0x21e41c71)
#define NBDSDK_MAGIC_SIMPLE_REPLY    UINT32_C(0x67446698)
#define NBDSDK_MAGIC_STRUCTURED_REPLY UINT32_C(0x668e33ef)
#define NBDSDK_MAGIC_EXT_REPLY       UINT32_C(0x6e8a278c)

/* Handshake flags (server, 16 bits) and client flags (32 bits). */
#define NBDSDK_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBDSDK_FLAG_NO_ZEROES        (1u << 1)
#define NBDSDK_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBDSDK_FLAG_C_NO_ZEROES      (1u << 1)

/* Options (NBD_OPT_*). */
#define NBDSDK_OPT_EXPORT_NAME       1
#define NBDSDK_OPT_ABORT             2
#define NBDSDK_OPT_LIST              3
#define NBDSDK_OPT_PEEK_EXPORT       4
#define NBDSDK_OPT_STARTTLS          5
#define NBDSDK_OPT_INFO              6
#define NBDSDK_OPT_GO                7
#define NBDSDK_OPT_STRUCTURED_REPLY  8
#define NBDSDK_OPT_LIST_META_CONTEXT 9
#define NBDSDK_OPT_SET_META_CONTEXT  10
#define NBDSDK_OPT_EXTENDED_HEADERS  11

/* Option reply types (NBD_REP_*); errors have bit 31 set. */
#define NBDSDK_REP_ACK               UINT32_C(1)
#define NBDSDK_REP_SERVER            UINT32_C(2)
#define NBDSDK_REP_INFO              UINT32_C(3)
#define NBDSDK_REP_META_CONTEXT      UINT32_C(4)
#define NBDSDK_REP_FLAG_ERROR        UINT32_C(0x80000000)
#define NBDSDK_REP_ERR_UNSUP         UINT32_C(0x80000001)
#define NBDSDK_REP_ERR_POLICY        UINT32_C(0x80000002)
#define NBDSDK_REP_ERR_INVALID       UINT32_C(0x80000003)
#define NBDSDK_REP_ERR_PLATFORM      UINT32_C(0x80000004)
#define NBDSDK_REP_ERR_TLS_REQD      UINT32_C(0x80000005)
#define NBDSDK_REP_ERR_UNKNOWN       UINT32_C(0x80000006)
#define NBDSDK_REP_ERR_SHUTDOWN      UINT32_C(0x80000007)
#define NBDSDK_REP_ERR_BLOCK_SIZE_REQD UINT32_C(0x80000008)
#define NBDSDK_REP_ERR_TOO_BIG       UINT32_C(0x80000009)
#define NBDSDK_REP_ERR_EXT_HEADER_REQD UINT32_C(0x8000000a)

/* Information types carried in NBDSDK_REP_INFO. */
#define NBDSDK_INFO_EXPORT           0
#define NBDSDK_INFO_NAME             1
#define NBDSDK_INFO_DESCRIPTION      2
#define NBDSDK_INFO_BLOCK_SIZE       3

/* Transmission flags (16 bits). */
#define NBDSDK_FLAG_HAS_FLAGS        (1u << 0)
#define NBDSDK_FLAG_READ_ONLY        (1u << 1)
#define NBDSDK_FLAG_SEND_FLUSH       (1u << 2)
#define NBDSDK_FLAG_SEND_FUA         (1u << 3)
#define NBDSDK_FLAG_ROTATIONAL       (1u << 4)
#define NBDSDK_FLAG_SEND_TRIM        (1u << 5)
#define NBDSDK_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBDSDK_FLAG_SEND_DF          (1u << 7)
#define NBDSDK_FLAG_CAN_MULTI_CONN   (1u << 8)
#define NBDSDK_FLAG_SEND_RESIZE      (1u << 9)
#define NBDSDK_FLAG_SEND_CACHE       (1u << 10)
#define NBDSDK_FLAG_SEND_FAST_ZERO   (1u << 11)
#define NBDSDK_FLAG_BLOCK_STATUS_PAYLOAD (1u << 12)

/* Commands (NBD_CMD_*). */
#define NBDSDK_CMD_READ              0
#define NBDSDK_CMD_WRITE             1
#define NBDSDK_CMD_DISC              2
#define NBDSDK_CMD_FLUSH             3
#define NBDSDK_CMD_TRIM              4
#define NBDSDK_CMD_CACHE             5
#define NBDSDK_CMD_WRITE_ZEROES      6
#define NBDSDK_CMD_BLOCK_STATUS      7
#define NBDSDK_CMD_RESIZE            8

/* Command flags (16 bits). */
#define NBDSDK_CMD_FLAG_FUA          (1u << 0)
#define NBDSDK_CMD_FLAG_NO_HOLE      (1u << 1)
#define NBDSDK_CMD_FLAG_DF           (1u << 2)
#define NBDSDK_CMD_FLAG_REQ_ONE      (1u << 3)
#define NBDSDK_CMD_FLAG_FAST_ZERO    (1u << 4)
#define NBDSDK_CMD_FLAG_PAYLOAD_LEN  (1u << 5)

/* Structured reply flags and chunk types. */
#define NBDSDK_REPLY_FLAG_DONE       (1u << 0)
#define NBDSDK_REPLY_TYPE_NONE       0
#define NBDSDK_REPLY_TYPE_OFFSET_DATA 1
#define NBDSDK_REPLY_TYPE_OFFSET_HOLE 2
#define NBDSDK_REPLY_TYPE_BLOCK_STATUS 5       /* 5 per the spec; not 3 */
#define NBDSDK_REPLY_TYPE_BLOCK_STATUS_EXT 6
#define NBDSDK_REPLY_TYPE_ERROR      ((1u << 15) + 1)
#define NBDSDK_REPLY_TYPE_ERROR_OFFSET ((1u << 15) + 2)

/* The only error values allowed on the wire. */
#define NBDSDK_EPERM                 1
#define NBDSDK_EIO                   5
#define NBDSDK_ENOMEM                12
#define NBDSDK_EINVAL                22
#define NBDSDK_ENOSPC                28
#define NBDSDK_EOVERFLOW             75
#define NBDSDK_ENOTSUP               95
#define NBDSDK_ESHUTDOWN             108

/* base:allocation status bits. */
#define NBDSDK_STATE_HOLE            (1u << 0)
#define NBDSDK_STATE_ZERO            (1u << 1)

/* Sizes. */
#define NBDSDK_MAX_STRING            4096  /* longest string the spec allows */
#define NBDSDK_DEFAULT_PORT          10809

#endif
