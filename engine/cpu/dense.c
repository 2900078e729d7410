/* dense.c — Dense (fully connected) forward/backward, float32, weight [out, in]. */
#include "nn_common.h"

#include <cblas.h>

static sp_status dense_check(const char *op, const sp_tensor *x, const sp_tensor *w, int64_t *N, int64_t *In,
                             int64_t *O) {
    NN_TRY(nn_f32(x, 2, op, "x"));
    NN_TRY(nn_f32(w, 2, op, "weight"));
    *N = x->shape[0]; *In = x->shape[1]; *O = w->shape[0];
    if (w->shape[1] != *In)
        return sp_error(SP_EINVAL, "%s: x is [%lld,%lld] but weight is [%lld,%lld] (expected [out,%lld])", op,
                        (long long)*N, (long long)*In, (long long)w->shape[0], (long long)w->shape[1], (long long)*In);
    return SP_OK;
}

/* out [N,O] = x [N,In] . w [O,In]^T + b [O] */
sp_status sp_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    const char *op = "dense_forward";
    int64_t N, In, O;
    NN_TRY(dense_check(op, x, w, &N, &In, &O));
    NN_TRY(nn_f32(out, 2, op, "out"));
    if (out->shape[0] != N || out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: out is [%lld,%lld], expected [%lld,%lld]", op, (long long)out->shape[0],
                        (long long)out->shape[1], (long long)N, (long long)O);
    float *o = F32(out);
    if (bias) {
        NN_TRY(nn_f32(bias, -1, op, "bias"));
        NN_TRY(nn_numel(bias, O, op, "bias"));
        const float *b = F32(bias);
        for (int64_t n = 0; n < N; n++) memcpy(o + n * O, b, sizeof(float) * (size_t)O);
    }
    if (N && O && In)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)O, (int)In, 1.0f, F32(x), (int)In, F32(w),
                    (int)In, bias ? 1.0f : 0.0f, o, (int)O);
    else if (!bias) memset(o, 0, sizeof(float) * (size_t)(N * O));
    return SP_OK;
}

/* grad_x [N,In] = grad_out [N,O] . w [O,In]; grad_w [O,In] += grad_out^T . x; grad_b [O] += sum_n */
sp_status sp_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                            const sp_tensor *x, const sp_tensor *w) {
    const char *op = "dense_backward";
    int64_t N, In, O;
    NN_TRY(dense_check(op, x, w, &N, &In, &O));
    NN_TRY(nn_f32(grad_out, 2, op, "grad_out"));
    if (grad_out->shape[0] != N || grad_out->shape[1] != O)
        return sp_error(SP_EINVAL, "%s: grad_out is [%lld,%lld], expected [%lld,%lld]", op,
                        (long long)grad_out->shape[0], (long long)grad_out->shape[1], (long long)N, (long long)O);
    const float *go = F32(grad_out);
    if (grad_x) {
        NN_TRY(nn_f32(grad_x, -1, op, "grad_x"));
        NN_TRY(nn_numel(grad_x, N * In, op, "grad_x"));
        if (O == 0) memset(F32(grad_x), 0, sizeof(float) * (size_t)(N * In));
        else if (N && In)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)O, 1.0f, go, (int)O, F32(w),
                        (int)In, 0.0f, F32(grad_x), (int)In);
    }
    if (grad_w) {
        NN_TRY(nn_f32(grad_w, -1, op, "grad_w"));
        NN_TRY(nn_numel(grad_w, O * In, op, "grad_w"));
        if (N && O && In)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)O, (int)In, (int)N, 1.0f, go, (int)O, F32(x),
                        (int)In, 1.0f, F32(grad_w), (int)In);
    }
    if (grad_b) {
        NN_TRY(nn_f32(grad_b, -1, op, "grad_b"));
        NN_TRY(nn_numel(grad_b, O, op, "grad_b"));
        float *gb = F32(grad_b);
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += go[n * O + o];
            gb[o] += (float)s;
        }
    }
    return SP_OK;
}
