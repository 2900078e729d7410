/* act.c — CPU kernels (checked by engine/ops/nn_ops.c): ReLU backward and dropout (float32); the forward ReLU, residual add and products are sp_unary/sp_binary (engine/cpu/elementwise.c). */
#include "nn_common.h"

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

