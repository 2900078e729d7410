/* test_data.c — idx / CIFAR decoding on hand-made files (good, wrong magic,
 * truncated, trailing, corrupt gzip), shuffling, row gathering, and the batch
 * transform against naive loops. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "/tmp/spore_test_data_%d_%s", (int)getpid(), name);
}

static void write_file(const char *p, const unsigned char *b, size_t n) {
    FILE *f = fopen(p, "wb");
    if (f) { fwrite(b, 1, n, f); fclose(f); }
}

static void write_gz(const char *p, const unsigned char *b, size_t n) {
    gzFile g = gzopen(p, "wb");
    if (g) { gzwrite(g, b, (unsigned)n); gzclose(g); }
}

/* idx3 uint8 2x3x2 */
static size_t make_idx(unsigned char *b) {
    unsigned char h[] = {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2};
    memcpy(b, h, sizeof h);
    for (int i = 0; i < 12; i++) b[16 + i] = (unsigned char)(i * 10);
    return 28;
}

SUITE(data_idx_decode) {
    unsigned char b[64];
    size_t n = make_idx(b);
    char p[256], pg[256];
    tmp_path(p, sizeof p, "ok.idx");
    tmp_path(pg, sizeof pg, "ok.idx.gz");
    write_file(p, b, n);
    write_gz(pg, b, n);
    const char *paths[2] = {p, pg};
    for (int k = 0; k < 2; k++) {
        sp_tensor *t = NULL;
        CHECK_OK(sp_idx_load(&t, paths[k]));
        if (!t) continue;
        CHECK(sp_tensor_ndim(t) == 3 && sp_tensor_dim(t, 0) == 2 && sp_tensor_dim(t, 1) == 3 && sp_tensor_dim(t, 2) == 2,
              "idx dims [2,3,2]");
        CHECK(sp_tensor_dtype(t) == SP_UINT8, "idx dtype uint8");
        const unsigned char *d = sp_tensor_data(t);
        CHECK(d[0] == 0 && d[11] == 110, "idx payload");
        sp_tensor_free(t);
    }
    /* big-endian int32 payload */
    unsigned char bi[] = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xfe};
    write_file(p, bi, sizeof bi);
    sp_tensor *t = NULL;
    CHECK_OK(sp_idx_load(&t, p));
    if (t) {
        const int32_t *v = sp_tensor_data(t);
        CHECK(sp_tensor_dtype(t) == SP_INT32 && v[0] == 258 && v[1] == -2, "int32 idx is byte-swapped: %d %d", v[0], v[1]);
        sp_tensor_free(t);
    }
    unlink(p); unlink(pg);
}

static void expect_err(const char *p, sp_status code, const char *needle, const char *what) {
    sp_tensor *t = NULL;
    sp_status st = sp_idx_load(&t, p);
    CHECK(st == code && t == NULL, "%s: status %d (expected %d)", what, st, code);
    CHECK(strstr(sp_last_error(), p) != NULL, "%s: message names the file: %s", what, sp_last_error());
    CHECK(strstr(sp_last_error(), needle) != NULL, "%s: message says '%s': %s", what, needle, sp_last_error());
}

SUITE(data_idx_errors) {
    unsigned char b[64];
    size_t n = make_idx(b);
    char p[256];
    tmp_path(p, sizeof p, "bad.idx");
    unsigned char bm[64];
    memcpy(bm, b, n);
    bm[2] = 0x07;
    write_file(p, bm, n);
    expect_err(p, SP_EFORMAT, "bad magic", "wrong type byte");
    memcpy(bm, b, n);
    bm[0] = 0x1f;
    write_file(p, bm, n);
    expect_err(p, SP_EFORMAT, "magic", "wrong magic");
    write_file(p, b, n - 1);
    expect_err(p, SP_EFORMAT, "truncated idx data", "dims product > length");
    memcpy(bm, b, n);
    bm[n] = 7;
    write_file(p, bm, n + 1);
    expect_err(p, SP_EFORMAT, "longer than its dims", "dims product < length");
    write_file(p, b, 10);
    expect_err(p, SP_EFORMAT, "truncated idx header", "short header");
    /* dims that overflow */
    unsigned char bo[] = {0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    write_file(p, bo, sizeof bo);
    expect_err(p, SP_EFORMAT, "idx dims", "huge dims");
    /* gzip cut in the middle */
    char pg[256];
    tmp_path(pg, sizeof pg, "cut.idx.gz");
    unsigned char big[16 + 4000];
    unsigned char h[] = {0, 0, 0x08, 1, 0, 0, 0x0f, 0xa0};
    memcpy(big, h, 8);
    for (int i = 0; i < 4000; i++) big[8 + i] = (unsigned char)(i * 7919 % 251);
    write_gz(pg, big, 8 + 4000);
    FILE *f = fopen(pg, "rb");
    unsigned char gzb[8192];
    size_t gn = f ? fread(gzb, 1, sizeof gzb, f) : 0;
    if (f) fclose(f);
    write_file(pg, gzb, gn / 2);
    expect_err(pg, SP_EFORMAT, "truncated", "truncated gzip");
    unlink(pg);
    /* missing file */
    unlink(p);
    sp_tensor *t = NULL;
    CHECK(sp_idx_load(&t, p) == SP_EIO && strstr(sp_last_error(), p), "missing file is SP_EIO naming it: %s", sp_last_error());
}

SUITE(data_cifar) {
    char p[256];
    tmp_path(p, sizeof p, "cifar.bin");
    size_t rec = 3073;
    unsigned char *b = malloc(rec * 2 + 1);
    for (size_t i = 0; i < rec * 2 + 1; i++) b[i] = (unsigned char)(i % 200);
    b[0] = 3; b[rec] = 9;
    write_file(p, b, rec * 2);
    sp_tensor *im = NULL, *lb = NULL;
    CHECK_OK(sp_cifar_load(&im, &lb, p, 1));
    if (im && lb) {
        CHECK(sp_tensor_dim(im, 0) == 2 && sp_tensor_dim(im, 3) == 3, "cifar [2,32,32,3]");
        const int32_t *l = sp_tensor_data(lb);
        CHECK(l[0] == 3 && l[1] == 9, "cifar labels");
        const unsigned char *d = sp_tensor_data(im);
        /* HWC pixel (y=1,x=2,c=2) of record 1 = CHW byte c*1024 + y*32 + x */
        CHECK(d[3072 + (1 * 32 + 2) * 3 + 2] == b[rec + 1 + 2 * 1024 + 34], "cifar CHW -> HWC");
    }
    sp_tensor_free(im); sp_tensor_free(lb);
    write_file(p, b, rec * 2 + 1);
    im = lb = NULL;
    CHECK(sp_cifar_load(&im, &lb, p, 1) == SP_EFORMAT && strstr(sp_last_error(), p) && strstr(sp_last_error(), "whole number"),
          "cifar odd length: %s", sp_last_error());
    b[0] = 10;
    write_file(p, b, rec);
    CHECK(sp_cifar_load(&im, &lb, p, 1) == SP_EFORMAT && strstr(sp_last_error(), "label 10"), "cifar bad label: %s", sp_last_error());
    free(b);
    unlink(p);
}

SUITE(data_shuffle_gather) {
    int64_t idx[100];
    for (int i = 0; i < 100; i++) idx[i] = i;
    uint64_t s = 42;
    CHECK_OK(sp_shuffle_indices(idx, 100, &s));
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) { if (idx[i] >= 0 && idx[i] < 100) seen[idx[i]]++; if (idx[i] != i) moved++; }
    int perm = 1;
    for (int i = 0; i < 100; i++) perm &= seen[i] == 1;
    CHECK(perm && moved > 50, "shuffle is a permutation that moves elements");
    int64_t shape[2] = {4, 2}, oshape[2] = {2, 2};
    sp_tensor *src = NULL, *dst = NULL;
    sp_tensor_new(&src, SP_UINT8, 2, shape);
    sp_tensor_new(&dst, SP_INT32, 2, oshape);
    unsigned char *sd = sp_tensor_data(src);
    for (int i = 0; i < 8; i++) sd[i] = (unsigned char)(200 + i);
    int64_t gi[2] = {3, 1};
    CHECK_OK(sp_gather_rows(dst, src, gi, 2));
    const int32_t *o = sp_tensor_data(dst);
    CHECK(o[0] == 206 && o[1] == 207 && o[2] == 202 && o[3] == 203, "gather rows with uint8 -> int32");
    gi[0] = 4;
    CHECK(sp_gather_rows(dst, src, gi, 2) == SP_EINVAL, "gather rejects an out-of-range index");
    sp_tensor_free(src); sp_tensor_free(dst);
}

SUITE(data_image_batch) {
    /* 2 images 3x4x1, identity-size resize to 5x7, rescale, normalize, CHW */
    int64_t shape[3] = {2, 3, 4};
    sp_tensor *src = NULL, *out = NULL;
    sp_tensor_new(&src, SP_UINT8, 3, shape);
    unsigned char *sd = sp_tensor_data(src);
    for (int i = 0; i < 24; i++) sd[i] = (unsigned char)(i * 37 % 256);
    sp_img_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].kind = SP_IMG_RESIZE; ops[0].h = 5; ops[0].w = 7;
    ops[1].kind = SP_IMG_RESCALE; ops[1].a = 1.0 / 255; ops[1].b = 0;
    ops[2].kind = SP_IMG_NORMALIZE; ops[2].mean[0] = 0.5f; ops[2].std[0] = 0.25f;
    ops[3].kind = SP_IMG_HWC2CHW;
    int64_t os[3];
    CHECK_OK(sp_image_out_shape(3, 4, 1, ops, 4, os));
    CHECK(os[0] == 1 && os[1] == 5 && os[2] == 7, "out shape CHW [1,5,7]");
    int64_t oshape[4] = {2, 1, 5, 7};
    sp_tensor_new(&out, SP_FLOAT32, 4, oshape);
    int64_t idx[2] = {1, 0};
    CHECK_OK(sp_image_batch(out, src, idx, 2, ops, 4, NULL));
    const float *o = sp_tensor_data(out);
    double maxd = 0;
    for (int n = 0; n < 2; n++) {
        const unsigned char *im = sd + idx[n] * 12;
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 7; x++) {
                double fy = (y + 0.5) * 3.0 / 5 - 0.5, fx = (x + 0.5) * 4.0 / 7 - 0.5;
                if (fy < 0) fy = 0;
                if (fx < 0) fx = 0;
                if (fy > 2) fy = 2;
                if (fx > 3) fx = 3;
                int y0 = (int)fy, x0 = (int)fx, y1 = y0 < 2 ? y0 + 1 : 2, x1 = x0 < 3 ? x0 + 1 : 3;
                double wy = fy - y0, wx = fx - x0;
                double v = (im[y0 * 4 + x0] * (1 - wx) + im[y0 * 4 + x1] * wx) * (1 - wy) +
                           (im[y1 * 4 + x0] * (1 - wx) + im[y1 * 4 + x1] * wx) * wy;
                /* Resize on a uint8 image gives uint8 (MindSpore): the value before
                 * Rescale is an integer within 1 of the exact bilinear one */
                double u = (o[n * 35 + y * 7 + x] * 0.25 + 0.5) * 255;
                if (fabs(u - nearbyint(u)) > 1e-3) maxd = 99;
                double d = fabs(u - v);
                if (d > maxd) maxd = d;
            }
    }
    CHECK(maxd <= 1.0, "fused resize (rounded to uint8) + rescale + normalize matches a naive loop (max diff %g)", maxd);
    int64_t bad[4] = {2, 5, 7, 1};
    sp_tensor *out2 = NULL;
    sp_tensor_new(&out2, SP_FLOAT32, 4, bad);
    CHECK(sp_image_batch(out2, src, idx, 2, ops, 4, NULL) == SP_EINVAL && strstr(sp_last_error(), "[2,1,5,7]"),
          "wrong output shape is rejected: %s", sp_last_error());
    sp_tensor_free(out2);
    sp_tensor_free(src); sp_tensor_free(out);
}

/* Mutation fuzz: random byte flips, truncations and extensions of valid idx
 * files (plain and gzip) and CIFAR records must give SP_OK or an error status
 * with a message naming the file — never a crash (run under SANITIZE=1 too). */
SUITE(data_fuzz_parsers) {
    char p[256];
    tmp_path(p, sizeof p, "fuzz.idx");
    unsigned char base[16 + 60];
    unsigned char h[] = {0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
    memcpy(base, h, 16);
    for (int i = 0; i < 60; i++) base[16 + i] = (unsigned char)i;
    uint64_t s = 12345;
    int ok = 0, err = 0, bad_msg = 0;
    unsigned char buf[128];
    for (int it = 0; it < 600; it++) {
        memcpy(buf, base, sizeof base);
        size_t n = sizeof base;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int flips = (int)(s >> 60) % 4;
        for (int f = 0; f <= flips; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            buf[(s >> 33) % (it % 3 == 0 ? 16 : n)] ^= (unsigned char)(1u << ((s >> 20) % 8));
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        if ((s >> 40) % 4 == 0) n = (size_t)((s >> 10) % (n + 1));
        else if ((s >> 40) % 4 == 1) { buf[n] = 0xab; n += 1 + (s >> 8) % 20; }
        if (it % 2) write_gz(p, buf, n); else write_file(p, buf, n);
        sp_tensor *t = NULL;
        sp_status st = sp_idx_load(&t, p);
        if (st == SP_OK) {
            ok++;
            if (!t || sp_tensor_nbytes(t) + 4 + 4 * (size_t)sp_tensor_ndim(t) != n) bad_msg++;
            sp_tensor_free(t);
        } else {
            err++;
            if (t || !strstr(sp_last_error(), p)) bad_msg++;
        }
        sp_tensor *im = NULL, *lb = NULL;
        st = sp_cifar_load(&im, &lb, p, 1);
        if (st == SP_OK) { sp_tensor_free(im); sp_tensor_free(lb); }
        else if (!strstr(sp_last_error(), p)) bad_msg++;
    }
    CHECK(bad_msg == 0, "%d fuzz cases gave a wrong size or a message not naming the file", bad_msg);
    CHECK(ok > 0 && err > 0, "fuzz exercised both outcomes (ok %d, errors %d)", ok, err);
    unlink(p);
}
