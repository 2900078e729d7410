/* dense.c — CPU kernels (checked by engine/ops/nn_ops.c): Dense (fully connected) forward/backward, float32, weight [out, in]. */
#include "nn_common.h"

#include <cblas.h>

/* out [N,O] = x [N,In] . w [O,In]^T + b [O] */
sp_status sp_cpu_dense_forward(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    float *o = F32(out);
    if (bias) {
        const float *b = F32(bias);
        for (int64_t n = 0; n < N; n++) memcpy(o + n * O, b, sizeof(float) * (size_t)O);
    }
    /* one row: a matrix-vector product. OpenBLAS's sgemm packs all of w for it (ResNet50's
     * 2048 -> 1001 head at batch 1: 0.86 ms, sgemv 0.21 ms, measured between forwards) */
    if (N == 1 && O && In)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)O, (int)In, 1.0f, F32(w), (int)In, F32(x), 1,
                    bias ? 1.0f : 0.0f, o, 1);
    else if (N && O && In)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, (int)O, (int)In, 1.0f, F32(x), (int)In, F32(w),
                    (int)In, bias ? 1.0f : 0.0f, o, (int)O);
    else if (!bias) memset(o, 0, sizeof(float) * (size_t)(N * O));
    return SP_OK;
}

/* grad_x [N,In] = grad_out [N,O] . w [O,In]; grad_w [O,In] += grad_out^T . x; grad_b [O] += sum_n */
sp_status sp_cpu_dense_backward(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b, const sp_tensor *grad_out,
                                const sp_tensor *x, const sp_tensor *w) {
    int64_t N = x->shape[0], In = x->shape[1], O = w->shape[0];
    const float *go = F32(grad_out);
    if (grad_x) {
        if (O == 0) memset(F32(grad_x), 0, sizeof(float) * (size_t)(N * In));
        else if (N && In)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)In, (int)O, 1.0f, go, (int)O, F32(w),
                        (int)In, 0.0f, F32(grad_x), (int)In);
    }
    if (grad_w) {
        if (N && O && In)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)O, (int)In, (int)N, 1.0f, go, (int)O, F32(x),
                        (int)In, 1.0f, F32(grad_w), (int)In);
    }
    if (grad_b) {
        float *gb = F32(grad_b);
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += go[n * O + o];
            gb[o] += (float)s;
        }
    }
    return SP_OK;
}
