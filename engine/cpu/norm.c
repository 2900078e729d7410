/* norm.c — BatchNorm2d forward/backward over NCHW float32 (MindSpore's momentum
 * convention: moving = momentum*moving + (1-momentum)*batch, unbiased variance). */
#include "nn_common.h"

#include <math.h>

static sp_status bn_vec(const sp_tensor *t, int64_t C, const char *op, const char *what) {
    NN_TRY(nn_f32(t, -1, op, what));
    return nn_numel(t, C, op, what);
}

/* out [N,C,H,W] = (x - mean[c]) * invstd[c] * gamma[c] + beta[c] */
sp_status sp_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                               const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                               sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    const char *op = "batchnorm_forward";
    NN_TRY(nn_f32(x, 4, op, "x"));
    NN_TRY(nn_f32(out, 4, op, "out"));
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    NN_TRY(nn_shape4(out, N, C, x->shape[2], x->shape[3], op, "out"));
    NN_TRY(bn_vec(save_mean, C, op, "save_mean"));
    NN_TRY(bn_vec(save_invstd, C, op, "save_invstd"));
    NN_TRY(bn_vec(gamma, C, op, "gamma"));
    NN_TRY(bn_vec(beta, C, op, "beta"));
    NN_TRY(bn_vec(moving_mean, C, op, "moving_mean"));
    NN_TRY(bn_vec(moving_var, C, op, "moving_variance"));
    int64_t M = N * HW;
    if (training && M < 1) return sp_error(SP_EINVAL, "%s: training needs at least one value per channel", op);
    const float *X = F32(x), *G = F32(gamma), *B = F32(beta);
    float *O = F32(out), *sm = F32(save_mean), *si = F32(save_invstd), *mm = F32(moving_mean), *mv = F32(moving_var);
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            double s = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *p = X + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; i++) s += p[i];
            }
            mean = s / (double)M;
            double q = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *p = X + (n * C + c) * HW;
                for (int64_t i = 0; i < HW; i++) { double d = p[i] - mean; q += d * d; }
            }
            var = q / (double)M;
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
sp_status sp_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    const char *op = "batchnorm_backward";
    NN_TRY(nn_f32(x, 4, op, "x"));
    NN_TRY(nn_f32(grad_out, 4, op, "grad_out"));
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    NN_TRY(nn_shape4(grad_out, N, C, x->shape[2], x->shape[3], op, "grad_out"));
    if (grad_x) { NN_TRY(nn_f32(grad_x, 4, op, "grad_x")); NN_TRY(nn_shape4(grad_x, N, C, x->shape[2], x->shape[3], op, "grad_x")); }
    if (grad_gamma) NN_TRY(bn_vec(grad_gamma, C, op, "grad_gamma"));
    if (grad_beta) NN_TRY(bn_vec(grad_beta, C, op, "grad_beta"));
    NN_TRY(bn_vec(gamma, C, op, "gamma"));
    NN_TRY(bn_vec(save_mean, C, op, "save_mean"));
    NN_TRY(bn_vec(save_invstd, C, op, "save_invstd"));
    const float *X = F32(x), *GO = F32(grad_out), *G = F32(gamma), *sm = F32(save_mean), *si = F32(save_invstd);
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double sg = 0, sgx = 0, mean = sm[c], inv = si[c];
        for (int64_t n = 0; n < N; n++) {
            const float *p = X + (n * C + c) * HW, *g = GO + (n * C + c) * HW;
            for (int64_t i = 0; i < HW; i++) { sg += g[i]; sgx += g[i] * (p[i] - mean) * inv; }
        }
        if (grad_gamma) F32(grad_gamma)[c] += (float)sgx;
        if (grad_beta) F32(grad_beta)[c] += (float)sg;
        if (!grad_x) continue;
        double k = G[c] * inv;
        for (int64_t n = 0; n < N; n++) {
            const float *p = X + (n * C + c) * HW, *g = GO + (n * C + c) * HW;
            float *o = F32(grad_x) + (n * C + c) * HW;
            if (training && M > 0) {
                double a = sg / (double)M, b = sgx / (double)M;
                for (int64_t i = 0; i < HW; i++) o[i] = (float)(k * (g[i] - a - (p[i] - mean) * inv * b));
            } else {
                for (int64_t i = 0; i < HW; i++) o[i] = (float)(k * g[i]);
            }
        }
    }
    return SP_OK;
}
