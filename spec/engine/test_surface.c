/* test_surface.c — the engine's explicit configuration, byte accounting of the
 * checkpoint reader/writer, and the dtype table every name lookup reads. */
#include "check.h"
#include "core/internal.h" /* sp_dtypes: the table itself */

#include <stdlib.h>
#include <string.h>
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
    CHECK(cap0 == (size_t)256 << 20, "default cache cap 256 MiB (got %zu)", cap0);
    sp_config_set_ckpt_cache(12345);
    CHECK(sp_config_ckpt_cache() == 12345, "cache cap reads back");
    sp_config_set_ckpt_cache(cap0);
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
        char name[32];
        snprintf(name, sizeof name, "w%d", i);
        CHECK_OK(sp_ckpt_writer_add(w, name, t));
        bytes += sp_tensor_nbytes(t);
        sp_tensor_free(t);
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
    size_t cap0 = sp_config_ckpt_cache();
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
    sp_config_set_ckpt_cache(cap0);
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    sp_ckpt_close(c);
    CHECK(live_now() - live0 >= 3 * (3 << 20), "default cap: blocks cached");
    sp_config_set_ckpt_cache((size_t)4 << 20);
    CHECK(live_now() - live0 <= (4 << 20), "cap lowered to 4 MiB trims the cache (%lld)",
          (long long)(live_now() - live0));
    sp_config_set_ckpt_cache(cap0);
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
