/* optim.c — CPU kernels (checked by engine/ops/optim_ops.c): in-place optimizer updates (MindSpore's ApplyMomentum, SGD, Adam), float32. */
#include "nn_common.h"

#include <math.h>

/* The serial loop, in AVX2/AVX-512 clones (the same operations, no contraction: -std=c11
 * keeps fp-contract off): moments that decay towards zero become subnormal after some
 * hundred steps, and the SSE2 loop then took ~0.4 ms a LeNet step in microcode assists. */
SP_NN_CLONES static void momentum_f32(float *P, float *V, const float *G, int64_t n, float l, float u, float wd,
                                      float inv, int nesterov) {
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        float v = u * V[i] + g;
        V[i] = v;
        P[i] -= nesterov ? (l * g + l * u * v) : l * v;
    }
}

/* param [*], moment [*], grad [*] */
sp_status sp_cpu_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                 double momentum, double weight_decay, double loss_scale, int nesterov) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *V = F32(moment);
    const float *G = F32(grad);
    float l = (float)lr, u = (float)momentum, wd = (float)weight_decay, inv = (float)(1.0 / loss_scale);
    /* a whole model's flat state (ResNet50: 25.6M floats, 22 ms on one core) in chunks of the
     * clone on libgomp's pool (nn_par_big); elementwise, so the bits do not depend on it */
    enum { CH = 1 << 16 };
    int64_t nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (nn_par_big(n))
    for (int64_t k = 0; k < nch; k++) {
        int64_t i0 = k * CH, m = n - i0 < CH ? n - i0 : CH;
        momentum_f32(P + i0, V + i0, G + i0, m, l, u, wd, inv, nesterov);
    }
    return SP_OK;
}

/* param [*], accum [*], grad [*] */
sp_status sp_cpu_sgd_update(sp_tensor *param, sp_tensor *accum, const sp_tensor *grad, double lr, double momentum,
                            double dampening, double weight_decay, double loss_scale, int nesterov, int first) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *A = accum ? F32(accum) : NULL; /* NULL only without momentum */
    const float *G = F32(grad);
    float l = (float)lr, u = (float)momentum, d = (float)dampening, wd = (float)weight_decay,
          inv = (float)(1.0 / loss_scale);
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        if (u > 0) {
            A[i] = first ? g : u * A[i] + (1 - d) * g;
            P[i] -= nesterov ? l * (g + u * A[i]) : l * A[i];
        } else {
            P[i] -= l * g;
        }
    }
    return SP_OK;
}

/* param [*], m [*], v [*], grad [*] */
sp_status sp_cpu_adam_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                             double beta1, double beta2, double eps, double beta1_power, double beta2_power,
                             double weight_decay, double loss_scale, int nesterov) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *M = F32(m), *V = F32(v);
    const float *G = F32(grad);
    /* lr_t and the moments round as MindSpore's CPU Adam kernel (checked bit for bit) */
    float lt = (float)lr * sqrtf(1.0f - (float)beta2_power) / (1.0f - (float)beta1_power);
    float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, wd = (float)weight_decay,
          inv = (float)(1.0 / loss_scale);
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        M[i] = fmaf(g - M[i], 1 - b1, M[i]);
        V[i] = fmaf(fmaf(g, g, -V[i]), 1 - b2, V[i]);
        float num = nesterov ? (M[i] * b1 + (1 - b1) * g) : M[i];
        P[i] -= lt * num / (sqrtf(V[i]) + e);
    }
    return SP_OK;
}

/* param, m, v, vhat [*], grad [*]: Adam with AMSGrad (ApplyAdamWithAmsgradV2) */
sp_status sp_cpu_adam_amsgrad_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, sp_tensor *vhat,
                                     const sp_tensor *grad, double lr, double beta1, double beta2, double eps,
                                     double beta1_power, double beta2_power, double weight_decay,
                                     double loss_scale) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *M = F32(m), *V = F32(v), *H = F32(vhat);
    const float *G = F32(grad);
    float lt = (float)lr * sqrtf(1.0f - (float)beta2_power) / (1.0f - (float)beta1_power);
    float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, wd = (float)weight_decay,
          inv = (float)(1.0 / loss_scale);
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        M[i] += (g - M[i]) * (1 - b1); /* the rounding of MindSpore's CPU kernel (checked bit for bit) */
        V[i] += (g * g - V[i]) * (1 - b2);
        if (V[i] > H[i]) H[i] = V[i];
        P[i] -= lt * M[i] / (sqrtf(H[i]) + e);
    }
    return SP_OK;
}

/* param, m, v [*], grad [*]: MindSpore's fused AdamWeightDecay */
sp_status sp_cpu_adamw_update(sp_tensor *param, sp_tensor *m, sp_tensor *v, const sp_tensor *grad, double lr,
                              double beta1, double beta2, double eps, double weight_decay) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *M = F32(m), *V = F32(v);
    const float *G = F32(grad);
    float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, l = (float)lr, wd = (float)weight_decay;
#pragma omp parallel for schedule(static) if (nn_par(n))
    for (int64_t i = 0; i < n; i++) {
        float g = G[i];
        /* MindSpore's CPU kernel rounds as these fused multiply-adds (moments checked bit for bit) */
        float mi = fmaf(g - M[i], 1 - b1, M[i]);
        float vi = fmaf(fmaf(g, g, -V[i]), 1 - b2, V[i]);
        M[i] = mi;
        V[i] = vi;
        float u = mi / (sqrtf(vi) + e) + wd * P[i];
        P[i] -= l * u;
    }
    return SP_OK;
}

/* grad [*] (+= wd*param), then as [rows, cols]: each row minus its mean (double accumulator) */
sp_status sp_cpu_grad_centralize(sp_tensor *grad, const sp_tensor *param, double weight_decay, int64_t rows) {
    int64_t n = sp_tensor_numel(grad), cols = rows > 0 ? n / rows : 0;
    float *G = F32(grad);
    if (param) {
        const float *P = F32(param);
        float wd = (float)weight_decay;
        for (int64_t i = 0; i < n; i++) G[i] = P[i] * wd + G[i];
    }
    for (int64_t r = 0; r < rows; r++) {
        float *row = G + r * cols;
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += row[j];
        float mean = (float)(s / (double)cols);
        for (int64_t j = 0; j < cols; j++) row[j] -= mean;
    }
    return SP_OK;
}
