/* act.c — ReLU, dropout, residual add, elementwise multiply, accumulate (float32). */
#include "nn_common.h"

static sp_status same_numel(const char *op, const sp_tensor *a, const char *an, const sp_tensor *b, const char *bn) {
    NN_TRY(nn_f32(a, -1, op, an));
    NN_TRY(nn_f32(b, -1, op, bn));
    return nn_numel(b, sp_tensor_numel(a), op, bn);
}

/* out[i] = max(x[i], 0) */
sp_status sp_relu_forward(sp_tensor *out, const sp_tensor *x) {
    NN_TRY(same_numel("relu_forward", out, "out", x, "x"));
    int64_t n = sp_tensor_numel(x);
    const float *restrict a = F32(x);
    float *restrict o = F32(out);
    /* branch-free so that it vectorises (a branch mispredicts on half of random data) */
    if (a == o) for (int64_t i = 0; i < n; i++) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
    else for (int64_t i = 0; i < n; i++) o[i] = a[i] > 0.0f ? a[i] : 0.0f;
    return SP_OK;
}

/* grad_x[i] = y[i] > 0 ? grad_out[i] : 0 */
sp_status sp_relu_backward(sp_tensor *grad_x, const sp_tensor *grad_out, const sp_tensor *y) {
    NN_TRY(same_numel("relu_backward", grad_x, "grad_x", grad_out, "grad_out"));
    NN_TRY(same_numel("relu_backward", grad_x, "grad_x", y, "y"));
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
sp_status sp_dropout_forward(sp_tensor *out, sp_tensor *mask, const sp_tensor *x, double p, uint64_t *state) {
    NN_TRY(same_numel("dropout_forward", out, "out", x, "x"));
    NN_TRY(same_numel("dropout_forward", out, "out", mask, "mask"));
    if (!(p >= 0 && p < 1)) return sp_error(SP_EINVAL, "dropout_forward: p must be in [0, 1), got %g", p);
    if (!state) return sp_error(SP_EINVAL, "dropout_forward: state is NULL");
    NN_TRY(sp_rand_uniform(mask, 0.0, 1.0, state));
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
sp_status sp_mul_forward(sp_tensor *out, const sp_tensor *a, const sp_tensor *b) {
    NN_TRY(same_numel("mul_forward", out, "out", a, "a"));
    NN_TRY(same_numel("mul_forward", out, "out", b, "b"));
    int64_t n = sp_tensor_numel(a);
    const float *x = F32(a), *y = F32(b);
    float *o = F32(out);
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];
    return SP_OK;
}

/* out[i] = a[i] + b[i] (then relu when relu != 0) */
sp_status sp_add_forward(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int relu) {
    NN_TRY(same_numel("add_forward", out, "out", a, "a"));
    NN_TRY(same_numel("add_forward", out, "out", b, "b"));
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
sp_status sp_accumulate(sp_tensor *dst, const sp_tensor *src) {
    NN_TRY(same_numel("accumulate", dst, "dst", src, "src"));
    int64_t n = sp_tensor_numel(src);
    const float *s = F32(src);
    float *d = F32(dst);
#pragma omp parallel for schedule(static) if (nn_par(n))
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
    return SP_OK;
}
