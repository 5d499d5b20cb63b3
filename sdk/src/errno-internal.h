/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <stdbool.h>
#include <stdint.h>

/* Map a negative errno from a callback onto one of the eight NBD error values
 * (spec "Error values"). ENOTSUP is only legal for FAST_ZERO requests and
 * EOVERFLOW for DF reads: callers say whether those are allowed; otherwise
 * both become EINVAL. */
uint32_t errno_to_nbd(int negative_errno, bool allow_enotsup, bool allow_eoverflow);
