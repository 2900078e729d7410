/* elementwise_ops.c — public binary (numpy broadcasting), binary-scalar and unary ops:
 * shapes, op codes and devices are checked once here, then the device's kernel runs. */
#include "ops/ops_common.h"

#include <math.h>
#include <stdio.h>

static const char *OPN[] = {"add", "sub", "mul", "div", "max", "min", "pow", "add_relu"};

static void fmt_shape(const sp_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

sp_status sp_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op) {
    if (!out || !a || !b) return sp_error(SP_EINVAL, "binary op: tensor is NULL");
    if (op < SP_OP_ADD || op > SP_OP_ADD_RELU) return sp_error(SP_EINVAL, "binary op: unknown op %d", op);
    /* broadcast shape, right-aligned */
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int ok = out->ndim == nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[128], sb[128];
            fmt_shape(a, sa, sizeof sa); fmt_shape(b, sb, sizeof sb);
            return sp_error(SP_EINVAL, "%s: shapes %s and %s cannot be broadcast together", OPN[op], sa, sb);
        }
        if (ok && out->shape[i] != (da == 1 ? db : da)) ok = 0;
    }
    if (!ok) {
        char so[128];
        fmt_shape(out, so, sizeof so);
        return sp_error(SP_EINVAL, "%s: output shape %s does not match the broadcast shape", OPN[op], so);
    }
    OP_SAME_DEVICE(OPN[op], T(out), T(a), T(b));
    return OP_CALL(out, binary, out, a, b, op);
}

sp_status sp_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse) {
    if (!out || !a) return sp_error(SP_EINVAL, "binary op: tensor is NULL");
    if (op < SP_OP_ADD || op > SP_OP_POW) return sp_error(SP_EINVAL, "binary op: unknown op %d", op);
    if (out->ndim != a->ndim)
        return sp_error(SP_EINVAL, "%s: output rank %d differs from input rank %d", OPN[op], out->ndim, a->ndim);
    for (int i = 0; i < a->ndim; i++)
        if (out->shape[i] != a->shape[i])
            return sp_error(SP_EINVAL, "%s: output shape differs from input shape", OPN[op]);
    int ints = sp_dtype_is_int(out->dtype) && sp_dtype_is_int(a->dtype) && out->dtype != SP_BOOL && s == floor(s) &&
               fabs(s) < 9.0e15;
    if (ints && op == SP_OP_DIV && !reverse && s == 0)
        return sp_error(SP_EINVAL, "%s: integer division by zero", OPN[op]);
    OP_SAME_DEVICE(OPN[op], T(out), T(a));
    return OP_CALL(out, binary_scalar, out, a, s, op, reverse);
}

sp_status sp_unary(sp_tensor *out, const sp_tensor *a, int op) {
    if (!out || !a) return sp_error(SP_EINVAL, "unary op: tensor is NULL");
    if (op < SP_UN_NEG || op > SP_UN_RELU) return sp_error(SP_EINVAL, "unary op: unknown op %d", op);
    if (sp_tensor_numel(out) != sp_tensor_numel(a) || out->ndim != a->ndim)
        return sp_error(SP_EINVAL, "unary op: output shape differs from input shape");
    OP_SAME_DEVICE("unary op", T(out), T(a));
    return OP_CALL(out, unary, out, a, op);
}
