/* select_ops.c — public top-k and count-equal: checks once, then the device's kernel. */
#include "ops/ops_common.h"

static sp_status topk_out_shape(const char *what, const sp_tensor *o, const sp_tensor *a, int d, int64_t k) {
    int ok = o->ndim == a->ndim;
    for (int i = 0; ok && i < a->ndim; i++) ok = o->shape[i] == (i == d ? k : a->shape[i]);
    if (!ok)
        return sp_error(SP_EINVAL, "topk: %s must have the input's shape with dimension %d (0-based) of size %lld",
                        what, d, (long long)k);
    return SP_OK;
}

sp_status sp_topk(sp_tensor *values, sp_tensor *indices, const sp_tensor *a, int k, int dim, int largest) {
    if (!a || !indices) return sp_error(SP_EINVAL, "topk: input and indices must not be NULL");
    OP_SAME_DEVICE("topk", {a, "input"}, {values, "values"}, {indices, "indices"});
    sp_status st;
    if (a->ndim == 0) return sp_error(SP_EINVAL, "topk: input is a scalar (0-d), expected at least 1 dimension");
    int d = dim < 0 ? dim + a->ndim : dim;
    if (d < 0 || d >= a->ndim)
        return sp_error(SP_EINVAL, "topk: dimension %d is out of range for rank %d (0-based)", dim, a->ndim);
    int64_t n = a->shape[d];
    if (k < 0 || k > n)
        return sp_error(SP_EINVAL, "topk: k = %d is out of range for dimension %d of size %lld (need 0 <= k <= size)",
                        k, d, (long long)n);
    if (indices->dtype != SP_INT64)
        return sp_error(SP_EINVAL, "topk: indices must be int64, got %s", sp_dtype_name(indices->dtype));
    if (values && values->dtype != a->dtype)
        return sp_error(SP_EINVAL, "topk: values must have the input's dtype %s, got %s", sp_dtype_name(a->dtype),
                        sp_dtype_name(values->dtype));
    if ((st = topk_out_shape("indices", indices, a, d, k))) return st;
    if (values && (st = topk_out_shape("values", values, a, d, k))) return st;
    int64_t total = sp_tensor_numel(a) / (n ? n : 1);
    if (n == 0 || k == 0 || total == 0) return SP_OK;
    return OP_CALL(a, topk, values, indices, a, k, d, largest);
}

sp_status sp_count_equal(const sp_tensor *a, const sp_tensor *b, int64_t *count) {
    if (!a || !b || !count) return sp_error(SP_EINVAL, "count_equal: NULL argument");
    OP_SAME_DEVICE("count_equal", T(a), T(b));
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return sp_error(SP_EINVAL,
                            "count_equal: shapes cannot be broadcast together (dimension %d, 0-based from the "
                            "broadcast rank: %lld vs %lld)", i, (long long)da, (long long)db);
        n *= da == 1 ? db : da;
    }
    *count = 0;
    if (n == 0) return SP_OK;
    return OP_CALL(a, count_equal, a, b, count);
}
