/* act.c — CPU kernels (checked by engine/ops/nn_ops.c): ReLU backward and dropout (float32); the forward ReLU, residual add and products are sp_unary/sp_binary (engine/cpu/elementwise.c). */
#include "nn_common.h"

#include <omp.h>

/* grad_x[i] = y[i] > 0 ? grad_out[i] : 0 (the product with a 0/1 mask: NaN and -0 as before) */
SP_NN_CLONES static void relu_bwd_f32(float *o, const float *g, const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float m = a[i] > 0.0f ? 1.0f : 0.0f;
        o[i] = g[i] * m;
    }
}
sp_status sp_cpu_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    int64_t n = sp_tensor_numel(y);
    const float *g = F32(grad_out), *a = F32(y);
    float *o = F32(grad_x);
    /* channels-last operands (all of them, engine/ops): on libgomp's pool as nn_par_cl says */
    if (!nn_par_for(y, n)) { relu_bwd_f32(o, g, a, n); return SP_OK; }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float m = a[i] > 0.0f ? 1.0f : 0.0f;
        o[i] = g[i] * m;
    }
    return SP_OK;
}

/* grad_x[i] = (a[i] + b[i]) * (y[i] > 0): the sum rounded to float first, then the mask, as
 * the add and relu_backward kernels do one after the other */
SP_NN_CLONES static void add_relu_bwd_f32(float *o, const float *p, const float *q, const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float m = a[i] > 0.0f ? 1.0f : 0.0f, s = p[i] + q[i];
        o[i] = s * m;
    }
}
sp_status sp_cpu_add_relu_backward(sp_tensor *grad_x, const sp_tensor *a, const sp_tensor *b, const sp_tensor *y) {
    int64_t n = sp_tensor_numel(y);
    const float *p = F32(a), *q = F32(b), *m = F32(y);
    float *o = F32(grad_x);
    if (!nn_par_for(y, n)) { add_relu_bwd_f32(o, p, q, m, n); return SP_OK; }
    int nt = omp_get_max_threads();
    int64_t chunk = ((n + nt - 1) / nt + 15) & ~(int64_t)15;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        int64_t lo = t * chunk, hi = lo + chunk < n ? lo + chunk : n;
        if (lo < hi) add_relu_bwd_f32(o + lo, p + lo, q + lo, m + lo, hi - lo);
    }
    return SP_OK;
}

/* mask[i] in {0, 1/(1-p)}, out[i] = x[i]*mask[i] */
sp_status sp_cpu_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state) {
    NN_TRY(sp_cpu_rand_uniform(mask, 0.0, 1.0, state));
    int64_t n = sp_tensor_numel(x);
    float *m = F32(mask), *o = F32(out);
    const float *a = F32(x);
    float keep = (float)(1.0 / (1.0 - p));
    for (int64_t i = 0; i < n; i++) {
        m[i] = m[i] < (float)p ? 0.0f : keep;
        o[i] = a[i] * m[i];
    }
    return SP_OK;
}

