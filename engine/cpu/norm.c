/* norm.c — CPU kernels (checked by engine/ops/nn_ops.c): BatchNorm2d forward/backward over NCHW float32 (MindSpore's momentum
 * convention: moving = momentum*moving + (1-momentum)*batch, unbiased variance). */
#include "nn_common.h"

#include <math.h>

/* Row reductions in 16 float lanes (vectorised; GCC keeps a scalar double chain otherwise,
 * perf: BatchNorm ~8% of a ResNet50 training step), lanes summed in double per row and rows
 * summed in double: a row is at most one feature map (ResNet: 12544 floats), so each lane
 * adds under 800 terms in float. */
#define LANES 16
static inline double row_sum(const float *p, int64_t n) {
    float a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) a[j] += p[i + j];
    double s = 0;
    for (int j = 0; j < LANES; j++) s += a[j];
    for (; i < n; i++) s += p[i];
    return s;
}
static inline double row_sqdev(const float *p, int64_t n, float m) {
    float a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) { float d = p[i + j] - m; a[j] += d * d; }
    double s = 0;
    for (int j = 0; j < LANES; j++) s += a[j];
    for (; i < n; i++) { double d = p[i] - m; s += d * d; }
    return s;
}
/* sum g and sum g*(p - m) */
static inline void row_gdot(const float *g, const float *p, int64_t n, float m, double *sg, double *sgx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) { a[j] += g[i + j]; b[j] += g[i + j] * (p[i + j] - m); }
    double s = 0, t = 0;
    for (int j = 0; j < LANES; j++) { s += a[j]; t += b[j]; }
    for (; i < n; i++) { s += g[i]; t += g[i] * ((double)p[i] - m); }
    *sg += s;
    *sgx += t;
}

/* out [N,C,H,W] = (x - mean[c]) * invstd[c] * gamma[c] + beta[c] */
sp_status sp_cpu_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    const float *X = F32(x), *G = F32(gamma), *B = F32(beta);
    float *O = F32(out), *sm = F32(save_mean), *si = F32(save_invstd), *mm = F32(moving_mean), *mv = F32(moving_var);
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) s += row_sum(X + (n * C + c) * HW, HW);
            mean = M > 0 ? s / (double)M : 0.0;
            /* deviations from the float-rounded mean: the variance of x about any centre
             * m is q/M - (mean - m)^2, corrected below */
            float mf = (float)mean;
            double q = 0;
            for (int64_t n = 0; n < N; n++) q += row_sqdev(X + (n * C + c) * HW, HW, mf);
            double dm = mean - (double)mf;
            q -= (double)M * dm * dm;
            if (q < 0) q = 0;
            var = M > 0 ? q / (double)M : 0.0;
            if (update) {
                double unb = M > 1 ? q / (double)(M - 1) : var;
                mm[c] = (float)(momentum * mm[c] + (1.0 - momentum) * mean);
                mv[c] = (float)(momentum * mv[c] + (1.0 - momentum) * unb);
            }
        } else {
            mean = mm[c];
            var = mv[c];
        }
        double inv = 1.0 / sqrt(var + eps);
        sm[c] = (float)mean;
        si[c] = (float)inv;
        float a = (float)(G[c] * inv), b = (float)(B[c] - mean * inv * G[c]);
        for (int64_t n = 0; n < N; n++) {
            const float *p = X + (n * C + c) * HW;
            float *o = O + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) o[i] = p[i] * a + b;
        }
    }
    return SP_OK;
}

/* grad_x [N,C,H,W]; grad_gamma [C] += sum(go*xhat); grad_beta [C] += sum(go) */
sp_status sp_cpu_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                    const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                    const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    const float *X = F32(x), *GO = F32(grad_out), *G = F32(gamma), *sm = F32(save_mean), *si = F32(save_invstd);
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double sg = 0, sgx = 0, inv = si[c];
        for (int64_t n = 0; n < N; n++)
            row_gdot(GO + (n * C + c) * HW, X + (n * C + c) * HW, HW, sm[c], &sg, &sgx);
        sgx *= inv;
        if (grad_gamma) F32(grad_gamma)[c] += (float)sgx;
        if (grad_beta) F32(grad_beta)[c] += (float)sg;
        if (!grad_x) continue;
        double k = G[c] * inv;
        for (int64_t n = 0; n < N; n++) {
            const float *p = X + (n * C + c) * HW, *g = GO + (n * C + c) * HW;
            float *o = F32(grad_x) + (n * C + c) * HW;
            if (training && M > 0) {
                float kf = (float)k, a = (float)(sg / (double)M), b = (float)(inv * sgx / (double)M), mf = sm[c];
                for (int64_t i = 0; i < HW; i++) o[i] = kf * (g[i] - a - (p[i] - mf) * b);
            } else {
                float kf = (float)k;
                for (int64_t i = 0; i < HW; i++) o[i] = kf * g[i];
            }
        }
    }
    return SP_OK;
}
