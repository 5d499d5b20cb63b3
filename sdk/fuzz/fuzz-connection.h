/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Run one connection on DATA (first byte: export shape; rest: client bytes). */
int fuzz_one(const uint8_t *data, size_t size);
