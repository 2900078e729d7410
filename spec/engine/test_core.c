/* test_core.c — dtype conversions against known bit patterns, tensors, views,
 * refcounts, elementwise ops and matmul against naive loops, error paths. */
#include "check.h"

#include <math.h>
#include <string.h>

SUITE(dtype_f16_bits) {
    struct { float in; uint16_t out; } cases[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65520.0f, 0x7c00},             /* rounds up to Inf (halfway above max) */
        {65519.0f, 0x7bff},             /* below the halfway point stays at max */
        {0.1f, 0x2e66}, {1.0009765625f, 0x3c01},
        {1.00048828125f, 0x3c00},       /* tie between 0x3c00 and 0x3c01 -> even 0x3c00 */
        {1.00146484375f, 0x3c02},       /* tie between 0x3c01 and 0x3c02 -> even 0x3c02 */
        {5.9604644775390625e-08f, 0x0001}, /* smallest subnormal 2^-24 */
        {2.98023223876953125e-08f, 0x0000}, /* 2^-25: tie -> even (0) */
        {4.4703483581542969e-08f, 0x0001}, /* 1.5 * 2^-25 rounds up */
        {6.103515625e-05f, 0x0400},     /* smallest normal 2^-14 */
        {6.0975551605224609e-05f, 0x03ff}, /* largest subnormal */
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = sp_f32_to_f16(cases[i].in);
        CHECK(h == cases[i].out, "f32_to_f16(%.10g) = 0x%04x, expected 0x%04x", cases[i].in, h, cases[i].out);
    }
    uint16_t n = sp_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff), "NaN stays NaN in f16 (0x%04x)", n);
    CHECK(isnan(sp_f16_to_f32(0x7e00)), "f16 NaN decodes to NaN");
    CHECK(sp_f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 subnormal decodes");
    CHECK(sp_f16_to_f32(0x7bff) == 65504.0f && isinf(sp_f16_to_f32(0xfc00)), "f16 max and -inf decode");
    /* every finite f16 round-trips exactly through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        if (sp_f32_to_f16(sp_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 values failed to round-trip", bad);
    /* f64 rounding is direct, not through float: 1 + 2^-11 + 2^-40 is above the tie */
    CHECK(sp_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40) == 0x3c01, "f64->f16 avoids double rounding");
}

SUITE(dtype_bf16_bits) {
    struct { float in; uint16_t out; } cases[] = {
        {1.0f, 0x3f80}, {-1.0f, 0xbf80}, {0.1f, 0x3dcd}, {3.0f, 0x4040},
        {1.00390625f, 0x3f80},  /* 1 + 2^-8: tie -> even 0x3f80 */
        {1.01171875f, 0x3f82},  /* 1 + 3*2^-8: tie -> even 0x3f82 */
        {3.3895313892515355e38f, 0x7f7f}, {INFINITY, 0x7f80}, {-INFINITY, 0xff80},
        {9.1835496e-41f, 0x0001}, /* subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = sp_f32_to_bf16(cases[i].in);
        CHECK(h == cases[i].out, "f32_to_bf16(%g) = 0x%04x, expected 0x%04x", cases[i].in, h, cases[i].out);
        CHECK(sp_f64_to_bf16((double)cases[i].in) == cases[i].out, "f64_to_bf16(%g) = 0x%04x", cases[i].in,
              sp_f64_to_bf16((double)cases[i].in));
    }
    uint16_t n = sp_f32_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f), "NaN stays NaN in bf16 (0x%04x)", n);
    CHECK(sp_f32_to_bf16(-NAN) & 0x8000, "NaN sign kept");
    CHECK(sp_bf16_to_f32(0x3f80) == 1.0f && sp_bf16_to_f32(0x4049) == 3.140625f, "bf16 decodes");
}

SUITE(dtype_names) {
    CHECK(sp_dtype_from_name("Float32") == SP_FLOAT32, "Float32");
    CHECK(sp_dtype_from_name("UInt8") == SP_UINT8 && sp_dtype_from_name("Uint8") == SP_UINT8, "UInt8/Uint8");
    CHECK(sp_dtype_from_name("BFloat16") == SP_BFLOAT16, "BFloat16");
    CHECK(sp_dtype_from_name("Bool") == SP_BOOL && sp_dtype_from_name("BF16") == SP_BFLOAT16, "Bool / BF16");
    CHECK(sp_dtype_from_name("Complex64") == -1 && sp_dtype_from_name(NULL) == -1, "unknown names -> -1");
    CHECK(sp_dtype_size(SP_FLOAT64) == 8 && sp_dtype_size(SP_BOOL) == 1 && sp_dtype_size(99) == 0, "sizes");
}

SUITE(tensor_copy_convert) {
    int64_t sh[1] = {6};
    float src[6] = {1.5f, -2.7f, 300.0f, -1e10f, NAN, 0.0f};
    sp_tensor *f, *i8, *u8, *b, *h;
    CHECK_OK(sp_tensor_from_data(&f, SP_FLOAT32, 1, sh, src, sizeof src));
    CHECK_OK(sp_tensor_clone(&i8, f, SP_INT8));
    CHECK_OK(sp_tensor_clone(&u8, f, SP_UINT8));
    CHECK_OK(sp_tensor_clone(&b, f, SP_BOOL));
    CHECK_OK(sp_tensor_clone(&h, f, SP_FLOAT16));
    const int8_t *pi = sp_tensor_data(i8);
    const uint8_t *pu = sp_tensor_data(u8), *pb = sp_tensor_data(b);
    CHECK(pi[0] == 1 && pi[1] == -2 && pi[2] == 127 && pi[3] == -128 && pi[4] == 0, "float->int8 truncates, saturates, NaN->0");
    CHECK(pu[1] == 0 && pu[2] == 255, "float->uint8 saturates");
    CHECK(pb[0] == 1 && pb[5] == 0 && pb[4] == 1, "float->bool is != 0 (NaN is true)");
    const uint16_t *ph = sp_tensor_data(h);
    CHECK(ph[0] == 0x3e00 && ph[3] == 0xfc00, "float->f16 (1.5 -> 0x3e00, -1e10 -> -inf)");
    /* int64 copies stay exact beyond 2^53 */
    int64_t big[2] = {(1LL << 62) + 1, -((1LL << 60) + 3)};
    int64_t sh2[1] = {2};
    sp_tensor *a, *c;
    CHECK_OK(sp_tensor_from_data(&a, SP_INT64, 1, sh2, big, sizeof big));
    CHECK_OK(sp_tensor_clone(&c, a, SP_UINT64));
    sp_tensor *d;
    CHECK_OK(sp_tensor_clone(&d, c, SP_INT64));
    CHECK(memcmp(sp_tensor_data(d), big, sizeof big) == 0, "int64 -> uint64 -> int64 is exact");
    sp_tensor_free(f); sp_tensor_free(i8); sp_tensor_free(u8); sp_tensor_free(b); sp_tensor_free(h);
    sp_tensor_free(a); sp_tensor_free(c); sp_tensor_free(d);
}

SUITE(tensor_views_refcounts) {
    int64_t sh[2] = {3, 4};
    sp_tensor *t, *tr, *row, *nar, *r2;
    CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 2, sh));
    CHECK(sp_tensor_storage_refcount(t) == 1, "fresh storage refcount 1");
    CHECK_OK(sp_tensor_reshape(&r2, t, 1, (int64_t[]){12}));
    CHECK_OK(sp_arange(r2, 0, 1));
    CHECK(sp_tensor_storage_refcount(t) == 2 && sp_tensor_shares_storage(t, r2), "reshape view shares storage");
    CHECK_OK(sp_tensor_transpose(&tr, t, 0, 1));
    CHECK(sp_tensor_dim(tr, 0) == 4 && sp_tensor_stride(tr, 0) == 1 && !sp_tensor_is_contiguous(tr), "transpose is a strided view");
    double v;
    CHECK_OK(sp_tensor_get(tr, (int64_t[]){3, 2}, &v));
    CHECK(v == 11, "tr[3,2] == t[2,3] == 11 (got %g)", v);
    CHECK_OK(sp_tensor_select(&row, t, 0, 1));
    CHECK_OK(sp_tensor_set(row, (int64_t[]){0}, 42));
    CHECK_OK(sp_tensor_get(t, (int64_t[]){1, 0}, &v));
    CHECK(v == 42, "writes through a view reach the base (got %g)", v);
    CHECK_OK(sp_tensor_narrow(&nar, t, 1, 1, 2));
    CHECK(sp_tensor_numel(nar) == 6 && sp_tensor_offset(nar) == 1, "narrow");
    CHECK(sp_tensor_storage_refcount(t) == 5, "5 handles share the storage (got %d)", sp_tensor_storage_refcount(t));
    int64_t live0;
    sp_mem_stats(&live0, NULL, NULL);
    sp_tensor_free(t);
    sp_tensor_free(r2);
    sp_tensor_free(tr);
    sp_tensor_free(row);
    int64_t live1;
    sp_mem_stats(&live1, NULL, NULL);
    CHECK(live1 == live0, "storage lives while a view does");
    CHECK_OK(sp_tensor_get(nar, (int64_t[]){2, 1}, &v));
    CHECK(v == 10, "view still reads the values (got %g)", v);
    CHECK(sp_tensor_storage_refcount(nar) == 1, "last handle");
    sp_tensor_free(nar);
    sp_mem_stats(&live1, NULL, NULL);
    CHECK(live0 - live1 == 48, "freeing the last view frees 48 bytes (freed %lld)", (long long)(live0 - live1));
    /* contiguous of a transposed view copies */
    sp_tensor *m, *mt, *mc;
    CHECK_OK(sp_tensor_new(&m, SP_FLOAT64, 2, sh));
    CHECK_OK(sp_tensor_transpose(&mt, m, 0, 1));
    CHECK_OK(sp_tensor_contiguous(&mc, mt));
    CHECK(!sp_tensor_shares_storage(mc, m) && sp_tensor_is_contiguous(mc), "contiguous() copies a strided view");
    sp_tensor_free(m); sp_tensor_free(mt); sp_tensor_free(mc);
}

SUITE(tensor_errors) {
    sp_tensor *t = NULL, *v = NULL;
    CHECK(sp_tensor_new(&t, 77, 0, NULL) == SP_EINVAL && strstr(sp_last_error(), "dtype"), "unknown dtype: %s", sp_last_error());
    CHECK(sp_tensor_new(&t, SP_FLOAT32, 2, (int64_t[]){-1, 3}) == SP_EINVAL, "negative dim");
    CHECK(sp_tensor_new(&t, SP_FLOAT32, 2, (int64_t[]){1LL << 40, 1LL << 40}) != SP_OK && t == NULL, "overflowing shape");
    CHECK(sp_tensor_new(&t, SP_FLOAT32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}) == SP_EINVAL, "rank > 8");
    CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 2, (int64_t[]){2, 3}));
    CHECK(sp_tensor_reshape(&v, t, 2, (int64_t[]){4, 2}) == SP_EINVAL && strstr(sp_last_error(), "elements"), "bad reshape: %s", sp_last_error());
    double x;
    CHECK(sp_tensor_get(t, (int64_t[]){2, 0}, &x) == SP_EINVAL && strstr(sp_last_error(), "out of range"), "index out of range");
    CHECK(sp_tensor_view(&v, t, 1, (int64_t[]){7}, (int64_t[]){1}, 0) == SP_EINVAL, "view beyond storage");
    CHECK(sp_tensor_from_data(&v, SP_FLOAT32, 1, (int64_t[]){3}, "abc", 3) == SP_EINVAL && v == NULL, "wrong byte count");
    sp_tensor_free(t);
}

static void naive_matmul(int M, int N, int K, const double *a, const double *b, double *c) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
            c[i * N + j] = s;
        }
}

SUITE(ops_matmul) {
    uint64_t seed = 7;
    int M = 13, N = 9, K = 17;
    sp_tensor *a, *b, *c, *at, *atv;
    CHECK_OK(sp_tensor_new(&a, SP_FLOAT32, 2, (int64_t[]){M, K}));
    CHECK_OK(sp_tensor_new(&b, SP_FLOAT32, 2, (int64_t[]){K, N}));
    CHECK_OK(sp_tensor_new(&c, SP_FLOAT32, 2, (int64_t[]){M, N}));
    CHECK_OK(sp_rand_uniform(a, -1, 1, &seed));
    CHECK_OK(sp_rand_uniform(b, -1, 1, &seed));
    CHECK_OK(sp_matmul(c, a, b, 0, 0, 1.0, 0.0));
    double da[13 * 17], db[17 * 9], dc[13 * 9], ref[13 * 9];
    sp_tensor_to_doubles(a, da, M * K); sp_tensor_to_doubles(b, db, K * N); sp_tensor_to_doubles(c, dc, M * N);
    naive_matmul(M, N, K, da, db, ref);
    double err = 0;
    for (int i = 0; i < M * N; i++) err = fmax(err, fabs(dc[i] - ref[i]));
    CHECK(err < 1e-5, "matmul vs naive: max err %g", err);
    /* transposed view of a stored [K, M] matrix, trans flag on it */
    CHECK_OK(sp_tensor_new(&at, SP_FLOAT32, 2, (int64_t[]){K, M}));
    CHECK_OK(sp_tensor_transpose(&atv, a, 0, 1));
    CHECK_OK(sp_tensor_copy(at, atv));
    CHECK_OK(sp_matmul(c, at, b, 1, 0, 1.0, 0.0));
    sp_tensor_to_doubles(c, dc, M * N);
    err = 0;
    for (int i = 0; i < M * N; i++) err = fmax(err, fabs(dc[i] - ref[i]));
    CHECK(err < 1e-5, "matmul with trans_a: max err %g", err);
    /* alpha, beta accumulate */
    CHECK_OK(sp_matmul(c, a, b, 0, 0, 2.0, 1.0));
    sp_tensor_to_doubles(c, dc, M * N);
    err = 0;
    for (int i = 0; i < M * N; i++) err = fmax(err, fabs(dc[i] - 3 * ref[i]));
    CHECK(err < 1e-4, "matmul alpha=2 beta=1: max err %g", err);
    CHECK(sp_matmul(c, b, a, 0, 0, 1, 0) == SP_EINVAL && strstr(sp_last_error(), "inner"), "shape mismatch: %s", sp_last_error());
    sp_tensor_free(a); sp_tensor_free(b); sp_tensor_free(c); sp_tensor_free(at); sp_tensor_free(atv);
}

SUITE(ops_elementwise) {
    uint64_t seed = 11;
    sp_tensor *a, *b, *o, *row;
    CHECK_OK(sp_tensor_new(&a, SP_FLOAT32, 2, (int64_t[]){4, 5}));
    CHECK_OK(sp_tensor_new(&row, SP_FLOAT32, 1, (int64_t[]){5}));
    CHECK_OK(sp_tensor_new(&b, SP_FLOAT32, 2, (int64_t[]){4, 5}));
    CHECK_OK(sp_tensor_new(&o, SP_FLOAT32, 2, (int64_t[]){4, 5}));
    sp_rand_normal(a, 0, 1, &seed); sp_rand_normal(b, 0, 1, &seed); sp_rand_uniform(row, 1, 2, &seed);
    double da[20], db[20], dr[5], dout[20];
    sp_tensor_to_doubles(a, da, 20); sp_tensor_to_doubles(b, db, 20); sp_tensor_to_doubles(row, dr, 5);
    for (int op = SP_OP_ADD; op <= SP_OP_MIN; op++) {
        CHECK_OK(sp_binary(o, a, b, op));
        sp_tensor_to_doubles(o, dout, 20);
        int bad = 0;
        for (int i = 0; i < 20; i++) {
            float x = (float)da[i], y = (float)db[i];
            float r = op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : op == 3 ? x / y : op == 4 ? fmaxf(x, y) : fminf(x, y);
            if ((float)dout[i] != r) bad++;
        }
        CHECK(bad == 0, "binary op %d: %d mismatches", op, bad);
    }
    CHECK_OK(sp_binary(o, a, row, SP_OP_DIV)); /* broadcast [4,5] / [5] */
    sp_tensor_to_doubles(o, dout, 20);
    int bad = 0;
    for (int i = 0; i < 20; i++) if ((float)dout[i] != (float)da[i] / (float)dr[i % 5]) bad++;
    CHECK(bad == 0, "broadcast div: %d mismatches", bad);
    sp_tensor *col;
    CHECK_OK(sp_tensor_new(&col, SP_FLOAT32, 2, (int64_t[]){3, 1}));
    CHECK(sp_binary(o, a, col, SP_OP_ADD) == SP_EINVAL && strstr(sp_last_error(), "broadcast"), "bad broadcast: %s", sp_last_error());
    /* reductions */
    double s, mx, am;
    CHECK_OK(sp_reduce_all(a, SP_RED_SUM, &s));
    CHECK_OK(sp_reduce_all(a, SP_RED_MAX, &mx));
    CHECK_OK(sp_reduce_all(a, SP_RED_ARGMAX, &am));
    double rs = 0, rm = -1e300; int ri = 0;
    for (int i = 0; i < 20; i++) { rs += da[i]; if (da[i] > rm) { rm = da[i]; ri = i; } }
    CHECK(fabs(s - rs) < 1e-9 && mx == rm && am == ri, "sum/max/argmax vs naive");
    sp_tensor *am1;
    CHECK_OK(sp_tensor_new(&am1, SP_INT64, 1, (int64_t[]){4}));
    CHECK_OK(sp_reduce_dim(am1, a, SP_RED_ARGMAX, 1, 0));
    const int64_t *pa = sp_tensor_data(am1);
    bad = 0;
    for (int r = 0; r < 4; r++) {
        int best = 0;
        for (int j = 1; j < 5; j++) if (da[r * 5 + j] > da[r * 5 + best]) best = j;
        if (pa[r] != best) bad++;
    }
    CHECK(bad == 0, "argmax along dim 1");
    /* ties: the first maximum wins */
    sp_tensor *tie;
    float tv[4] = {1, 3, 3, 2};
    CHECK_OK(sp_tensor_from_data(&tie, SP_FLOAT32, 1, (int64_t[]){4}, tv, sizeof tv));
    CHECK_OK(sp_reduce_all(tie, SP_RED_ARGMAX, &am));
    CHECK(am == 1, "first maximum wins ties");
    /* integer division by zero is an error, not a crash */
    sp_tensor *ia;
    CHECK_OK(sp_tensor_new(&ia, SP_INT32, 1, (int64_t[]){3}));
    CHECK(sp_binary_scalar(ia, ia, 0, SP_OP_DIV, 0) == SP_EINVAL, "int div by zero");
    sp_tensor_free(a); sp_tensor_free(b); sp_tensor_free(o); sp_tensor_free(row); sp_tensor_free(col);
    sp_tensor_free(am1); sp_tensor_free(tie); sp_tensor_free(ia);
}

/* sp_fill on float32: every element, at sizes around the threaded split (over 4M elements
 * the fill runs on libgomp's pool, +0 through memset), and -0.0 keeps its sign bit */
SUITE(ops_fill_f32) {
    int64_t sizes[] = {1, 17, 4194304 + 1, 4194304 * 2 + 37};
    double vals[] = {0.0, -0.0, 1.5, NAN};
    for (int si = 0; si < 4; si++)
        for (int vi = 0; vi < 4; vi++) {
            sp_tensor *t = NULL;
            int64_t n = sizes[si];
            CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 1, &n));
            float *p = sp_tensor_data(t);
            for (int64_t i = 0; i < n; i++) p[i] = 7.0f;
            CHECK_OK(sp_fill(t, vals[vi]));
            float want = (float)vals[vi];
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++)
                if (memcmp(&p[i], &want, sizeof want)) bad = i;
            CHECK(bad < 0, "fill of %lld elements with %g: element %lld differs", (long long)n, vals[vi], (long long)bad);
            sp_tensor_free(t);
        }
}

SUITE(random_seeded) {
    sp_tensor *a, *b;
    CHECK_OK(sp_tensor_new(&a, SP_FLOAT32, 1, (int64_t[]){10000}));
    CHECK_OK(sp_tensor_new(&b, SP_FLOAT32, 1, (int64_t[]){10000}));
    uint64_t s1 = 42, s2 = 42;
    sp_rand_normal(a, 0, 1, &s1);
    sp_rand_normal(b, 0, 1, &s2);
    CHECK(memcmp(sp_tensor_data(a), sp_tensor_data(b), 40000) == 0 && s1 == s2, "same seed, same stream");
    sp_rand_normal(b, 0, 1, &s2);
    CHECK(memcmp(sp_tensor_data(a), sp_tensor_data(b), 40000) != 0, "state advances");
    double m, sq = 0;
    sp_reduce_all(a, SP_RED_MEAN, &m);
    const float *p = sp_tensor_data(a);
    for (int i = 0; i < 10000; i++) sq += (p[i] - m) * (p[i] - m);
    CHECK(fabs(m) < 0.05 && fabs(sq / 10000 - 1) < 0.05, "normal(0,1): mean %g var %g", m, sq / 10000);
    sp_rand_trunc_normal(a, 0, 1, &s1);
    double mx, mn;
    sp_reduce_all(a, SP_RED_MAX, &mx); sp_reduce_all(a, SP_RED_MIN, &mn);
    CHECK(mx <= 2 && mn >= -2, "truncated normal stays within 2 std");
    sp_tensor_free(a); sp_tensor_free(b);
}

/* Regression (issue #8, b4): copying a tensor into a view of itself whose elements
 * overlap (a <- a^T, shifted narrow views) must read every source value before it is
 * overwritten, i.e. give the same result as copying from a separate clone. */
static int copy_overlap_matches_clone(sp_tensor *dst, const sp_tensor *src) {
    sp_tensor *snap;
    if (sp_tensor_clone(&snap, src, sp_tensor_dtype(src))) return -1;
    int64_t n = sp_tensor_numel(dst);
    double want[64], got[64];
    sp_tensor_to_doubles(snap, want, n);
    sp_status st = sp_tensor_copy(dst, src);
    sp_tensor_to_doubles(dst, got, n);
    sp_tensor_free(snap);
    if (st) return -1;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += got[i] != want[i];
    return bad;
}

static sp_status fill_iota(sp_tensor *t, double start) {
    double v[64];
    int64_t n = sp_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) v[i] = start + (double)i;
    return sp_tensor_from_doubles(t, v, n);
}

SUITE(tensor_copy_overlap) {
    for (int n = 2; n <= 5; n++) {
        sp_tensor *a, *at;
        CHECK_OK(sp_tensor_new(&a, SP_FLOAT32, 2, (int64_t[]){n, n}));
        CHECK_OK(fill_iota(a, 1));
        CHECK_OK(sp_tensor_transpose(&at, a, 0, 1));
        CHECK(copy_overlap_matches_clone(a, at) == 0, "a:copy_(a:t()) for %dx%d", n, n);
        double v[25];
        sp_tensor_to_doubles(a, v, n * n);
        int bad = 0;
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) bad += v[i * n + j] != (double)(j * n + i + 1);
        CHECK(bad == 0, "a:copy_(a:t()) gives the transpose of 1..%d", n * n);
        sp_tensor_free(at); sp_tensor_free(a);
    }
    /* overlapping shifted windows of one 1-d storage, both directions */
    sp_tensor *b, *lo, *hi;
    CHECK_OK(sp_tensor_new(&b, SP_FLOAT64, 1, (int64_t[]){10}));
    CHECK_OK(sp_arange(b, 0, 1));
    CHECK_OK(sp_tensor_narrow(&lo, b, 0, 0, 7));
    CHECK_OK(sp_tensor_narrow(&hi, b, 0, 3, 7));
    CHECK(copy_overlap_matches_clone(hi, lo) == 0, "b[4..10] <- b[1..7] (forward overlap)");
    double v[10];
    sp_tensor_to_doubles(b, v, 10);
    CHECK(v[3] == 0 && v[9] == 6 && v[2] == 2, "forward overlap shifts the values: %g %g %g", v[3], v[9], v[2]);
    CHECK_OK(sp_arange(b, 0, 1));
    CHECK(copy_overlap_matches_clone(lo, hi) == 0, "b[1..7] <- b[4..10] (backward overlap)");
    sp_tensor_free(lo); sp_tensor_free(hi); sp_tensor_free(b);
    /* non-square: the 3x4 block of a 4x4 tensor gets the transpose of its 4x3 block */
    sp_tensor *c, *r34, *c43, *t34;
    CHECK_OK(sp_tensor_new(&c, SP_INT32, 2, (int64_t[]){4, 4}));
    CHECK_OK(fill_iota(c, 0));
    CHECK_OK(sp_tensor_narrow(&r34, c, 0, 0, 3));
    CHECK_OK(sp_tensor_narrow(&c43, c, 1, 1, 3));
    CHECK_OK(sp_tensor_transpose(&t34, c43, 0, 1));
    CHECK(copy_overlap_matches_clone(r34, t34) == 0, "c[1..3,:] <- c[:,2..4]^T (non-square overlap)");
    sp_tensor_free(t34); sp_tensor_free(c43); sp_tensor_free(r34); sp_tensor_free(c);
}

/* sp_tensor_device_region (spore_engine_ext.h, for C engine libraries such as
 * libspore_dist.so's NCCL path): the address of the first element with the view's offset,
 * the device code, no stream for host-addressable devices; a strided view and NULL
 * arguments refused. */
#include "spore_engine_ext.h"
SUITE(tensor_device_region) {
    int64_t sh[2] = {3, 4};
    sp_tensor *t, *row, *tr;
    CHECK_OK(sp_tensor_new(&t, SP_FLOAT32, 2, sh));
    CHECK_OK(sp_tensor_select(&row, t, 0, 2));
    void *addr = NULL, *stream = (void *)1;
    int dev = -1;
    CHECK_OK(sp_tensor_device_region(row, &addr, &dev, &stream));
    CHECK(addr == (char *)sp_tensor_data(t) + 8 * sizeof(float), "row 2 starts 8 floats in");
    CHECK(dev == SP_DEVICE_CPU && stream == NULL, "cpu: device %d, no stream", dev);
    CHECK_OK(sp_tensor_transpose(&tr, t, 0, 1));
    CHECK(sp_tensor_device_region(tr, &addr, &dev, &stream) == SP_EINVAL, "a strided view is refused");
    CHECK(strstr(sp_last_error(), "not contiguous") != NULL, "names why: %s", sp_last_error());
    CHECK(sp_tensor_device_region(t, NULL, &dev, &stream) == SP_EINVAL, "NULL argument refused");
    if (sp_device_available(SP_DEVICE_SIM)) {
        sp_tensor *s;
        CHECK_OK(sp_tensor_new_on(&s, SP_FLOAT32, 2, sh, SP_DEVICE_SIM));
        CHECK_OK(sp_tensor_device_region(s, &addr, &dev, &stream));
        CHECK(dev == SP_DEVICE_SIM && addr != NULL && stream == NULL, "sim: its address, no stream");
        sp_tensor_free(s);
    }
    sp_tensor_free(tr);
    sp_tensor_free(row);
    sp_tensor_free(t);
}
