/* alloc.c — host memory for the CPU device. Large blocks come straight from mmap so
 * that freeing them returns the memory to the OS at once (a flat RSS does not depend on
 * malloc's trimming); small blocks are 64-byte aligned heap allocations. Counting is done
 * by the device (engine/core/device.c). */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SP_MMAP_MIN ((size_t)256 * 1024)
#define SP_ALIGN ((size_t)64)

void *sp_host_alloc(size_t nbytes, int zero) {
    size_t n = nbytes ? nbytes : 1;
    void *p;
    if (n >= SP_MMAP_MIN) {
        p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL; /* mmap'd pages are zero */
    } else {
        size_t r = (n + SP_ALIGN - 1) & ~(SP_ALIGN - 1);
        p = aligned_alloc(SP_ALIGN, r);
        if (!p) return NULL;
        if (zero) memset(p, 0, n);
    }
    return p;
}

void sp_host_free(void *p, size_t nbytes) {
    if (!p) return;
    size_t n = nbytes ? nbytes : 1;
    if (n >= SP_MMAP_MIN) munmap(p, n);
    else free(p);
}
