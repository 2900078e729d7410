/* select.c — top-k along a dimension and counting equal elements: the engine ops
 * behind Tensor:topk and the accuracy/top-K metrics (so Lua never reads tensor memory);
 * CPU kernels, argument checks in engine/ops/select_ops.c.
 * Order: by value (NaN counts as the greatest value), ties by lower index first. */
#include "core/internal.h"
#include "core/device.h"
#include "cpu/cpu_kernels.h"

#include <stdlib.h>

typedef struct { double v; int64_t iv; int64_t i; int nan; } topk_item;

/* Sort key order for "largest": NaN first, then greater value, then lower index. */
static int cmp_largest_f(const void *pa, const void *pb) {
    const topk_item *a = pa, *b = pb;
    if (a->nan != b->nan) return a->nan ? -1 : 1;
    if (!a->nan && a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}
static int cmp_smallest_f(const void *pa, const void *pb) {
    const topk_item *a = pa, *b = pb;
    if (a->nan != b->nan) return a->nan ? 1 : -1;
    if (!a->nan && a->v != b->v) return a->v < b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}
static int cmp_largest_i(const void *pa, const void *pb) {
    const topk_item *a = pa, *b = pb;
    if (a->iv != b->iv) return a->iv > b->iv ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}
static int cmp_smallest_i(const void *pa, const void *pb) {
    const topk_item *a = pa, *b = pb;
    if (a->iv != b->iv) return a->iv < b->iv ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

sp_status sp_cpu_topk(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int d, int largest) {
    int64_t n = a->shape[d];
    int64_t total = sp_tensor_numel(a) / (n ? n : 1);
    if (n == 0 || k == 0 || total == 0) return SP_OK;

    topk_item *row = sp_workspace(SP_DEV(a), 0, (size_t)n * sizeof *row);
    if (!row) return sp_error(SP_ENOMEM, "topk: out of memory for a row of %lld elements", (long long)n);
    int is_int = sp_dtype_is_int(a->dtype);
    sp_storage_touch(indices->st); /* written below through st->data */
    if (values) sp_storage_touch(values->st);
    int (*cmp)(const void *, const void *) =
        is_int ? (largest ? cmp_largest_i : cmp_smallest_i) : (largest ? cmp_largest_f : cmp_smallest_f);
    /* outer positions: every index of a with dimension d dropped */
    int64_t oshape[SP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++) if (i != d) oshape[nd++] = a->shape[i];
    int64_t asz = (int64_t)sp_dtype_size(a->dtype), isz = (int64_t)sp_dtype_size(SP_INT64);
    for (int64_t r = 0; r < total; r++) {
        int64_t rem = r, offa = a->offset, offi = indices->offset, offv = values ? values->offset : 0;
        for (int i = nd - 1, j = a->ndim - 1; i >= 0; i--, j--) {
            if (j == d) j--;
            int64_t c = rem % oshape[i];
            rem /= oshape[i];
            offa += c * a->strides[j];
            offi += c * indices->strides[j];
            if (values) offv += c * values->strides[j];
        }
        const char *pa = (const char *)a->st->data + offa * asz;
        for (int64_t i = 0; i < n; i++) {
            const char *p = pa + i * a->strides[d] * asz;
            row[i].i = i;
            if (is_int) { row[i].iv = sp_load_i64(a->dtype, p); row[i].v = 0; row[i].nan = 0; }
            else { row[i].v = sp_load_f64(a->dtype, p); row[i].iv = 0; row[i].nan = row[i].v != row[i].v; }
        }
        qsort(row, (size_t)n, sizeof *row, cmp);
        char *pi = (char *)indices->st->data + offi * isz;
        for (int64_t i = 0; i < k; i++) *(int64_t *)(pi + i * indices->strides[d] * isz) = row[i].i;
        if (values) {
            char *pv = (char *)values->st->data + offv * asz;
            for (int64_t i = 0; i < k; i++) {
                char *q = pv + i * values->strides[d] * asz;
                const char *src = pa + row[i].i * a->strides[d] * asz;
                for (int64_t b = 0; b < asz; b++) q[b] = src[b]; /* same dtype: exact bits */
            }
        }
    }
    return SP_OK;
}

sp_status sp_cpu_count_equal(const sp_tensor *a, const sp_tensor *b, int64_t *count) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[SP_MAX_DIMS], strides[2][SP_MAX_DIMS];
    int64_t sza = (int64_t)sp_dtype_size(a->dtype), szb = (int64_t)sp_dtype_size(b->dtype), n = 1;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        shape[i] = da == 1 ? db : da;
        strides[0][i] = (ia >= 0 && da != 1) ? a->strides[ia] * sza : 0;
        strides[1][i] = (ib >= 0 && db != 1) ? b->strides[ib] * szb : 0;
        n *= shape[i];
    }
    *count = 0;
    if (n == 0) return SP_OK;
    char *base[2] = {(char *)SP_DATA(a), (char *)SP_DATA(b)}; /* read only */
    sp_iter it;
    sp_iter_init(&it, nd, shape, 2, base, strides);
    int64_t c = 0;
    if (sp_dtype_is_int(a->dtype) && sp_dtype_is_int(b->dtype)) {
        do c += sp_load_i64(a->dtype, it.ptr[0]) == sp_load_i64(b->dtype, it.ptr[1]);
        while (sp_iter_next(&it));
    } else {
        do c += sp_load_f64(a->dtype, it.ptr[0]) == sp_load_f64(b->dtype, it.ptr[1]); /* NaN never equal */
        while (sp_iter_next(&it));
    }
    *count = c;
    return SP_OK;
}
