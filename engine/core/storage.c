/* storage.c — refcounted byte buffers behind tensors: memory of one device (allocated
 * through that device) or adopted host memory. */
#include "core/internal.h"
#include "core/device.h"

#include <stdlib.h>
#include <string.h>

/* storage ids (sp_storage.id): from 1, never reused */
static atomic_uint_fast64_t next_id = 1;
static void track_init(sp_storage *s) {
    s->id = atomic_fetch_add(&next_id, 1);
    atomic_init(&s->dirty, 1); /* new bytes: nothing derived from them yet */
    atomic_init(&s->exposed, 0);
}

sp_storage *sp_storage_new(sp_device *dev, size_t nbytes, int zero) {
    sp_storage *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = dev->alloc(dev, nbytes, zero);
    if (!s->data) { free(s); return NULL; }
    s->nbytes = nbytes;
    s->owned = 1;
    s->dev = dev;
    atomic_init(&s->refcount, 1);
    track_init(s);
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
    track_init(s);
    return s;
}

void sp_storage_retain(sp_storage *s) { atomic_fetch_add(&s->refcount, 1); }

void sp_storage_release(sp_storage *s) {
    if (!s) return;
    if (atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->cached) sp_cpu_wcache_drop(s); /* the derived copies die with the bytes */
    if (s->owned) s->dev->free(s->dev, s->data, s->nbytes);
    else if (s->release) s->release(s->ctx);
    free(s);
}
