/* elementwise.c — CPU kernels: fill, arange, binary ops with numpy broadcasting, unary ops
 * (arguments checked by engine/ops/fill_ops.c and elementwise_ops.c).
 * float32 contiguous operands take a direct loop; other dtypes go through double
 * (integers through int64, so 64-bit values stay exact for add/sub/mul). */
#include "nn_common.h" /* -O3 (the float32 fast paths vectorise) and nn_par */
#include "cpu/cpu_kernels.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

sp_status sp_cpu_fill(sp_tensor *t, double v) {
    int64_t n = sp_tensor_numel(t);
    if (t->dtype == SP_FLOAT32 && sp_tensor_is_contiguous(t)) {
        float *p = SP_DATA(t), f = (float)v;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        /* +0 (a zero_grad, a flat gradient buffer: 100 MB for ResNet50) through memset, and a
         * whole model's worth on libgomp's pool: 13 -> 6 ms for that buffer here */
        int nt = nn_par_big(n) ? omp_get_max_threads() : 1;
        int64_t chunk = ((n + nt - 1) / nt + 15) & ~(int64_t)15;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int k = 0; k < nt; k++) {
            int64_t lo = k * chunk, hi = lo + chunk < n ? lo + chunk : n;
            if (lo >= hi) continue;
            if (bits == 0) memset(p + lo, 0, sizeof(float) * (size_t)(hi - lo));
            else
                for (int64_t i = lo; i < hi; i++) p[i] = f;
        }
        return SP_OK;
    }
    char buf[8];
    sp_store_f64(t->dtype, buf, v);
    size_t sz = sp_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) memcpy(sp_elem_ptr(t, i), buf, sz);
    return SP_OK;
}

sp_status sp_cpu_arange(sp_tensor *t, double start, double step) {
    for (int64_t i = 0; i < t->shape[0]; i++) sp_store_f64(t->dtype, sp_elem_ptr(t, i), start + (double)i * step);
    return SP_OK;
}

static double apply(int op, double a, double b) {
    switch (op) {
    case SP_OP_ADD: return a + b;
    case SP_OP_SUB: return a - b;
    case SP_OP_MUL: return a * b;
    case SP_OP_DIV: return a / b;
    case SP_OP_MAX: return (a != a || a >= b) ? a : b;
    case SP_OP_MIN: return (a != a || a <= b) ? a : b;
    case SP_OP_POW: return pow(a, b);
    case SP_OP_ADD_RELU: return a + b > 0 ? a + b : (a + b != a + b ? a + b : 0);
    }
    return 0;
}

static int apply_int(int op, int64_t a, int64_t b, int64_t *r) {
    switch (op) {
    case SP_OP_ADD: *r = (int64_t)((uint64_t)a + (uint64_t)b); return 1;
    case SP_OP_SUB: *r = (int64_t)((uint64_t)a - (uint64_t)b); return 1;
    case SP_OP_MUL: *r = (int64_t)((uint64_t)a * (uint64_t)b); return 1;
    case SP_OP_DIV:
        if (b == 0) return 0;
        *r = (a == INT64_MIN && b == -1) ? INT64_MIN : a / b;
        return 1;
    case SP_OP_MAX: *r = a >= b ? a : b; return 1;
    case SP_OP_MIN: *r = a <= b ? a : b; return 1;
    case SP_OP_POW: *r = (int64_t)pow((double)a, (double)b); return 1;
    case SP_OP_ADD_RELU: *r = (int64_t)((uint64_t)a + (uint64_t)b); if (*r < 0) *r = 0; return 1;
    }
    return 0;
}

static const char *OPN[] = {"add", "sub", "mul", "div", "max", "min", "pow"};

/* The float32 loops stand alone so that each vectorises (inside the big dispatcher GCC
 * left the add+relu select scalar: 6 % of a ResNet50 forward instead of 1 %). */
/* par: on libgomp's pool (nn_par, or nn_par_cl for channels-last operands) */
__attribute__((noinline)) static void add_f32(float *o, const float *x, const float *y, int64_t n, int par) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}
__attribute__((noinline)) static void add_relu_f32(float *o, const float *x, const float *y, int64_t n, int par) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < n; i++) { float v = x[i] + y[i]; o[i] = v > 0.0f ? v : 0.0f; } /* branch-free */
}
SP_NN_CLONES __attribute__((noinline)) static void relu_f32(float *o, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : 0.0f; /* branch-free */
}

/* 1 when the three tensors (b may be NULL) hold their elements in the same dense order:
 * all contiguous, or all 4-D channels-last of one shape (then elementwise work may run over
 * the memory as flat arrays) */
int sp_cpu_same_dense(const sp_tensor *o, const sp_tensor *a, const sp_tensor *b) {
    if (sp_tensor_is_contiguous(o) && sp_tensor_is_contiguous(a) && (!b || sp_tensor_is_contiguous(b))) return 1;
    if (o->ndim != 4 || a->ndim != 4 || (b && b->ndim != 4)) return 0;
    if (memcmp(o->shape, a->shape, 4 * sizeof(int64_t)) || (b && memcmp(o->shape, b->shape, 4 * sizeof(int64_t))))
        return 0;
    return sp_tensor_is_channels_last(o) && sp_tensor_is_channels_last(a) && (!b || sp_tensor_is_channels_last(b));
}

sp_status sp_cpu_binary(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int op) {
    /* broadcast shape, right-aligned (checked by sp_binary) */
    int nd = out->ndim;
    int64_t shape[SP_MAX_DIMS], strides[3][SP_MAX_DIMS];
    int64_t sza = (int64_t)sp_dtype_size(a->dtype), szb = (int64_t)sp_dtype_size(b->dtype);
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        shape[i] = out->shape[i];
        strides[0][i] = out->strides[i] * (int64_t)sp_dtype_size(out->dtype);
        strides[1][i] = (ia >= 0 && da != 1) ? a->strides[ia] * sza : 0;
        strides[2][i] = (ib >= 0 && db != 1) ? b->strides[ib] * szb : 0;
    }
    int64_t n = sp_tensor_numel(out);
    if (n == 0) return SP_OK;
    int all_int = sp_dtype_is_int(out->dtype) && sp_dtype_is_int(a->dtype) && sp_dtype_is_int(b->dtype);
    /* fast path: float32, same shapes, contiguous */
    if (out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32 && b->dtype == SP_FLOAT32 &&
        sp_tensor_numel(a) == n && sp_tensor_numel(b) == n && sp_cpu_same_dense(out, a, b)) {
        float *o = SP_DATA(out);
        const float *x = SP_DATA(a), *y = SP_DATA(b);
        int par = nn_par_for(out, n);
        switch (op) {
        case SP_OP_ADD: add_f32(o, x, y, n, par); return SP_OK;
        case SP_OP_ADD_RELU: add_relu_f32(o, x, y, n, par); return SP_OK;
        case SP_OP_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - y[i]; return SP_OK;
        case SP_OP_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i]; return SP_OK;
        case SP_OP_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / y[i]; return SP_OK;
        default: break;
        }
    }
    char *base[3] = {SP_DATA(out), (char *)SP_DATA(a), (char *)SP_DATA(b)}; /* a, b: read only */
    sp_iter it;
    sp_iter_init(&it, nd, shape, 3, base, strides);
    if (all_int && out->dtype != SP_BOOL) {
        do {
            int64_t r;
            if (!apply_int(op, sp_load_i64(a->dtype, it.ptr[1]), sp_load_i64(b->dtype, it.ptr[2]), &r))
                return sp_error(SP_EINVAL, "%s: integer division by zero", OPN[op]);
            sp_store_i64(out->dtype, it.ptr[0], r);
        } while (sp_iter_next(&it));
    } else {
        do sp_store_f64(out->dtype, it.ptr[0],
                        apply(op, sp_load_f64(a->dtype, it.ptr[1]), sp_load_f64(b->dtype, it.ptr[2])));
        while (sp_iter_next(&it));
    }
    return SP_OK;
}

sp_status sp_cpu_binary_scalar(sp_tensor *out, const sp_tensor *a, double s, int op, int reverse) {
    int64_t n = sp_tensor_numel(a);
    int ints = sp_dtype_is_int(out->dtype) && sp_dtype_is_int(a->dtype) && out->dtype != SP_BOOL && s == floor(s) &&
               fabs(s) < 9.0e15;
    if (out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32 && sp_tensor_is_contiguous(out) && sp_tensor_is_contiguous(a) && !reverse) {
        float *o = SP_DATA(out);
        const float *x = SP_DATA(a);
        float f = (float)s;
        switch (op) {
        case SP_OP_ADD: for (int64_t i = 0; i < n; i++) o[i] = x[i] + f; return SP_OK;
        case SP_OP_SUB: for (int64_t i = 0; i < n; i++) o[i] = x[i] - f; return SP_OK;
        case SP_OP_MUL: for (int64_t i = 0; i < n; i++) o[i] = x[i] * f; return SP_OK;
        case SP_OP_DIV: for (int64_t i = 0; i < n; i++) o[i] = x[i] / f; return SP_OK;
        default: break;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const char *pa = sp_elem_ptr(a, i);
        char *po = sp_elem_ptr(out, i);
        if (ints) {
            int64_t x = sp_load_i64(a->dtype, pa), y = (int64_t)s, r;
            if (!apply_int(op, reverse ? y : x, reverse ? x : y, &r))
                return sp_error(SP_EINVAL, "%s: integer division by zero", OPN[op]);
            sp_store_i64(out->dtype, po, r);
        } else {
            double x = sp_load_f64(a->dtype, pa);
            sp_store_f64(out->dtype, po, reverse ? apply(op, s, x) : apply(op, x, s));
        }
    }
    return SP_OK;
}

sp_status sp_cpu_unary(sp_tensor *out, const sp_tensor *a, int op) {
    int64_t n = sp_tensor_numel(a);
    if (op == SP_UN_RELU && out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32 && sp_cpu_same_dense(out, a, NULL)) {
        relu_f32(SP_DATA(out), SP_DATA(a), n);
        return SP_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        double x = sp_load_f64(a->dtype, sp_elem_ptr(a, i)), r;
        switch (op) {
        case SP_UN_NEG: r = -x; break;
        case SP_UN_ABS: r = fabs(x); break;
        case SP_UN_EXP: r = exp(x); break;
        case SP_UN_LOG: r = log(x); break;
        case SP_UN_SQRT: r = sqrt(x); break;
        case SP_UN_TANH: r = tanh(x); break;
        case SP_UN_SIGMOID: r = 1.0 / (1.0 + exp(-x)); break;
        case SP_UN_RELU: r = x > 0 ? x : 0; break;
        default: return sp_error(SP_EINVAL, "unary op: unknown op %d", op);
        }
        sp_store_f64(out->dtype, sp_elem_ptr(out, i), r);
    }
    return SP_OK;
}
