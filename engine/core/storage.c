/* storage.c — refcounted byte buffers behind tensors: memory of one device (allocated
 * through that device) or adopted host memory. */
#include "core/internal.h"
#include "core/device.h"

#include <stdlib.h>
#include <string.h>

sp_storage *sp_storage_new(sp_device *dev, size_t nbytes, int zero) {
    sp_storage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = dev->alloc(dev, nbytes, zero);
    if (!s->data) { free(s); return NULL; }
    s->nbytes = nbytes;
    s->owned = 1;
    s->dev = dev;
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
    s->dev = sp_device_cpu();
    atomic_init(&s->refcount, 1);
    return s;
}

void sp_storage_retain(sp_storage *s) { atomic_fetch_add(&s->refcount, 1); }

void sp_storage_release(sp_storage *s) {
    if (!s) return;
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->owned) s->dev->free(s->dev, s->data, s->nbytes);
    else if (s->release) s->release(s->ctx);
    free(s);
}
