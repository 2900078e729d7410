/* test_select.c — sp_topk and sp_count_equal against naive loops: ties (lower index
 * first), NaN (greatest), largest/smallest, any dim, strided views, integer dtypes,
 * broadcasting, and the error paths (bad k, dtype, shape, device). */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* naive: is (va, ia) before (vb, ib) in "largest" order (NaN greatest, ties lower index)? */
static int before(double va, int64_t ia, double vb, int64_t ib, int largest) {
    int na = va != va, nb = vb != vb;
    if (na != nb) return largest ? na : nb;
    if (!na && va != vb) return largest ? va > vb : va < vb;
    return ia < ib;
}

/* Check topk of a [R, C] tensor (values as doubles in row-major a_vals) along dim. */
static int naive_topk_check(const double *av, int R, int C, int dim, int k, int largest,
                            const sp_tensor *vals, const sp_tensor *idx) {
    int bad = 0, nrow = dim == 1 ? R : C, n = dim == 1 ? C : R;
    double *ov = malloc(sizeof(double) * (size_t)R * (size_t)C);
    double *oi = malloc(sizeof(double) * (size_t)R * (size_t)C);
    int64_t kn = (int64_t)nrow * k;
    if (vals) sp_tensor_to_doubles(vals, ov, kn);
    sp_tensor_to_doubles(idx, oi, kn);
    char *used = malloc((size_t)n);
    for (int r = 0; r < nrow; r++) {
        memset(used, 0, (size_t)n);
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int i = 0; i < n; i++) {
                if (used[i]) continue;
                double v = dim == 1 ? av[r * C + i] : av[i * C + r];
                double bv = best < 0 ? 0 : (dim == 1 ? av[r * C + best] : av[best * C + r]);
                if (best < 0 || before(v, i, bv, best, largest)) best = i;
            }
            used[best] = 1;
            int64_t pos = dim == 1 ? (int64_t)r * k + j : (int64_t)j * nrow + r;
            double want = dim == 1 ? av[r * C + best] : av[best * C + r];
            if (oi[pos] != best) bad++;
            if (vals && !(ov[pos] == want || (ov[pos] != ov[pos] && want != want))) bad++;
        }
    }
    free(ov); free(oi); free(used);
    return bad;
}

SUITE(select_topk_vs_naive) {
    srand(7);
    const int R = 13, C = 9;
    double av[13 * 9];
    float af[13 * 9];
    for (int i = 0; i < R * C; i++) { af[i] = (float)(rand() % 5); av[i] = af[i]; } /* many ties */
    af[5] = NAN; av[5] = NAN;
    sp_tensor *a;
    CHECK_OK(sp_tensor_from_data(&a, SP_FLOAT32, 2, (int64_t[]){R, C}, af, sizeof af));
    for (int dim = 0; dim < 2; dim++) {
        int n = dim == 1 ? C : R;
        for (int largest = 0; largest < 2; largest++) {
            for (int k = 0; k <= n; k += (k < 3 ? 1 : 4)) {
                int64_t os[2] = {R, C};
                os[dim] = k;
                sp_tensor *v, *ix;
                CHECK_OK(sp_tensor_new(&v, SP_FLOAT32, 2, os));
                CHECK_OK(sp_tensor_new(&ix, SP_INT64, 2, os));
                CHECK_OK(sp_topk(v, ix, a, k, dim == 1 ? -1 : 0, largest));
                int bad = naive_topk_check(av, R, C, dim, k, largest, v, ix);
                CHECK(bad == 0, "topk dim=%d largest=%d k=%d: %d mismatches vs naive", dim, largest, k, bad);
                sp_tensor_free(v); sp_tensor_free(ix);
            }
        }
    }
    /* a transposed (strided) input: topk along dim 1 of a^T = topk along dim 0 of a */
    sp_tensor *at, *v1, *i1, *v0, *i0;
    CHECK_OK(sp_tensor_transpose(&at, a, 0, 1));
    CHECK_OK(sp_tensor_new(&v1, SP_FLOAT32, 2, (int64_t[]){C, 4}));
    CHECK_OK(sp_tensor_new(&i1, SP_INT64, 2, (int64_t[]){C, 4}));
    CHECK_OK(sp_tensor_new(&v0, SP_FLOAT32, 2, (int64_t[]){4, C}));
    CHECK_OK(sp_tensor_new(&i0, SP_INT64, 2, (int64_t[]){4, C}));
    CHECK_OK(sp_topk(v1, i1, at, 4, 1, 1));
    CHECK_OK(sp_topk(v0, i0, a, 4, 0, 1));
    double d1[36], d0[36];
    sp_tensor_to_doubles(i1, d1, 36);
    sp_tensor_to_doubles(i0, d0, 36);
    int bad = 0;
    for (int r = 0; r < C; r++) for (int j = 0; j < 4; j++) bad += d1[r * 4 + j] != d0[j * C + r];
    CHECK(bad == 0, "topk of a transposed view agrees with topk along the other dim (%d mismatches)", bad);
    /* values may be NULL: indices only */
    CHECK_OK(sp_topk(NULL, i0, a, 4, 0, 1));
    sp_tensor_to_doubles(i0, d1, 36);
    bad = 0;
    for (int i = 0; i < 36; i++) bad += d1[i] != d0[i];
    CHECK(bad == 0, "topk without values gives the same indices");
    /* errors */
    CHECK(sp_topk(v0, i0, a, R + 1, 0, 1) == SP_EINVAL && strstr(sp_last_error(), "k = 14"), "k > size: %s", sp_last_error());
    CHECK(sp_topk(v0, i0, a, 3, 0, 1) == SP_EINVAL && strstr(sp_last_error(), "shape"), "wrong out shape: %s", sp_last_error());
    CHECK(sp_topk(v0, v0, a, 4, 0, 1) == SP_EINVAL && strstr(sp_last_error(), "int64"), "float indices: %s", sp_last_error());
    CHECK(sp_topk(i0, i0, a, 4, 0, 1) == SP_EINVAL && strstr(sp_last_error(), "dtype"), "values dtype: %s", sp_last_error());
    CHECK(sp_topk(v0, i0, a, 4, 2, 1) == SP_EINVAL && strstr(sp_last_error(), "out of range"), "bad dim: %s", sp_last_error());
    sp_tensor *sim;
    CHECK_OK(sp_tensor_new_on(&sim, SP_INT64, 2, (int64_t[]){4, C}, SP_DEVICE_SIM));
    CHECK(sp_topk(v0, sim, a, 4, 0, 1) == SP_EINVAL && strstr(sp_last_error(), "sim"), "device mismatch: %s", sp_last_error());
    sp_tensor_free(sim);
    sp_tensor_free(at); sp_tensor_free(v1); sp_tensor_free(i1); sp_tensor_free(v0); sp_tensor_free(i0);
    sp_tensor_free(a);
}

SUITE(select_topk_int64_exact) {
    /* values above 2^53 differ only in the last bit: compared as int64, not double */
    int64_t big = ((int64_t)1 << 60);
    int64_t x[5] = {big + 1, big + 3, big + 2, -5, big + 3};
    sp_tensor *a, *v, *ix;
    CHECK_OK(sp_tensor_from_data(&a, SP_INT64, 1, (int64_t[]){5}, x, sizeof x));
    CHECK_OK(sp_tensor_new(&v, SP_INT64, 1, (int64_t[]){5}));
    CHECK_OK(sp_tensor_new(&ix, SP_INT64, 1, (int64_t[]){5}));
    CHECK_OK(sp_topk(v, ix, a, 5, 0, 1));
    const int64_t *pv = sp_tensor_data(v), *pi = sp_tensor_data(ix);
    int64_t wi[5] = {1, 4, 2, 0, 3};
    int bad = 0;
    for (int i = 0; i < 5; i++) bad += pi[i] != wi[i] || pv[i] != x[wi[i]];
    CHECK(bad == 0, "int64 topk exact and ties lower index first (%lld %lld %lld %lld %lld)",
          (long long)pi[0], (long long)pi[1], (long long)pi[2], (long long)pi[3], (long long)pi[4]);
    CHECK_OK(sp_topk(v, ix, a, 5, 0, 0));
    int64_t ws[5] = {3, 0, 2, 1, 4};
    bad = 0;
    for (int i = 0; i < 5; i++) bad += pi[i] != ws[i];
    CHECK(bad == 0, "int64 smallest-first order");
    sp_tensor_free(a); sp_tensor_free(v); sp_tensor_free(ix);
}

SUITE(select_count_equal_vs_naive) {
    srand(11);
    const int N = 17, K = 5;
    int64_t lab[17];
    int32_t top[17 * 5];
    for (int i = 0; i < N; i++) lab[i] = rand() % 7;
    for (int i = 0; i < N * K; i++) top[i] = rand() % 7;
    sp_tensor *l, *t, *l1;
    CHECK_OK(sp_tensor_from_data(&l, SP_INT64, 1, (int64_t[]){N}, lab, sizeof lab));
    CHECK_OK(sp_tensor_from_data(&t, SP_INT32, 2, (int64_t[]){N, K}, top, sizeof top));
    CHECK_OK(sp_tensor_reshape(&l1, l, 2, (int64_t[]){N, 1}));
    int64_t c = -1, want = 0;
    for (int i = 0; i < N; i++) for (int j = 0; j < K; j++) want += top[i * K + j] == lab[i];
    CHECK_OK(sp_count_equal(t, l1, &c));
    CHECK(c == want, "broadcast [N,K] vs [N,1]: %lld, naive %lld", (long long)c, (long long)want);
    CHECK_OK(sp_count_equal(l1, t, &c));
    CHECK(c == want, "broadcast is symmetric");
    /* same shape, strided: column 0 of t vs labels */
    sp_tensor *col;
    CHECK_OK(sp_tensor_select(&col, t, 1, 0));
    want = 0;
    for (int i = 0; i < N; i++) want += top[i * K] == lab[i];
    CHECK_OK(sp_count_equal(col, l, &c));
    CHECK(c == want, "strided column vs labels: %lld, naive %lld", (long long)c, (long long)want);
    /* floats vs ints; NaN equals nothing */
    float f[3] = {1, NAN, 2};
    int64_t g[3] = {1, 0, 3};
    sp_tensor *ft, *gt;
    CHECK_OK(sp_tensor_from_data(&ft, SP_FLOAT32, 1, (int64_t[]){3}, f, sizeof f));
    CHECK_OK(sp_tensor_from_data(&gt, SP_INT64, 1, (int64_t[]){3}, g, sizeof g));
    CHECK_OK(sp_count_equal(ft, gt, &c));
    CHECK(c == 1, "float vs int compare, NaN unequal: %lld", (long long)c);
    CHECK_OK(sp_count_equal(ft, ft, &c));
    CHECK(c == 2, "NaN is not equal to itself: %lld", (long long)c);
    CHECK(sp_count_equal(l, ft, &c) == SP_EINVAL && strstr(sp_last_error(), "broadcast"), "bad shapes: %s", sp_last_error());
    sp_tensor_free(ft); sp_tensor_free(gt); sp_tensor_free(col);
    sp_tensor_free(l); sp_tensor_free(l1); sp_tensor_free(t);
}
