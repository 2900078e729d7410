/* error.c — thread-local last-error message and status helpers. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char sp_errbuf[1024];

const char *sp_last_error(void) { return sp_errbuf; }

void sp_set_error_message(const char *msg) {
    if (!msg) msg = "";
    snprintf(sp_errbuf, sizeof sp_errbuf, "%s", msg);
}

sp_status sp_error(sp_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp_errbuf, sizeof sp_errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *sp_version(void) { return "0.1.0"; }
