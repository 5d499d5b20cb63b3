/* qemu-like's own messages. nbdsdk_error() would name the program "nbdsdk" here:
 * only nbdsdk_main() tells the library the program's name. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "qemu-like.h"

int ql_error(const char *format, ...) {
        int saved = errno;
        va_list ap;
        va_start(ap, format);
        fputs("qemu-like: ", stderr);
        vfprintf(stderr, format, ap);
        fputc('\n', stderr);
        va_end(ap);
        errno = saved;
        return 1;
}
