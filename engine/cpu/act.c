/* act.c — CPU kernels (checked by engine/ops/nn_ops.c): ReLU, dropout, residual add, elementwise multiply, accumulate (float32). */
#include "nn_common.h"

/* out[i] = max(x[i], 0) */
sp_status sp_cpu_relu_forward(sp_tensor *out, const sp_tensor *x) {
    int64_t n = sp_tensor_numel(x);
    const float *restrict a = F32(x);
    float *restrict o = F32(out);
    /* branch-free so that it vectorises (a branch mispredicts on half of random data) */
    if (a == o) for (int64_t i = 0; i < n; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
    else for (int64_t i = 0; i < n; i++) o[i] = a[i] > 0.0f ? a[i] : 0.0f;
    return SP_OK;
}

/* grad_x[i] = y[i] > 0 ? grad_out[i] : 0 */
sp_status sp_cpu_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    int64_t n = sp_tensor_numel(y);
    const float *g = F32(grad_out), *a = F32(y);
    float *o = F32(grad_x);
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

/* out[i] = a[i]*b[i] */
sp_status sp_cpu_mul_forward(sp_tensor *out, const sp_tensor *a, const sp_tensor *b) {
    int64_t n = sp_tensor_numel(a);
    const float *x = F32(a), *y = F32(b);
    float *o = F32(out);
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];
    return SP_OK;
}

/* out[i] = a[i] + b[i] (then relu when relu != 0) */
sp_status sp_cpu_add_forward(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int relu) {
    int64_t n = sp_tensor_numel(a);
    const float *x = F32(a), *y = F32(b);
    float *o = F32(out);
    if (relu) {
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] + y[i];
            o[i] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (int64_t i = 0; i < n; i++) o[i] = x[i] + y[i];
    }
    return SP_OK;
}

/* dst[i] += src[i] */
sp_status sp_cpu_accumulate(sp_tensor *dst, const sp_tensor *src) {
    int64_t n = sp_tensor_numel(src);
    const float *s = F32(src);
    float *d = F32(dst);
#pragma omp parallel for schedule(static) if (nn_par(n))
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
    return SP_OK;
}
