/* loss.c — CPU kernels (checked by engine/ops/nn_ops.c): softmax and softmax cross-entropy with logits (sparse int32 or dense labels). */
#include "nn_common.h"

#include <math.h>

static void softmax_row(float *p, const float *x, int64_t C, double *lse) {
    float m = -INFINITY;
    for (int64_t c = 0; c < C; c++) if (x[c] > m) m = x[c];
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp((double)x[c] - m);
    for (int64_t c = 0; c < C; c++) p[c] = (float)(exp((double)x[c] - m) / s);
    if (lse) *lse = m + log(s);
}

/* out [N,C] = softmax(x [N,C]) along C */
sp_status sp_cpu_softmax_forward(sp_tensor *out, const sp_tensor *x) {
    int64_t N = x->shape[0], C = x->shape[1];
    for (int64_t n = 0; n < N; n++) softmax_row(F32(out) + n * C, F32(x) + n * C, C, NULL);
    return SP_OK;
}

/* Sparse labels (int32) must lie in [0, C): checked here, where their values can be read. */
static sp_status label_range(const char *op, const sp_tensor *labels, int64_t N, int64_t C, int *sparse) {
    *sparse = labels->dtype == SP_INT32;
    if (!*sparse) return SP_OK;
    const int32_t *L = SP_DATA(labels);
    for (int64_t n = 0; n < N; n++)
        if (L[n] < 0 || L[n] >= C)
            return sp_error(SP_EINVAL, "%s: label %d at row %lld is out of range [0, %lld)", op, L[n], (long long)n,
                            (long long)C);
    return SP_OK;
}

/* loss [N] = logsumexp(x[n]) - sum_c label[n,c]*x[n,c]; prob [N,C] = softmax(x) */
sp_status sp_cpu_softmax_xent_forward(sp_tensor *loss, sp_tensor *prob, const sp_tensor *logits,
                                      const sp_tensor *labels) {
    const char *op = "softmax_xent_forward";
    int64_t N = logits->shape[0], C = logits->shape[1];
    int sparse;
    NN_TRY(label_range(op, labels, N, C, &sparse));
    const float *X = F32(logits);
    for (int64_t n = 0; n < N; n++) {
        double lse;
        softmax_row(F32(prob) + n * C, X + n * C, C, &lse);
        double v;
        if (sparse) v = lse - X[n * C + ((const int32_t *)SP_DATA(labels))[n]];
        else {
            const float *L = F32(labels) + n * C;
            double s = 0, ls = 0;
            for (int64_t c = 0; c < C; c++) { s += L[c] * (double)X[n * C + c]; ls += L[c]; }
            v = ls * lse - s;
        }
        F32(loss)[n] = (float)v;
    }
    return SP_OK;
}

/* grad_x [N,C] = (prob*sum(label) - label) * grad_loss[n] * scale (grad_loss NULL: 1) */
sp_status sp_cpu_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                       const sp_tensor *grad_loss, double scale) {
    const char *op = "softmax_xent_backward";
    int64_t N = prob->shape[0], C = prob->shape[1];
    int sparse;
    NN_TRY(label_range(op, labels, N, C, &sparse));
    const float *P = F32(prob);
    float *G = F32(grad_x);
    for (int64_t n = 0; n < N; n++) {
        double k = scale * (grad_loss ? F32(grad_loss)[n] : 1.0);
        if (sparse) {
            int32_t y = ((const int32_t *)SP_DATA(labels))[n];
            for (int64_t c = 0; c < C; c++) G[n * C + c] = (float)(k * (P[n * C + c] - (c == y ? 1.0 : 0.0)));
        } else {
            const float *L = F32(labels) + n * C;
            double ls = 0;
            for (int64_t c = 0; c < C; c++) ls += L[c];
            for (int64_t c = 0; c < C; c++) G[n * C + c] = (float)(k * (P[n * C + c] * ls - L[c]));
        }
    }
    return SP_OK;
}
