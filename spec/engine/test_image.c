/* test_image.c — JPEG/PNG decoding against PIL's pixels, corrupt files, MindSpore's vision
 * ops (goldens from scripts/gen/gen_image_fixtures.py), .npy round trips and strictness,
 * and the threaded loader's determinism, order and skip_bad. */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "spec/fixtures/images/"

static sp_tensor *npy(const char *path) {
    sp_tensor *t = NULL;
    if (sp_npy_load(&t, path)) {
        CHECK(0, "golden %s: %s", path, sp_last_error());
        return NULL;
    }
    return t;
}

static int same_shape(const sp_tensor *a, const sp_tensor *b) {
    if (sp_tensor_ndim(a) != sp_tensor_ndim(b)) return 0;
    for (int i = 0; i < sp_tensor_ndim(a); i++)
        if (sp_tensor_dim(a, i) != sp_tensor_dim(b, i)) return 0;
    return 1;
}

/* max |a - b| over uint8 tensors (-1 when shapes differ); *ndiff differing values */
static int u8_diff(const sp_tensor *a, const sp_tensor *b, long *ndiff) {
    if (!same_shape(a, b)) return -1;
    const unsigned char *x = sp_tensor_data(a), *y = sp_tensor_data(b);
    int m = 0;
    *ndiff = 0;
    for (int64_t i = 0; i < sp_tensor_numel(a); i++) {
        int d = abs((int)x[i] - (int)y[i]);
        if (d) (*ndiff)++;
        if (d > m) m = d;
    }
    return m;
}

SUITE(image_decode_vs_pil) {
    const char *files[] = {"rgb_baseline.jpg", "rgb_progressive.jpg", "rgb_444.jpg", "rgb_odd.jpg", "gray.jpg",
                           "exif_o2.jpg", "exif_o3.jpg", "exif_o4.jpg", "exif_o5.jpg", "exif_o6.jpg", "exif_o7.jpg",
                           "exif_o8.jpg", "rgb.png", "rgba.png", "palette.png", "gray.png", "gray_alpha.png",
                           "rgb16.png", "gray16.png", "gray1bit.png", "interlaced.png"};
    int jmax = 0, pmax = 0;
    long jdiff = 0, jtotal = 0, ptotal = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int is_png = strstr(files[i], ".png") != NULL;
        for (int ch = 0; ch <= 3; ch += (ch == 0 ? 1 : 2)) {
            char path[256], gold[300];
            snprintf(path, sizeof path, FIX "%s", files[i]);
            snprintf(gold, sizeof gold, "%s.c%d.npy", path, ch);
            sp_tensor *g = npy(gold), *t = NULL;
            if (!g) continue;
            CHECK_OK(sp_image_decode(&t, path, ch));
            if (!t) { sp_tensor_free(g); continue; }
            long nd = 0;
            int m = u8_diff(t, g, &nd);
            CHECK(m >= 0, "%s channels %d: shape [%lld,%lld,%lld] equals PIL's [%lld,%lld,%lld]", files[i], ch,
                  (long long)sp_tensor_dim(t, 0), (long long)sp_tensor_dim(t, 1), (long long)sp_tensor_dim(t, 2),
                  (long long)sp_tensor_dim(g, 0), (long long)sp_tensor_dim(g, 1), (long long)sp_tensor_dim(g, 2));
            if (is_png) {
                CHECK(m == 0, "%s channels %d: PNG pixels equal PIL's exactly (max diff %d, %ld differ)", files[i], ch, m, nd);
                if (m > pmax) pmax = m;
                ptotal += sp_tensor_numel(t);
            } else {
                CHECK(m >= 0 && m <= 1, "%s channels %d: JPEG pixels within 1 of PIL's (max diff %d, %ld differ)", files[i], ch,
                      m, nd);
                if (m > jmax) jmax = m;
                jdiff += nd;
                jtotal += sp_tensor_numel(t);
            }
            if (ch == 0) {
                int h = 0, w = 0, c = 0;
                CHECK_OK(sp_image_probe(path, &h, &w, &c));
                CHECK(h == sp_tensor_dim(g, 0) && w == sp_tensor_dim(g, 1) && c == sp_tensor_dim(g, 2),
                      "%s: probe gives %dx%dx%d (after EXIF orientation)", files[i], h, w, c);
                /* the same bytes from memory */
                FILE *f = fopen(path, "rb");
                unsigned char buf[65536];
                size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
                if (f) fclose(f);
                sp_tensor *m2 = NULL;
                CHECK_OK(sp_image_decode_mem(&m2, buf, n, files[i], 0));
                long nd2 = 0;
                CHECK(m2 && u8_diff(m2, t, &nd2) == 0, "%s: decode_mem equals decode", files[i]);
                sp_tensor_free(m2);
            }
            sp_tensor_free(t);
            sp_tensor_free(g);
        }
    }
    printf("  image: JPEG vs PIL max diff %d (%ld of %ld values differ), PNG vs PIL max diff %d over %ld values\n", jmax,
           jdiff, jtotal, pmax, ptotal);
}

SUITE(image_decode_errors) {
    struct { const char *file, *want; } bad[] = {
        {"bad_truncated.jpg", "truncated"}, {"bad_truncated_progressive.jpg", "truncated"},
        {"bad_truncated.png", "truncated"}, {"bad_zero.jpg", "empty file"},
        {"bad_magic.jpg", "not a JPEG or PNG"}, {"bad_header_only.jpg", "not a JPEG or PNG"},
        {"bad_huge.png", "more than the limit"}, {"bad_huge.jpg", "more than the limit"},
        {"bad_crc.png", "corrupt PNG"}, {"bad_cmyk.jpg", "CMYK"}, {"no_such_file.jpg", "cannot open"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s", bad[i].file);
        sp_tensor *t = NULL;
        sp_status st = sp_image_decode(&t, path, 0);
        const char *e = sp_last_error();
        CHECK(st != SP_OK && !t && strstr(e, path) && strstr(e, bad[i].want) && !strchr(e, '\n'),
              "%s: one-line error naming the file and saying '%s': %s", bad[i].file, bad[i].want, e);
        int h, w, c;
        if (strstr(bad[i].file, "huge") || strstr(bad[i].file, "zero") || strstr(bad[i].file, "magic"))
            CHECK(sp_image_probe(path, &h, &w, &c) != SP_OK, "%s: probe refuses it too", bad[i].file);
    }
    /* the pixel limit is checked from the header */
    sp_config_set_image_max_pixels(40 * 56 - 1);
    sp_tensor *t = NULL;
    CHECK(sp_image_decode(&t, FIX "rgb_baseline.jpg", 0) == SP_EFORMAT && strstr(sp_last_error(), "2240 pixels"),
          "max_pixels below the image refuses it: %s", sp_last_error());
    CHECK(sp_image_decode(&t, FIX "rgb.png", 0) == SP_EFORMAT, "max_pixels applies to PNG");
    sp_config_set_image_max_pixels(40 * 56);
    CHECK_OK(sp_image_decode(&t, FIX "rgb_baseline.jpg", 0));
    sp_tensor_free(t);
    sp_config_set_image_max_pixels(0);
    CHECK(sp_config_image_max_pixels() == 178956970, "default limit restored (PIL's 2 * MAX_IMAGE_PIXELS)");
    t = NULL;
    CHECK(sp_image_decode(&t, FIX "rgb.png", 2) == SP_EINVAL, "channels 2 refused");
    CHECK(sp_image_decode_mem(&t, "\xff\xd8\xff", 3, "three.jpg", 0) == SP_EFORMAT && strstr(sp_last_error(), "three.jpg"),
          "3-byte JPEG from memory: %s", sp_last_error());
}

/* ---------------------------------------------------------------- MindSpore ops */

static void set_norm(sp_img_op *o) {
    const float mean[3] = {0.485f * 255, 0.456f * 255, 0.406f * 255}, sd[3] = {0.229f * 255, 0.224f * 255, 0.225f * 255};
    o->kind = SP_IMG_NORMALIZE;
    for (int k = 0; k < 3; k++) { o->mean[k] = mean[k]; o->std[k] = sd[k]; }
}

SUITE(image_ops_vs_mindspore) {
    sp_tensor *img = npy(FIX "rgb_baseline.jpg.c3.npy");
    FILE *f = fopen(FIX "ms_cases.txt", "r");
    CHECK(img && f, "MindSpore goldens present");
    if (!img || !f) { if (f) fclose(f); sp_tensor_free(img); return; }
    char name[64], kind[64];
    int a, b, ncase = 0;
    double fmaxd = 0;
    while (fscanf(f, "%63s %63s %d %d", name, kind, &a, &b) == 4) {
        sp_img_op ops[4];
        memset(ops, 0, sizeof ops);
        int n = 1;
        if (!strcmp(kind, "resize")) { ops[0].kind = SP_IMG_RESIZE; ops[0].h = a; ops[0].w = b; }
        else if (!strcmp(kind, "resize_short")) { ops[0].kind = SP_IMG_RESIZE; ops[0].h = a; ops[0].resize_short = 1; }
        else if (!strcmp(kind, "center")) { ops[0].kind = SP_IMG_CENTER_CROP; ops[0].h = a; ops[0].w = b; }
        else if (!strcmp(kind, "normalize_chw")) { set_norm(&ops[0]); ops[1].kind = SP_IMG_HWC2CHW; n = 2; }
        else if (!strcmp(kind, "rescale")) { ops[0].kind = SP_IMG_RESCALE; ops[0].a = 1.0 / 255; ops[0].b = -0.5; }
        else if (!strcmp(kind, "resize_normalize_chw")) {
            ops[0].kind = SP_IMG_RESIZE; ops[0].h = a; ops[0].w = b; set_norm(&ops[1]); ops[2].kind = SP_IMG_HWC2CHW; n = 3;
        } else if (!strncmp(kind, "pad_", 4)) {
            ops[0].kind = SP_IMG_RANDOM_CROP; ops[0].h = a; ops[0].w = b;
            ops[0].padding[0] = 3; ops[0].padding[1] = 2; ops[0].padding[2] = 5; ops[0].padding[3] = 4;
            ops[0].fill[0] = 7; ops[0].fill[1] = 8; ops[0].fill[2] = 9;
            ops[0].pad_mode = !strcmp(kind, "pad_constant") ? SP_BORDER_CONSTANT : !strcmp(kind, "pad_edge") ? SP_BORDER_EDGE
                              : !strcmp(kind, "pad_reflect") ? SP_BORDER_REFLECT : SP_BORDER_SYMMETRIC;
        } else { CHECK(0, "unknown case %s", kind); continue; }
        char gp[256];
        snprintf(gp, sizeof gp, FIX "ms_%s.npy", name);
        sp_tensor *g = npy(gp), *t = NULL;
        if (!g) continue;
        CHECK_OK(sp_image_transform(&t, img, ops, n, 1234));
        if (t) {
            CHECK(same_shape(t, g) && sp_tensor_dtype(t) == sp_tensor_dtype(g), "%s: shape and dtype (%s) equal MindSpore's (%s)",
                  name, sp_dtype_name(sp_tensor_dtype(t)), sp_dtype_name(sp_tensor_dtype(g)));
            if (same_shape(t, g) && sp_tensor_dtype(t) == SP_UINT8 && sp_tensor_dtype(g) == SP_UINT8) {
                long nd = 0;
                int m = u8_diff(t, g, &nd);
                CHECK(m == 0, "%s: uint8 output equals MindSpore's (max diff %d, %ld differ)", name, m, nd);
            } else if (same_shape(t, g) && sp_tensor_dtype(t) == SP_FLOAT32 && sp_tensor_dtype(g) == SP_FLOAT32) {
                const float *x = sp_tensor_data(t), *y = sp_tensor_data(g);
                double m = 0;
                for (int64_t i = 0; i < sp_tensor_numel(t); i++) m = fmax(m, fabs((double)x[i] - y[i]));
                CHECK(m < 1e-5, "%s: float32 output within 1e-5 of MindSpore's (max diff %g)", name, m);
                fmaxd = fmax(fmaxd, m);
            }
        }
        ncase++;
        sp_tensor_free(t);
        sp_tensor_free(g);
    }
    fclose(f);
    CHECK(ncase >= 15, "%d MindSpore cases ran", ncase);
    printf("  image: %d MindSpore vision cases, uint8 outputs exact, float32 max diff %g\n", ncase, fmaxd);
    sp_tensor_free(img);
}

SUITE(image_random_ops) {
    sp_tensor *img = npy(FIX "rgb_baseline.jpg.c3.npy");
    if (!img) return;
    /* RandomHorizontalFlip(0.5): about half of 2000 seeds flip, each result is the image or its mirror */
    sp_img_op op;
    memset(&op, 0, sizeof op);
    op.kind = SP_IMG_RANDOM_HFLIP;
    op.a = 0.5;
    int flips = 0, bad = 0;
    const unsigned char *s = sp_tensor_data(img);
    for (int i = 0; i < 2000; i++) {
        sp_tensor *t = NULL;
        if (sp_image_transform(&t, img, &op, 1, sp_image_seed(9, 0, i))) { bad++; continue; }
        const unsigned char *d = sp_tensor_data(t);
        int same = !memcmp(d, s, 40 * 56 * 3), mirror = 1;
        for (int y = 0; y < 40 && mirror; y++)
            for (int x = 0; x < 56; x++)
                if (memcmp(d + (y * 56 + x) * 3, s + (y * 56 + 55 - x) * 3, 3)) { mirror = 0; break; }
        if (!same && !mirror) bad++;
        flips += mirror;
        sp_tensor_free(t);
    }
    CHECK(bad == 0 && flips > 900 && flips < 1100, "RandomHorizontalFlip(0.5): %d of 2000 flipped, %d wrong", flips, bad);
    /* RandomResizedCrop: fixed size out; with scale (1, 1) and ratio = the image's, the crop is
     * the whole image, i.e. a plain Resize */
    sp_img_op r;
    memset(&r, 0, sizeof r);
    r.kind = SP_IMG_RANDOM_RESIZED_CROP;
    r.h = 24; r.w = 30;
    r.scale[0] = 1; r.scale[1] = 1;
    r.ratio[0] = r.ratio[1] = 56.0 / 40;
    sp_img_op rz;
    memset(&rz, 0, sizeof rz);
    rz.kind = SP_IMG_RESIZE; rz.h = 24; rz.w = 30;
    sp_tensor *t1 = NULL, *t2 = NULL;
    CHECK_OK(sp_image_transform(&t1, img, &r, 1, 5));
    CHECK_OK(sp_image_transform(&t2, img, &rz, 1, 0));
    long nd = 0;
    CHECK(t1 && t2 && u8_diff(t1, t2, &nd) == 0, "RandomResizedCrop with scale (1,1) and the image's ratio is Resize");
    sp_tensor_free(t1); sp_tensor_free(t2);
    /* default scale/ratio: always [24,30,3], varying with the seed, same for the same seed */
    r.scale[0] = 0.08; r.scale[1] = 1; r.ratio[0] = 0.75; r.ratio[1] = 4.0 / 3;
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        t1 = t2 = NULL;
        sp_image_transform(&t1, img, &r, 1, sp_image_seed(1, 0, i));
        sp_image_transform(&t2, img, &r, 1, sp_image_seed(1, 0, i + 1));
        sp_tensor *t3 = NULL;
        sp_image_transform(&t3, img, &r, 1, sp_image_seed(1, 0, i));
        CHECK(t1 && t3 && sp_tensor_dim(t1, 0) == 24 && sp_tensor_dim(t1, 1) == 30 && u8_diff(t1, t3, &nd) == 0,
              "RandomResizedCrop: [24,30,3], reproducible for a seed");
        if (t1 && t2 && u8_diff(t1, t2, &nd) > 0) differ++;
        sp_tensor_free(t1); sp_tensor_free(t2); sp_tensor_free(t3);
    }
    CHECK(differ >= 18, "RandomResizedCrop varies with the seed (%d of 20)", differ);
    /* RandomCrop with zero padding: every output is a window of the padded image */
    sp_img_op c;
    memset(&c, 0, sizeof c);
    c.kind = SP_IMG_RANDOM_CROP; c.h = 40; c.w = 56; c.pad = 4;
    int ok = 1, offs = 0;
    for (int i = 0; i < 50 && ok; i++) {
        sp_tensor *t = NULL;
        sp_image_transform(&t, img, &c, 1, sp_image_seed(3, 1, i));
        if (!t) { ok = 0; break; }
        const unsigned char *d = sp_tensor_data(t);
        int found = 0;
        for (int y0 = -4; y0 <= 4 && !found; y0++)
            for (int x0 = -4; x0 <= 4 && !found; x0++) {
                int match = 1;
                for (int y = 0; y < 40 && match; y++)
                    for (int x = 0; x < 56 && match; x++) {
                        int sy = y + y0, sx = x + x0;
                        for (int k = 0; k < 3; k++) {
                            int v = (sy < 0 || sy >= 40 || sx < 0 || sx >= 56) ? 0 : s[(sy * 56 + sx) * 3 + k];
                            if (d[(y * 56 + x) * 3 + k] != v) { match = 0; break; }
                        }
                    }
                if (match) { found = 1; offs += (y0 != 0 || x0 != 0); }
            }
        ok = found;
        sp_tensor_free(t);
    }
    CHECK(ok && offs > 30, "RandomCrop(pad 4): every output is a window of the zero-padded image (%d of 50 off-centre)", offs);
    /* errors name the op */
    c.h = 60;
    sp_tensor *t = NULL;
    CHECK(sp_image_transform(&t, img, &c, 1, 0) == SP_EINVAL && strstr(sp_last_error(), "RandomCrop"),
          "RandomCrop larger than the padded image: %s", sp_last_error());
    c.pad_if_needed = 1;
    CHECK_OK(sp_image_transform(&t, img, &c, 1, 0));
    CHECK(t && sp_tensor_dim(t, 0) == 60, "pad_if_needed pads up to the crop");
    sp_tensor_free(t);
    sp_img_op two[2];
    memset(two, 0, sizeof two);
    two[0].kind = SP_IMG_HWC2CHW;
    two[1].kind = SP_IMG_RESIZE; two[1].h = 4; two[1].w = 4;
    CHECK(sp_image_transform(&t, img, two, 2, 0) == SP_EINVAL && strstr(sp_last_error(), "after HWC2CHW"),
          "a geometric op after HWC2CHW is refused: %s", sp_last_error());
    /* Normalize last (fused into the write) equals Normalize then an identity Rescale */
    for (int chw = 0; chw <= 1; chw++) {
        sp_img_op n1[2], n2[3];
        memset(n1, 0, sizeof n1);
        memset(n2, 0, sizeof n2);
        set_norm(&n1[0]);
        n1[1].kind = SP_IMG_HWC2CHW;
        set_norm(&n2[0]);
        n2[1].kind = SP_IMG_RESCALE; n2[1].a = 1; n2[1].b = 0;
        n2[2].kind = SP_IMG_HWC2CHW;
        sp_tensor *u = NULL, *v = NULL;
        CHECK_OK(sp_image_transform(&u, img, n1, 1 + chw, 0));
        CHECK_OK(sp_image_transform(&v, img, n2, 2 + chw, 0));
        CHECK(u && v && same_shape(u, v) && !memcmp(sp_tensor_data(u), sp_tensor_data(v), sp_tensor_nbytes(u)),
              "fused Normalize (%s) is bit-identical to the unfused one", chw ? "CHW" : "HWC");
        sp_tensor_free(u); sp_tensor_free(v);
    }
    /* TypeCast */
    two[0].kind = SP_IMG_RESCALE; two[0].a = 0.5; two[0].b = 0.7;
    two[1].kind = SP_IMG_TYPECAST; two[1].dtype = SP_INT32;
    CHECK_OK(sp_image_transform(&t, img, two, 2, 0));
    CHECK(t && sp_tensor_dtype(t) == SP_INT32 && ((int32_t *)sp_tensor_data(t))[0] == (int32_t)(s[0] * 0.5f + 0.7f),
          "TypeCast to int32 truncates");
    sp_tensor_free(t);
    sp_tensor_free(img);
}

/* ---------------------------------------------------------------- npy */

SUITE(image_npy) {
    char dir[] = "/tmp/spore_npy_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char path[256];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    int dts[] = {SP_FLOAT32, SP_FLOAT64, SP_FLOAT16, SP_INT8, SP_INT16, SP_INT32, SP_INT64, SP_UINT8, SP_UINT16,
                 SP_UINT32, SP_UINT64, SP_BOOL};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        int64_t shape[3] = {2, 3, 5};
        sp_tensor *t = NULL, *u = NULL, *tr = NULL;
        sp_tensor_new(&t, dts[i], 3, shape);
        double v[30];
        for (int k = 0; k < 30; k++) v[k] = dts[i] == SP_BOOL ? k % 3 == 0 : (k * 7) % 23 - (sp_dtype_is_float(dts[i]) || dts[i] <= SP_INT64 ? 11 : 0);
        sp_tensor_from_doubles(t, v, 30);
        sp_tensor_transpose(&tr, t, 0, 2); /* a strided view is written in C order */
        CHECK_OK(sp_npy_save(path, tr));
        CHECK_OK(sp_npy_load(&u, path));
        int eq = u && sp_tensor_dtype(u) == dts[i] && sp_tensor_dim(u, 0) == 5 && sp_tensor_dim(u, 2) == 2;
        if (eq) {
            int64_t ix[3];
            for (ix[0] = 0; ix[0] < 5; ix[0]++)
                for (ix[1] = 0; ix[1] < 3; ix[1]++)
                    for (ix[2] = 0; ix[2] < 2; ix[2]++) {
                        double a, b;
                        sp_tensor_get(u, ix, &a);
                        sp_tensor_get(tr, ix, &b);
                        if (a != b) eq = 0;
                    }
        }
        CHECK(eq, "npy %s round trip (strided source)", sp_dtype_name(dts[i]));
        sp_tensor_free(t); sp_tensor_free(u); sp_tensor_free(tr);
    }
    /* goldens written by numpy load (the fixtures are numpy files): one check of values */
    sp_tensor *g = npy(FIX "rgb_baseline.jpg.c3.npy");
    CHECK(g && sp_tensor_dtype(g) == SP_UINT8 && sp_tensor_dim(g, 0) == 40, "numpy-written uint8 [40,56,3]");
    sp_tensor_free(g);
    /* strictness */
    /* strictness: a v1.0 header around dict, padded to 64, then payload bytes */
    struct { const char *dict; int payload; const char *raw; size_t rawn; const char *want; } bad[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, NULL, 0, "fortran_order"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, NULL, 0, "not supported"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, NULL, 0, "unexpected"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 10, NULL, 0, "payload"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 7, NULL, 0, "payload"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2,), }", 8, NULL, 0, "expected ',' or '}'"},
        {"{'descr': '<f4', 'shape': (2,), }", 8, NULL, 0, "lacks fortran_order"},
        {"{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", 2, NULL, 0, "bool"},
        {NULL, 0, "\x93NUMPX\x01\x00", 8, "magic"},
        {NULL, 0, "\x93NUMPY\x04\x00\x00\x00", 10, "version"},
        {NULL, 0, "\x93NUMPY\x01\x00\xff\x00{", 11, "truncated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char buf[256];
        size_t n;
        if (bad[i].dict) {
            size_t dl = strlen(bad[i].dict), hl = ((10 + dl + 1 + 63) / 64) * 64 - 10;
            memcpy(buf, "\x93NUMPY\x01\x00", 8);
            buf[8] = (unsigned char)hl; buf[9] = 0;
            memcpy(buf + 10, bad[i].dict, dl);
            memset(buf + 10 + dl, ' ', hl - dl - 1);
            buf[10 + hl - 1] = '\n';
            n = 10 + hl;
            memset(buf + n, 2, (size_t)bad[i].payload); /* 2: also an invalid bool byte */
            n += (size_t)bad[i].payload;
        } else {
            memcpy(buf, bad[i].raw, bad[i].rawn);
            n = bad[i].rawn;
        }
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        sp_tensor *t = NULL;
        sp_status st = sp_npy_load(&t, path);
        CHECK(st == SP_EFORMAT && !t && strstr(sp_last_error(), path) && strstr(sp_last_error(), bad[i].want),
              "bad npy %zu refused naming the file and '%s': %s", i, bad[i].want, sp_last_error());
        sp_status sm = sp_npy_load_mem(&t, buf, n, "mem.npy");
        CHECK(sm == SP_EFORMAT && strstr(sp_last_error(), "mem.npy"), "bad npy %zu from memory refused", i);
    }
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------------- loader */

static int run_loader(const char **paths, int n, int threads, int bs, uint64_t seed, int64_t epoch, int skip,
                      unsigned char **out, size_t *outn, int *labels_out, int *nbatches, int64_t *skipped, char *err) {
    sp_img_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].kind = SP_IMG_RANDOM_RESIZED_CROP; ops[0].h = 16; ops[0].w = 20;
    ops[0].scale[0] = 0.08; ops[0].scale[1] = 1; ops[0].ratio[0] = 0.75; ops[0].ratio[1] = 4.0 / 3;
    ops[1].kind = SP_IMG_RANDOM_HFLIP; ops[1].a = 0.5;
    set_norm(&ops[2]);
    ops[3].kind = SP_IMG_HWC2CHW;
    int32_t labels[64];
    for (int i = 0; i < n; i++) labels[i] = 100 + i;
    sp_loader_config cfg = {bs, threads, 2, 3, skip, 0, -1, seed};
    sp_loader *l = NULL;
    if (sp_loader_new(&l, paths, labels, n, ops, 4, &cfg)) { snprintf(err, 512, "%s", sp_last_error()); return -1; }
    int64_t order[64];
    for (int i = 0; i < n; i++) order[i] = n - 1 - i; /* reversed: batches follow the order given */
    sp_status st = sp_loader_start(l, order, n, epoch);
    size_t pos = 0;
    int nl = 0, nb = 0, rc = 0;
    *out = NULL;
    while (!st) {
        sp_tensor *im = NULL, *lb = NULL;
        st = sp_loader_next(l, &im, &lb);
        if (st) { snprintf(err, 512, "%s", sp_last_error()); rc = -1; break; }
        if (!im) break;
        nb++;
        size_t nbytes = sp_tensor_nbytes(im);
        *out = realloc(*out, pos + nbytes);
        memcpy(*out + pos, sp_tensor_data(im), nbytes);
        pos += nbytes;
        for (int64_t k = 0; k < sp_tensor_numel(lb); k++) labels_out[nl++] = ((int32_t *)sp_tensor_data(lb))[k];
        sp_tensor_free(im); sp_tensor_free(lb);
    }
    *outn = pos;
    *nbatches = nb;
    *skipped = sp_loader_skipped(l);
    sp_loader_free(l);
    return rc ? rc : nl;
}

SUITE(image_loader) {
    const char *paths[] = {FIX "rgb_baseline.jpg", FIX "rgb_progressive.jpg", FIX "rgb.png", FIX "gray.jpg",
                           FIX "palette.png", FIX "rgb_odd.jpg", FIX "exif_o6.jpg", FIX "rgba.png", FIX "rgb_444.jpg"};
    const int n = 9;
    unsigned char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    int la[64], lb[64], nba, nbb;
    int64_t sk;
    char err[512] = "";
    int got = run_loader(paths, n, 1, 4, 77, 0, 0, &a, &an, la, &nba, &sk, err);
    CHECK(got == 9 && nba == 3 && an == (size_t)9 * 3 * 16 * 20 * 4, "loader: 9 images in batches of 4, 4, 1 (%d, %d batches: %s)",
          got, nba, err);
    int order_ok = 1;
    for (int i = 0; i < got; i++) order_ok &= la[i] == 100 + (n - 1 - i);
    CHECK(order_ok, "loader: labels follow the epoch order");
    for (int th = 2; th <= 4; th += 2) {
        got = run_loader(paths, n, th, 4, 77, 0, 0, &b, &bn, lb, &nbb, &sk, err);
        CHECK(got == 9 && bn == an && !memcmp(a, b, an), "loader: %d threads give the same bytes as 1", th);
        free(b); b = NULL;
    }
    got = run_loader(paths, n, 2, 4, 78, 0, 0, &b, &bn, lb, &nbb, &sk, err);
    CHECK(got == 9 && bn == an && memcmp(a, b, an) != 0, "loader: another seed, other crops");
    free(b); b = NULL;
    got = run_loader(paths, n, 2, 4, 77, 1, 0, &b, &bn, lb, &nbb, &sk, err);
    CHECK(got == 9 && bn == an && memcmp(a, b, an) != 0, "loader: another epoch, other crops");
    free(b); b = NULL;
    /* the loader equals sp_image_transform with sp_image_seed(seed, epoch, index) on the decode */
    {
        sp_tensor *im = NULL, *t = NULL;
        sp_image_decode(&im, paths[8], 3);
        sp_img_op ops[4];
        memset(ops, 0, sizeof ops);
        ops[0].kind = SP_IMG_RANDOM_RESIZED_CROP; ops[0].h = 16; ops[0].w = 20;
        ops[0].scale[0] = 0.08; ops[0].scale[1] = 1; ops[0].ratio[0] = 0.75; ops[0].ratio[1] = 4.0 / 3;
        ops[1].kind = SP_IMG_RANDOM_HFLIP; ops[1].a = 0.5;
        set_norm(&ops[2]);
        ops[3].kind = SP_IMG_HWC2CHW;
        CHECK_OK(sp_image_transform(&t, im, ops, 4, sp_image_seed(77, 0, 8)));
        CHECK(t && !memcmp(sp_tensor_data(t), a, sp_tensor_nbytes(t)), "loader image 0 (index 8) = transform(decode, seed(77, 0, 8))");
        sp_tensor_free(im); sp_tensor_free(t);
    }
    free(a); a = NULL;
    /* bad images: an error naming the file, or skipped and counted with skip_bad */
    const char *mixed[] = {FIX "rgb.png", FIX "bad_truncated.jpg", FIX "rgb_baseline.jpg", FIX "bad_zero.jpg", FIX "gray.png"};
    got = run_loader(mixed, 5, 2, 2, 1, 0, 0, &a, &an, la, &nba, &sk, err);
    CHECK(got < 0 && strstr(err, "bad_zero.jpg"), "loader without skip_bad: the first bad file in order is named: %s", err);
    free(a); a = NULL;
    got = run_loader(mixed, 5, 2, 2, 1, 0, 1, &a, &an, la, &nba, &sk, err);
    CHECK(got == 3 && sk == 2 && nba == 2 && la[0] == 104 && la[1] == 102 && la[2] == 100,
          "loader skip_bad: 3 good images in 2 batches, 2 skipped (%d, %lld)", got, (long long)sk);
    free(a); a = NULL;
    /* arguments */
    sp_loader_config cfg = {0, 1, 2, 3, 0, 0, -1, 0};
    sp_loader *l = NULL;
    CHECK(sp_loader_new(&l, paths, NULL, n, NULL, 0, &cfg) == SP_EINVAL && strstr(sp_last_error(), "batch_size"), "batch_size 0 refused");
    cfg.batch_size = 2;
    CHECK_OK(sp_loader_new(&l, paths, NULL, n, NULL, 0, &cfg));
    int64_t badord[1] = {9};
    CHECK(sp_loader_start(l, badord, 1, 0) == SP_EINVAL, "order index out of range refused");
    /* no ops: images of different sizes cannot share a batch */
    CHECK_OK(sp_loader_start(l, NULL, n, 0));
    sp_tensor *im = NULL, *lab = NULL;
    CHECK_OK(sp_loader_next(l, &im, &lab));
    sp_tensor_free(im); sp_tensor_free(lab);
    sp_status st = SP_OK;
    for (int i = 0; i < 5 && !st; i++) {
        st = sp_loader_next(l, &im, &lab);
        sp_tensor_free(im); sp_tensor_free(lab);
        im = lab = NULL;
    }
    CHECK(st == SP_EINVAL && strstr(sp_last_error(), "batch's images"), "differently sized images in one batch: %s", sp_last_error());
    /* restart mid-epoch, then free with work in flight */
    CHECK_OK(sp_loader_start(l, NULL, n, 1));
    CHECK_OK(sp_loader_next(l, &im, &lab));
    sp_tensor_free(im); sp_tensor_free(lab);
    sp_loader_free(l);
}
