/* ckpt_read.c — MindSpore .ckpt reader. The file is a sequence of serialized
 * Checkpoint messages (field 1 = one Value each). We walk that top-level framing; for a
 * Value laid out as MindSpore writes it (tag, then the TensorProto whose last field is
 * tensor_content) protobuf-c unpacks everything but the content, and the content is read
 * from the file straight into the tensor's final block: one copy out of the page cache,
 * none through a buffer (split_value, rd_read_to); the blocks are packed in two huge-page
 * mappings per load (arenas). Any other layout is unpacked whole by
 * protobuf-c, which copies the content once. The file is read (never mapped), the small
 * records through a reusable buffer, so peak memory stays near one file size. */
#include "io/ckpt_internal.h"
#include "core/device.h"
#include "checkpoint.pb-c.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

static int get_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 64; s += 7) {
        if (*pos >= n) return 0;
        uint8_t b = p[(*pos)++];
        if (s == 63 && b > 1) return 0;
        r |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) { *v = r; return 1; }
    }
    return 0;
}

/* ---- allocator handed to protobuf-c --------------------------------------
 * (The contents a plain load reads straight into their tensors come from the load's
 * arena, below; this allocator makes everything else: protobuf-c's messages, contents
 * of records unpacked whole, whole-file buffers, a content the arena cannot hold.)
 * Small blocks come from malloc. Contents of 1 MiB and more get their own anonymous
 * mapping with MADV_HUGEPAGE, whose data starts on a 2 MiB boundary, so that the single
 * copy into it lands in memory that faults in 2 MiB at a time; the tensor then adopts the
 * block (released by ck_block_free). Every block carries a tag just below the pointer, and
 * its byte count, which is reported to sp_mem_account (cpu) while the block is alive:
 * in a message being unpacked, adopted by a tensor, or kept in the cache below. A big
 * block's tag sits alone in the 4 KiB page before its data (CK_HDR), so writing it faults
 * in that page only: the data's huge pages are first touched by whichever thread reads
 * the content into them (the queued reads below), not by the parse.
 * sp_config_set_ckpt_thp(0) (lua: SPORE_NO_THP=1) skips MADV_HUGEPAGE (measured: 4 KiB
 * faults make a 200 MB load ~4x slower). */
#define CK_BIG ((size_t)1 << 20)
#define CK_HUGE ((size_t)2 << 20)
#define CK_HDR ((size_t)4096)
#define TAG_SMALL 0x5350736d616c6c31ull
#define TAG_BIG 0x5350626967626c31ull

/* Freed big blocks are kept (exact page length) and handed out again to a block of the
 * same length, so a process that loads checkpoints repeatedly (an evaluation sweep, a
 * resume, a warm reload) reuses faulted-in pages instead of having the kernel zero fresh
 * ones — what glibc's heap does for malloc'd buffers below its mmap threshold.
 * - A kept block's whole huge pages are lazily freed (MADV_FREE, as jemalloc does with its
 *   unused pages): the kernel takes them back, without writing them anywhere, when it
 *   needs memory; until then the next write to them costs no fault (measured: an 800 MB
 *   block rewritten in 21 ms kept or lazily freed, 54-59 ms fresh). Every reused byte is
 *   written by the read before anything reads it, so a page taken back (zero again) is
 *   never seen.
 * - The cap (sp_config_set_ckpt_cache) is by default automatic: the most bytes of big
 *   blocks this process has had mapped at once, at least 256 MiB and at most half the
 *   machine's memory. A process that has loaded an 800 MB checkpoint keeps up to 800 MB
 *   for the next load, so the cache never holds more than the reader itself once used.
 * - Cached blocks stay counted in sp_mem_stats until sp_ckpt_release_cache returns them to
 *   the system (or a lower cap trims them). */
#define CK_CACHE_SLOTS 1024
#define CK_CACHE_MIN ((size_t)256 << 20)
static struct { uint8_t *base; size_t len; } blk_cache[CK_CACHE_SLOTS];
static int blk_ncache;
static size_t blk_cached_bytes, blk_cache_cap = SP_CKPT_CACHE_AUTO;
static size_t blk_mapped, blk_mapped_hwm; /* big blocks' bytes mapped now / at most (blk_mu) */
static pthread_mutex_t blk_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int blk_thp = 1;
static size_t ar_trim(size_t keep);        /* the per-load arenas (below), under blk_mu */
static size_t ar_drop_pages(void);

static void big_unmap_locked(uint8_t *base, size_t len) {
    munmap(base, len);
    blk_mapped -= len;
    sp_mem_account(NULL, -(long long)len);
}
static void big_unmap(uint8_t *base, size_t len) {
    pthread_mutex_lock(&blk_mu);
    big_unmap_locked(base, len);
    pthread_mutex_unlock(&blk_mu);
}
static void big_mapped(size_t len) {
    pthread_mutex_lock(&blk_mu);
    blk_mapped += len;
    if (blk_mapped > blk_mapped_hwm) blk_mapped_hwm = blk_mapped;
    pthread_mutex_unlock(&blk_mu);
    sp_mem_account(NULL, (long long)len);
}

/* the cap in force (under blk_mu) */
static size_t cap_now(void) {
    if (blk_cache_cap != SP_CKPT_CACHE_AUTO) return blk_cache_cap;
    static size_t half_ram;
    if (!half_ram) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        half_ram = pages > 0 && psz > 0 ? (size_t)pages / 2 * (size_t)psz : CK_CACHE_MIN;
    }
    size_t c = blk_mapped_hwm > CK_CACHE_MIN ? blk_mapped_hwm : CK_CACHE_MIN;
    return c < half_ram ? c : half_ram;
}

void sp_config_set_ckpt_cache(size_t bytes) {
    pthread_mutex_lock(&blk_mu);
    blk_cache_cap = bytes;
    size_t cap = cap_now();
    /* return the oldest cached blocks until the cache fits the new cap */
    int keep = 0;
    for (int i = 0; i < blk_ncache; i++) {
        if (blk_cached_bytes > cap) {
            big_unmap_locked(blk_cache[i].base, blk_cache[i].len);
            blk_cached_bytes -= blk_cache[i].len;
        } else {
            blk_cache[keep++] = blk_cache[i];
        }
    }
    blk_ncache = keep;
    ar_trim(cap);
    pthread_mutex_unlock(&blk_mu);
}

size_t sp_config_ckpt_cache(void) {
    pthread_mutex_lock(&blk_mu);
    size_t cap = cap_now();
    pthread_mutex_unlock(&blk_mu);
    return cap;
}

int sp_config_ckpt_cache_auto(void) {
    pthread_mutex_lock(&blk_mu);
    int a = blk_cache_cap == SP_CKPT_CACHE_AUTO;
    pthread_mutex_unlock(&blk_mu);
    return a;
}

void sp_config_set_ckpt_thp(int on) { atomic_store(&blk_thp, on ? 1 : 0); }
int sp_config_ckpt_thp(void) { return atomic_load(&blk_thp); }

static uint8_t *cache_take(size_t len) {
    uint8_t *r = NULL;
    pthread_mutex_lock(&blk_mu);
    for (int i = blk_ncache - 1; i >= 0; i--)
        if (blk_cache[i].len == len) {
            r = blk_cache[i].base;
            blk_cached_bytes -= len;
            blk_cache[i] = blk_cache[--blk_ncache];
            break;
        }
    pthread_mutex_unlock(&blk_mu);
    return r;
}

/* Whether a block of len bytes would fit the cache now (checked again by cache_put). */
static int cache_fits(size_t len) {
    pthread_mutex_lock(&blk_mu);
    size_t cap = cap_now();
    int ok = blk_ncache < CK_CACHE_SLOTS && len <= cap && blk_cached_bytes <= cap - len;
    pthread_mutex_unlock(&blk_mu);
    return ok;
}

static int cache_put(uint8_t *base, size_t len) {
    int ok = 0;
    pthread_mutex_lock(&blk_mu);
    size_t cap = cap_now();
    if (blk_ncache < CK_CACHE_SLOTS && len <= cap && blk_cached_bytes <= cap - len) {
        blk_cache[blk_ncache].base = base;
        blk_cache[blk_ncache].len = len;
        blk_ncache++;
        blk_cached_bytes += len;
        ok = 1;
    }
    pthread_mutex_unlock(&blk_mu);
    return ok;
}

/* Lazily free a block's whole huge pages of data (not its header page, nor a partial last
 * huge page, which the kernel would split). Done before the block enters the cache: once
 * cached, another thread may take it and write to it. A kernel without MADV_FREE (before
 * 4.5) refuses it and the pages simply stay. */
static void lazy_free(uint8_t *base, size_t len) {
#ifdef MADV_FREE
    size_t n = (len - CK_HDR) & ~(CK_HUGE - 1);
    if (n) madvise(base + CK_HDR, n, MADV_FREE);
#else
    (void)base;
    (void)len;
#endif
}

size_t ck_cache_drop_pages(void) {
    size_t n = 0;
    pthread_mutex_lock(&blk_mu);
    for (int i = 0; i < blk_ncache; i++) {
        madvise(blk_cache[i].base + CK_HDR, blk_cache[i].len - CK_HDR, MADV_DONTNEED);
        n += blk_cache[i].len - CK_HDR;
    }
    n += ar_drop_pages();
    pthread_mutex_unlock(&blk_mu);
    return n;
}

size_t sp_ckpt_release_cache(void) {
    size_t freed = 0;
    pthread_mutex_lock(&blk_mu);
    for (int i = 0; i < blk_ncache; i++) {
        big_unmap_locked(blk_cache[i].base, blk_cache[i].len);
        freed += blk_cache[i].len;
        blk_cached_bytes -= blk_cache[i].len;
    }
    blk_ncache = 0;
    freed += ar_trim(0);
    pthread_mutex_unlock(&blk_mu);
    return freed;
}

/* ---- per-load arenas ------------------------------------------------------
 * The contents a load reads straight into their tensors (the direct path below) are
 * carved, in file order and 64-byte aligned, out of anonymous mappings (arenas; two per
 * load, see AR_QUEUED) whose data starts on a 2 MiB boundary, with MADV_HUGEPAGE. A block of its own
 * per content faulted every content's tail past its last whole huge page, and every
 * content under 1 MiB, in 4 KiB pages: 13,000 faults for a 205 MB ResNet50 + Momentum
 * file, about 70 % of a first load's CPU time in a fresh process (sp_ckpt_open 37-98 ->
 * 23-28 ms). Packed, the contents share their huge pages: 240 faults in all.
 * - The arena reserves the stream's length (rounded up to 2 MiB, plus 2 MiB): the contents
 *   of a well-formed stream cannot need more. A block that does not fit (a malformed or
 *   strange stream) comes from ck_block_alloc as before.
 * - No header inside the arena (a tag written by the parse would fault the huge page on
 *   the parse's thread): block_free finds the arena by address in the live list and the
 *   block by binary search of its table (blocks are made in address order).
 * - Each block is counted in sp_mem_stats (and blk_mapped, the automatic cap's peak) from
 *   its allocation until its bytes are returned: a block that dies while others live is
 *   kept (its whole huge pages lazily freed, its bytes in blk_cached_bytes) if the cache
 *   cap allows, or its whole pages are returned at once (MADV_DONTNEED). An arena whose
 *   last block died after its load ended goes into the arena cache if it keeps any bytes
 *   (all its whole huge pages lazily freed), and a later load it holds, of at least half
 *   its length, takes it (the warm reload of the same file gets the same layout, the
 *   pages already there), else it is unmapped.
 * All of it under blk_mu. */
#define CK_ALIGN ((size_t)64)
typedef struct ck_arena ck_arena;
/* Under AddressSanitizer an arena's bytes are poisoned except its live blocks, so that a
 * read or write past a content (into its neighbour or the padding) is caught as it would
 * be in a block of its own. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define AR_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define AR_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define AR_POISON(p, n) ((void)(p), (void)(n))
#define AR_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
enum { AB_FREE = 0, AB_LIVE = 1, AB_KEPT = 2 };
/* A load has two arenas: the contents its queue's threads read (64 KiB and more: all but a
 * few bytes of a checkpoint) and those the parse copies out of its read buffer itself.
 * One arena for both had the parse's thread fault in half of the big contents' huge
 * pages (every small content after a big one lands in the big one's last huge page): in
 * a VM whose fresh memory faults in the host (milliseconds a huge page), the parse then
 * stalled and the queue ran dry. */
enum { AR_QUEUED = 0, AR_PARSED = 1 };
typedef struct { size_t off, len; int st; } ar_blk;
struct ck_arena {
    uint8_t *base;          /* data start, 2 MiB-aligned */
    size_t cap;             /* bytes mapped at base (a multiple of 2 MiB) */
    size_t used;            /* bump offset */
    size_t touched;         /* the most bytes any load used: pages that may be resident */
    size_t live;            /* blocks alive */
    int loading;            /* a load still allocates from it */
    int role;               /* AR_QUEUED or AR_PARSED: the contents it holds */
    ar_blk *b;
    size_t nb, capb;
    struct ck_arena *next;
};
static ck_arena *ar_live, *ar_kept;   /* arenas with a load or a live block / kept for reuse */

static void ar_count(size_t len, int up) {
    if (up) {
        blk_mapped += len;
        if (blk_mapped > blk_mapped_hwm) blk_mapped_hwm = blk_mapped;
    } else {
        blk_mapped -= len;
    }
    sp_mem_account(NULL, up ? (long long)len : -(long long)len);
}

/* The whole pages of [p, p + len) */
static void ar_pages(uint8_t *p, size_t len, uint8_t **lo, size_t *n) {
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + len) & ~(uintptr_t)4095;
    *lo = (uint8_t *)a;
    *n = e > a ? (size_t)(e - a) : 0;
}

/* A dead block's bytes go back: its whole pages returned, its count dropped. */
static void ar_return(ck_arena *a, ar_blk *k) {
    uint8_t *lo;
    size_t n;
    ar_pages(a->base + k->off, k->len, &lo, &n);
    if (n) madvise(lo, n, MADV_DONTNEED);
    ar_count(k->len, 0);
    k->st = AB_FREE;
}
/* The same for a kept one, which leaves the cache. */
static void ar_release(ck_arena *a, ar_blk *k) {
    blk_cached_bytes -= k->len;
    ar_return(a, k);
}

static void ar_unlink(ck_arena **list, ck_arena *a) {
    for (ck_arena **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == a) { *pp = a->next; return; }
}

/* Every kept block's bytes leave the cache and the count (their pages stay); the bytes. */
static size_t ar_uncount_kept(ck_arena *a) {
    size_t freed = 0;
    for (size_t i = 0; i < a->nb; i++)
        if (a->b[i].st == AB_KEPT) {
            freed += a->b[i].len;
            blk_cached_bytes -= a->b[i].len;
            ar_count(a->b[i].len, 0);
            a->b[i].st = AB_FREE;
        }
    return freed;
}

/* Unmap an arena, every kept block's count with it (returns the kept bytes). */
static size_t ar_unmap(ck_arena *a) {
    size_t freed = ar_uncount_kept(a);
    AR_UNPOISON(a->base, a->cap);   /* the addresses go back to the system */
    munmap(a->base, a->cap);
    free(a->b);
    free(a);
    return freed;
}

/* The last block died and no load allocates: keep the arena if it keeps bytes. */
static void ar_retire(ck_arena *a) {
    ar_unlink(&ar_live, a);
    size_t kept = 0;
    for (size_t i = 0; i < a->nb; i++) kept += a->b[i].st == AB_KEPT ? a->b[i].len : 0;
    if (!kept) { ar_unmap(a); return; }
    /* every block dead: all its whole huge pages lazily freed, not only those inside one
     * block (1.6 GB file: 45 % of the kept bytes -> all but the last huge page) */
#ifdef MADV_FREE
    size_t whole = a->touched & ~(CK_HUGE - 1);
    if (whole) madvise(a->base, whole, MADV_FREE);
#endif
    a->next = ar_kept;
    ar_kept = a;
}

/* An arena for a load of a stream of n bytes: the smallest kept one that holds it and is
 * not more than twice its length, else a new mapping; NULL if none can be had (the load
 * uses ck_block_alloc). A much longer kept arena is left for a load of its size: a 50 MB
 * load taking a 200 MB file's arena gave back the 150 MB the next 200 MB load faulted in
 * again. */
static ck_arena *ar_open(size_t n, int role) {
    size_t cap = ((n + CK_HUGE - 1) & ~(CK_HUGE - 1)) + CK_HUGE;
    if (cap < n) return NULL;
    pthread_mutex_lock(&blk_mu);
    ck_arena *best = NULL;
    for (ck_arena *a = ar_kept; a; a = a->next)
        if (a->role == role && a->cap >= cap && a->cap / 2 <= cap && (!best || a->cap < best->cap)) best = a;
    if (best) {
        ar_unlink(&ar_kept, best);
        ar_uncount_kept(best);
        best->used = best->nb = best->live = 0;
        best->loading = 1;
        AR_POISON(best->base, best->cap);
        best->next = ar_live;
        ar_live = best;
        pthread_mutex_unlock(&blk_mu);
        return best;
    }
    pthread_mutex_unlock(&blk_mu);
    ck_arena *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    size_t maplen = cap + CK_HUGE;
    uint8_t *m = maplen > cap ? mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                              : MAP_FAILED;
    if (m == MAP_FAILED) { free(a); return NULL; }
    uint8_t *b = (uint8_t *)(((uintptr_t)m + CK_HUGE - 1) & ~(uintptr_t)(CK_HUGE - 1));
    if (b > m) munmap(m, (size_t)(b - m));
    if ((size_t)(b - m) < CK_HUGE) munmap(b + cap, CK_HUGE - (size_t)(b - m));
    if (atomic_load_explicit(&blk_thp, memory_order_relaxed)) madvise(b, cap, MADV_HUGEPAGE);
    a->base = b;
    a->cap = cap;
    a->loading = 1;
    a->role = role;
    AR_POISON(b, cap);
    pthread_mutex_lock(&blk_mu);
    a->next = ar_live;
    ar_live = a;
    pthread_mutex_unlock(&blk_mu);
    return a;
}

/* size bytes out of the arena (64-byte aligned), or NULL when they do not fit. */
static void *ar_alloc(ck_arena *a, size_t size) {
    if (!size) size = 1;
    void *r = NULL;
    pthread_mutex_lock(&blk_mu);
    size_t off = (a->used + CK_ALIGN - 1) & ~(CK_ALIGN - 1);
    if (off <= a->cap && size <= a->cap - off) {
        if (a->nb == a->capb) {
            size_t nc = a->capb ? 2 * a->capb : 256;
            ar_blk *nb = realloc(a->b, nc * sizeof *nb);
            if (!nb) goto out;
            a->b = nb;
            a->capb = nc;
        }
        a->b[a->nb++] = (ar_blk){off, size, AB_LIVE};
        a->used = off + size;
        if (a->used > a->touched) a->touched = a->used;
        a->live++;
        ar_count(size, 1);
        r = a->base + off;
        AR_UNPOISON(r, size);
    }
out:
    pthread_mutex_unlock(&blk_mu);
    return r;
}

/* The load is over: pages a longer earlier load left past this one's end go back. */
static void ar_end(ck_arena *a) {
    if (!a) return;
    pthread_mutex_lock(&blk_mu);
    if (a->touched > a->used) {   /* to the end of the last huge page the longer load had */
        size_t lo = (a->used + 4095) & ~(size_t)4095, hi = (a->touched + CK_HUGE - 1) & ~(CK_HUGE - 1);
        if (hi > a->cap) hi = a->cap;
        if (hi > lo) madvise(a->base + lo, hi - lo, MADV_DONTNEED);
    }
    a->touched = a->used;
    a->loading = 0;
    if (!a->live) ar_retire(a);
    pthread_mutex_unlock(&blk_mu);
}

/* Under blk_mu: the live arena holding p, or NULL. */
static ck_arena *ar_find(const void *p) {
    for (ck_arena *a = ar_live; a; a = a->next)
        if ((const uint8_t *)p >= a->base && (const uint8_t *)p < a->base + a->cap) return a;
    return NULL;
}

/* Under blk_mu: block p of arena a dies; kept (cache) or returned. */
static void ar_free(ck_arena *a, const void *p, int cache) {
    size_t off = (size_t)((const uint8_t *)p - a->base), lo = 0, hi = a->nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->b[mid].off < off) lo = mid + 1; else hi = mid;
    }
    if (lo == a->nb || a->b[lo].off != off || a->b[lo].st != AB_LIVE) {
        fprintf(stderr, "spore: checkpoint block %p freed twice or never allocated\n", p);
        abort();
    }
    ar_blk *k = &a->b[lo];
    AR_POISON(a->base + k->off, k->len);
    size_t cap = cap_now();
    if (cache && k->len <= cap && blk_cached_bytes <= cap - k->len) {
        /* its whole huge pages lazily freed, as the block cache does (lazy_free): a part
         * of one would split it, and a warm load writing into 4 KiB pages whose dirty
         * bits MADV_FREE cleared ran 30-60 % slower (50 MB: 2.8-3.2 -> 3.6-4.5 ms) */
        uintptr_t lo = ((uintptr_t)(a->base + k->off) + CK_HUGE - 1) & ~(uintptr_t)(CK_HUGE - 1),
                  hi = (uintptr_t)(a->base + k->off + k->len) & ~(uintptr_t)(CK_HUGE - 1);
#ifdef MADV_FREE
        if (hi > lo) madvise((void *)lo, (size_t)(hi - lo), MADV_FREE);
#endif
        k->st = AB_KEPT;
        blk_cached_bytes += k->len;
    } else {
        ar_return(a, k);
    }
    a->live--;
    if (!a->live && !a->loading) ar_retire(a);
}

/* Tests (ck_cache_drop_pages): the kept bytes' pages dropped, as the kernel's reclaim of
 * lazily freed pages would (zero again); the bytes dropped. */
static size_t ar_drop_pages(void) {
    size_t n = 0;
    for (ck_arena *a = ar_kept; a; a = a->next) {
        size_t t = (a->touched + 4095) & ~(size_t)4095;
        if (t) madvise(a->base, t, MADV_DONTNEED);
        n += t;
    }
    for (ck_arena *a = ar_live; a; a = a->next)
        for (size_t i = 0; i < a->nb; i++)
            if (a->b[i].st == AB_KEPT) {
                uint8_t *lo;
                size_t k;
                ar_pages(a->base + a->b[i].off, a->b[i].len, &lo, &k);
                if (k) madvise(lo, k, MADV_DONTNEED);
                n += k;
            }
    return n;
}

/* Under blk_mu: return kept bytes (kept arenas first, oldest last in the list, then the
 * kept blocks of live arenas) until at most keep bytes are cached; the bytes returned. */
static size_t ar_trim(size_t keep) {
    size_t freed = 0;
    while (blk_cached_bytes > keep && ar_kept) {
        ck_arena **pp = &ar_kept;
        while ((*pp)->next) pp = &(*pp)->next;   /* the oldest */
        ck_arena *a = *pp;
        *pp = NULL;
        freed += ar_unmap(a);
    }
    for (ck_arena *a = ar_live; a && blk_cached_bytes > keep; a = a->next)
        for (size_t i = 0; i < a->nb && blk_cached_bytes > keep; i++)
            if (a->b[i].st == AB_KEPT) { freed += a->b[i].len; ar_release(a, &a->b[i]); }
    return freed;
}

static void *blk_alloc(void *ad, size_t size) {
    (void)ad;
    if (size < CK_BIG) {
        uint64_t *p = malloc(size + 16);
        if (!p) return NULL;
        p[0] = size + 16;
        p[1] = TAG_SMALL;
        sp_mem_account(NULL, (long long)(size + 16));
        return p + 2;
    }
    size_t need = size + CK_HDR;
    if (need < size) return NULL;
    size_t len = (need + 4095) & ~(size_t)4095; /* exact pages: no 2 MiB rounding waste */
    uint8_t *cached = cache_take(len);
    if (cached) {
        uint64_t *h = (uint64_t *)(cached + CK_HDR);
        h[-1] = TAG_BIG;
        h[-2] = len;
        return h;
    }
    size_t maplen = len + CK_HUGE;
    if (maplen < len) return NULL;
    uint8_t *m = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    big_mapped(len);
    /* the data on a 2 MiB boundary, the header page just below it; trim the rest */
    uint8_t *a = (uint8_t *)(((uintptr_t)m + CK_HDR + CK_HUGE - 1) & ~(uintptr_t)(CK_HUGE - 1)) - CK_HDR;
    if (a > m) munmap(m, (size_t)(a - m));
    size_t tail = (size_t)((m + maplen) - (a + len));
    if (tail) munmap(a + len, tail);
    if (atomic_load_explicit(&blk_thp, memory_order_relaxed)) madvise(a + CK_HDR, len - CK_HDR, MADV_HUGEPAGE);
    uint64_t *h = (uint64_t *)(a + CK_HDR);
    h[-1] = TAG_BIG;
    h[-2] = len;
    return h;
}

static void block_free(void *p, int cache) {
    if (!p) return;
    pthread_mutex_lock(&blk_mu);
    ck_arena *a = ar_live ? ar_find(p) : NULL;
    if (a) ar_free(a, p, cache);
    pthread_mutex_unlock(&blk_mu);
    if (a) return;
    uint64_t *h = p;
    if (h[-1] == TAG_BIG) {
        uint8_t *base = (uint8_t *)p - CK_HDR;
        size_t len = (size_t)h[-2];
        if (cache && cache_fits(len)) {
            lazy_free(base, len);
            if (cache_put(base, len)) return;
        }
        big_unmap(base, len);
    } else {
        sp_mem_account(NULL, -(long long)h[-2]);
        free(h - 2);
    }
}
void ck_block_free(void *p) { block_free(p, 1); }
void ck_block_free_uncached(void *p) { block_free(p, 0); }
void *ck_block_alloc(size_t size) { return blk_alloc(NULL, size ? size : 1); }
static void blk_free(void *ad, void *p) { (void)ad; ck_block_free(p); }
static ProtobufCAllocator blk_allocator = {blk_alloc, blk_free, NULL};

/* Grow a block to size bytes, keeping its first keep bytes. */
static void *blk_grow(void *p, size_t keep, size_t size) {
    void *q = blk_alloc(NULL, size);
    if (!q) return NULL;
    if (keep) memcpy(q, p, keep);
    ck_block_free(p);
    return q;
}

typedef struct {
    int64_t expect;   /* bytes the last entry must reach (-1: none pending) */
} pend_t;

static const char *prev_name(const sp_ckpt *c) { return c->n ? c->e[c->n - 1].name : NULL; }

static sp_status check_complete(sp_ckpt *c, pend_t *pd) {
    if (pd->expect < 0 || c->n == 0) return SP_OK;
    ck_entry *e = &c->e[c->n - 1];
    if ((int64_t)e->nbytes != pd->expect)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': content has %zu bytes, expected %lld "
                        "(shape × %zu-byte %s): truncated or malformed", c->path, e->name, e->nbytes,
                        (long long)pd->expect, sp_dtype_size(e->dtype), e->type);
    pd->expect = -1;
    return SP_OK;
}

static sp_status adopt_entry(sp_ckpt *c, ck_entry *e) {
    sp_status st;
    if (e->nbytes == 0) {
        st = sp_tensor_new(&e->t, e->dtype, e->ndim, e->shape);
        ck_block_free(e->raw);
    } else {
        st = sp_tensor_adopt(&e->t, e->dtype, e->ndim, e->shape, e->raw, e->nbytes, ck_block_free, e->raw);
        /* not adopted: the block stays the entry's (freed with it, after any queued read
         * into it has stopped) */
        if (st) return sp_error(st, "file '%s': tensor '%s': %s", c->path, e->name, sp_last_error());
    }
    e->raw = NULL;
    if (st) return sp_error(st, "file '%s': tensor '%s': %s", c->path, e->name, sp_last_error());
    e->data = sp_host_data(e->t);
    return SP_OK;
}

typedef struct rd rd_t;
static sp_status rd_read_to(rd_t *r, void *dst, size_t k);
static void *rd_alloc(rd_t *r, size_t len);

/* Where the content of the value being added is: in the unpacked message
 * (tp->tensor_content; r NULL), or the next len bytes of the stream r, which are then
 * read straight into the tensor's final block (no copy through the read buffer, no
 * second copy by protobuf-c). */
typedef struct { rd_t *r; size_t len; } content_t;

static size_t content_len(const Spore__Ms__TensorProto *tp, const content_t *ct) {
    return ct->r ? ct->len : tp->tensor_content.len;
}

/* Copy (or read) the content to dst. */
static sp_status content_to(const Spore__Ms__TensorProto *tp, const content_t *ct, void *dst) {
    if (ct->r) return ct->len ? rd_read_to(ct->r, dst, ct->len) : SP_OK;
    if (tp->tensor_content.len) memcpy(dst, tp->tensor_content.data, tp->tensor_content.len);
    return SP_OK;
}

/* The content in a block of its own: taken out of the message, or read into a fresh one. */
static sp_status content_take(sp_ckpt *c, const char *tag, Spore__Ms__TensorProto *tp, const content_t *ct,
                              void **out) {
    *out = NULL;
    if (!ct->r) {
        *out = tp->tensor_content.data;
        tp->tensor_content.data = NULL; tp->tensor_content.len = 0;
        return SP_OK;
    }
    void *b = rd_alloc(ct->r, ct->len);
    if (!b) return sp_error(SP_ENOMEM, "file '%s': tensor '%s': out of memory (%zu bytes)", c->path, tag, ct->len);
    sp_status st = content_to(tp, ct, b);
    if (st) { ck_block_free(b); return st; }
    *out = b;
    return SP_OK;
}

/* One Value. Takes the content buffer out of the message (or reads it from the stream). */
static sp_status add_value(sp_ckpt *c, Spore__Ms__Checkpoint__Value *v, size_t file_bytes, pend_t *pd,
                           const content_t *ct) {
    const char *tag = v->tag ? v->tag : "";
    if (v->value_case == SPORE__MS__CHECKPOINT__VALUE__VALUE_MAPTENSOR) {
        sp_status st = check_complete(c, pd);
        if (st) return st;
        ck_entry *e = ck_push(c);
        if (!e || !(e->name = strdup(tag)) || !(e->type = strdup("maptensor")))
            return sp_error(SP_ENOMEM, "out of memory");
        return SP_OK;
    }
    if (v->value_case != SPORE__MS__CHECKPOINT__VALUE__VALUE_TENSOR || !v->tensor)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the Value holds neither a tensor nor a maptensor",
                        c->path, tag);
    Spore__Ms__TensorProto *tp = v->tensor;
    const char *type = tp->tensor_type ? tp->tensor_type : "";
    int dt = ck_ms_dtype(type);
    if (tp->n_dims > SP_MAX_DIMS)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': %zu dims, at most %d supported", c->path, tag,
                        tp->n_dims, SP_MAX_DIMS);
    int64_t shape[SP_MAX_DIMS], numel = 1;
    int ndim = (int)tp->n_dims;
    for (int d = 0; d < ndim; d++) {
        shape[d] = tp->dims[d];
        if (shape[d] < 0)
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': dim %d is %lld, expected >= 0", c->path, tag, d,
                            (long long)shape[d]);
        if (!sp_mul_ok(numel, shape[d], &numel))
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the element count of the dims overflows",
                            c->path, tag);
    }
    size_t len = content_len(tp, ct);
    size_t isz = dt >= 0 ? sp_dtype_size(dt) : 0;
    /* scalars: no dims (new) or dims [0] with content (old: one element; spore's writer
     * may slice it). An empty content with dims [0] is an empty 1-D tensor. */
    if (ndim == 1 && shape[0] == 0 && len > 0) { ndim = 0; numel = 1; }

    /* consecutive same-tag values: slices of one big tensor */
    if (pd->expect >= 0 && c->n && strcmp(c->e[c->n - 1].name, tag) == 0) {
        ck_entry *e = &c->e[c->n - 1];
        if (strcmp(e->type, type) != 0 || e->ndim != ndim || memcmp(e->shape, shape, sizeof(int64_t) * ndim))
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': a slice's dims or type differ from the first slice",
                            c->path, tag);
        if (len > (size_t)pd->expect - e->nbytes)
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': slices hold more than the %lld bytes of the "
                            "shape", c->path, tag, (long long)pd->expect);
        sp_status st = content_to(tp, ct, (char *)e->raw + e->nbytes);  /* an empty slice may have no data */
        if (st) return st;
        e->nbytes += len;
        if ((int64_t)e->nbytes == pd->expect) { pd->expect = -1; return adopt_entry(c, e); }
        return SP_OK;
    }
    sp_status st = check_complete(c, pd);
    if (st) return st;

    ck_entry *e = ck_push(c);
    if (!e || !(e->name = strdup(tag)) || !(e->type = strdup(type))) return sp_error(SP_ENOMEM, "out of memory");
    e->ndim = ndim;
    memcpy(e->shape, shape, sizeof(int64_t) * ndim);
    if (dt < 0) {   /* str or unknown: keep the raw bytes */
        st = content_take(c, tag, tp, ct, &e->raw);
        if (st) return st;
        e->data = e->raw;
        e->nbytes = len;
        return SP_OK;
    }
    e->dtype = dt;
    int64_t expect;
    if (!sp_mul_ok(numel, (int64_t)isz, &expect))
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the byte size of the dims overflows", c->path, tag);
    if ((uint64_t)len > (uint64_t)expect || (size_t)expect > file_bytes)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': content has %zu bytes, expected %lld "
                        "(%lld elements × %zu-byte %s)%s", c->path, tag, len, (long long)expect,
                        (long long)numel, isz, type,
                        (size_t)expect > file_bytes ? ": the dims are larger than the file" : "");
    if ((int64_t)len == expect) {
        st = content_take(c, tag, tp, ct, &e->raw);
        if (st) return st;
        e->nbytes = len;
        return adopt_entry(c, e);
    }
    /* first slice of a split tensor: a block of the full size now */
    if (ct->r) {
        e->raw = rd_alloc(ct->r, (size_t)expect);
        if (!e->raw) return sp_error(SP_ENOMEM, "file '%s': tensor '%s': out of memory (%lld bytes)", c->path, tag,
                                     (long long)expect);
        st = content_to(tp, ct, e->raw);
        if (st) return st;
    } else {
        void *grown = blk_grow(tp->tensor_content.data, len, (size_t)expect);
        if (!grown) return sp_error(SP_ENOMEM, "file '%s': tensor '%s': out of memory (%lld bytes)", c->path, tag,
                                    (long long)expect);
        tp->tensor_content.data = NULL; tp->tensor_content.len = 0;
        e->raw = grown;
    }
    e->nbytes = len;
    e->data = e->raw;
    pd->expect = expect;
    return SP_OK;
}

/* protobuf-c hands tag strings over NUL-terminated: a tag "a\0b" would silently become "a"
 * (and join or shadow tensor "a"). Walk the record's top-level fields and refuse a tag
 * (field 1) holding a NUL byte. Malformed framing is left to protobuf-c's own error. */
static int tag_has_nul(const uint8_t *p, size_t n, size_t *tag_len) {
    size_t pos = 0;
    while (pos < n) {
        uint64_t key, v;
        if (!get_varint(p, n, &pos, &key)) return 0;
        switch (key & 7) {
        case 0: if (!get_varint(p, n, &pos, &v)) return 0; break;
        case 1: if (n - pos < 8) return 0; pos += 8; break;
        case 5: if (n - pos < 4) return 0; pos += 4; break;
        case 2:
            if (!get_varint(p, n, &pos, &v) || v > n - pos) return 0;
            if ((key >> 3) == 1 && memchr(p + pos, 0, (size_t)v)) { *tag_len = (size_t)v; return 1; }
            pos += (size_t)v;
            break;
        default: return 0;
        }
    }
    return 0;
}


/* ---- the record stream ---------------------------------------------------
 * The stream is either caller memory (sp_ckpt_open_memory, a decrypted buffer) or a
 * file descriptor. A file is read with pread() into one reusable buffer (counted in
 * sp_mem_stats while alive), refilled in 64 KiB steps as records are consumed and grown
 * to the largest record protobuf-c must see whole; contents past the buffer are read
 * into their tensors (rd_read_to). No mapping of the user's
 * file exists, so a file truncated under the reader gives a short read (a clean error
 * naming the file), never a bus error, and nothing loaded refers to the file. */
#define CK_READ_CHUNK ((size_t)1 << 20)
#define CK_FILL ((size_t)64 << 10)

void (*ck_read_hook)(int fd, uint64_t offset);
void (*ck_queue_hook)(int fd);

sp_status ck_pread_full(const char *path, int fd, void *dst, size_t len, uint64_t off, uint64_t total) {
    uint8_t *d = dst;
    while (len) {
        if (ck_read_hook) ck_read_hook(fd, off);
        size_t k = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t r = pread(fd, d, k, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return sp_error(SP_EIO, "file '%s': read error at byte %llu: %s", path, (unsigned long long)off,
                                   strerror(errno));
        if (r == 0)
            return sp_error(SP_EIO, "file '%s': changed while reading: it ends at byte %llu, %llu expected "
                            "(truncated during the load)", path, (unsigned long long)off, (unsigned long long)total);
        d += r; len -= (size_t)r; off += (uint64_t)r;
    }
    return SP_OK;
}

/* Below this many bytes a read stays on the caller's thread (no libgomp team). */
#define CK_PAR_MIN ((size_t)1 << 20)

/* One thread's part of a read: its outcome comes back as numbers and the message is made
 * on the caller's thread (sp_error's text is per thread). */
typedef struct {
    int fd;
    uint8_t *d;
    size_t len;
    uint64_t off;
    int err;          /* errno of a failed pread, or 0 */
    int eof;          /* the file ended early */
    uint64_t at;      /* offset of the failure */
} pr_part;

static void pr_run(pr_part *p) {
    while (p->len) {
        size_t k = p->len > ((size_t)1 << 30) ? ((size_t)1 << 30) : p->len;
        ssize_t r = pread(p->fd, p->d, k, (off_t)p->off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { p->err = r < 0 ? errno : 0; p->eof = r == 0; p->at = p->off; return; }
        p->d += r; p->len -= (size_t)r; p->off += (uint64_t)r;
    }
}

/* ---- contents read beside the parse ----------------------------------------
 * Unless the truncation tests' read hook is set, the caller's thread parses the records'
 * heads and allocates the tensors' blocks, and every content byte past the read buffer
 * becomes a job in a queue, cut into pieces that end on 2 MiB boundaries of
 * their destination (a huge page is faulted in by one thread). libgomp's other threads
 * read pieces out of the file while the parse goes on, and the caller's thread joins
 * them when the parse is done: the page faults on fresh blocks and the copies out of the
 * page cache run on every thread for the whole load. Before this, the reads were in
 * record order, two threads on a content of 1 MiB or more and one on the rest, with the
 * parse in between. A 205 MB ResNet50 + Momentum file in a C process with OpenBLAS's
 * threads asleep: first load 76 -> 35-37 ms, warm 21.5 -> 16 ms. A block is not freed
 * while the queue runs: adopt_entry keeps a block it could not hand to a tensor, and the
 * entry's cleanup frees it after the workers stopped. A failed read (the file shrank
 * under the reader) stops the queue and is reported on the caller's thread, in
 * ck_pread_full's words, at the lowest offset that failed. The team is libgomp's
 * omp_get_max_threads(), at most 8. With the CRC to check (crc_check), each piece's CRC-32
 * is taken by the thread that read it, the bytes consumed out of the read buffer are
 * summed in order between pieces, and zlib's crc32_combine64 joins the segments in stream
 * order (rd_t.segs): a 205 MB file, warm, 141 -> 75 ms; a parse that fails reads the
 * stream again in order for its CRC (a mismatch explains the failure better). */
#define CK_PIECE ((size_t)2 << 20)
#define CK_READ_THREADS 8

typedef struct { uint8_t *d; size_t len; uint64_t off; } ck_job;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ck_job *pc;
    size_t np, cap, next;   /* pieces queued, capacity, next to take */
    int done;               /* the parse has ended */
    int stop;               /* stop reading: a failure somewhere */
    int failed;
    pr_part fail;
    int want_crc;           /* each piece's CRC-32 into pcrc[], by the thread that read it */
    uint32_t *pcrc;
} ck_queue;

/* Queue len bytes of the file at off for d (caller holds nothing); *first (if not NULL)
 * gets the index of its first piece, *count how many. */
static sp_status q_push(ck_queue *q, const char *path, uint8_t *d, size_t len, uint64_t off, size_t *first,
                        size_t *count) {
    pthread_mutex_lock(&q->mu);
    size_t need = q->np + len / CK_PIECE + 2;
    if (need > q->cap) {
        size_t nc = q->cap ? 2 * q->cap : 256;
        while (nc < need) nc *= 2;
        ck_job *n = realloc(q->pc, nc * sizeof *n);
        if (n) q->pc = n;
        uint32_t *nk = n && q->want_crc ? realloc(q->pcrc, nc * sizeof *nk) : NULL;
        if (nk) q->pcrc = nk;
        if (!n || (q->want_crc && !nk)) {
            pthread_mutex_unlock(&q->mu);
            return sp_error(SP_ENOMEM, "file '%s': out of memory", path);
        }
        q->cap = nc;
    }
    size_t f0 = q->np;
    while (len) {
        size_t to_edge = CK_PIECE - ((uintptr_t)d & (CK_PIECE - 1)), k = len < to_edge ? len : to_edge;
        q->pc[q->np++] = (ck_job){d, k, off};
        d += k; len -= k; off += k;
    }
    if (first) *first = f0;
    if (count) *count = q->np - f0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return SP_OK;
}

/* A stopped queue's failure, worded on the caller's thread as ck_pread_full words it. */
static sp_status q_error(const ck_queue *q, const char *path, uint64_t total) {
    if (q->fail.err)
        return sp_error(SP_EIO, "file '%s': read error at byte %llu: %s", path, (unsigned long long)q->fail.at,
                        strerror(q->fail.err));
    return sp_error(SP_EIO, "file '%s': changed while reading: it ends at byte %llu, %llu expected "
                    "(truncated during the load)", path, (unsigned long long)q->fail.at, (unsigned long long)total);
}

static int q_threads(size_t bytes) {
    int nt = bytes < CK_PAR_MIN ? 1 : omp_get_max_threads();
    return nt > CK_READ_THREADS ? CK_READ_THREADS : nt;
}

/* Read pieces until the queue is drained and the parse done, or stopped. */
static void q_work(ck_queue *q, int fd) {
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->next == q->np && !q->done && !q->stop) pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop || q->next == q->np) break;
        size_t i = q->next++;
        ck_job j = q->pc[i];
        pthread_mutex_unlock(&q->mu);
        pr_part p = {fd, j.d, j.len, j.off, 0, 0, 0};
        pr_run(&p);
        uint32_t crc = q->want_crc && !p.err && !p.eof ? sp_crc32(0, j.d, j.len) : 0;
        pthread_mutex_lock(&q->mu);
        if (q->want_crc) q->pcrc[i] = crc;
        if (p.err || p.eof) {
            if (!q->failed || p.at < q->fail.at) q->fail = p;
            q->failed = 1;
            q->stop = 1;
            pthread_cond_broadcast(&q->cv);
        }
    }
    pthread_mutex_unlock(&q->mu);
}

/* len bytes of the file at off into dst, every piece queued up front and read by the
 * queue's threads: a whole safetensors, .pth or encrypted file (read_whole, ckpt.c), which
 * one thread read at about half the speed (205 MB safetensors, fresh process: 57-78 ms).
 * One thread under ck_read_hook, whose tests see every read in order. */
sp_status ck_pread_all(const char *path, int fd, void *dst, size_t len, uint64_t off, uint64_t total) {
    if (len < CK_PAR_MIN || ck_read_hook) return ck_pread_full(path, fd, dst, len, off, total);
    if (ck_queue_hook) ck_queue_hook(fd);
    ck_queue q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .done = 1};
    sp_status st = q_push(&q, path, dst, len, off, NULL, NULL);
    if (!st) {
#pragma omp parallel num_threads(q_threads(len))
        q_work(&q, fd);
        if (q.failed) st = q_error(&q, path, total);
    }
    free(q.pc);
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.mu);
    return st;
}

struct rd {
    const char *path;
    int fd;                 /* -1: the stream is mem */
    const uint8_t *mem;
    size_t n;               /* stream length */
    size_t pos;             /* stream offset of the next unconsumed byte */
    uint8_t *buf;           /* fd: bytes [pos, pos + (hi - lo)) at buf + lo */
    size_t cap, lo, hi;
    int want_crc;
    uint32_t crc;           /* fd, want_crc: CRC-32 of every byte read so far */
    ck_queue *q;            /* fd: contents past the buffer are queued, not read */
    /* q and want_crc: the stream as CRC segments in order, each a run of bytes consumed
     * out of the buffer (crc, len) or a queued piece (piece >= 0: its CRC comes from the
     * thread that reads it); combined with zlib's crc32_combine64 at the end */
    struct { uint32_t crc; uint64_t len; int64_t piece; } *segs;
    size_t nseg, capseg;
    uint32_t run_crc;
    uint64_t run_len;
    int use_ar;             /* contents go into arenas (a stream of CK_ARENA_MIN bytes or more);
                             * bit 1 << (1 + role): that arena was asked for */
    ck_arena *ar[2];        /* the load's arenas (AR_QUEUED, AR_PARSED), made on first use */
};

/* A block for a content read from the stream: out of the load's arena for its kind when
 * it fits there, else a block of its own. */
static void *rd_alloc(rd_t *r, size_t len) {
    int role = len >= CK_FILL ? AR_QUEUED : AR_PARSED;
    if (r->use_ar && !(r->use_ar & (2 << role))) {   /* once: a failed mapping is not asked for again */
        r->use_ar |= 2 << role;
        r->ar[role] = ar_open(r->n, role);
    }
    void *p = r->ar[role] ? ar_alloc(r->ar[role], len) : NULL;
    return p ? p : ck_block_alloc(len ? len : 1);
}

static int seg_push(rd_t *r, uint32_t crc, uint64_t len, int64_t piece) {
    if (r->nseg == r->capseg) {
        size_t nc = r->capseg ? 2 * r->capseg : 256;
        void *n = realloc(r->segs, nc * sizeof *r->segs);
        if (!n) return 0;
        r->segs = n; r->capseg = nc;
    }
    r->segs[r->nseg].crc = crc; r->segs[r->nseg].len = len; r->segs[r->nseg].piece = piece;
    r->nseg++;
    return 1;
}

/* the bytes consumed out of the buffer since the last queued content, as one segment */
static int seg_flush(rd_t *r) {
    if (!r->run_len) return 1;
    if (!seg_push(r, r->run_crc, r->run_len, -1)) return 0;
    r->run_crc = 0; r->run_len = 0;
    return 1;
}

/* q and want_crc: k bytes at p leave the buffer in stream order */
static void seg_run(rd_t *r, const uint8_t *p, size_t k) {
    if (!r->q || !r->want_crc || !k) return;
    r->run_crc = sp_crc32(r->run_crc, p, k);
    r->run_len += k;
}

/* Queue k bytes of the stream at r->pos for dst; with a CRC to keep, their pieces become
 * segments after the bytes consumed so far. */
static sp_status rd_queue(rd_t *r, uint8_t *dst, size_t k) {
    size_t first = 0, count = 0;
    if (r->want_crc && !seg_flush(r)) return sp_error(SP_ENOMEM, "file '%s': out of memory", r->path);
    sp_status st = q_push(r->q, r->path, dst, k, r->pos, &first, &count);
    if (st) return st;
    if (r->want_crc) {
        size_t left = k;
        for (size_t i = 0; i < count; i++) {
            size_t to_edge = CK_PIECE - ((uintptr_t)dst & (CK_PIECE - 1)), pk = left < to_edge ? left : to_edge;
            if (!seg_push(r, 0, pk, (int64_t)(first + i))) return sp_error(SP_ENOMEM, "file '%s': out of memory", r->path);
            dst += pk; left -= pk;
        }
    }
    r->pos += k;
    r->lo = r->hi = 0;
    return SP_OK;
}

/* Make at least min(k, n - pos) bytes available; *p points at them. */
static sp_status rd_peek(rd_t *r, size_t k, const uint8_t **p, size_t *avail) {
    size_t left = r->n - r->pos;
    if (k > left) k = left;
    if (r->fd < 0) { *p = r->mem + r->pos; *avail = left; return SP_OK; }
    if (r->hi - r->lo < k) {
        size_t have = r->hi - r->lo;
        if (r->lo && have) memmove(r->buf, r->buf + r->lo, have);
        r->lo = 0; r->hi = have;
        if (k > r->cap) {
            size_t nc = k > CK_READ_CHUNK ? k : CK_READ_CHUNK;
            uint8_t *nb = malloc(nc);
            if (!nb) return sp_error(SP_ENOMEM, "file '%s': out of memory (a %zu-byte read buffer)", r->path, nc);
            if (have) memcpy(nb, r->buf, have);
            free(r->buf);
            if (r->cap) sp_mem_account(NULL, -(long long)r->cap);   /* one allocation out, one in */
            sp_mem_account(NULL, (long long)nc);
            r->buf = nb; r->cap = nc;
        }
        /* fill at least k, in CK_FILL steps (a big content is read past the buffer,
         * straight into its tensor: rd_read_to), never past the stream */
        size_t want = k - have > CK_FILL ? k - have : CK_FILL, rest = left - have;
        if (want > r->cap - r->hi) want = r->cap - r->hi;
        if (want > rest) want = rest;
        sp_status st = ck_pread_full(r->path, r->fd, r->buf + r->hi, want, r->pos + have, r->n);
        if (st) return st;
        if (r->want_crc && !r->q) r->crc = sp_crc32(r->crc, r->buf + r->hi, want);
        r->hi += want;
    }
    *p = r->buf + r->lo;
    *avail = r->hi - r->lo;
    return SP_OK;
}

static void rd_consume(rd_t *r, size_t k) {
    r->pos += k;
    if (r->fd >= 0) { seg_run(r, r->buf + r->lo, k); r->lo += k; }
}

/* The next k bytes of the stream (k <= n - pos, checked by the caller) into dst: what the
 * read buffer holds is copied, the rest is read from the file straight into dst. */
static sp_status rd_read_to(rd_t *r, void *dst, size_t k) {
    if (r->fd < 0) {
        memcpy(dst, r->mem + r->pos, k);
        r->pos += k;
        return SP_OK;
    }
    size_t have = r->hi - r->lo, m = have < k ? have : k;
    /* a content of 64 KiB or more: the queue reads all of it, the bytes already in the
     * buffer too (read twice out of the page cache), so that the parse touches none of
     * its pages (205 MB file: the parse 20-32 -> 2-5 ms of the load) */
    if (r->q && k >= CK_FILL) return rd_queue(r, dst, k);
    if (m) { memcpy(dst, r->buf + r->lo, m); seg_run(r, r->buf + r->lo, m); }
    r->lo += m; r->pos += m;
    if (m == k) return SP_OK;
    if (r->q) return rd_queue(r, (uint8_t *)dst + m, k - m);
    sp_status st = ck_pread_full(r->path, r->fd, (uint8_t *)dst + m, k - m, r->pos, r->n);
    if (st) return st;
    if (r->want_crc) r->crc = sp_crc32(r->crc, (uint8_t *)dst + m, k - m);
    r->pos += k - m;
    r->lo = r->hi = 0;
    return SP_OK;
}

/* fd: read (and CRC) the rest of the stream, so a CRC check can judge a file whose
 * parse failed. */
static sp_status rd_drain(rd_t *r) {
    while (r->pos < r->n) {
        const uint8_t *p; size_t avail;
        size_t k = r->cap ? r->cap : CK_READ_CHUNK;
        sp_status st = rd_peek(r, k, &p, &avail);
        if (st) return st;
        rd_consume(r, avail);
    }
    return SP_OK;
}

/* The direct path. A Value as MindSpore (and spore) write it: tag (field 1), then the
 * TensorProto (field 2) as its last field, whose last field is tensor_content (field 3).
 * Given the record's first avail bytes (of len), find where the content starts (*coff)
 * and how long it is (*clen), and build in syn (avail + 16 bytes) the same record with
 * an empty content (*synlen bytes), which protobuf-c then unpacks as it would the whole
 * record. Returns 0 (the caller unpacks the whole record, as before) for anything else:
 * a field 2 or 3 that is not the last, malformed framing, a head past avail. */
static int skip_field(const uint8_t *p, size_t avail, size_t *pos, uint64_t key) {
    uint64_t v;
    switch (key & 7) {
    case 0: return get_varint(p, avail, pos, &v);
    case 1: if (avail - *pos < 8) return 0; *pos += 8; return 1;
    case 5: if (avail - *pos < 4) return 0; *pos += 4; return 1;
    case 2: if (!get_varint(p, avail, pos, &v) || v > avail - *pos) return 0; *pos += (size_t)v; return 1;
    default: return 0;
    }
}

static int split_value(const uint8_t *p, size_t avail, size_t len, uint8_t *syn, size_t *synlen, size_t *coff,
                       size_t *clen) {
    size_t pos = 0;
    if (avail > len) avail = len;
    while (pos < avail) {
        uint64_t key, v;
        if (!get_varint(p, avail, &pos, &key)) return 0;
        if ((key >> 3) != 2) { if (!skip_field(p, avail, &pos, key)) return 0; continue; }
        if ((key & 7) != 2) return 0;
        size_t tkey_end = pos;
        if (!get_varint(p, avail, &pos, &v) || v != len - pos) return 0;   /* the tensor ends the record */
        size_t tstart = pos;
        while (pos < avail) {
            uint64_t tk, tv;
            if (!get_varint(p, avail, &pos, &tk)) return 0;
            if ((tk >> 3) != 3) { if (!skip_field(p, avail, &pos, tk)) return 0; continue; }
            if ((tk & 7) != 2) return 0;
            size_t ckey_end = pos;
            if (!get_varint(p, avail, &pos, &tv) || tv != len - pos) return 0;   /* the content ends the tensor */
            /* syn: the record up to the tensor's key, the tensor's new length, its fields
             * before the content, the content's key and a zero length */
            size_t o = tkey_end;
            memcpy(syn, p, tkey_end);
            uint64_t x = (uint64_t)(ckey_end - tstart) + 1;
            do { uint8_t b = x & 0x7f; x >>= 7; syn[o++] = (uint8_t)(b | (x ? 0x80 : 0)); } while (x);
            memcpy(syn + o, p + tstart, ckey_end - tstart);
            o += ckey_end - tstart;
            syn[o++] = 0;
            *synlen = o; *coff = pos; *clen = (size_t)tv;
            return 1;
        }
        return 0;
    }
    return 0;
}

/* Records at least this long take the direct path; their head is looked for in the
 * first CK_HEAD bytes. */
#define CK_HEAD ((size_t)64 << 10)

static sp_status parse_stream_syn(sp_ckpt *c, rd_t *r, uint8_t *syn);

static sp_status parse_stream(sp_ckpt *c, rd_t *r) {
    uint8_t *syn = malloc(CK_HEAD + 32);
    if (!syn) return sp_error(SP_ENOMEM, "out of memory");
    sp_status st = parse_stream_syn(c, r, syn);
    free(syn);
    return st;
}

static sp_status parse_stream_syn(sp_ckpt *c, rd_t *r, uint8_t *syn) {
    pend_t pd = {-1};
    int64_t rec = 0;
    size_t n = r->n;
    while (r->pos < n) {
        const uint8_t *p;
        size_t avail, at = r->pos, hp = 0;
        sp_status st = rd_peek(r, 20, &p, &avail);   /* two varints */
        if (st) return st;
        uint64_t key = 0, len = 0;
        if (!get_varint(p, avail, &hp, &key) || key != 0x0a) {
            if (rec == 0)
                return sp_error(SP_EFORMAT, "file '%s': not a MindSpore checkpoint (no protobuf Checkpoint.value "
                                "at byte 0)", c->path);
            return sp_error(SP_EFORMAT, "file '%s': malformed data at byte offset %zu after tensor '%s' "
                            "(expected another Checkpoint.value)", c->path, at, prev_name(c));
        }
        if (!get_varint(p, avail, &hp, &len) || len > n - at - hp) {
            if (rec == 0)
                return sp_error(SP_EFORMAT, "file '%s': not a MindSpore checkpoint, or truncated in its first "
                                "value (byte offset %zu)", c->path, at);
            return sp_error(SP_EFORMAT, "file '%s': truncated: the value after tensor '%s' (byte offset %zu) "
                            "claims %llu bytes, %zu remain", c->path, prev_name(c), at,
                            (unsigned long long)len, n - at);
        }
        /* the direct path: the record's head (everything but the content) is unpacked
         * from syn, and the content is read into its tensor's block by add_value */
        size_t head = (size_t)len < CK_HEAD ? (size_t)len : CK_HEAD;
        st = rd_peek(r, hp + head, &p, &avail);
        if (st) return st;
        size_t synlen = 0, coff = 0, clen = 0;
        content_t ct = {NULL, 0};
        const uint8_t *msg = p + hp;
        size_t msglen = (size_t)len;
        if (split_value(p + hp, avail - hp, (size_t)len, syn, &synlen, &coff, &clen)) {
            msg = syn; msglen = synlen;
            ct.r = r; ct.len = clen;
        } else {
            st = rd_peek(r, hp + (size_t)len, &p, &avail);
            if (st) return st;
            msg = p + hp;
        }
        Spore__Ms__Checkpoint__Value *v = (Spore__Ms__Checkpoint__Value *)protobuf_c_message_unpack(
            &spore__ms__checkpoint__value__descriptor, &blk_allocator, msglen, msg);
        size_t tl = 0;
        if (v && tag_has_nul(msg, msglen, &tl)) {
            st = sp_error(SP_EFORMAT, "file '%s': the value at byte offset %zu has a %zu-byte tag with a NUL byte "
                          "(after '%s'): expected a name without NUL", c->path, at, tl, v->tag ? v->tag : "");
            protobuf_c_message_free_unpacked(&v->base, &blk_allocator);
            return st;
        }
        rd_consume(r, hp + (ct.r ? coff : (size_t)len));
        if (!v) {
            if (rec == 0)
                return sp_error(SP_EFORMAT, "file '%s': not a MindSpore checkpoint (the first value at byte 0 "
                                "does not parse as Checkpoint.Value)", c->path);
            return sp_error(SP_EFORMAT, "file '%s': malformed value at byte offset %zu after tensor '%s' "
                            "(protobuf parse failed)", c->path, at, prev_name(c));
        }
        st = add_value(c, v, n, &pd, &ct);
        protobuf_c_message_free_unpacked(&v->base, &blk_allocator);
        if (st) return st;
        rec++;
    }
    sp_status st = check_complete(c, &pd);
    /* MindSpore keeps the first of two same-named values, spore kept the last: either
     * silently drops one. Slices of one tensor were joined into one entry before this. */
    return st ? st : ck_check_unique(c, "");
}

/* Streams of at least this many bytes carve their contents out of an arena. */
#define CK_ARENA_MIN CK_BIG

sp_status ck_parse_proto(sp_ckpt *c, const uint8_t *buf, size_t n) {
    rd_t r = {.path = c->path, .fd = -1, .mem = buf, .n = n, .use_ar = n >= CK_ARENA_MIN};
    sp_status st = parse_stream(c, &r);
    ar_end(r.ar[0]);
    ar_end(r.ar[1]);
    return st;
}

sp_status ck_parse_proto_fd(sp_ckpt *c, int fd, size_t n, int want_crc, uint32_t *crc) {
    rd_t r = {.path = c->path, .fd = fd, .n = n, .want_crc = want_crc, .use_ar = n >= CK_ARENA_MIN};
    sp_status st;
    if (ck_read_hook) {
        st = parse_stream(c, &r);
        if (want_crc && (!st || st == SP_EFORMAT)) {
            /* a CRC mismatch explains a parse failure better than the parse error does */
            sp_status dst = rd_drain(&r);
            if (dst) st = dst;
            else if (st && r.crc != *crc)
                st = sp_error(SP_ECRC, "file '%s': CRC mismatch: the trailer says %u, the content gives %u "
                              "(file corrupted or modified)", c->path, *crc, r.crc);
        }
    } else {
        if (ck_queue_hook) ck_queue_hook(fd);
        ck_queue q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .want_crc = want_crc};
        r.q = &q;
        int nt = q_threads(n);
        st = SP_OK;
#pragma omp parallel num_threads(nt)
        {
            if (omp_get_thread_num() == 0) {
                st = parse_stream(c, &r);
                if (!st && want_crc && !seg_flush(&r)) st = sp_error(SP_ENOMEM, "file '%s': out of memory", c->path);
                pthread_mutex_lock(&q.mu);
                q.done = 1;
                if (st) q.stop = 1;
                pthread_cond_broadcast(&q.cv);
                pthread_mutex_unlock(&q.mu);
            }
            q_work(&q, fd);
        }
        if (!st && q.failed) st = q_error(&q, c->path, n);
        if (!st && want_crc) {
            uint32_t all = 0;
            for (size_t i = 0; i < r.nseg; i++)
                all = (uint32_t)crc32_combine64(all, r.segs[i].piece >= 0 ? q.pcrc[r.segs[i].piece] : r.segs[i].crc,
                                                (z_off64_t)r.segs[i].len);
            r.crc = all;
        } else if (want_crc && st == SP_EFORMAT) {
            /* a CRC mismatch explains a parse failure better than the parse error does: the
             * whole stream's CRC, read again in order */
            rd_t w = {.path = c->path, .fd = fd, .n = n, .want_crc = 1};
            sp_status dst = rd_drain(&w);
            free(w.buf);
            if (w.cap) sp_mem_account(NULL, -(long long)w.cap);
            r.crc = w.crc;
            if (dst) st = dst;
            else if (w.crc != *crc)
                st = sp_error(SP_ECRC, "file '%s': CRC mismatch: the trailer says %u, the content gives %u "
                              "(file corrupted or modified)", c->path, *crc, w.crc);
        }
        free(q.pc);
        free(q.pcrc);
        free(r.segs);
        pthread_cond_destroy(&q.cv);
        pthread_mutex_destroy(&q.mu);
    }
    ar_end(r.ar[0]);   /* after the queue's threads stopped */
    ar_end(r.ar[1]);
    *crc = r.crc;
    free(r.buf);
    if (r.cap) sp_mem_account(NULL, -(long long)r.cap);
    return st;
}
