/* reduce.c — CPU kernels (checked by engine/ops/reduce_ops.c): sum / mean / max / min / argmax / argmin over all elements or one dim.
 * Sums accumulate in double. The first extreme wins ties; NaN propagates. */
#include "core/internal.h"
#include "cpu/cpu_kernels.h"

#include <math.h>

/* Reduce n elements starting at p with a byte stride. */
static double reduce_run(int dtype, const char *p, int64_t n, int64_t stride, int op) {
    if (op == SP_RED_SUM || op == SP_RED_MEAN) {
        double s = 0;
        if (dtype == SP_FLOAT32 && stride == 4) {
            const float *f = (const float *)p;
            for (int64_t i = 0; i < n; i++) s += f[i];
        } else {
            for (int64_t i = 0; i < n; i++) s += sp_load_f64(dtype, p + i * stride);
        }
        return op == SP_RED_MEAN ? s / (double)n : s;
    }
    double best = sp_load_f64(dtype, p);
    int64_t bi = 0;
    int want_max = (op == SP_RED_MAX || op == SP_RED_ARGMAX);
    if (best != best) return (op >= SP_RED_ARGMAX) ? 0 : best;
    for (int64_t i = 1; i < n; i++) {
        double v = sp_load_f64(dtype, p + i * stride);
        if (v != v) return (op >= SP_RED_ARGMAX) ? (double)i : v;
        if (want_max ? v > best : v < best) { best = v; bi = i; }
    }
    return op >= SP_RED_ARGMAX ? (double)bi : best;
}

sp_status sp_cpu_reduce_all(const sp_tensor *a, int op, double *value) {
    int64_t n = sp_tensor_numel(a); /* > 0: checked by sp_reduce_all */
    if (sp_tensor_is_contiguous(a)) {
        *value = reduce_run(a->dtype, SP_DATA(a), n, (int64_t)sp_dtype_size(a->dtype), op);
        return SP_OK;
    }
    sp_tensor *c;
    sp_status st = sp_tensor_contiguous(&c, a);
    if (st) return st;
    *value = reduce_run(c->dtype, SP_DATA(c), n, (int64_t)sp_dtype_size(c->dtype), op);
    sp_tensor_free(c);
    return SP_OK;
}

sp_status sp_cpu_reduce_dim(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim) {
    (void)keepdim; /* out's shape is checked by sp_reduce_dim */
    int d = dim < 0 ? dim + a->ndim : dim;
    int64_t len = a->shape[d];
    /* iterate over all positions of a with dim d fixed at 0 */
    int64_t outer_shape[SP_MAX_DIMS], ostr_a[SP_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < a->ndim; i++)
        if (i != d) { outer_shape[nd] = a->shape[i]; ostr_a[nd] = a->strides[i]; nd++; }
    int64_t total = 1;
    for (int i = 0; i < nd; i++) total *= outer_shape[i];
    int64_t sz = (int64_t)sp_dtype_size(a->dtype);
    for (int64_t k = 0; k < total; k++) {
        int64_t rem = k, off = a->offset;
        for (int i = nd - 1; i >= 0; i--) { off += (rem % outer_shape[i]) * ostr_a[i]; rem /= outer_shape[i]; }
        const char *p = (const char *)a->st->data + off * sz;
        double v = len == 0 ? 0 : reduce_run(a->dtype, p, len, a->strides[d] * sz, op);
        char *po = sp_elem_ptr(out, k);
        if (op >= SP_RED_ARGMAX) sp_store_i64(SP_INT64, po, (int64_t)v);
        else sp_store_f64(out->dtype, po, v);
    }
    return SP_OK;
}
