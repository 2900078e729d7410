/* optim.c — CPU kernels (checked by engine/ops/optim_ops.c): in-place optimizer updates (MindSpore's ApplyMomentum, SGD, Adam), float32. */
#include "nn_common.h"

#include <math.h>

/* param [*], moment [*], grad [*] */
sp_status sp_cpu_momentum_update(sp_tensor *param, sp_tensor *moment, const sp_tensor *grad, double lr,
                                 double momentum, double weight_decay, double loss_scale, int nesterov) {
    int64_t n = sp_tensor_numel(param);
    float *P = F32(param), *V = F32(moment);
    const float *G = F32(grad);
    float l = (float)lr, u = (float)momentum, wd = (float)weight_decay, inv = (float)(1.0 / loss_scale);
#pragma omp parallel for schedule(static) if (nn_par(n))
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        float v = u * V[i] + g;
        V[i] = v;
        P[i] -= nesterov ? (l * g + l * u * v) : l * v;
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
    double lr_t = lr * sqrt(1.0 - beta2_power) / (1.0 - beta1_power);
    float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, lt = (float)lr_t, wd = (float)weight_decay,
          inv = (float)(1.0 / loss_scale);
    for (int64_t i = 0; i < n; i++) {
        float g = G[i] * inv + wd * P[i];
        M[i] += (g - M[i]) * (1 - b1);
        V[i] += (g * g - V[i]) * (1 - b2);
        float num = nesterov ? (M[i] * b1 + (1 - b1) * g) : M[i];
        P[i] -= lt * num / (sqrtf(V[i]) + e);
    }
    return SP_OK;
}
