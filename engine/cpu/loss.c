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

/* Sparse labels (int32) must lie in [0, C) unless they equal ignore_index: checked here, where
 * their values can be read. */
static sp_status label_range(const char *op, const sp_tensor *labels, int64_t N, int64_t C, int64_t ignore_index,
                             int *sparse) {
    *sparse = labels->dtype == SP_INT32;
    if (!*sparse) return SP_OK;
    const int32_t *L = SP_DATA(labels);
    for (int64_t n = 0; n < N; n++)
        if ((L[n] < 0 || L[n] >= C) && (int64_t)L[n] != ignore_index)
            return sp_error(SP_EINVAL, "%s: label %d at row %lld is out of range [0, %lld)", op, L[n], (long long)n,
                            (long long)C);
    return SP_OK;
}

/* The row target q[n, c] (see spore.h, sp_cross_entropy_forward): sparse label y (int32):
 * q = a*w[y]*[c == y] + b*w[c], or 0 for a row whose label is ignore_index; dense labels
 * L[n, c]: q = (a*L + b)*w[c]; w = weight or 1. */
static inline double q_of(int sparse, int32_t y, const float *Lrow, const float *W, int64_t c, double a, double b) {
    double w = W ? W[c] : 1.0;
    if (sparse) return (c == y ? a * (W ? W[y] : 1.0) : 0.0) + b * w;
    return (a * Lrow[c] + b) * w;
}

/* loss [N] = sum_c q*(lse - x) (double accumulation); row_weight [N] (optional) = w[y] for a
 * sparse row (0 when ignored), 1 for a dense one; prob [N,C] = softmax(x) */
sp_status sp_cpu_softmax_xent_forward(sp_tensor *loss, sp_tensor *row_weight, sp_tensor *prob,
                                      const sp_tensor *logits, const sp_tensor *labels, const sp_tensor *weight,
                                      int64_t ignore_index, double a, double b) {
    const char *op = "softmax_xent_forward";
    int64_t N = logits->shape[0], C = logits->shape[1];
    int sparse;
    NN_TRY(label_range(op, labels, N, C, ignore_index, &sparse));
    const float *X = F32(logits), *W = weight ? F32(weight) : NULL;
    for (int64_t n = 0; n < N; n++) {
        double lse;
        softmax_row(F32(prob) + n * C, X + n * C, C, &lse);
        int32_t y = sparse ? ((const int32_t *)SP_DATA(labels))[n] : 0;
        const float *Lrow = sparse ? NULL : F32(labels) + n * C;
        double v = 0, rw = 1;
        if (sparse && (int64_t)y == ignore_index) {
            rw = 0;
        } else {
            if (sparse) rw = W ? W[y] : 1.0;
            for (int64_t c = 0; c < C; c++) {
                double q = q_of(sparse, y, Lrow, W, c, a, b);
                if (q != 0) v += q * (lse - (double)X[n * C + c]);
            }
        }
        F32(loss)[n] = (float)v;
        if (row_weight) F32(row_weight)[n] = (float)rw;
    }
    return SP_OK;
}

/* grad_x [N,C] = (prob*Q - q) * grad_loss[n] * scale, Q = sum_c q (grad_loss NULL: 1) */
sp_status sp_cpu_softmax_xent_backward(sp_tensor *grad_x, const sp_tensor *prob, const sp_tensor *labels,
                                       const sp_tensor *weight, const sp_tensor *grad_loss, int64_t ignore_index,
                                       double a, double b, double scale) {
    const char *op = "softmax_xent_backward";
    int64_t N = prob->shape[0], C = prob->shape[1];
    int sparse;
    NN_TRY(label_range(op, labels, N, C, ignore_index, &sparse));
    const float *P = F32(prob), *W = weight ? F32(weight) : NULL;
    float *G = F32(grad_x);
    for (int64_t n = 0; n < N; n++) {
        double k = scale * (grad_loss ? F32(grad_loss)[n] : 1.0);
        int32_t y = sparse ? ((const int32_t *)SP_DATA(labels))[n] : 0;
        const float *Lrow = sparse ? NULL : F32(labels) + n * C;
        if (sparse && (int64_t)y == ignore_index) {
            for (int64_t c = 0; c < C; c++) G[n * C + c] = 0;
            continue;
        }
        double Q = 0;
        for (int64_t c = 0; c < C; c++) Q += q_of(sparse, y, Lrow, W, c, a, b);
        for (int64_t c = 0; c < C; c++)
            G[n * C + c] = (float)(k * (P[n * C + c] * Q - q_of(sparse, y, Lrow, W, c, a, b)));
    }
    return SP_OK;
}
