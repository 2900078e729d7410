/* storage.c — refcounted byte buffers behind tensors (own or adopted memory). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

sp_storage *sp_storage_new(size_t nbytes, int zero) {
    sp_storage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = sp_alloc_bytes(nbytes);
    if (!s->data) { free(s); return NULL; }
    if (zero && nbytes < (size_t)256 * 1024) memset(s->data, 0, nbytes); /* mmap'd blocks are zero */
    s->nbytes = nbytes;
    s->owned = 1;
    atomic_init(&s->refcount, 1);
    return s;
}

sp_storage *sp_storage_adopt(void *data, size_t nbytes, sp_release_fn release, void *ctx) {
    sp_storage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = data;
    s->nbytes = nbytes;
    s->release = release;
    s->ctx = ctx;
    atomic_init(&s->refcount, 1);
    return s;
}

void sp_storage_retain(sp_storage *s) { atomic_fetch_add(&s->refcount, 1); }

void sp_storage_release(sp_storage *s) {
    if (!s) return;
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->owned) sp_free_bytes(s->data, s->nbytes);
    else if (s->release) s->release(s->ctx);
    free(s);
}
