/* device.c — the device registry: the host CPU, the simulated device `sim`, and (with
 * CUDA=1) the CUDA devices. Also the byte counters and the per-device workspace.
 *
 * `sim` proves that nothing above the engine reads device memory without a GPU: its
 * memory is one reserved arena apart from the host heap; sp_tensor_data() refuses it,
 * host pointers into it are refused wherever the API takes host memory, and data moves
 * in and out only through the explicit copies below. Its kernels are the CPU kernels,
 * run by the engine on the arena's memory. */
#include "core/internal.h"
#include "core/device.h"
#include "core/kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- accounting ----------------------------------------------------------- */

static atomic_llong g_live, g_peak, g_allocs;
/* Net bytes allocated minus freed by the calling thread (a C host charges each VM with the
 * difference across its calls: sp_mem_thread_bytes). */
static _Thread_local long long t_net;

static void peak_max(atomic_llong *peak, long long now) {
    long long p = atomic_load(peak);
    while (now > p && !atomic_compare_exchange_weak(peak, &p, now)) {
    }
}

void sp_mem_account(sp_device *d, long long delta) {
    t_net += delta;
    long long now = atomic_fetch_add(&g_live, delta) + delta;
    if (delta > 0) {
        atomic_fetch_add(&g_allocs, 1);
        peak_max(&g_peak, now);
    } else if (delta < 0) {
        atomic_fetch_sub(&g_allocs, 1);
    }
    if (!d) d = sp_device_cpu();
    long long dn = atomic_fetch_add(&d->live, delta) + delta;
    if (delta > 0) {
        atomic_fetch_add(&d->allocs, 1);
        peak_max(&d->peak, dn);
    } else if (delta < 0) {
        atomic_fetch_sub(&d->allocs, 1);
    }
}

void sp_mem_stats(int64_t *live, int64_t *peak, int64_t *allocs) {
    if (live) *live = atomic_load(&g_live);
    if (peak) *peak = atomic_load(&g_peak);
    if (allocs) *allocs = atomic_load(&g_allocs);
}

int64_t sp_mem_live_bytes(void) { return atomic_load(&g_live); }
int64_t sp_mem_thread_bytes(void) { return t_net; }

void sp_mem_reset_peak(void) { atomic_store(&g_peak, atomic_load(&g_live)); }

sp_status sp_mem_stats_device(int device, int64_t *live, int64_t *peak, int64_t *allocs) {
    sp_device *d = sp_device_get(device);
    if (!d) return SP_EDEVICE;
    if (live) *live = atomic_load(&d->live);
    if (peak) *peak = atomic_load(&d->peak);
    if (allocs) *allocs = atomic_load(&d->allocs);
    return SP_OK;
}

/* ---- cpu ------------------------------------------------------------------- */

void *sp_host_alloc(size_t nbytes, int zero);
void sp_host_free(void *p, size_t nbytes);

static void *cpu_alloc(sp_device *d, size_t n, int zero) {
    void *p = sp_host_alloc(n, zero);
    if (p) sp_mem_account(d, (long long)(n ? n : 1));
    return p;
}
static void cpu_free(sp_device *d, void *p, size_t n) {
    if (!p) return;
    sp_host_free(p, n);
    sp_mem_account(d, -(long long)(n ? n : 1));
}
static int cpu_owns(const sp_device *d, const void *p) { (void)d; (void)p; return 0; }
static sp_status host_copy(sp_device *d, void *dst, const void *src, size_t n) {
    (void)d;
    if (n) memmove(dst, src, n);
    return SP_OK;
}

static sp_device g_cpu = {
    .code = SP_DEVICE_CPU, .type = SP_DEVICE_CPU, .index = 0, .name = "cpu", .host_visible = 1,
    .alloc = cpu_alloc, .free = cpu_free, .owns = cpu_owns,
    .from_host = host_copy, .to_host = host_copy, .copy = host_copy, .k = &sp_cpu_kernels,
};

sp_device *sp_device_cpu(void) { return &g_cpu; }

/* ---- sim: one reserved arena, power-of-two size classes ------------------------
 * The arena is reserved once (address space only; pages are committed when touched).
 * A block's class is the next power of two >= its size (min 64 B); freed blocks go on
 * their class's free list and blocks of 256 KiB and more give their pages back
 * (MADV_DONTNEED), so RSS follows the live bytes as with the CPU allocator. */
#define SIM_MIN_CLASS 6 /* 64 B */
#define SIM_NCLASS 64
typedef struct sim_free { struct sim_free *next; } sim_free;
static struct {
    pthread_mutex_t mu;
    char *base;
    size_t size, top;
    sim_free *free[SIM_NCLASS];
    int init;
} sim = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int sim_class(size_t n, size_t *bytes) {
    int c = SIM_MIN_CLASS;
    while (((size_t)1 << c) < n) {
        if (++c >= SIM_NCLASS - 1) return -1;
    }
    *bytes = (size_t)1 << c;
    return c;
}

static int sim_reserve(void) {
    if (sim.init) return sim.base != NULL;
    sim.init = 1;
    for (size_t sz = (size_t)1 << 38; sz >= ((size_t)1 << 30); sz >>= 1) {
        void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p != MAP_FAILED) { sim.base = p; sim.size = sz; return 1; }
    }
    return 0;
}

static void *sim_alloc(sp_device *d, size_t n, int zero) {
    size_t bytes = 0;
    int c = sim_class(n ? n : 1, &bytes);
    if (c < 0) return NULL;
    pthread_mutex_lock(&sim.mu);
    void *p = NULL;
    if (sim_reserve()) {
        if (sim.free[c]) {
            p = sim.free[c];
            sim.free[c] = sim.free[c]->next;
        } else {
            size_t align = bytes < 4096 ? bytes : 4096;
            size_t at = (sim.top + align - 1) & ~(align - 1);
            if (at <= sim.size && bytes <= sim.size - at) { p = sim.base + at; sim.top = at + bytes; }
        }
    }
    pthread_mutex_unlock(&sim.mu);
    if (!p) return NULL;
    if (zero) memset(p, 0, n ? n : 1);
    sp_mem_account(d, (long long)(n ? n : 1));
    return p;
}

static void sim_free_block(sp_device *d, void *p, size_t n) {
    if (!p) return;
    size_t bytes = 0;
    int c = sim_class(n ? n : 1, &bytes);
    if (bytes >= ((size_t)256 << 10)) madvise(p, bytes, MADV_DONTNEED);
    pthread_mutex_lock(&sim.mu);
    sim_free *f = p;
    f->next = sim.free[c];
    sim.free[c] = f;
    pthread_mutex_unlock(&sim.mu);
    sp_mem_account(d, -(long long)(n ? n : 1));
}

static int sim_owns(const sp_device *d, const void *p) {
    (void)d;
    return sim.base && (const char *)p >= sim.base && (const char *)p < sim.base + sim.size;
}

static sp_device g_sim = {
    .code = SP_DEVICE_SIM, .type = SP_DEVICE_SIM, .index = 0, .name = "sim", .host_visible = 0,
    .alloc = sim_alloc, .free = sim_free_block, .owns = sim_owns,
    .from_host = host_copy, .to_host = host_copy, .copy = host_copy, .k = &sp_cpu_kernels,
};

/* ---- revoked: the device of a lent host buffer after its lender took it back ---- */

static sp_status revoked_copy(sp_device *d, void *dst, const void *src, size_t n) {
    (void)d; (void)dst; (void)src; (void)n;
    return sp_error(SP_EINVAL, "this tensor wrapped a host buffer lent for one call (spore_vm_call); the call "
                               "has returned and the buffer is no longer readable or writable from spore "
                               "(copy it during the call: t:clone())");
}
static void *revoked_alloc(sp_device *d, size_t n, int zero) { (void)d; (void)n; (void)zero; return NULL; }
static void revoked_free(sp_device *d, void *p, size_t n) { (void)d; (void)p; (void)n; }
static int revoked_owns(const sp_device *d, const void *p) { (void)d; (void)p; return 0; }
static const sp_kernels revoked_kernels; /* every kernel NULL: each op fails naming the device */
sp_device sp_revoked_device = {
    .code = -2, .type = -2, .index = 0, .name = "revoked(host)", .host_visible = 0,
    .alloc = revoked_alloc, .free = revoked_free, .owns = revoked_owns,
    .from_host = revoked_copy, .to_host = revoked_copy, .copy = revoked_copy, .k = &revoked_kernels,
};

sp_status sp_kernel_missing(const char *kern, const sp_device *d) {
    if (d == &sp_revoked_device) return revoked_copy(NULL, NULL, NULL, 0);
    return sp_error(SP_EDEVICE, "%s: not implemented on device %s", kern, d->name);
}

/* ---- registry --------------------------------------------------------------- */

#ifdef SP_HAVE_CUDA
sp_device *sp_cuda_device(int index);
#endif

sp_device *sp_device_get(int code) {
    if (code == SP_DEVICE_CPU) return &g_cpu;
    if (code == SP_DEVICE_SIM) return &g_sim;
    if ((code & ~0xff) == SP_DEVICE_CUDA) {
#ifdef SP_HAVE_CUDA
        return sp_cuda_device(code & 0xff); /* engine/cuda/cuda_kernels.c */
#else
        sp_error(SP_EDEVICE, "device cuda:%d is not available: this engine was built without CUDA (rebuild with "
                 "`make CUDA=1` on a machine with the CUDA toolkit)", code & 0xff);
        return NULL;
#endif
    }
    if (code == -2) { revoked_copy(NULL, NULL, NULL, 0); return NULL; }
    sp_error(SP_EDEVICE, "unknown device code %d", code);
    return NULL;
}

sp_device *sp_device_owning(const void *p) {
    if (p && sim_owns(&g_sim, p)) return &g_sim;
    return NULL;
}

int sp_device_parse(const char *name) {
    if (!name) { sp_error(SP_EINVAL, "device name is NULL"); return -1; }
    if (strcmp(name, "cpu") == 0) return SP_DEVICE_CPU;
    if (strcmp(name, "sim") == 0) return SP_DEVICE_SIM;
    if (strncmp(name, "cuda", 4) == 0) {
        int idx = 0;
        if (name[4] == ':') {
            char *end;
            long v = strtol(name + 5, &end, 10);
            if (end == name + 5 || *end || v < 0 || v > 255) {
                sp_error(SP_EINVAL, "bad device '%s' (expected cuda or cuda:N with N in 0..255)", name);
                return -1;
            }
            idx = (int)v;
        } else if (name[4]) {
            sp_error(SP_EINVAL, "unknown device '%s' (expected cpu, sim, cuda or cuda:N)", name);
            return -1;
        }
        return SP_DEVICE_CUDA + idx;
    }
    sp_error(SP_EINVAL, "unknown device '%s' (expected cpu, sim, cuda or cuda:N)", name);
    return -1;
}

const char *sp_device_name(int code) {
    if (code == SP_DEVICE_CPU) return "cpu";
    if (code == SP_DEVICE_SIM) return "sim";
    if ((code & ~0xff) == SP_DEVICE_CUDA) {
        static const char *names[8] = {"cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:4", "cuda:5", "cuda:6", "cuda:7"};
        if ((code & 0xff) < 8) return names[code & 0xff];
        return "cuda:N";
    }
    return "?";
}

int sp_device_available(int code) { return sp_device_get(code) != NULL; }

/* ---- workspace ---------------------------------------------------------------- */

typedef struct { void *p; size_t n; sp_device *d; } ws_slot;
static _Thread_local ws_slot ws[2][SP_WS_SLOTS]; /* [cpu|sim][slot] */
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_release(void *arg) {
    (void)arg;
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < SP_WS_SLOTS; s++)
            if (ws[k][s].p) { ws[k][s].d->free(ws[k][s].d, ws[k][s].p, ws[k][s].n); ws[k][s].p = NULL; ws[k][s].n = 0; }
}
static void ws_make_key(void) { pthread_key_create(&ws_key, ws_release); }

void *sp_workspace(sp_device *d, int slot, size_t nbytes) {
    if (!d) d = &g_cpu;
    if (slot < 0 || slot >= SP_WS_SLOTS) return NULL;
    if (d != &g_cpu && d != &g_sim) return NULL; /* CUDA kernels take scratch from their own cache */
    int k = d == &g_sim ? 1 : 0;
    ws_slot *w = &ws[k][slot];
    if (w->n >= nbytes && w->p) return w->p;
    pthread_once(&ws_once, ws_make_key);
    pthread_setspecific(ws_key, (void *)1); /* run ws_release when this thread exits */
    if (w->p) d->free(d, w->p, w->n);
    size_t n = nbytes < 4096 ? 4096 : nbytes + nbytes / 4; /* some headroom: fewer regrowths */
    w->p = d->alloc(d, n, 0);
    w->n = w->p ? n : 0;
    w->d = d;
    return w->p;
}

void sp_workspace_release(void) { ws_release(NULL); }

/* ---- CUDA queries (engine/cuda, CUDA=1 builds) ------------------------------------ */
#ifdef SP_HAVE_CUDA
int sp_cuda_device_count_impl(void);
int sp_cuda_device_count(void) { return sp_cuda_device_count_impl(); }
#else
int sp_cuda_device_count(void) { return 0; }
#endif
