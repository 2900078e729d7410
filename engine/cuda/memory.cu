// memory.cu — CUDA devices: one stream per device, a caching allocator by size class
// (empties itself and retries once on out-of-memory), double-buffered pinned staging for
// large host<->device copies, and scratch memory for kernels.
//
// Ordering: every kernel and copy of a device runs on that device's one stream, so a
// freed block handed out again is only touched by work queued after the work that used
// it; no event per block is needed. cudaFree (emptying the cache) synchronises the device.
#include "cuda_internal.cuh"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

namespace {

// Size classes: 512 B, then four classes per power of two (2^k * {1.25, 1.5, 1.75, 2}):
// a block wastes at most a quarter of its size.
const int NCLASS = 200;
size_t class_of(size_t n, int *ci) {
    if (n <= 512) { *ci = 0; return 512; }
    int k = 63 - __builtin_clzll((unsigned long long)(n - 1)); // 2^k < n <= 2^(k+1)
    size_t base = (size_t)1 << k, step = base >> 2;
    size_t q = (n - base + step - 1) / step; // 1..4
    *ci = (k - 9) * 4 + (int)q;
    return base + q * step;
}

struct block { void *p; block *next; };

const size_t STAGE_BYTES = (size_t)8 << 20; // each of the two pinned staging buffers
const size_t STAGE_MIN = (size_t)1 << 20;   // copies from this size go through staging

struct device {
    spc_ctx ctx;
    int init;          // 0 not tried, 1 ready, -1 failed
    pthread_mutex_t mu; // the free lists and the cached byte count
    block *free_[NCLASS];
    size_t cached;
    pthread_mutex_t stage_mu; // the staging buffers
    void *stage[2];
    cudaEvent_t stage_ev[2];
    int stage_ok;      // 1 allocated, -1 could not be (direct copies instead)
};

device g_dev[SPC_MAX_DEVICES];
pthread_mutex_t g_init_mu = PTHREAD_MUTEX_INITIALIZER;
int g_count = -1;

int device_count(void) {
    pthread_mutex_lock(&g_init_mu);
    if (g_count < 0) {
        int n = 0;
        if (cudaGetDeviceCount(&n) != cudaSuccess) { (void)cudaGetLastError(); n = 0; }
        g_count = n > SPC_MAX_DEVICES ? SPC_MAX_DEVICES : n;
    }
    pthread_mutex_unlock(&g_init_mu);
    return g_count;
}

sp_status set_device(int dev) {
    static __thread int current = -1;
    if (current == dev) return SP_OK;
    cudaError_t e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sp_error(SP_EDEVICE, "cuda:%d: cudaSetDevice: %s (%s)", dev, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    current = dev;
    return SP_OK;
}

sp_status init_device(int dev) {
    int n = device_count();
    if (dev < 0 || dev >= n)
        return sp_error(SP_EDEVICE, "device cuda:%d is not available: %s", dev,
                        n == 0 ? "no CUDA GPU is visible to this process"
                               : n == 1 ? "this machine has one CUDA GPU (cuda:0)" : "index out of range");
    device *d = &g_dev[dev];
    pthread_mutex_lock(&g_init_mu);
    sp_status st = SP_OK;
    if (d->init == 0) {
        d->init = -1;
        pthread_mutex_init(&d->mu, NULL);
        pthread_mutex_init(&d->stage_mu, NULL);
        d->ctx.dev = dev;
        cudaError_t e = cudaSetDevice(dev);
        if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&d->ctx.stream, cudaStreamNonBlocking);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            st = sp_error(SP_EDEVICE, "cuda:%d: cannot start the device: %s (%s)", dev, cudaGetErrorName(e),
                          cudaGetErrorString(e));
        } else {
            d->init = 1;
        }
    } else if (d->init < 0) {
        st = sp_error(SP_EDEVICE, "cuda:%d: the device failed to start earlier in this process", dev);
    }
    pthread_mutex_unlock(&g_init_mu);
    if (!st) st = set_device(dev);
    return st;
}

void empty_cache_locked(device *d) {
    for (int c = 0; c < NCLASS; c++) {
        while (d->free_[c]) {
            block *b = d->free_[c];
            d->free_[c] = b->next;
            (void)cudaFree(b->p);
            free(b);
        }
    }
    d->cached = 0;
}

sp_status stage_init(device *d) {
    if (d->stage_ok) return SP_OK;
    d->stage_ok = -1;
    for (int i = 0; i < 2; i++) {
        if (cudaHostAlloc(&d->stage[i], STAGE_BYTES, cudaHostAllocDefault) != cudaSuccess ||
            cudaEventCreateWithFlags(&d->stage_ev[i], cudaEventDisableTiming) != cudaSuccess) {
            (void)cudaGetLastError();
            return SP_OK; // no pinned memory: direct copies (still correct)
        }
    }
    d->stage_ok = 1;
    return SP_OK;
}

} // namespace

extern "C" int spc_device_count(void) { return device_count(); }

extern "C" sp_status spc_device_init(int dev) { return init_device(dev); }

spc_ctx *spc_ctx_get(int dev) {
    if (dev >= 0 && dev < SPC_MAX_DEVICES && g_dev[dev].init == 1) {
        if (set_device(dev)) return NULL;
        return &g_dev[dev].ctx;
    }
    if (init_device(dev)) return NULL;
    return &g_dev[dev].ctx;
}

extern "C" void *spc_stream(int dev) {
    spc_ctx *c = spc_ctx_get(dev);
    return c ? (void *)c->stream : NULL;
}

extern "C" void *spc_alloc(int dev, size_t n, int zero) {
    spc_ctx *c = spc_ctx_get(dev);
    if (!c) return NULL;
    device *d = &g_dev[dev];
    int ci;
    size_t bytes = class_of(n ? n : 1, &ci);
    if (ci >= NCLASS) { sp_error(SP_ENOMEM, "cuda:%d: allocation of %zu bytes is too large", dev, n); return NULL; }
    void *p = NULL;
    pthread_mutex_lock(&d->mu);
    if (d->free_[ci]) {
        block *b = d->free_[ci];
        d->free_[ci] = b->next;
        p = b->p;
        d->cached -= bytes;
        free(b);
    }
    pthread_mutex_unlock(&d->mu);
    if (!p) {
        cudaError_t e = cudaMalloc(&p, bytes);
        if (e == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            pthread_mutex_lock(&d->mu);
            empty_cache_locked(d); // cudaFree synchronises: blocks in flight are done
            pthread_mutex_unlock(&d->mu);
            e = cudaMalloc(&p, bytes);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            size_t fr = 0, tot = 0;
            (void)cudaMemGetInfo(&fr, &tot);
            (void)cudaGetLastError();
            sp_error(e == cudaErrorMemoryAllocation ? SP_ENOMEM : SP_EDEVICE,
                     "cuda:%d: out of device memory allocating %zu bytes (%zu of %zu MiB free after emptying "
                     "spore's cache): %s",
                     dev, bytes, fr >> 20, tot >> 20, cudaGetErrorName(e));
            return NULL;
        }
    }
    if (zero) {
        cudaError_t e = cudaMemsetAsync(p, 0, n ? n : 1, c->stream);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            spc_free(dev, p, n);
            sp_error(SP_EDEVICE, "cuda:%d: cudaMemsetAsync: %s (%s)", dev, cudaGetErrorName(e), cudaGetErrorString(e));
            return NULL;
        }
    }
    return p;
}

extern "C" void spc_free(int dev, void *p, size_t n) {
    if (!p || dev < 0 || dev >= SPC_MAX_DEVICES) return;
    device *d = &g_dev[dev];
    int ci;
    size_t bytes = class_of(n ? n : 1, &ci);
    block *b = (block *)malloc(sizeof *b);
    if (!b) { (void)cudaFree(p); return; }
    b->p = p;
    pthread_mutex_lock(&d->mu);
    b->next = d->free_[ci];
    d->free_[ci] = b;
    d->cached += bytes;
    pthread_mutex_unlock(&d->mu);
}

extern "C" void spc_empty_cache(int dev) {
    if (dev < 0 || dev >= SPC_MAX_DEVICES || g_dev[dev].init != 1) return;
    if (set_device(dev)) return;
    pthread_mutex_lock(&g_dev[dev].mu);
    empty_cache_locked(&g_dev[dev]);
    pthread_mutex_unlock(&g_dev[dev].mu);
}

extern "C" size_t spc_cached_bytes(int dev) {
    if (dev < 0 || dev >= SPC_MAX_DEVICES || g_dev[dev].init != 1) return 0;
    pthread_mutex_lock(&g_dev[dev].mu);
    size_t n = g_dev[dev].cached;
    pthread_mutex_unlock(&g_dev[dev].mu);
    return n;
}

extern "C" int spc_owns(int dev, const void *p) {
    if (!p || dev < 0 || dev >= device_count()) return 0;
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) { (void)cudaGetLastError(); return 0; }
    return a.type == cudaMemoryTypeDevice && a.device == dev;
}

void *spc_scratch(spc_ctx *c, size_t n) { return spc_alloc(c->dev, n, 0); }
void spc_scratch_free(spc_ctx *c, void *p, size_t n) { spc_free(c->dev, p, n); }

extern "C" sp_status spc_sync(int dev) {
    CTX(c, dev);
    CK(c, cudaStreamSynchronize(c->stream));
    return SP_OK;
}

extern "C" sp_status spc_from_host(int dev, void *dst, const void *src, size_t n) {
    CTX(c, dev);
    if (!n) return SP_OK;
    device *d = &g_dev[dev];
    if (n < STAGE_MIN) {
        // pageable source: the call returns once src has been staged by the driver
        CK(c, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream));
        return SP_OK;
    }
    pthread_mutex_lock(&d->stage_mu);
    sp_status st = stage_init(d);
    if (!st && d->stage_ok < 0) {
        // unstaged: on the device's stream (a legacy-stream cudaMemcpy would not wait for the
        // non-blocking stream's kernels), waited for before src may be reused
        cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        (void)cudaGetLastError();
        if (e != cudaSuccess)
            st = sp_error(SP_EDEVICE, "cuda:%d: cudaMemcpy (host to device, %zu bytes): %s (%s)", dev, n,
                          cudaGetErrorName(e), cudaGetErrorString(e));
        pthread_mutex_unlock(&d->stage_mu);
        return st;
    }
    // chunk i goes through buffer i%2: wait until that buffer's previous DMA is done,
    // fill it, queue its DMA. The host fill of one overlaps the DMA of the other.
    size_t off = 0;
    for (int i = 0; !st && off < n; i++) {
        int b = i & 1;
        size_t len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
        cudaError_t e = cudaEventSynchronize(d->stage_ev[b]);
        if (e == cudaSuccess) {
            memcpy(d->stage[b], (const char *)src + off, len);
            e = cudaMemcpyAsync((char *)dst + off, d->stage[b], len, cudaMemcpyHostToDevice, c->stream);
        }
        if (e == cudaSuccess) e = cudaEventRecord(d->stage_ev[b], c->stream);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            st = sp_error(SP_EDEVICE, "cuda:%d: staged copy to the device (%zu bytes at %zu): %s (%s)", dev, len, off,
                          cudaGetErrorName(e), cudaGetErrorString(e));
        }
        off += len;
    }
    pthread_mutex_unlock(&d->stage_mu);
    return st;
}

extern "C" sp_status spc_to_host(int dev, void *dst, const void *src, size_t n) {
    CTX(c, dev);
    if (!n) return SP_OK;
    device *d = &g_dev[dev];
    if (n < STAGE_MIN) {
        CK(c, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream));
        CK(c, cudaStreamSynchronize(c->stream));
        return SP_OK;
    }
    pthread_mutex_lock(&d->stage_mu);
    sp_status st = stage_init(d);
    if (!st && d->stage_ok < 0) {
        cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            st = sp_error(SP_EDEVICE, "cuda:%d: copy to the host (%zu bytes): %s (%s)", dev, n, cudaGetErrorName(e),
                          cudaGetErrorString(e));
        }
        pthread_mutex_unlock(&d->stage_mu);
        return st;
    }
    // two chunks in flight: queue chunk i into buffer i%2, then drain chunk i-1
    size_t pend_off[2] = {0, 0}, pend_len[2] = {0, 0};
    size_t off = 0;
    cudaError_t e = cudaSuccess;
    for (int i = 0; e == cudaSuccess && (off < n || pend_len[0] || pend_len[1]); i++) {
        int b = i & 1;
        if (pend_len[b]) { // this buffer's previous chunk: wait, copy out
            e = cudaEventSynchronize(d->stage_ev[b]);
            if (e != cudaSuccess) break;
            memcpy((char *)dst + pend_off[b], d->stage[b], pend_len[b]);
            pend_len[b] = 0;
        }
        if (off < n) {
            size_t len = n - off < STAGE_BYTES ? n - off : STAGE_BYTES;
            e = cudaMemcpyAsync(d->stage[b], (const char *)src + off, len, cudaMemcpyDeviceToHost, c->stream);
            if (e == cudaSuccess) e = cudaEventRecord(d->stage_ev[b], c->stream);
            pend_off[b] = off;
            pend_len[b] = len;
            off += len;
        }
    }
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        (void)cudaStreamSynchronize(c->stream); // nothing may still write the staging buffers
        (void)cudaGetLastError();
        st = sp_error(SP_EDEVICE, "cuda:%d: staged copy to the host (%zu bytes): %s (%s)", dev, n, cudaGetErrorName(e),
                      cudaGetErrorString(e));
    }
    pthread_mutex_unlock(&d->stage_mu);
    return st;
}

extern "C" sp_status spc_copy(int dev, void *dst, const void *src, size_t n) {
    CTX(c, dev);
    if (!n || dst == src) return SP_OK;
    const char *s = (const char *)src;
    char *t = (char *)dst;
    if (t < s + n && s < t + n) { // overlapping (memmove semantics): through a scratch block
        void *tmp = spc_scratch(c, n);
        if (!tmp) return SP_ENOMEM;
        cudaError_t e = cudaMemcpyAsync(tmp, src, n, cudaMemcpyDeviceToDevice, c->stream);
        if (e == cudaSuccess) e = cudaMemcpyAsync(dst, tmp, n, cudaMemcpyDeviceToDevice, c->stream);
        spc_scratch_free(c, tmp, n);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            return sp_error(SP_EDEVICE, "cuda:%d: device copy (%zu bytes): %s (%s)", dev, n, cudaGetErrorName(e),
                            cudaGetErrorString(e));
        }
        return SP_OK;
    }
    CK(c, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream));
    return SP_OK;
}
