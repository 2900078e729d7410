/* alloc.c — the engine's allocator with live-byte and peak counters.
 * Large blocks come straight from mmap so that freeing them returns the memory
 * to the OS at once (a flat RSS does not depend on malloc's trimming); small
 * blocks are 64-byte aligned heap allocations. */
#include "spore.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SP_MMAP_MIN ((size_t)256 * 1024)
#define SP_ALIGN ((size_t)64)

static atomic_llong live_bytes;
static atomic_llong peak_bytes;
static atomic_llong live_allocs;

static void account(long long delta) {
    long long now = atomic_fetch_add(&live_bytes, delta) + delta;
    if (delta > 0) {
        atomic_fetch_add(&live_allocs, 1);
        long long peak = atomic_load(&peak_bytes);
        while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
        }
    } else {
        atomic_fetch_sub(&live_allocs, 1);
    }
}

void *sp_alloc_bytes(size_t nbytes) {
    size_t n = nbytes ? nbytes : 1;
    void *p;
    if (n >= SP_MMAP_MIN) {
        p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
    } else {
        size_t r = (n + SP_ALIGN - 1) & ~(SP_ALIGN - 1);
        p = aligned_alloc(SP_ALIGN, r);
        if (!p) return NULL;
    }
    account((long long)n);
    return p;
}

void sp_free_bytes(void *p, size_t nbytes) {
    if (!p) return;
    size_t n = nbytes ? nbytes : 1;
    if (n >= SP_MMAP_MIN) munmap(p, n);
    else free(p);
    account(-(long long)n);
}

void sp_mem_stats(int64_t *live, int64_t *peak, int64_t *allocs) {
    if (live) *live = atomic_load(&live_bytes);
    if (peak) *peak = atomic_load(&peak_bytes);
    if (allocs) *allocs = atomic_load(&live_allocs);
}

int64_t sp_mem_live_bytes(void) { return atomic_load(&live_bytes); }

void sp_mem_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }
