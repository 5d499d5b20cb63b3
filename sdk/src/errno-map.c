/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <nbdsdk/nbdsdk-protocol.h>
#include "errno-internal.h"

uint32_t errno_to_nbd(int negative_errno, bool allow_enotsup, bool allow_eoverflow) {
        switch (-negative_errno) {
        case EPERM: case EROFS: case EACCES:
                return NBDSDK_EPERM;
        case EIO:
                return NBDSDK_EIO;
        case ENOMEM:
                return NBDSDK_ENOMEM;
        case ENOSPC: case EDQUOT: case EFBIG:
                return NBDSDK_ENOSPC;
        case EOVERFLOW:
                return allow_eoverflow ? NBDSDK_EOVERFLOW : NBDSDK_EINVAL;
        case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
        case EOPNOTSUPP:
#endif
                return allow_enotsup ? NBDSDK_ENOTSUP : NBDSDK_EINVAL;
        case ESHUTDOWN:
                return NBDSDK_ESHUTDOWN;
        default:
                return NBDSDK_EINVAL;
        }
}
