/* reduce_ops.c — public reductions and matmul: checks once, then the device's kernel. */
#include "ops/ops_common.h"

static const char *RN[] = {"sum", "mean", "max", "min", "argmax", "argmin"};

sp_status sp_reduce_all(const sp_tensor *a, int op, double *value) {
    if (!a || !value) return sp_error(SP_EINVAL, "reduce: NULL argument");
    if (op < SP_RED_SUM || op > SP_RED_ARGMIN) return sp_error(SP_EINVAL, "reduce: unknown op %d", op);
    if (sp_tensor_numel(a) == 0) {
        if (op == SP_RED_SUM) { *value = 0; return SP_OK; }
        return sp_error(SP_EINVAL, "%s of an empty tensor", RN[op]);
    }
    return OP_CALL(a, reduce_all, a, op, value);
}

sp_status sp_reduce_dim(sp_tensor *out, const sp_tensor *a, int op, int dim, int keepdim) {
    if (!out || !a) return sp_error(SP_EINVAL, "reduce: NULL argument");
    if (op < SP_RED_SUM || op > SP_RED_ARGMIN) return sp_error(SP_EINVAL, "reduce: unknown op %d", op);
    int d = dim < 0 ? dim + a->ndim : dim;
    if (d < 0 || d >= a->ndim)
        return sp_error(SP_EINVAL, "%s: dimension %d is out of range for rank %d", RN[op], dim, a->ndim);
    if (a->shape[d] == 0 && op != SP_RED_SUM) return sp_error(SP_EINVAL, "%s over an empty dimension", RN[op]);
    int64_t oshape[SP_MAX_DIMS];
    int ond = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i == d) { if (keepdim) oshape[ond++] = 1; }
        else oshape[ond++] = a->shape[i];
    }
    int ok = out->ndim == ond;
    for (int i = 0; ok && i < ond; i++) ok = out->shape[i] == oshape[i];
    if (!ok)
        return sp_error(SP_EINVAL, "%s: output tensor has the wrong shape for reducing dimension %d", RN[op], d);
    if (op >= SP_RED_ARGMAX && out->dtype != SP_INT64)
        return sp_error(SP_EINVAL, "%s: output must be int64, got %s", RN[op], sp_dtype_name(out->dtype));
    OP_SAME_DEVICE(RN[op], T(out), T(a));
    return OP_CALL(a, reduce_dim, out, a, op, d, keepdim);
}

sp_status sp_matmul(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int trans_a, int trans_b, double alpha,
                    double beta) {
    if (!out || !a || !b) return sp_error(SP_EINVAL, "matmul: tensor is NULL");
    if (a->ndim != 2 || b->ndim != 2 || out->ndim != 2)
        return sp_error(SP_EINVAL, "matmul: expected 2-D tensors, got ranks %d, %d and output %d", a->ndim, b->ndim,
                        out->ndim);
    int dt = out->dtype;
    if ((dt != SP_FLOAT32 && dt != SP_FLOAT64) || a->dtype != dt || b->dtype != dt)
        return sp_error(SP_EINVAL, "matmul: expected float32 or float64 operands of one dtype, got %s, %s -> %s",
                        sp_dtype_name(a->dtype), sp_dtype_name(b->dtype), sp_dtype_name(dt));
    int64_t M = trans_a ? a->shape[1] : a->shape[0], K = trans_a ? a->shape[0] : a->shape[1];
    int64_t K2 = trans_b ? b->shape[1] : b->shape[0], N = trans_b ? b->shape[0] : b->shape[1];
    if (K != K2)
        return sp_error(SP_EINVAL, "matmul: inner dimensions differ: [%lld, %lld] x [%lld, %lld]", (long long)M,
                        (long long)K, (long long)K2, (long long)N);
    if (out->shape[0] != M || out->shape[1] != N)
        return sp_error(SP_EINVAL, "matmul: output is [%lld, %lld], expected [%lld, %lld]", (long long)out->shape[0],
                        (long long)out->shape[1], (long long)M, (long long)N);
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return sp_error(SP_EINVAL, "matmul: dimension too large for BLAS");
    OP_SAME_DEVICE("matmul", T(out), T(a), T(b));
    if (M == 0 || N == 0) return SP_OK;
    return OP_CALL(out, matmul, out, a, b, trans_a, trans_b, alpha, beta);
}
