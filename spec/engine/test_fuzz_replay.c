/* test_fuzz_replay.c — the crash corpus, replayed on every `make test`: every file under
 * spec/fuzz/crashes/<target>/ (inputs on which a fuzzer of scripts/fuzz.sh once crashed a
 * reader, kept after the fix) goes through the same code as the fuzz target (the
 * LLVMFuzzerTestOneInput of spec/fuzz/fuzz_<target>.c, included here under another name):
 * the reader may refuse it (an error status is fine) but must not crash, and must leave the
 * engine's memory as it found it. A crash kills this process, which fails the run. */
#include "check.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput replay_ckpt_input
#include "../fuzz/fuzz_ckpt.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_safetensors_input
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_pth_input
#include "../fuzz/fuzz_pth.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_jpeg_input
#include "../fuzz/fuzz_jpeg.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_png_input
#include "../fuzz/fuzz_png.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_npy_input
#include "../fuzz/fuzz_npy.c"
#undef LLVMFuzzerTestOneInput

static unsigned char *slurp_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            b = malloc((size_t)sz + 1); /* +1: a 0-byte input still gets a pointer */
            if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
            if (b) *n = (size_t)sz;
        }
    }
    fclose(f);
    return b;
}

/* Replays every regular file of dir through fn; returns how many. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "fuzz replay: the crash corpus folder %s is missing (keep it, empty or not)", dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        size_t n = 0;
        unsigned char *b = slurp_file(path, &n);
        CHECK(b != NULL, "fuzz replay: cannot read %s", path);
        if (!b) continue;
        int64_t before = sp_mem_live_bytes();
        fn(b, n);
        int64_t after = sp_mem_live_bytes();
        CHECK(after == before, "fuzz replay: %s leaves %lld engine bytes allocated", path, (long long)(after - before));
        free(b);
        count++;
    }
    closedir(d);
    return count;
}

SUITE(fuzz_crash_replay) {
    static const struct { const char *dir; int (*fn)(const uint8_t *, size_t); } targets[] = {
        {"spec/fuzz/crashes/ckpt", replay_ckpt_input},
        {"spec/fuzz/crashes/safetensors", replay_safetensors_input},
        {"spec/fuzz/crashes/pth", replay_pth_input},
        {"spec/fuzz/crashes/jpeg", replay_jpeg_input},
        {"spec/fuzz/crashes/png", replay_png_input},
        {"spec/fuzz/crashes/npy", replay_npy_input},
    };
    int total = 0;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) total += replay_dir(targets[i].dir, targets[i].fn);
    CHECK(total >= 1, "fuzz replay: the crash corpus holds no input");
}

/* What the first crash (crashes/ckpt/empty-tensor-huge-dims-stride-overflow) reached: an
 * empty tensor whose other dimensions multiply past 2^63. Its strides were computed with a
 * signed overflow (undefined behaviour, fatal under make test SANITIZE=1). */
SUITE(fuzz_empty_tensor_huge_dims) {
    const int64_t shapes[3][3] = {{0, (int64_t)1 << 59, 440}, {(int64_t)1 << 62, 0, 16}, {3, (int64_t)1 << 61, 0}};
    for (int i = 0; i < 3; i++) {
        sp_tensor *t = NULL;
        CHECK_OK(sp_tensor_empty(&t, SP_FLOAT64, 3, shapes[i]));
        if (!t) continue;
        CHECK(sp_tensor_numel(t) == 0, "shape %d: numel %lld, expected 0", i, (long long)sp_tensor_numel(t));
        (void)sp_tensor_is_contiguous(t);
        sp_tensor_free(t);
    }
}
