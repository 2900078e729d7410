/* error.h — engine-private error helper (not part of the public API or the FFI). */
#ifndef SPORE_ERROR_H
#define SPORE_ERROR_H

#include "spore.h"

/* Set the thread's last-error message (printf format) and return code. */
sp_status sp_error(sp_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
