/* test_surface.c — the engine's explicit configuration, byte accounting of the
 * checkpoint reader/writer, and the dtype table every name lookup reads. */
#include "check.h"
#include "core/internal.h" /* sp_dtypes: the table itself */
#include "io/ckpt_internal.h" /* ck_block_alloc, ck_cache_drop_pages */

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int64_t live_now(void) {
    int64_t live;
    sp_mem_stats(&live, NULL, NULL);
    return live;
}

SUITE(surface_config) {
    int omp0 = sp_config_nn_omp();
    sp_config_set_nn_omp(7);
    CHECK(sp_config_nn_omp() == 1, "nn_omp set to a non-zero value reads 1");
    sp_config_set_nn_omp(0);
    CHECK(sp_config_nn_omp() == 0, "nn_omp off");
    sp_config_set_nn_omp(omp0);
    int thp0 = sp_config_ckpt_thp();
    sp_config_set_ckpt_thp(0);
    CHECK(sp_config_ckpt_thp() == 0, "thp off");
    sp_config_set_ckpt_thp(thp0);
    size_t cap0 = sp_config_ckpt_cache();
    CHECK(sp_config_ckpt_cache_auto() == 1, "the cache cap is automatic by default");
    CHECK(cap0 >= (size_t)256 << 20, "automatic cache cap at least 256 MiB (got %zu)", cap0);
    sp_config_set_ckpt_cache(12345);
    CHECK(sp_config_ckpt_cache() == 12345, "cache cap reads back");
    CHECK(sp_config_ckpt_cache_auto() == 0, "a cap set is not automatic");
    sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);
    CHECK(sp_config_ckpt_cache_auto() == 1 && sp_config_ckpt_cache() == cap0, "SP_CKPT_CACHE_AUTO restores it");
}

/* Add t to w as "<prefix><i>", count its bytes, free it. */
static void add_named(sp_ckpt_writer *w, const char *prefix, int i, sp_tensor *t, size_t *bytes) {
    char name[32];
    snprintf(name, sizeof name, "%s%d", prefix, i);
    CHECK_OK(sp_ckpt_writer_add(w, name, t));
    *bytes += sp_tensor_nbytes(t);
    sp_tensor_free(t);
}

/* Write a .ckpt with three 3 MiB float32 tensors (big blocks) and a small one. */
static size_t write_ckpt(const char *path) {
    sp_ckpt_writer *w;
    int64_t live0 = live_now();
    CHECK_OK(sp_ckpt_writer_open(&w, path, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    CHECK(live_now() - live0 == (int64_t)1 << 20, "an open writer's 1 MiB buffer is counted (%lld)",
          (long long)(live_now() - live0));
    size_t bytes = 0;
    for (int i = 0; i < 4; i++) {
        int64_t shape[2] = {i < 3 ? 768 : 10, 1024};
        sp_tensor *t;
        CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 2, shape));
        CHECK_OK(sp_fill(t, i + 0.5));
        add_named(w, "w", i, t, &bytes);
    }
    CHECK_OK(sp_ckpt_writer_commit(w));
    CHECK(live_now() == live0, "a committed writer leaves nothing counted (%lld)", (long long)(live_now() - live0));
    return bytes;
}

SUITE(surface_ckpt_accounting) {
    char dir[] = "/tmp/spore_surface_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[128];
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    size_t bytes = write_ckpt(path);
    sp_ckpt_release_cache();
    int64_t live0 = live_now(), allocs0, allocs1;
    sp_mem_stats(NULL, NULL, &allocs0);

    sp_ckpt *c;
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    int64_t grew = live_now() - live0;
    CHECK(grew >= (int64_t)bytes && grew < (int64_t)bytes + (1 << 16),
          "an open .ckpt counts its tensors' blocks: grew %lld for %zu tensor bytes", (long long)grew, bytes);
    sp_tensor *t0;
    CHECK_OK(sp_ckpt_tensor(c, 0, &t0));
    sp_ckpt_close(c);
    CHECK(live_now() - live0 >= (int64_t)(3 << 20), "a tensor handed out keeps its block counted");
    sp_tensor_free(t0);
    int64_t cached = live_now() - live0;
    CHECK(cached >= 3 * (3 << 20), "freed big blocks are in the cache, still counted (%lld)", (long long)cached);
    size_t freed = sp_ckpt_release_cache();
    CHECK((int64_t)freed == cached, "release_cache frees what was counted (%zu vs %lld)", freed, (long long)cached);
    CHECK(live_now() == live0, "back to the start after release (%lld)", (long long)(live_now() - live0));
    sp_mem_stats(NULL, NULL, &allocs1);
    CHECK(allocs1 == allocs0, "live allocations back to the start (%lld)", (long long)(allocs1 - allocs0));

    /* cache cap 0: closing alone returns every byte; a lower cap trims the cache */
    sp_config_set_ckpt_cache(0);
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    sp_ckpt_close(c);
    CHECK(live_now() == live0, "cap 0: nothing cached (%lld)", (long long)(live_now() - live0));
    sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    sp_ckpt_close(c);
    CHECK(live_now() - live0 >= 3 * (3 << 20), "default cap: blocks cached");
    sp_config_set_ckpt_cache((size_t)4 << 20);
    CHECK(live_now() - live0 <= (4 << 20), "cap lowered to 4 MiB trims the cache (%lld)",
          (long long)(live_now() - live0));
    sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);
    sp_ckpt_release_cache();

    /* cached blocks whose pages the kernel took back (zero again) still load every value */
    sp_tensor *first[3];
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    for (int i = 0; i < 3; i++) CHECK_OK(sp_ckpt_tensor(c, i, &first[i]));
    const void *addr0 = sp_host_data(first[0]);
    sp_ckpt_close(c);
    for (int i = 0; i < 3; i++) sp_tensor_free(first[i]);
    CHECK(ck_cache_drop_pages() >= 3 * (3 << 20), "the cached blocks' pages dropped");
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    int reused = 0;
    for (int i = 0; i < 3; i++) {
        sp_tensor *t;
        CHECK_OK(sp_ckpt_tensor(c, i, &t));
        const float *v = sp_host_data(t);
        reused += (const void *)v == addr0;
        size_t n = sp_tensor_nbytes(t) / 4, bad = 0;
        for (size_t j = 0; j < n; j++) bad += v[j] != (float)i + 0.5f;
        CHECK(bad == 0, "w%d: every value read into a dropped cached block (%zu wrong)", i, bad);
        sp_tensor_free(t);
    }
    CHECK(reused == 1, "the second load reused the cached blocks (%d)", reused);
    sp_ckpt_close(c);
    sp_ckpt_release_cache();
    CHECK(live_now() == live0, "back to the start (%lld)", (long long)(live_now() - live0));

    /* open_memory borrows the caller's buffer: not counted; safetensors get a counted copy */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read back");
    fclose(f);
    CHECK_OK(sp_ckpt_open_memory(&c, buf, (size_t)n, "mem", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    grew = live_now() - live0;
    CHECK(grew >= (int64_t)bytes && grew < (int64_t)bytes + (1 << 16), "memory .ckpt: only the tensors (%lld)",
          (long long)grew);
    sp_ckpt_close(c);
    sp_ckpt_release_cache();
    free(buf);

    /* safetensors: the mapping counted once while a view lives */
    char spath[128];
    snprintf(spath, sizeof spath, "%s/m.safetensors", dir);
    sp_ckpt_writer *w;
    CHECK_OK(sp_ckpt_writer_open(&w, spath, SP_CKPT_SAFETENSORS, 0, NULL, 0, NULL));
    int64_t shape[1] = {1 << 20};
    sp_tensor *big;
    CHECK_OK(sp_tensor_new(&big, SP_FLOAT32, 1, shape));
    CHECK_OK(sp_ckpt_writer_add(w, "big", big));
    sp_tensor_free(big);
    CHECK_OK(sp_ckpt_writer_commit(w));
    live0 = live_now();
    CHECK_OK(sp_ckpt_open(&c, spath, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    grew = live_now() - live0;
    CHECK(grew > (4 << 20) && grew < (4 << 20) + (1 << 16), "safetensors mapping counted (%lld)", (long long)grew);
    CHECK_OK(sp_ckpt_tensor(c, 0, &t0));
    int64_t with_view = live_now() - live0;
    CHECK(with_view == grew, "a view on the mapping adds no content bytes (%lld)", (long long)(with_view - grew));
    sp_ckpt_close(c);
    CHECK(live_now() - live0 > (4 << 20) && live_now() - live0 < grew,
          "after close a view keeps the mapping counted, the entry table is released (%lld)",
          (long long)(live_now() - live0));
    sp_tensor_free(t0);
    CHECK(live_now() == live0, "the last view releases it (%lld)", (long long)(live_now() - live0));

    unlink(path);
    unlink(spath);
    rmdir(dir);
}

/* One field (kB) of the mapping holding addr in /proc/self/smaps; -1 if no mapping holds it. */
static long smaps_field(const void *addr, const char *field) {
    long v = -1;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
            continue;
        }
        if (in && strncmp(line, field, fl) == 0) sscanf(line + fl, " %ld", &v);
    }
    fclose(f);
    return v;
}

/* The RSS and LazyFree (kB) of the mapping that holds addr. */
static void smaps_of(const void *addr, long *rss_kb, long *lazy_kb) {
    *rss_kb = smaps_field(addr, "Rss:");
    *lazy_kb = smaps_field(addr, "LazyFree:");
}

/* The automatic cap follows the most bytes of big blocks the process had at once, and a
 * cached block's whole huge pages are lazily freed. */
SUITE(surface_ckpt_cache_auto) {
    const size_t MiB = (size_t)1 << 20, blk = 96 * MiB;
    sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);
    sp_ckpt_release_cache();
    int64_t live0 = live_now();
    size_t cap0 = sp_config_ckpt_cache();
    /* more 96 MiB blocks at once than the cap holds now (mapped, never touched) */
    int k = (int)(cap0 / blk) + 2;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    size_t half = (size_t)pages / 2 * (size_t)psz;
    if ((size_t)k * (blk + 4096) > half) {
        printf("  SKIP surface_ckpt_cache_auto growth: %d x 96 MiB is over half this machine's memory\n", k);
    } else {
        void **b = calloc((size_t)k, sizeof *b);
        for (int i = 0; i < k; i++) CHECK((b[i] = ck_block_alloc(blk)) != NULL, "96 MiB block %d", i);
        size_t cap1 = sp_config_ckpt_cache();
        CHECK(cap1 >= (size_t)k * blk && cap1 > cap0, "the cap grew with the blocks held at once: %zu -> %zu for %d x 96 MiB",
              cap0, cap1, k);
        for (int i = 0; i < k; i++) ck_block_free(b[i]);
        size_t freed = sp_ckpt_release_cache();
        CHECK(freed >= (size_t)k * blk, "all %d freed blocks were kept (%zu MiB released)", k, freed / MiB);
        CHECK(live_now() == live0, "back to the start (%lld)", (long long)(live_now() - live0));
        /* a cap set by hand stays put: 256 MiB keeps two of three 96 MiB blocks */
        sp_config_set_ckpt_cache(256 * MiB);
        for (int i = 0; i < 3; i++) b[i] = ck_block_alloc(blk);
        CHECK(sp_config_ckpt_cache() == 256 * MiB, "a set cap does not follow the peak");
        for (int i = 0; i < 3; i++) ck_block_free(b[i]);
        freed = sp_ckpt_release_cache();
        CHECK(freed >= 2 * blk && freed < 3 * blk, "cap 256 MiB kept 2 of 3 blocks (%zu MiB)", freed / MiB);
        sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);
        free(b);
    }

    /* a written block, freed into the cache: its whole huge pages are lazily freed; taken
     * again, the same block is written and read back */
    size_t n = 6 * MiB;
    uint8_t *p = ck_block_alloc(n);
    memset(p, 7, n);
    long rss, lazy;
    smaps_of(p, &rss, &lazy);
    CHECK(rss >= 6 * 1024 && lazy == 0, "written block resident, nothing lazily freed (rss %ld kB, lazy %ld kB)", rss, lazy);
    ck_block_free(p);
    smaps_of(p, &rss, &lazy);
    CHECK(lazy >= 6 * 1024, "the cached block's data lazily freed (LazyFree %ld kB)", lazy);
    uint8_t *q = ck_block_alloc(n);
    CHECK(q == p, "the same block handed out again");
    memset(q, 9, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += q[i] != 9;
    CHECK(bad == 0, "written again and read back (%zu wrong)", bad);
    smaps_of(q, &rss, &lazy);
    CHECK(lazy == 0, "written again: no longer lazily free (LazyFree %ld kB)", lazy);
    ck_block_free(q);
    sp_ckpt_release_cache();
    CHECK(live_now() == live0, "back to the start (%lld)", (long long)(live_now() - live0));
}


/* A counter of /proc/vmstat (-1 if absent). */
static long vmstat(const char *name) {
    FILE *f = fopen("/proc/vmstat", "r");
    if (!f) return -1;
    char key[128];
    long v, r = -1;
    while (fscanf(f, "%127s %ld", key, &v) == 2)
        if (strcmp(key, name) == 0) { r = v; break; }
    fclose(f);
    return r;
}

/* Transparent huge pages on for madvised mappings (sysfs "[always]" or "[madvise]"). */
static int thp_enabled(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char line[256] = "";
    int on = fgets(line, sizeof line, f) && (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    return on && sp_config_ckpt_thp();
}

static long minflt_now(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/* The arena's tensors: odd sizes, a tiny one between two big ones, one of exactly 2 MiB. */
#define AR_N 5
static const int64_t ar_numel[AR_N] = {300001, 10, 786433, 1000, 524288};
static float ar_val(int i, int64_t j) { return (float)(j % 1000003) + 0.25f * (float)i; }

static size_t ar_write(const char *path, size_t slice) {
    sp_ckpt_writer *w;
    CHECK_OK(sp_ckpt_writer_open(&w, path, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    if (slice) sp_ckpt_writer_set_slice(w, slice);
    size_t bytes = 0;
    for (int i = 0; i < AR_N; i++) {
        sp_tensor *t;
        CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 1, &ar_numel[i]));
        float *v = sp_host_data(t);
        for (int64_t j = 0; j < ar_numel[i]; j++) v[j] = ar_val(i, j);
        add_named(w, "t", i, t, &bytes);
    }
    CHECK_OK(sp_ckpt_writer_commit(w));
    return bytes;
}

static size_t ar_wrong(const sp_tensor *t, int i) {
    const float *v = sp_host_data(t);
    size_t bad = 0;
    for (int64_t j = 0; j < ar_numel[i]; j++) bad += v[j] != ar_val(i, j);
    return bad;
}

static void ar_open_all(const char *path, sp_tensor **t) {
    sp_ckpt *c;
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    for (int i = 0; i < AR_N; i++) CHECK_OK(sp_ckpt_tensor(c, i, &t[i]));
    sp_ckpt_close(c);
}

/* A load's contents are packed, in file order, into one huge-page mapping; blocks freed
 * while others live give their whole pages back (cap 0) or are kept (counted); an arena
 * whose blocks all died is reused by the next load; its accounting returns to zero. */
SUITE(surface_ckpt_arena) {
    char dir[] = "/tmp/spore_arena_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[128], sliced[128], small[128];
    snprintf(path, sizeof path, "%s/a.ckpt", dir);
    snprintf(sliced, sizeof sliced, "%s/s.ckpt", dir);
    snprintf(small, sizeof small, "%s/m.ckpt", dir);
    size_t bytes = ar_write(path, 0);
    ar_write(sliced, (size_t)1 << 20);
    sp_ckpt_release_cache();
    int64_t live0 = live_now(), allocs0, allocs1;
    sp_mem_stats(NULL, NULL, &allocs0);

    /* packed in file order, 64-byte aligned, every value right; whole or sliced */
    for (int f = 0; f < 2; f++) {
        sp_tensor *t[AR_N];
        long flt0 = minflt_now(), fb0 = vmstat("thp_fault_fallback");
        ar_open_all(f ? sliced : path, t);
        long faults = minflt_now() - flt0, fallback = vmstat("thp_fault_fallback") - fb0;
        const uint8_t *base = sp_host_data(t[0]);
        for (int i = 0; i < AR_N; i++) {
            const uint8_t *p = sp_host_data(t[i]);
            CHECK(((uintptr_t)p & 63) == 0, "file %d: t%d 64-byte aligned (%p)", f, i, (const void *)p);
            CHECK(ar_wrong(t[i], i) == 0, "file %d: t%d every value read (%zu wrong)", f, i, ar_wrong(t[i], i));
        }
        /* the big ones (read by the queue) follow one another in one mapping, the small
         * ones (copied by the parse) in another */
        const uint8_t *p0 = sp_host_data(t[0]), *p1 = sp_host_data(t[1]), *p2 = sp_host_data(t[2]),
                      *p3 = sp_host_data(t[3]), *p4 = sp_host_data(t[4]);
        CHECK(p2 == p0 + ((sp_tensor_nbytes(t[0]) + 63) & ~(size_t)63) && p4 == p2 + ((sp_tensor_nbytes(t[2]) + 63) & ~(size_t)63),
              "file %d: the big contents packed in file order", f);
        CHECK(p3 == p1 + 64 && (p1 < p0 || p1 >= p4 + sp_tensor_nbytes(t[4])),
              "file %d: the small ones packed apart from them", f);
        if (!thp_enabled() || (fallback > 0 && smaps_field(base, "AnonHugePages:") <= 0)) {
            printf("  SKIP surface_ckpt_arena faults: no transparent huge pages here (sysfs, SPORE_NO_THP, or %ld "
                   "fallbacks to 4 KiB pages)\n", fallback);
        } else {
            /* a block of its own per content faulted t0 (1.2 MB) and t2's last MiB in 4 KiB
             * pages: 550 faults; packed, the 6.3 MB share 4 huge pages */
            CHECK(faults < (long)(bytes / 4096 / 4), "file %d: %ld page faults for %zu content bytes", f, faults,
                  bytes);
        }
        for (int i = 0; i < AR_N; i++) sp_tensor_free(t[i]);
    }
    CHECK(live_now() - live0 >= (int64_t)bytes, "freed contents kept for the next load, counted (%lld)",
          (long long)(live_now() - live0));
    sp_ckpt_release_cache();
    CHECK(live_now() == live0, "release_cache returns them (%lld)", (long long)(live_now() - live0));

    /* cap 0: blocks freed beside live ones give their pages back at once; t2 (between t0
     * and t4) and t1 (before t3) keep every value */
    sp_config_set_ckpt_cache(0);
    {
        sp_tensor *t[AR_N];
        ar_open_all(path, t);
        const void *base = sp_host_data(t[0]), *sbase = sp_host_data(t[1]);
        long rss0 = smaps_field(base, "Rss:");
        sp_tensor_free(t[0]);
        sp_tensor_free(t[4]);
        sp_tensor_free(t[3]);
        long rss1 = smaps_field(base, "Rss:");
        /* what stays: t2, the pages it shares, and the last huge page past the contents */
        long t2kb = (long)(sp_tensor_nbytes(t[2]) / 1024);
        CHECK(rss0 >= (long)(bytes / 1024) - 64 && rss1 <= t2kb + 2048 + 16,
              "cap 0: freed blocks' pages returned (Rss %ld -> %ld kB, t2 %ld kB)", rss0, rss1, t2kb);
        int64_t held = live_now() - live0;
        CHECK(held == (int64_t)(sp_tensor_nbytes(t[1]) + sp_tensor_nbytes(t[2])),
              "cap 0: only the live blocks stay counted (%lld)", (long long)held);
        CHECK(ar_wrong(t[1], 1) == 0 && ar_wrong(t[2], 2) == 0, "the live blocks beside them keep every value");
        sp_tensor_free(t[1]);
        sp_tensor_free(t[2]);
        CHECK(smaps_field(base, "Rss:") == -1 && smaps_field(sbase, "Rss:") == -1,
              "cap 0: each arena unmapped with its last block");
        CHECK(live_now() == live0, "cap 0: back to the start (%lld)", (long long)(live_now() - live0));
    }
    sp_config_set_ckpt_cache(SP_CKPT_CACHE_AUTO);

    /* the next load of the same file takes the arena its last one left: same layout; pages
     * the kernel took back (zero again) are read into like fresh ones */
    {
        sp_tensor *t[AR_N];
        ar_open_all(path, t);
        const void *base = sp_host_data(t[0]);
        sp_tensor_free(t[1]);   /* freed while t0 lives: kept, counted */
        CHECK(live_now() - live0 >= (int64_t)bytes, "a block freed beside live ones is kept, counted");
        long huge0 = smaps_field(base, "AnonHugePages:");
        for (int i = 0; i < AR_N; i++) if (i != 1) sp_tensor_free(t[i]);
        /* kept: its whole huge pages lazily freed, all but the last (partly past the
         * contents), none split (a warm load writing into split pages whose dirty bits
         * MADV_FREE cleared ran 30-60 % slower) */
        long huge1 = smaps_field(base, "AnonHugePages:"), lazy = smaps_field(base, "LazyFree:");
        if (huge0 > 0)
            CHECK(huge1 == huge0 && lazy >= huge1 - 2048, "kept arena: huge pages %ld -> %ld kB, %ld kB lazily free",
                  huge0, huge1, lazy);
        for (int round = 0; round < 2; round++) {
            if (round) CHECK(ck_cache_drop_pages() >= bytes, "the kept arena's pages dropped");
            ar_open_all(path, t);
            CHECK(sp_host_data(t[0]) == base, "round %d: the kept arena reused", round);
            size_t bad = 0;
            for (int i = 0; i < AR_N; i++) bad += ar_wrong(t[i], i);
            CHECK(bad == 0, "round %d: every value read into it (%zu wrong)", round, bad);
            for (int i = 0; i < AR_N; i++) sp_tensor_free(t[i]);
        }
        /* a smaller file takes the kept arena if it is at least half its length, and the
         * pages past its end go back; a much smaller one leaves the arena for a load of
         * its size (kept arena: 10 MiB reserved) */
        const int64_t ns[2] = {900000, 300000};
        for (int k = 0; k < 2; k++) {
            int64_t n = ns[k];
            sp_ckpt_writer *w;
            CHECK_OK(sp_ckpt_writer_open(&w, small, SP_CKPT_PROTO, 0, NULL, 0, NULL));
            sp_tensor *s;
            CHECK_OK(sp_tensor_new(&s, SP_FLOAT32, 1, &n));
            CHECK_OK(sp_fill(s, 3.5));
            CHECK_OK(sp_ckpt_writer_add(w, "s", s));
            sp_tensor_free(s);
            CHECK_OK(sp_ckpt_writer_commit(w));
            sp_ckpt *c;
            CHECK_OK(sp_ckpt_open(&c, small, SP_CKPT_AUTO, 0, NULL, 0, NULL));
            CHECK_OK(sp_ckpt_tensor(c, 0, &s));
            sp_ckpt_close(c);
            CHECK(((const float *)sp_host_data(s))[n - 1] == 3.5f, "%lld floats: values read", (long long)n);
            if (k == 0) {
                CHECK(sp_host_data(s) == base, "3.6 MB: took the kept arena");
                long rss = smaps_field(base, "Rss:");
                CHECK(rss >= 0 && rss <= n * 4 / 1024 + 8, "the longer load's pages past its end went back (Rss %ld kB)", rss);
                /* counted: its block, and the small contents kept in the other arena */
                CHECK(live_now() - live0 == n * 4 + (int64_t)(ar_numel[1] + ar_numel[3]) * 4,
                      "only its block and the kept small ones counted (%lld)", (long long)(live_now() - live0));
            } else {
                CHECK(sp_host_data(s) != base, "1.2 MB: a new arena, the kept one left alone");
            }
            sp_tensor_free(s);
        }
    }
    size_t freed = sp_ckpt_release_cache();
    CHECK(freed >= 1200000, "release_cache returned the kept arena (%zu)", freed);
    CHECK(live_now() == live0, "back to the start (%lld)", (long long)(live_now() - live0));
    sp_mem_stats(NULL, NULL, &allocs1);
    CHECK(allocs1 == allocs0, "live allocations back to the start (%lld)", (long long)(allocs1 - allocs0));
    unlink(path);
    unlink(sliced);
    unlink(small);
    rmdir(dir);
}

SUITE(surface_dtype_table) {
    for (int d = 0; d < SP_NUM_DTYPES; d++) {
        const sp_dtype_info *i = &sp_dtypes[d];
        CHECK(i->name && i->ms && i->st && i->ctype, "dtype %d: table row complete", d);
        CHECK(sp_dtype_from_name(i->name) == d, "%s by its name", i->name);
        CHECK(sp_dtype_from_name(i->ms) == d, "%s by its MindSpore name %s", i->name, i->ms);
        CHECK(sp_dtype_from_name(i->st) == d, "%s by its safetensors name %s", i->name, i->st);
        CHECK(sp_dtype_size(d) == i->size && strcmp(sp_dtype_ctype(d), i->ctype) == 0, "%s size/ctype", i->name);
    }
    CHECK(sp_dtype_ctype(SP_FLOAT32) && strcmp(sp_dtype_ctype(SP_FLOAT32), "float") == 0, "float32 is float");
    CHECK(strcmp(sp_dtype_ctype(SP_BFLOAT16), "uint16_t") == 0, "bfloat16 is uint16_t bits");
    CHECK(strcmp(sp_dtype_ctype(SP_BOOL), "uint8_t") == 0, "bool is uint8_t");
    CHECK(sp_dtype_ctype(-1) == NULL && sp_dtype_ctype(SP_NUM_DTYPES) == NULL, "invalid dtype: NULL ctype");
    CHECK(sp_dtype_from_name("Uint8") == SP_UINT8 && sp_dtype_from_name("half") == SP_FLOAT16 &&
          sp_dtype_from_name("float_") == SP_FLOAT64 && sp_dtype_from_name("long") == SP_INT64 &&
          sp_dtype_from_name("f") == -1 && sp_dtype_from_name("") == -1, "aliases");
    CHECK(sp_dtype_is_float(SP_BFLOAT16) && !sp_dtype_is_float(SP_BOOL) && !sp_dtype_is_float(99), "is_float");
}
