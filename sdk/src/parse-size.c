/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sizes on command lines: "4096", "512M", "1G", "2TiB" (binary units). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <nbdsdk/nbdsdk-main.h>

int nbdsdk_parse_size(const char *text, uint64_t *retbytes) {
        if (!text || !retbytes || !isdigit((unsigned char) text[0]))
                return -EINVAL;
        char *end;
        errno = 0;
        unsigned long long n = strtoull(text, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        static const char units[] = "KMGTPE";
        unsigned shift = 0;
        if (*end) {
                const char *u = NULL;
                for (const char *p = units; *p; p++)
                        if (toupper((unsigned char) *end) == *p)
                                u = p;
                if (u) {
                        shift = 10 * (unsigned) (u - units + 1);
                        end++;
                }
                /* Optional "B" or "iB" after the unit; a bare "B" means bytes. */
                if (strcasecmp(end, "iB") == 0 && u)
                        end += 2;
                else if (strcasecmp(end, "B") == 0)
                        end += 1;
                if (*end)
                        return -EINVAL;
        }
        if (n > ((uint64_t) INT64_MAX >> shift))
                return -ERANGE;
        *retbytes = (uint64_t) n << shift;
        return 0;
}
